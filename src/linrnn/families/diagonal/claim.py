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

The test, its thresholds and its group-sequential design are the Gaussian
``finite_width`` claim's (:func:`linrnn.verify.small_widths.run_small_widths`,
with this family's sampler as its ``draw``): z = (mean - theory) / SE per entry,
Bonferroni over entries and widths, widened by the Cornish-Fisher skewness term. The
design is sized for power against one control, so each control has its own run of
fresh draws, each at alpha / (number of controls): the claim's false-failure rate stays
within alpha (Bonferroni over the runs), and it fails when any run's own test fails.
"""

from __future__ import annotations

from collections.abc import Callable
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
    """One draw's arrays: the powers, gradients and their products (complex, (L n_y n_x) x n, a few copies) and the
    lag NTK (L n_y n_x)^2, float64 and complex128."""
    m = lags * spec.n_in * spec.n_out
    return 16 * (8 * m * width + 2 * m * m) + 16 * width * (spec.n_in + spec.n_out + 4)


def memory(config: Config, model: Any) -> int:
    """Peak bytes: one chunk's draws (at most ``max_memory``) and the L (L + 1) values kept per draw (six float64
    copies) for the largest stage."""
    from linrnn.core.validate import parse_memory

    draws = max(config.pilot, config.max_replicas)
    one = _bytes_per_draw(model, max(config.widths), config.lags)
    return max(one, min(parse_memory(config.max_memory), one * draws)) + 6 * 8 * config.lags * (config.lags + 1) * draws


def _triangles(kernels: dict[str, Any], lags: int) -> Any:
    import numpy as np

    iu = np.triu_indices(lags)
    return np.concatenate([np.asarray(kernels[name], dtype=np.float64)[:, 0, 0, :, 0, 0][iu] for name in ("ntk", "nngp")])


def entries(lags: int) -> tuple[str, ...]:
    """The tested entries: Theta_jk, then L_jL_k, j <= k < lags."""
    pairs = [(a, b) for a in range(lags) for b in range(a, lags)]
    return tuple([f"Theta_{a},{b}" for a, b in pairs] + [f"L_{a}L_{b}" for a, b in pairs])


@dataclass(frozen=True)
class Control:
    """A negative control: its id, what it is (one sentence), and its kernels at ``lags`` (``kernels(model, lags)``)."""

    id: str
    statement: str
    kernels: Callable[[Any, int], dict[str, Any]]


def _radius(model: Any, lags: int) -> dict[str, Any]:
    return model.kernel(lags, radial_law="radius")


def _forced_diagonal(model: Any, lags: int) -> dict[str, Any]:
    import numpy as np

    k = model.kernel(lags)
    mask = np.eye(lags)[:, None, None, :, None, None]
    return {name: k[name] * mask for name in ("ntk", "nngp")}


#: The controls of every diagonal family.
CONTROLS = (
    Control("radius", "the kernels derived with |lambda| uniform on [r_min, r_max] (instead of |lambda|^2)", _radius),
    Control("forced_diagonal", "the derived kernels with every entry j != k set to 0", _forced_diagonal),
)


def sampler(model: Any, lags: int) -> Callable[[Any, int, int, int], Any]:
    """``draw(be, n, first, count)``: the (count, L (L + 1)) values Theta_jk, L_j L_k (j <= k) of fresh draws of
    the family's sampler at width n, from a generator of their own (seeded by the backend's seed, n and ``first``)."""
    import numpy as np

    from linrnn.verify.montecarlo import stream_seed

    iu = np.triu_indices(lags)

    def draw(be: Any, n: int, first: int, count: int) -> Any:
        sbe = be.with_seed(None if be.seed is None else stream_seed(be.seed, n, 1000 + first))
        params = model.init(width=n, backend=sbe, batch=count)
        theta = np.asarray(be.to_numpy(model.empirical_ntk(params, lags)), dtype=np.float64)[:, :, 0, 0, :, 0, 0]
        L = np.asarray(be.to_numpy(model.impulse(params, lags)), dtype=np.float64)[:, :, 0, 0]
        nngp = L[:, :, None] * L[:, None, :]
        return np.concatenate([theta[:, iu[0], iu[1]], nngp[:, iu[0], iu[1]]], axis=1)

    return draw


def check_controls(config: Any, spec: Any, controls: tuple[Control, ...]) -> None:
    """Refuse (one sentence) a setting where some control equals the theory at every tested entry."""
    import numpy as np

    from linrnn.core.outcome import untestable
    from linrnn.families import model_of

    model = model_of(spec)
    theory = _triangles(model.kernel(config.lags), config.lags)
    for control in controls:
        other = _triangles(control.kernels(model, config.lags), config.lags)
        if np.allclose(other, theory, rtol=1e-12, atol=1e-12 * float(np.max(np.abs(theory)))):
            raise untestable(f"[{config.SECTION}] with r_min = {spec.r_min:g}, r_max = {spec.r_max:g}, theta_max = "
                             f"{spec.theta_max:g}", f"the {spec.family} family's kernels",
                             f"the negative control {control.id!r} ({control.statement}) equals the derived kernels "
                             f"at every entry", "choose r_min < r_max and a theta_max at which the lags correlate "
                             "(not a multiple of pi)")


def run_claim(config: Any, spec: Any, controls: tuple[Control, ...], *, claim_id: str, title: str, seed: int = 0,
              backend: Any = "numpy", dtype: str = "float64", progress: Progress | None = None) -> ClaimResult:
    """Run a diagonal family's small-width check with ``controls`` (module docstring)."""
    import dataclasses

    from linrnn.core.outcome import claim_outcome
    from linrnn.families import model_of
    from linrnn.verify.backend import Backend, get_backend
    from linrnn.verify.small_widths import SmallWidthTest, run_small_widths
    from linrnn.verify.montecarlo import stream_seed

    check_controls(config, spec, controls)
    model = model_of(spec)
    L, widths = config.lags, list(config.widths)
    be = backend if isinstance(backend, Backend) else get_backend(backend, seed=seed, dtype=dtype)
    theory = _triangles(model.kernel(L), L)
    names = entries(L)
    draw = sampler(model, L)
    run_config = dataclasses.replace(config, alpha=config.alpha / len(controls))
    outs, records = [], []
    for idx, control in enumerate(controls):
        ctrl = _triangles(control.kernels(model, L), L)
        test = SmallWidthTest(entries=names, values=None, theory={n: theory for n in widths},
                              control={n: ctrl for n in widths}, control_id=f"{claim_id}:{control.id}",
                              control_name=control.statement, draw=draw)
        cbe = be.with_seed(None if be.seed is None else stream_seed(be.seed, 0, 7000 + idx))
        out = run_small_widths(run_config, spec, test, backend=cbe, progress=progress)
        outs.append(out)
        records.append({"id": test.control_id, "statement": control.statement, "formula": None, **out["control"]})
    verdicts = [o["stat_verdict"] for o in outs]
    stat_verdict = "error" if "error" in verdicts else ("fail" if "fail" in verdicts else "pass")
    finite = all(o["finite"] for o in outs)
    worst = max(range(len(outs)), key=lambda i: outs[i]["statistic"]["value"] if finite else 0.0)
    statistic = {**outs[worst]["statistic"], "run": controls[worst].id,
                 "per_run": {c.id: o["statistic"]["value"] for c, o in zip(controls, outs)}}
    threshold = {**outs[worst]["threshold"], "description": outs[worst]["threshold"]["description"]
                 + f"; one run of fresh draws per control ({len(controls)}), each at alpha / {len(controls)}"}
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
    design = {"method": "group-sequential, one run per control",
              "runs": {c.id: o["design"] for c, o in zip(controls, outs)}}
    return ClaimResult(
        id=claim_id, title=title,
        statement=f"For the {spec.family} family, at widths n = " + ", ".join(map(str, widths)) + ", the Monte Carlo "
                  f"means of the empirical lag NTK Theta_jk and of L_j L_k (j <= k < {L}) equal the derived kernels, "
                  "with no finite-width allowance (the units are iid: the mean is the limit at every width).",
        formula=r"\mathbb{E}[\Theta_{jk}](n) = \Theta_\infty(j, k),\quad \mathbb{E}[L_j L_k](n) = K(j, k)",
        statistic=statistic, threshold=threshold,
        verdict=claim_outcome(stat_verdict, [r["verdict"] for r in records]),
        figures={"small_widths": figure}, controls=records, config=result_config(spec, config),
        notes=[f"{c.id}: " + o["design"]["sizing"] + "." for c, o in zip(controls, outs)]
              + [f"Derived kernels: linrnn.families.{spec.family} (SymPy, evaluated in mpmath)."],
        backend=outs[0]["backend"],
        data={"entries": list(names), "theory": theory.tolist(), "runs": {
            c.id: [{k: (v.tolist() if hasattr(v, "tolist") else v) for k, v in row.items()} for row in o["rows"]]
            for c, o in zip(controls, outs)}},
        statistic_verdict=stat_verdict,
        error=None if finite else "a Monte Carlo mean or its standard error is not finite",
        alpha=config.alpha, design=design,
    )


def check(config: Config, model: Any) -> None:
    """One draw must fit ``max_memory``; every control must differ from the theory somewhere."""
    from linrnn.core.validate import check_memory, parse_memory

    check_memory(f"the diagonal family's check ([diagonal] widths up to {max(config.widths)}, lags = {config.lags}), "
                 "one draw,", _bytes_per_draw(model, max(config.widths), config.lags), parse_memory(config.max_memory),
                 "[diagonal] max_memory in the configuration")
    check_controls(config, model, CONTROLS)


def run(config: Config, model: Any, *, seed: int = 0, backend: Any = "numpy", dtype: str = "float64",
        progress: Progress | None = None) -> ClaimResult:
    check(config, model)
    return run_claim(config, model, CONTROLS, claim_id="diagonal_kernel", title="Diagonal units: exact lag kernels",
                     seed=seed, backend=backend, dtype=dtype, progress=progress)


CLAIM = Claim(name="diagonal_kernel", section="diagonal", experiment="diagonal", family="diagonal",
              title="Diagonal units: exact lag kernels", config_type=Config, run=run, check=check, memory=memory)
