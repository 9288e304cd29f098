r"""Claim ``orthogonal_nngp``: the orthogonal family's exact finite-width NNGP predicts its Monte Carlo.

At small widths (default n = 8, 16, lags 0..11), where the Gaussian family's finite-width
corrections are large, the Monte Carlo means of L_i(0) L_j(0) (entry (0, 0), every
i <= j) of *orthogonal* draws must equal the orthogonal family's exact means
(:mod:`linrnn.families.orthogonal.derivation`: no correction on the diagonal, 1/n
correlations at even lag distances), with no bias allowance.

Negative control: the Gaussian family's exact finite-width means at the same widths
(the Gaussian family's ``exact_means``, the Ginibre loop equations),
which must be rejected. The test, its thresholds and its group-sequential design are the
Gaussian ``finite_width`` claim's (:func:`linrnn.verify.small_widths.run_small_widths`):
z = (mean - exact) / SE per entry, Bonferroni over entries and widths, widened by the
Cornish-Fisher skewness term.

Measured beside it (not a verdict): the ratio of the two families' per-entry standard
deviations of the empirical lag NTK at equal width (``ntk_replicas`` fresh draws of each
family per width), whose median over the L (L + 1) / 2 entries is reported.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from linrnn.core.errors import UsageError
from linrnn.verify.claims.base import Claim, ClaimResult, Progress, result_config
from linrnn.verify.small_widths import SmallWidthConfig

SECTION = "orthogonal"
#: The most lags of the control (the Gaussian exact engine's reach).
REACH = 16


@dataclass(frozen=True)
class Config(SmallWidthConfig):
    """Sizes of the orthogonal family's small-width check (the fields of the ``finite_width`` claim's, and
    ``ntk_replicas`` for the standard-deviation ratio)."""

    SECTION: ClassVar[str] = SECTION
    LAGS: ClassVar[tuple[int, int, str]] = (1, REACH, " (the Gaussian exact engine's reach, for the control)")

    widths: tuple[int, ...] = (8, 16)
    lags: int = 12
    ntk_replicas: int = 1024

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.ntk_replicas < 2:
            raise UsageError(f"orthogonal.ntk_replicas must be at least 2, got {self.ntk_replicas}")


def _pairs(lags: int) -> list[tuple[int, int]]:
    return [(i, j) for i in range(lags) for j in range(i, lags)]


def memory(config: Config, model: Any) -> int:
    """Peak bytes: one draw at the largest width, and the L (L + 1) / 2 values kept per draw (six float64 copies)
    for the largest stage."""
    from linrnn.verify.montecarlo import bytes_per_draw

    draws = max(config.pilot, config.max_replicas, config.ntk_replicas)
    return (bytes_per_draw(max(config.widths), model.n_in, model.n_out, config.lags, 8, 0)
            + 6 * 8 * len(_pairs(config.lags)) * draws)


def _theories(model: Any, lags: int, widths: Any) -> tuple[dict[int, Any], dict[int, Any]]:
    """Per width: the orthogonal exact means and the Gaussian family's (the control), upper triangles i <= j."""
    import numpy as np

    from linrnn.families import as_family
    from linrnn.families.orthogonal.derivation import exact_nngp_matrix

    iu = np.triu_indices(lags)
    gaussian = as_family(model, "gaussian")
    own = {n: exact_nngp_matrix(model, lags, n)[iu] for n in widths}
    ctrl = {n: np.asarray(gaussian.exact_means(lags, n)[1], dtype=np.float64)[iu] for n in widths}
    return own, ctrl


def check(config: Config, model: Any) -> None:
    """One draw at the largest width must fit ``max_memory``; the control must differ from the theory somewhere."""
    import numpy as np

    from linrnn.core.outcome import untestable
    from linrnn.core.validate import check_memory, parse_memory
    from linrnn.verify.montecarlo import bytes_per_draw

    check_memory(f"the orthogonal family's check ([orthogonal] widths up to {max(config.widths)}, lags = "
                 f"{config.lags}), one draw,", bytes_per_draw(max(config.widths), model.n_in, model.n_out,
                                                             config.lags, 8, 0),
                 parse_memory(config.max_memory), "[orthogonal] max_memory in the configuration")
    def differs(lags: int) -> bool:
        own, ctrl = _theories(model, lags, config.widths)
        return any(not np.allclose(own[n], ctrl[n], rtol=1e-12, atol=0.0) for n in config.widths)

    if differs(config.lags):
        return
    more = next((m for m in range(config.lags + 1, REACH + 1) if differs(m)), None)
    raise untestable(f"[orthogonal] lags = {config.lags}", "the orthogonal family's finite-width NNGP",
                     "the negative control (the Gaussian family's exact finite-width mean) equals the orthogonal "
                     "family's exact mean at every entry and width asked",
                     f"use [orthogonal] lags >= {more}" if more else "no lags within reach separate them")


def ntk_sd_ratio(model: Any, config: Config, be: Any) -> dict[str, Any]:
    """Per width: per-entry sds of the empirical lag NTK (upper triangle) of each family, and their ratio."""
    import numpy as np

    from linrnn.families import as_family
    from linrnn.verify.montecarlo import stream_seed
    from linrnn.verify.ntk import empirical_lag_ntk
    from linrnn.verify.draws import draw_replicas

    iu = np.triu_indices(config.lags)
    out = []
    for n in config.widths:
        sds = {}
        for k, spec in enumerate((model, as_family(model, "gaussian"))):
            sbe = be.with_seed(None if be.seed is None else stream_seed(be.seed, n, 40 + k))
            theta = be.to_numpy(empirical_lag_ntk(draw_replicas(sbe, spec, n, 0, config.ntk_replicas), config.lags))
            flat = np.asarray(theta, dtype=np.float64)[:, :, 0, 0, :, 0, 0][:, iu[0], iu[1]]
            sds[spec.family] = flat.std(axis=0, ddof=1)
        ratio = sds["orthogonal"] / sds["gaussian"]
        diag = iu[0] == iu[1]
        out.append({"width": n, "replicas": config.ntk_replicas, "median_ratio": float(np.median(ratio)),
                    "median_ratio_diagonal": float(np.median(ratio[diag])),
                    "ratio": ratio.tolist(), "sd_orthogonal": sds["orthogonal"].tolist(),
                    "sd_gaussian": sds["gaussian"].tolist()})
    return {"per_width": out, "entries": [f"Theta_{i}{j}" for i, j in zip(*iu)]}


def run(config: Config, model: Any, *, seed: int = 0, backend: Any = "numpy", dtype: str = "float64",
        progress: Progress | None = None) -> ClaimResult:
    import numpy as np

    from linrnn.core.outcome import claim_outcome
    from linrnn.verify.backend import Backend, get_backend
    from linrnn.verify.small_widths import SmallWidthTest, run_small_widths

    check(config, model)
    L, widths = config.lags, list(config.widths)
    be = backend if isinstance(backend, Backend) else get_backend(backend, seed=seed, dtype=dtype)
    own, ctrl = _theories(model, L, widths)
    pairs = _pairs(L)
    iu = np.triu_indices(L)

    def values(theta: Any, impulse: Any) -> Any:
        l0 = impulse[:, :, 0, 0]
        return l0[:, iu[0]] * l0[:, iu[1]]

    test = SmallWidthTest(entries=tuple(f"L_{i} L_{j}" for i, j in pairs), values=values, theory=own, control=ctrl,
                          control_id="orthogonal:gaussian_finite_width",
                          control_name="the Gaussian family's exact finite-width mean")
    out = run_small_widths(config, model, test, seed=seed, backend=be, dtype=dtype, progress=progress)
    ratio = ntk_sd_ratio(model, config, be)
    rows = out["rows"]
    diag = [k for k, (i, j) in enumerate(pairs) if i == j]
    off2 = [k for k, (i, j) in enumerate(pairs) if j == i + 2]
    limit_diag = np.asarray(own[widths[0]])[diag]  # the diagonal is the same at every width (no correction)
    series = []
    for row in rows:
        n = row["width"]
        series.append({"label": f"Monte Carlo, n = {n}", "x": list(range(L)),
                       "y": list(row["mean"][diag] / limit_diag),
                       "yerr": list(row["threshold"][diag] * row["stderr"][diag] / limit_diag), "style": "points"})
        series.append({"label": f"Gaussian exact mean, n = {n} (the control)", "x": list(range(L)),
                       "y": list(np.asarray(ctrl[n])[diag] / limit_diag), "style": "line"})
    series.append({"label": "orthogonal exact mean, every n", "x": list(range(L)), "y": [1.0] * L, "style": "line"})
    off_series = []
    for row in rows:
        n = row["width"]
        scale = np.asarray(own[n])[off2]
        off_series.append({"label": f"Monte Carlo, n = {n}", "x": list(range(L - 2)), "y": list(row["mean"][off2] / scale),
                           "yerr": list(row["threshold"][off2] * row["stderr"][off2] / scale), "style": "points"})
        off_series.append({"label": f"Gaussian exact mean, n = {n}", "x": list(range(L - 2)),
                           "y": list(np.asarray(ctrl[n])[off2] / scale), "style": "line"})
    off_series.append({"label": "orthogonal exact mean", "x": list(range(L - 2)), "y": [1.0] * (L - 2), "style": "line"})
    figures = {
        "diagonal": {
            "kind": "lines", "title": "Orthogonal W: the NNGP diagonal has no finite-width correction",
            "caption": "E[L_j(0)^2] of orthogonal draws divided by the orthogonal family's exact mean (which equals "
                       "the wide limit at every width): points, the Monte Carlo mean with its simultaneous interval "
                       "(threshold x SE); lines, the Gaussian family's exact finite-width mean (the negative control) "
                       "at the same widths (log scale: the control grows by orders of magnitude with the lag).",
            "xlabel": "lag j", "ylabel": "E[L_j(0)^2] / exact (orthogonal)", "yscale": "log", "series": series},
        "off_diagonal": {
            "kind": "lines", "title": "Orthogonal W: correlations across lags at distance 2",
            "caption": "E[L_j(0) L_{j+2}(0)] divided by the orthogonal exact mean q^{j+1} sigma_C^2 sigma_F^2 / "
                       "(n n_x) (from E tr O^2 = 1): points, Monte Carlo with simultaneous intervals; lines, the "
                       "Gaussian family's exact mean, the control.",
            "xlabel": "lag j", "ylabel": "E[L_j L_{j+2}] / exact (orthogonal)", "series": off_series},
    }
    design = out["design"]
    control = {"id": test.control_id,
               "statement": "the Gaussian family's exact finite-width E[L_i L_j](n) at the same widths",
               "formula": r"\mathrm{E}[L_i L_j](n) = \frac{\sigma_C^2\sigma_F^2}{n\,n_x}\Big(\frac{q}{n}\Big)^{(i+j)/2}"
                          r"\mathrm{E}\operatorname{tr} G^{i} (G^{\top})^{j}",
               **out["control"]}
    stat_verdict, finite = out["stat_verdict"], out["finite"]
    meds = ", ".join(f"n = {r['width']}: {r['median_ratio']:.3f} (diagonal {r['median_ratio_diagonal']:.3f})"
                     for r in ratio["per_width"])
    return ClaimResult(
        id="orthogonal_nngp", title="Orthogonal W: exact finite-width NNGP",
        statement="For W = sqrt(q) O with O Haar-orthogonal, at small widths (n = " + ", ".join(map(str, widths))
                  + f") the Monte Carlo means of L_i(0) L_j(0), i <= j < {L}, equal the orthogonal family's exact "
                  "finite-width means (no correction on the diagonal, 1/n correlations at even lag distances), and "
                  "not the Gaussian family's.",
        formula=r"\mathrm{E}[L_i L_j](n) = \frac{\sigma_C^2\sigma_F^2}{n\,n_x}\,q^{(i+j)/2}\,\mathrm{E}\operatorname{tr} "
                r"O^{i-j},\quad \mathrm{E}\operatorname{tr} O^{m} = \tfrac{1}{2}(1+(-1)^{m})\ (m \ge 1),\ n\ (m=0)",
        statistic=out["statistic"], threshold=out["threshold"],
        verdict=claim_outcome(stat_verdict, [control["verdict"]]),
        figures=figures, controls=[control],
        config=result_config(model, config),
        notes=[design["sizing"] + ".",
               "Exact means: linrnn.families.orthogonal.derivation (Haar moments by the even hooks); the control from "
               "linrnn.families.gaussian.finite_width (Ginibre loop equations).",
               f"Measured, not a verdict: the median over entries of the ratio of the per-entry standard deviations "
               f"of the empirical lag NTK, orthogonal / Gaussian, at equal width ({config.ntk_replicas} draws each): "
               f"{meds}.",
               "The finite-width NTK mean of this family is not derived (Weingarten calculus on O(n)); its NTK "
               "checks use the wide limit with the Richardson allowance."],
        backend=out["backend"],
        data={"entries": list(test.entries), "widths": [
            {k: (v.tolist() if hasattr(v, "tolist") else v) for k, v in row.items()} for row in rows],
            "ntk_sd_ratio": ratio},
        statistic_verdict=stat_verdict,
        error=None if finite else "a Monte Carlo mean or its standard error is not finite",
        alpha=config.alpha, design=design,
    )


CLAIM = Claim(name="orthogonal_nngp", section=SECTION, experiment="orthogonal", family="orthogonal",
              title="Orthogonal W: exact finite-width NNGP", config_type=Config, run=run, check=check, memory=memory)
