r"""Claim ``diagonal_kernel``: the diagonal family's derived lag kernels are its Monte Carlo means at small widths.

The units are iid, so the mean of the empirical lag NTK and of L_j L_k equals the
derived kernel at every width (:mod:`linrnn.families.diagonal.derivation`, step
``width``). At n = 8 and 64 (default), the Monte Carlo means of Theta_jk (entry (0, 0),
every j <= k < ``lags``) and of L_j L_k over fresh draws of the family's own sampler
must equal the derived Theta(j, k) and E[L_j L_k], with no finite-width allowance.

Negative controls, each of which must be rejected:

* ``radius``: the kernels derived under the wrong radial law, |lambda| uniform on
  [r_min, r_max] instead of |lambda|^2 (the same derivation with the other density);
* ``forced_diagonal``: the derived kernels with every entry j != k set to 0 (the
  dense Gaussian family's structure);
* (a family may add its own: the LRU's kernel without the factor 1/2 of its real
  parameters, :mod:`linrnn.families.lru.claim`).

The controls are the model's (``kernel_controls()``, :mod:`linrnn.families.diagonal.model`).
The check is :func:`linrnn.verify.kernel_check.run_kernel_check`, which ``linrnn verify ntk``
runs too: its test, thresholds and group-sequential design are the Gaussian
``finite_width`` claim's (:func:`linrnn.verify.small_widths.run_small_widths`,
with this family's sampler as its ``draw``): z = (mean - theory) / SE per entry,
Bonferroni over entries and widths, widened by the Cornish-Fisher skewness term. The
design is sized for power against one control, so each control has its own run of
fresh draws, each at alpha / (number of controls): the claim's false-failure rate stays
within alpha (Bonferroni over the runs), and it fails when any run's own test fails.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from linrnn.verify.claims.base import Claim, ClaimResult, Progress, result_config
from linrnn.verify.small_widths import SmallWidthConfig

#: The most lags of the check (the kernel's L (L + 1) entries per width are tested).
MAX_LAGS = 32


@dataclass(frozen=True)
class Config(SmallWidthConfig):
    """Sizes of a diagonal family's small-width check (the fields of the ``finite_width`` claim's)."""

    SECTION: ClassVar[str] = "diagonal"
    LAGS: ClassVar[tuple[int, int, str]] = (2, MAX_LAGS, "")

    widths: tuple[int, ...] = (8, 64)
    lags: int = 8


def _bytes_per_draw(spec: Any, width: int, lags: int) -> int:
    """One draw's peak bytes (the model's :meth:`~linrnn.families.diagonal.model.RingModel.bytes_per_draw`)."""
    from linrnn.families import model_of

    return int(model_of(spec).bytes_per_draw(width, lags))


def memory(config: Config, model: Any) -> int:
    """Peak bytes: one chunk's draws (at most ``max_memory``) and the L (L + 1) values kept per draw (six float64
    copies) for the largest stage."""
    from linrnn.core.validate import parse_memory

    draws = max(config.pilot, config.max_replicas)
    one = _bytes_per_draw(model, max(config.widths), config.lags)
    return max(one, min(parse_memory(config.max_memory), one * draws)) + 6 * 8 * config.lags * (config.lags + 1) * draws


def check_controls(config: Any, spec: Any) -> None:
    """Refuse (one sentence) a setting where some control of the model equals the theory at every tested entry."""
    from linrnn.families import model_of
    from linrnn.verify.kernel_check import check_controls as refuse_equal_controls

    model = model_of(spec)
    refuse_equal_controls(model, config.lags, model.kernel_controls(), f"[{config.SECTION}]")


def run_claim(config: Any, spec: Any, *, claim_id: str, title: str, seed: int = 0, backend: Any = "numpy",
              dtype: str = "float64", progress: Progress | None = None) -> ClaimResult:
    """Run a diagonal family's small-width check with its model's controls (module docstring): the claim's result."""
    from linrnn.families import model_of
    from linrnn.verify.kernel_check import run_kernel_check

    check_controls(config, spec)
    model = model_of(spec)
    controls = model.kernel_controls()
    # chunk_by_model=False: the chunks (which seed the draws) of the claims' first runs, so their numbers hold
    res = run_kernel_check(config, model, controls, id_prefix=claim_id, seed=seed, backend=backend, dtype=dtype,
                           progress=progress, chunk_by_model=False)
    L, widths, theory, outs = config.lags, list(config.widths), res.theory, res.outs
    rows = outs[0]["rows"]
    series = []
    pairs = [(a, b) for a in range(L) for b in range(a, L)]
    for lag_gap in (0, 1):
        idx = [i for i, (a, b) in enumerate(pairs) if b - a == lag_gap]
        for row in rows:
            series.append({"label": f"Monte Carlo Theta_j,j+{lag_gap}, n = {row['width']}", "x": list(range(len(idx))),
                           "y": [float(row["mean"][i]) for i in idx],
                           "yerr": [float(row["threshold"][i] * row["stderr"][i]) for i in idx], "style": "points"})
        series.append({"label": f"derived Theta(j, j+{lag_gap})", "x": list(range(len(idx))),
                       "y": [float(theory[i]) for i in idx], "style": "line"})
    figure = {"kind": "lines", "title": f"The {spec.family} family: Monte Carlo lag NTK at small widths",
              "caption": "The diagonal Theta_jj and the first off-diagonal Theta_j,j+1 of the empirical lag NTK: "
                         "points, the Monte Carlo mean at each width with its simultaneous interval (threshold x SE); "
                         "lines, the derived kernel (exact at every width). Every entry j <= k and the NNGP second "
                         "moments are tested the same way (data in the results).",
              "xlabel": "lag j", "ylabel": "Theta", "series": series}
    return ClaimResult(
        id=claim_id, title=title,
        statement=f"For the {spec.family} family, at widths n = " + ", ".join(map(str, widths)) + ", the Monte Carlo "
                  f"means of the empirical lag NTK Theta_jk and of L_j L_k (j <= k < {L}) equal the derived kernels, "
                  "with no finite-width allowance (the units are iid: the mean is the limit at every width).",
        formula=r"\mathbb{E}[\Theta_{jk}](n) = \Theta_\infty(j, k),\quad \mathbb{E}[L_j L_k](n) = K(j, k)",
        statistic=res.statistic, threshold=res.threshold,
        verdict=res.verdict,
        figures={"small_widths": figure}, controls=res.records, config=result_config(spec, config),
        notes=[f"{c.id}: " + o["design"]["sizing"] + "." for c, o in zip(controls, outs)]
              + [f"Derived kernels: linrnn.families.{spec.family} (SymPy, evaluated in mpmath)."],
        backend=outs[0]["backend"],
        data=res.data(),
        statistic_verdict=res.statistic_outcome,
        error=res.error,
        alpha=config.alpha, design=res.design,
    )


def check(config: Config, model: Any) -> None:
    """One draw must fit ``max_memory``; every control must differ from the theory somewhere."""
    from linrnn.core.validate import check_memory, parse_memory

    s = config.SECTION
    check_memory(f"the {model.family} family's check ([{s}] widths up to {max(config.widths)}, lags = {config.lags}), "
                 "one draw,", _bytes_per_draw(model, max(config.widths), config.lags), parse_memory(config.max_memory),
                 f"[{s}] max_memory in the configuration")
    check_controls(config, model)


def run(config: Config, model: Any, *, seed: int = 0, backend: Any = "numpy", dtype: str = "float64",
        progress: Progress | None = None) -> ClaimResult:
    check(config, model)
    return run_claim(config, model, claim_id="diagonal_kernel", title="Diagonal units: exact lag kernels",
                     seed=seed, backend=backend, dtype=dtype, progress=progress)


CLAIM = Claim(name="diagonal_kernel", section="diagonal", experiment="diagonal", family="diagonal",
              title="Diagonal units: exact lag kernels", config_type=Config, run=run, check=check, memory=memory)
