"""`linrnn verify ntk --family diagonal|lru`: the model-generic kernel check (linrnn.verify.kernel_check).

The command routes a family whose kernels are exact at every width (its specification's
``exact_at_every_width``, not its name) to the check the families' claims run; it passes
with its controls rejected, fails on a wrong kernel, refuses bad input in one sentence,
never forms an n x n array (tracemalloc: NumPy reports its buffers to it) and sizes its
chunks by the model's memory, not the dense engine's n^2; the claims' statistics at a seed
are those of their first version (pinned: the same draws, the faster NTK differs only by
rounding).
"""

from __future__ import annotations

import json
import tracemalloc

import numpy as np
import pytest

import linrnn
from linrnn.cli import main
from linrnn.core.errors import UsageError

TINY = ["verify", "ntk", "--lags", "4", "--backend", "numpy", "--no-progress"]


@pytest.mark.parametrize("family", ["diagonal", "lru"])
def test_the_command_passes_with_every_control_rejected(family: str, capsys: pytest.CaptureFixture[str]) -> None:
    status = main(TINY + ["--family", family, "--r-min", "0.2", "--widths", "300,3000", "--json"])
    data = json.loads(capsys.readouterr().out)  # stdout is one JSON object
    assert data["schema"] == "linrnn-bias/verify-ntk-exact/1" and data["family"] == family
    assert data["model"]["r_min"] == 0.2 and data["widths"] == [300, 3000] and data["width"] == 3000
    assert data["verdict"] == "pass" and status == 0 == data["exit_status"]
    expected = ["radius", "forced_diagonal"] + (["no_half"] if family == "lru" else [])
    assert list(data["controls"]) == expected and data["controls_rejected"]
    assert np.asarray(data["theory"]).shape == (4, 4) == np.asarray(data["nngp_z"]).shape
    model = linrnn.family(family, r_min=0.2)
    assert np.allclose(data["theory"], model.kernel(4)["ntk"][:, 0, 0, :, 0, 0], rtol=1e-15)
    assert np.allclose(data["nngp_theory"], model.kernel(4)["nngp"][:, 0, 0, :, 0, 0], rtol=1e-15)


def test_the_skewness_bound_of_the_claims_on_request(capsys: pytest.CaptureFixture[str]) -> None:
    status = main(TINY + ["--family", "diagonal", "--widths", "8,16", "--max-skew", "0.05", "--max-replicas", "2048",
                          "--json"])
    data = json.loads(capsys.readouterr().out)
    assert status == 0 and data["verdict"] == "pass" and data["controls_rejected"]
    assert data["draws"] > 2000  # the NNGP values stay skewed at every width: the bound asks for thousands


def test_the_table_at_a_large_width_in_few_draws(capsys: pytest.CaptureFixture[str]) -> None:
    status = main(TINY + ["--family", "lru", "--width", "3000", "--lags", "6"])
    out = capsys.readouterr().out
    assert status == 0 and "verdict: PASS" in out and "exact at every width" in out
    assert "72 draws in all (3 runs)" in out  # pilot 8 + 16 per run: power at this width needs no more


def test_a_wrong_kernel_is_rejected_through_the_command(monkeypatch: pytest.MonkeyPatch,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    """The model's kernel replaced by the wrong radial law's (and the control by the true one): exit 1."""
    from linrnn.families.diagonal.model import RingModel

    true_kernel = RingModel.kernel
    swap = {"area": "radius", "radius": "area"}
    monkeypatch.setattr(RingModel, "kernel", lambda self, lags, radial_law="area":
                        true_kernel(self, lags, swap[radial_law]))
    status = main(TINY + ["--family", "diagonal", "--r-min", "0.2", "--width", "3000", "--json"])
    data = json.loads(capsys.readouterr().out)
    assert status == 1 and data["verdict"] == "fail" and data["statistic_verdict"] == "fail"
    assert data["controls"]["radius"]["verdict"] == "not_rejected"  # the true law, posing as the control


def _refusal(args: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    """The one line on stderr of a refused command (exit 2, nothing on stdout)."""
    status = main(args)
    out, err = capsys.readouterr()
    lines = [line for line in err.splitlines() if line.strip()]
    assert status == 2 and out == "" and len(lines) == 1 and lines[0].startswith("linrnn: error:"), (out, err)
    return lines[0]


def test_the_route_is_a_property_of_the_specification(monkeypatch: pytest.MonkeyPatch,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    from linrnn.families.diagonal.spec import DiagonalSpec

    monkeypatch.setattr(DiagonalSpec, "exact_at_every_width", False)
    assert "dense RNN families only" in _refusal(TINY + ["--family", "diagonal", "--width", "16"], capsys)


@pytest.mark.parametrize("extra, words", [
    (["--family", "lru", "--lags", "1"], "--lags must be between 2 and 256"),
    (["--family", "lru", "--pilot", "2"], "--pilot must be at least 4"),
    (["--family", "lru", "--pilot", "8", "--max-skew", "0.05"], "--pilot must be at least 16"),
    (["--family", "lru", "--max-skew", "1.5"], "--max-skew must lie strictly between 0 and 1"),
    (["--family", "diagonal", "--save", "x.npz"], "--save does not apply to the diagonal family"),
    (["--family", "diagonal", "--mean", "exact"], "--mean does not apply"),
    (["--family", "diagonal", "--width", "100000", "--lags", "64", "--max-memory", "100MB"],
     "raise --max-memory"),
    (["--family", "diagonal", "--r-min", "0.6", "--r-max", "0.6"], "the negative control 'radius'"),
    (["--max-skew", "0.05"], "--max-skew applies to the families whose kernels are exact"),
])
def test_bad_input_is_one_sentence(extra: list[str], words: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert words in _refusal(TINY + ["--width", "16"] + extra, capsys)


def test_the_check_refuses_a_model_not_exact_at_every_width() -> None:
    from linrnn.verify.kernel_check import verify_kernel

    with pytest.raises(UsageError, match="not exact at every width"):
        verify_kernel(linrnn.family("gaussian"), [16], lags=4, replicas=16, pilot=8, max_replicas=64, max_skew=None,
                      alpha=1e-3, max_memory=10**9, progress=False)


def test_no_draw_forms_an_n_by_n_array() -> None:
    """Peak traced bytes of one chunk of draws at n = 20000 stay within the model's estimate, far below n^2."""
    from linrnn.verify.backend import get_backend
    from linrnn.verify.kernel_check import sampler
    from linrnn.verify.montecarlo import bytes_per_draw

    n, lags, count = 20000, 4, 2
    for family in ("diagonal", "lru"):
        model = linrnn.family(family)
        draw = sampler(model, lags)
        be = get_backend("numpy", seed=0)
        draw(be, 64, 0, 1)  # imports and caches outside the trace
        tracemalloc.start()
        values = draw(be, n, 0, count)
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        assert values.shape == (count, lags * (lags + 1)) and np.all(np.isfinite(values))
        assert peak <= count * model.bytes_per_draw(n, lags), (family, peak)
        assert peak < 8 * n * n / 100  # one n x n float64 array is 3.2 GB
    # the chunks are the model's: the dense engine's estimate (an n x n W) would refuse this budget
    assert bytes_per_draw(n, 1, 1, lags, 8) > 100e6 > linrnn.family("lru").bytes_per_draw(n, lags)
    assert main(TINY + ["--family", "lru", "--width", str(n), "--max-memory", "100MB", "--replicas", "4",
                        "--pilot", "4"]) == 0


@pytest.mark.parametrize("name, stat, per_run, controls", [
    ("diagonal", 0.5705616030350044, {"radius": 0.5705616030350044, "forced_diagonal": 0.48041856318561704},
     [66.00216218818589, 231.02176421416087]),
    ("lru", 0.5972434615385019, {"radius": 0.5972434615385019, "forced_diagonal": 0.5072386460118269,
                                 "no_half": 0.5809148448621887},
     [52.11961934815064, 146.44691732815332, 73.7529515683779]),
])
def test_the_claims_statistics_at_seed_0_are_those_of_their_first_version(name: str, stat: float, per_run: dict,
                                                                          controls: list) -> None:
    """Pinned from the claims before linrnn.verify.kernel_check (commit 6cda1e9, default sizes, seed 0): the same
    draws; the faster structured NTK moves the values by rounding only (1e-12)."""
    claim = linrnn.families.claims()[f"{name}_kernel"]
    res = claim.run(claim.config_type(), linrnn.families.spec_class(name)(), seed=0)
    assert res.verdict == "pass" and res.statistic["value"] == pytest.approx(stat, rel=1e-12, abs=0)
    assert res.statistic["per_run"] == pytest.approx(per_run, rel=1e-12, abs=0)
    assert [c["statistic"]["value"] for c in res.controls] == pytest.approx(controls, rel=1e-12, abs=0)


@pytest.mark.parametrize("family", ["diagonal", "lru"])
def test_the_one_channel_products_in_the_array_api_strict_namespace(family: str) -> None:
    """The fast path (real views and in-place products on NumPy) and its Array API form give the same numbers."""
    from linrnn.verify.backend import get_backend

    model = linrnn.family(family, r_min=0.2, r_max=0.95)
    strict = model.init(width=6, backend=get_backend("array_api_strict", seed=1), batch=2)
    plain = model.init(width=6, seed=1, batch=2)
    be = get_backend("array_api_strict")
    theta, L = model.empirical_ntk_and_impulse(strict, 5)
    assert np.allclose(be.to_numpy(theta), model.empirical_ntk(plain, 5), rtol=1e-13, atol=0)
    assert np.allclose(be.to_numpy(L), model.impulse(plain, 5), rtol=1e-13, atol=1e-16)
    assert np.allclose(be.to_numpy(model.empirical_ntk(strict, 5)), be.to_numpy(theta), rtol=1e-13, atol=0)
