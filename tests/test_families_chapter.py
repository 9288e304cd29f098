"""The report's chapter "implicit bias across families" (linrnn.families.chapter) and the families profile."""

from __future__ import annotations

import math

import numpy as np
import pytest

from linrnn.core.errors import UsageError
from linrnn.families import FAMILIES, spec_class
from linrnn.families.chapter import ChapterConfig, families_chapter, models_at

SMALL = ChapterConfig(radius=0.8, lags=6, horizon_lags=24, radii=(0.5, 0.8), teacher_seeds=0)


@pytest.fixture(scope="module")
def chapter() -> dict:
    return families_chapter(SMALL)


def test_every_family_with_a_radius_setting_is_in_the_chapter(chapter: dict) -> None:
    with_radius = [name for name in FAMILIES if spec_class(name)().at_radius(0.8) is not None]
    assert len(with_radius) >= 4
    assert [p["title"] for p in chapter["figures"]["heatmaps"]["panels"]] == with_radius
    assert [row[0] for row in chapter["tables"][0]["rows"]] == with_radius
    assert [s["label"] for s in chapter["figures"]["horizon"]["series"]] == with_radius


def test_the_radius_settings_have_that_largest_eigenvalue_modulus() -> None:
    """The largest |eigenvalue| of wide draws at each family's radius setting is the radius (within a few per cent)."""
    for name, model in models_at(0.8).items():
        params = model.init(width=400, seed=1)
        if hasattr(model, "eigenvalues"):  # a diagonal family: its eigenvalues are drawn
            lam = np.asarray(model.eigenvalues(params))
        else:  # a dense family: the effective W
            W = np.asarray(params.W) * model.spec.scales(400)[2]
            lam = np.linalg.eigvals(W)
        assert abs(np.max(np.abs(lam)) - 0.8) < 0.06, name


def test_the_horizons_are_those_of_the_lag_weights_for_the_gaussian_family(chapter: dict) -> None:
    """Naive reference: the least lag whose cumulative lambda_j reaches 90% of their sum over the lags asked."""
    from linrnn.derive import weights

    series = {s["label"]: s for s in chapter["figures"]["horizon"]["series"]}["gaussian"]
    for r, h in zip(series["x"], series["y"]):
        w = np.asarray(weights(spec_class("gaussian")(sigma_w2=r * r), SMALL.horizon_lags), dtype=np.float64)
        naive = int(np.argmax(np.cumsum(w) >= 0.9 * w.sum()))
        assert h == naive


def test_the_dense_families_have_equal_kernels_and_the_diagonal_ones_do_not(chapter: dict) -> None:
    cols = chapter["tables"][0]["columns"]
    rows = {row[0]: dict(zip(cols, row)) for row in chapter["tables"][0]["rows"]}
    dist = cols[-1]
    assert rows["gaussian"][dist] == 0 and rows["orthogonal"][dist] == 0  # the same wide limit (derived twice)
    assert rows["lru"][dist] > 0.01 and rows["shifted"][dist] > 0.01
    for panel in chapter["figures"]["heatmaps"]["panels"]:
        m = np.asarray(panel["matrix"])
        assert m.shape == (SMALL.lags, SMALL.lags) and math.isclose(np.max(np.diag(m)), 1.0)


def test_the_chapter_validates_its_configuration() -> None:
    for bad in (dict(radius=1.0), dict(radii=()), dict(lags=1), dict(lags=30, horizon_lags=20), dict(teacher_seeds=-1)):
        with pytest.raises(UsageError):
            ChapterConfig(**bad)


def test_the_families_profile_runs_the_family_claims_and_the_chapter() -> None:
    from linrnn import suite
    from linrnn.families import claims

    cfg = suite.resolve_config("families")
    family_claims = {c.name for c in claims().values() if c.family is not None}
    assert set(cfg.experiments) == {"derivation", "families"} | family_claims
    assert "families" not in suite.default_experiments()  # the quick profile runs no chapter
    assert suite.resolve_config("quick").experiments is None
