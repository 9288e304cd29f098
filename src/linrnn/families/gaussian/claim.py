"""Claim ``finite_width``: the exact finite-width mean predicts the Monte Carlo at small widths.

At widths n = 4, 8, 16, 32, where the corrections to the wide limit are large (tens of
per cent at lag 3 and n = 4), the Monte Carlo means of the lag-NTK diagonal
``Theta[(j,0,0),(j,0,0)]`` and of the NNGP second moment ``L_j(0)[0,0]^2`` must equal the
exact finite-width expectations of :mod:`linrnn.families.gaussian.finite_width` (rational functions
of n, every order in 1/n), with no bias allowance. Control: the wide limits lambda_j and
Var L_j(0) at the same widths, which must be rejected.

Statistic. For every width n, lag j < ``lags`` and array (NTK, NNGP): ``z = (mean - E(n))
/ SE`` over R fresh draws, tested against a Bonferroni threshold at the claim's ``alpha``
over all m = 2 * lags * len(widths) entries, ``t_{1 - alpha/(2m)}(R - 1)``, widened by the
Cornish-Fisher term of the studentized mean's skewness: at small widths these entries
are strongly right-skewed (a few large draws of W^j), and the t quantile alone would
undercount false failures. With ``g`` the entry's sample skewness, the threshold is
``c + |g| (2 c^2 + 1) / (6 sqrt(R))`` (Hall 1983; Johnson 1978's modified t). The claim
passes when every ``|z|`` is within its threshold; the control is rejected when some
``|z|`` against the limit exceeds its threshold.

Design (:mod:`linrnn.verify.design`, group-sequential): a pilot of ``pilot`` fresh draws
per width estimates each entry's sd and skewness; the main stage draws, per width, the
most of (i) ``min_replicas``, (ii) the replicas for power 0.999 against the control at
the entry where it is easiest to see, and (iii) ``(g_upper / max_skew)^2`` so that the
skewness of every tested mean stays below ``max_skew`` (where the correction above is
accurate), capped by ``max_replicas``. The main stage's draws are new. Where the claim
passes there but the control is not rejected, a further stage of fresh draws (new seed
streams at every width) is sized the same way on the main stage's own sd, within
``max_replicas``, and tested alone (:func:`linrnn.verify.design.sequential_stages`).
Every look tests at ``alpha / looks`` (Bonferroni over the looks, ``m`` above counting
the entries), so a true theory fails with probability at most ``alpha``; the control is
decided by the first look that rejects it. :func:`design_of` gives the
:class:`~linrnn.verify.design.Design` (``looks = 1`` is the former two-stage design).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from linrnn.families.gaussian.spec import GaussianSpec
from linrnn.verify.claims.base import Claim, ClaimResult, Progress, result_config
from linrnn.verify.small_widths import (
    KEPT_COPIES, SmallWidthConfig, SmallWidthTest, diagonal_values, run_small_widths,
)

SECTION = "finite_width"

#: The most lags the exact finite-width engine reaches (the bound of ``Config.lags``).
REACH = GaussianSpec.exact_reach


@dataclass(frozen=True)
class Config(SmallWidthConfig):
    """Sizes of the small-width check: widths, lags, the group-sequential design, alpha (set by the suite)."""

    SECTION: ClassVar[str] = SECTION
    LAGS: ClassVar[tuple[int, int, str]] = (1, REACH, " (the exact engine's reach)")


def memory(config: Config, model: Any) -> int:
    """Peak bytes: one draw at the largest width (chunks are cut to ``max_memory``, as in the NTK sweep) and the
    ``2 lags`` values kept per draw for the moments, for the largest stage (``max(pilot, max_replicas)`` draws)."""
    from linrnn.verify.montecarlo import bytes_per_draw

    draws = max(config.pilot, config.max_replicas)
    return (bytes_per_draw(max(config.widths), model.n_in, model.n_out, config.lags, 8, 0)
            + KEPT_COPIES * 8 * 2 * config.lags * draws)


def _control_differs(model: Any, lags: int, widths: Any) -> bool:
    """Whether the control (the wide limits) differs from the exact finite-width means at some width and lag."""
    import numpy as np

    from linrnn.derive import nngp_variance, weights
    from linrnn.families.gaussian.finite_width_arrays import exact_matrices

    limit = np.concatenate([np.asarray(weights(model, lags), dtype=np.float64),
                            np.asarray(nngp_variance(model, lags), dtype=np.float64)])
    for n in widths:
        theta, nngp = exact_matrices(model, lags, n)
        if not np.allclose(np.concatenate([np.diag(theta), np.diag(nngp)]), limit, rtol=1e-12, atol=0.0):
            return True
    return False


def check(config: Config, model: Any) -> None:
    """Any model, any parameterization; checked before any draw: one draw at the largest width must fit the
    claim's own ``max_memory``, and the control must differ from the theory at the sizes asked.

    At the first lags the finite-width corrections vanish (for the default model the exact
    means of lags 0 and 1 equal their wide limits at every width), so the wide limit, the
    claim's only control, equals the theory there: lags at which it does so at every
    width asked are refused before any draw (:mod:`linrnn.core.outcome`), naming the
    fewest lags that test the claim (computed, within the exact engine's reach).
    """
    from linrnn.core.outcome import untestable
    from linrnn.core.validate import check_memory, parse_memory
    from linrnn.verify.montecarlo import bytes_per_draw

    check_memory(f"the finite-width check ([finite_width] widths up to {max(config.widths)}, lags = {config.lags}), "
                 f"one draw,", bytes_per_draw(max(config.widths), model.n_in, model.n_out, config.lags, 8, 0),
                 parse_memory(config.max_memory), "[finite_width] max_memory in the configuration")

    if _control_differs(model, config.lags, config.widths):
        return
    more = next((m for m in range(config.lags + 1, REACH + 1) if _control_differs(model, m, config.widths)), None)
    where = "at lag 0" if config.lags == 1 else f"at lags 0..{config.lags - 1}"
    raise untestable(f"[finite_width] lags = {config.lags}", "the finite-width corrections",
                     f"the negative control (the wide limit) equals the exact finite-width mean {where} at every "
                     f"width asked", f"use [finite_width] lags >= {more}" if more else
                     f"no lags within the exact engine's reach ({REACH}) separate them for this model")


def design_of(config: Config) -> Any:
    """The :class:`linrnn.verify.design.Design` of the configuration (its looks: :data:`~linrnn.verify.design.LOOKS`)."""
    from linrnn.verify.design import Design

    return Design(pilot=config.pilot, min_replicas=config.min_replicas, max_replicas=config.max_replicas)


def run(config: Config, model: Any, *, seed: int = 0, backend: Any = "numpy", dtype: str = "float64",
        progress: Progress | None = None) -> ClaimResult:
    import numpy as np

    from linrnn.core.outcome import claim_outcome
    from linrnn.derive import nngp_variance, weights
    from linrnn.families.gaussian.finite_width_arrays import exact_matrices

    check(config, model)
    L, widths = config.lags, list(config.widths)
    limit = np.concatenate([np.asarray(weights(model, L), dtype=np.float64),
                            np.asarray(nngp_variance(model, L), dtype=np.float64)])
    exact = {}
    for n in widths:
        theta, nngp = exact_matrices(model, L, n)
        exact[n] = np.concatenate([np.diag(theta), np.diag(nngp)])
    entry_names = tuple([f"Theta_{j}{j}" for j in range(L)] + [f"L_{j}^2" for j in range(L)])
    test = SmallWidthTest(entries=entry_names, values=diagonal_values, theory=exact,
                          control={n: limit for n in widths}, control_id="finite_width:wide_limit",
                          control_name="the wide limit")
    out = run_small_widths(config, model, test, seed=seed, backend=backend, dtype=dtype, progress=progress)
    rows = [{"width": r["width"], "replicas": r["replicas"], "mean": r["mean"], "stderr": r["stderr"],
             "skew": r["skew"], "exact": r["theory"], "limit": r["control"], "threshold": r["threshold"]}
            for r in out["rows"]]
    series = []
    for row in rows:
        series.append({"label": f"Monte Carlo, n = {row['width']} (NTK)", "x": list(range(L)),
                       "y": list(row["mean"][:L] / limit[:L]),
                       "yerr": list(row["threshold"][:L] * row["stderr"][:L] / limit[:L]), "style": "points"})
        series.append({"label": f"exact mean, n = {row['width']}", "x": list(range(L)),
                       "y": list(row["exact"][:L] / limit[:L]), "style": "line"})
    series.append({"label": "wide limit (the control)", "x": list(range(L)), "y": [1.0] * L, "style": "line"})
    figure = {
        "kind": "lines", "title": "Small widths: Monte Carlo against the exact finite-width mean",
        "caption": "Lag-NTK diagonal E[Theta_jj] divided by its wide limit lambda_j, per lag, at each width: "
                   "points, the Monte Carlo mean with its simultaneous interval (threshold x SE); lines, the exact "
                   "finite-width expectation (linrnn.families.gaussian.finite_width); the flat line at 1 is the wide limit, "
                   "the negative control. The NNGP entries are tested the same way (data in the results).",
        "xlabel": "lag j", "ylabel": "E[Theta_jj](n) / lambda_j", "series": series,
    }
    design = out["design"]
    control = {"id": test.control_id,
               "statement": "the wide-limit lambda_j and Var L_j(0) at the same small widths", "formula": None,
               **out["control"]}
    stat_verdict, finite = out["stat_verdict"], out["finite"]
    return ClaimResult(
        id="finite_width", title="Exact finite-width mean at small widths",
        statement="At small widths (n = " + ", ".join(str(n) for n in widths) + "), where the wide limit is off by "
                  "tens of per cent, the Monte Carlo means of the lag-NTK diagonal and of the NNGP second moment "
                  "equal the exact finite-width expectations, with no bias allowance.",
        formula=r"\mathrm{E}\,\Theta_{jj}(n) = \lambda_j \frac{T(j,j)}{n^{j+1}}\ (\text{C, F parts}) + \dots,"
                r"\quad T(i,j) = \mathrm{E}\operatorname{tr} G^{i} (G^{\top})^{j}",
        statistic=out["statistic"], threshold=out["threshold"],
        verdict=claim_outcome(stat_verdict, [control["verdict"]]),
        figures={"small_widths": figure}, controls=[control],
        config=result_config(model, config),
        notes=[design["sizing"] + ".", "Exact means from linrnn.families.gaussian.finite_width (loop equations); the "
               "per-entry skewness is estimated from each stage's own draws."],
        backend=out["backend"],
        data={"entries": list(entry_names), "widths": [
            {k: (v.tolist() if hasattr(v, "tolist") else v) for k, v in row.items()} for row in rows]},
        statistic_verdict=stat_verdict,
        error=None if finite else "a Monte Carlo mean or its standard error is not finite",
        alpha=config.alpha, design=design,
    )


CLAIM = Claim(name="finite_width", section=SECTION, experiment="finite_width", family="gaussian",
              title="Exact finite-width mean at small widths", config_type=Config, run=run, check=check,
              memory=memory)
