r"""A model's derived lag kernels against the Monte Carlo means of its own draws, for kernels exact at every width.

Where a family's units are iid (the diagonal families), the mean of the empirical lag NTK
and of L_j L_k over the initialisation law equals the derived kernel at EVERY width: there
is no finite-width bias to allow for. :func:`run_kernel_check` tests that, for any model
object with

* ``spec`` (``family``, ``n_in``, ``n_out``), ``init(width=, backend=, batch=)``,
  ``impulse(params, lags)``, ``empirical_ntk(params, lags)`` (or both at once,
  ``empirical_ntk_and_impulse``, where the model has it), ``kernel(lags)`` (the derived
  ``{"ntk", "nngp"}`` in the lag-NTK layout);
* ``kernel_controls()``: the family's negative controls (:class:`Control`: a wrong theory
  each, which must be rejected);
* ``bytes_per_draw(width, lags)``: the peak bytes of one draw (chunks are sized by it), and
  ``describe_law()`` / ``CONTROL_REMEDY``: the sentences of a refusal.

It never imports :mod:`linrnn.families`; the diagonal families' claims
(:mod:`linrnn.families.diagonal.claim`) and ``linrnn verify ntk --family diagonal|lru``
(:func:`verify_kernel`) both call it.

Statistic (the Gaussian ``finite_width`` claim's, :func:`linrnn.verify.small_widths.run_small_widths`,
with the model's sampler as its ``draw``): for entry (0, 0), every j <= k < L and every
width, z = (mean - theory) / SE over fresh draws, Bonferroni over the L (L + 1) entries and
the widths, the threshold widened by the Cornish-Fisher term of the entry's skewness; a
pilot sizes a group-sequential main stage for power 0.999 against the control and for a
skewness of every tested mean below ``max_skew``. The design is sized for power against one
control, so each control has a run of fresh draws of its own at alpha / (number of
controls): the false-failure rate stays within alpha (Bonferroni over the runs), and the
check fails when any run's own test fails.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Sequence
from contextlib import nullcontext
from dataclasses import dataclass
from typing import Any, ClassVar

from linrnn.core.errors import UsageError
from linrnn.verify.small_widths import SmallWidthConfig

#: The results object of ``linrnn verify ntk`` for a kernel exact at every width.
SCHEMA = "linrnn-bias/verify-ntk-exact/1"


@dataclass(frozen=True)
class Control:
    """A negative control: its id, what it is (one sentence), and its kernels at ``lags`` (``kernels(model, lags)``,
    the ``{"ntk", "nngp"}`` of :meth:`kernel`)."""

    id: str
    statement: str
    kernels: Callable[[Any, int], dict[str, Any]]


def triangles(kernels: dict[str, Any], lags: int) -> Any:
    """The tested values of a kernel pair: Theta_jk then K_jk of entry (0, 0), j <= k < lags (float64)."""
    import numpy as np

    iu = np.triu_indices(lags)
    return np.concatenate([np.asarray(kernels[name], dtype=np.float64)[:, 0, 0, :, 0, 0][iu] for name in ("ntk", "nngp")])


def entries(lags: int) -> tuple[str, ...]:
    """The tested entries: Theta_jk, then L_jL_k, j <= k < lags."""
    pairs = [(a, b) for a in range(lags) for b in range(a, lags)]
    return tuple([f"Theta_{a},{b}" for a, b in pairs] + [f"L_{a}L_{b}" for a, b in pairs])


def sampler(model: Any, lags: int) -> Callable[[Any, int, int, int], Any]:
    """``draw(be, n, first, count)``: the (count, L (L + 1)) values Theta_jk, L_j L_k (j <= k) of fresh draws of
    the model's sampler at width n, from a generator of their own (seeded by the backend's seed, n and ``first``)."""
    import numpy as np

    from linrnn.verify.montecarlo import stream_seed

    iu = np.triu_indices(lags)
    both = getattr(model, "empirical_ntk_and_impulse", None)

    def draw(be: Any, n: int, first: int, count: int) -> Any:
        sbe = be.with_seed(None if be.seed is None else stream_seed(be.seed, n, 1000 + first))
        params = model.init(width=n, backend=sbe, batch=count)
        if both is not None:  # one pass over the draw's powers
            theta, L = both(params, lags)
        else:
            theta, L = model.empirical_ntk(params, lags), model.impulse(params, lags)
        theta = np.asarray(be.to_numpy(theta), dtype=np.float64)[:, :, 0, 0, :, 0, 0]
        L = np.asarray(be.to_numpy(L), dtype=np.float64)[:, :, 0, 0]
        nngp = L[:, :, None] * L[:, None, :]
        return np.concatenate([theta[:, iu[0], iu[1]], nngp[:, iu[0], iu[1]]], axis=1)

    return draw


def check_controls(model: Any, lags: int, controls: Sequence[Control], where: str,
                   values: tuple[Any, dict[str, Any]] | None = None) -> None:
    """Refuse (one sentence naming ``where``, the setting as the user wrote it) a setting where some control equals
    the theory at every tested entry; ``values``: the theory's and the controls' :func:`triangles`, where known."""
    import numpy as np

    from linrnn.core.outcome import untestable

    theory, others = values if values is not None else (triangles(model.kernel(lags), lags), {})
    for control in controls:
        other = others[control.id] if control.id in others else triangles(control.kernels(model, lags), lags)
        if np.allclose(other, theory, rtol=1e-12, atol=1e-12 * float(np.max(np.abs(theory)))):
            raise untestable(f"{where} with {model.describe_law()}", f"the {model.spec.family} family's kernels",
                             f"the negative control {control.id!r} ({control.statement}) equals the derived kernels "
                             f"at every entry", model.CONTROL_REMEDY)


@dataclass(frozen=True)
class KernelCheck:
    """What :func:`run_kernel_check` measured: per control, the :func:`run_small_widths` pieces of its own run.

    ``runs``: control id -> that run's dict (rows, statistic, threshold, design, control, stat_verdict, finite,
    backend, m); ``theory``: the tested values of the derived kernels; ``control_values``: each control's.
    """

    spec: Any
    config: Any
    controls: tuple[Control, ...]
    id_prefix: str
    names: tuple[str, ...]
    theory: Any
    control_values: dict[str, Any]
    runs: dict[str, dict[str, Any]]
    seed: int | None
    seconds: float
    #: ``linrnn verify ntk``'s flags as given (the results' ``config``), None for a claim
    flags: dict[str, Any] | None = None

    @property
    def outs(self) -> list[dict[str, Any]]:
        return [self.runs[c.id] for c in self.controls]

    @property
    def finite(self) -> bool:
        return all(o["finite"] for o in self.outs)

    @property
    def statistic_outcome(self) -> str:
        """error > fail > pass over the runs' own tests."""
        verdicts = [o["stat_verdict"] for o in self.outs]
        return "error" if "error" in verdicts else ("fail" if "fail" in verdicts else "pass")

    @property
    def worst(self) -> int:
        """The index of the run with the largest statistic (the first where a statistic is not finite)."""
        outs = self.outs
        return max(range(len(outs)), key=lambda i: outs[i]["statistic"]["value"] if self.finite else 0.0)

    @property
    def statistic(self) -> dict[str, Any]:
        w = self.worst
        return {**self.outs[w]["statistic"], "run": self.controls[w].id,
                "per_run": {c.id: o["statistic"]["value"] for c, o in zip(self.controls, self.outs)}}

    @property
    def threshold(self) -> dict[str, Any]:
        w, k = self.worst, len(self.controls)
        return {**self.outs[w]["threshold"], "description": self.outs[w]["threshold"]["description"]
                + f"; one run of fresh draws per control ({k}), each at alpha / {k}"}

    @property
    def records(self) -> list[dict[str, Any]]:
        """The controls' records (id, statement, formula, then the run's control verdict, statistic, power ...)."""
        return [{"id": f"{self.id_prefix}:{c.id}", "statement": c.statement, "formula": None, **o["control"]}
                for c, o in zip(self.controls, self.outs)]

    @property
    def verdict(self) -> str:
        """pass / fail / inconclusive / error (:func:`linrnn.core.outcome.claim_outcome`)."""
        from linrnn.core.outcome import claim_outcome

        return claim_outcome(self.statistic_outcome, [r["verdict"] for r in self.records])

    @property
    def design(self) -> dict[str, Any]:
        return {"method": "group-sequential, one run per control",
                "runs": {c.id: o["design"] for c, o in zip(self.controls, self.outs)}}

    @property
    def draws(self) -> int:
        """Draws used in all, over the runs, widths and stages (pilots included)."""
        return sum(sum(o["design"]["replicas_total_per_width"].values()) for o in self.outs)

    @property
    def error(self) -> str | None:
        return None if self.finite else "a Monte Carlo mean or its standard error is not finite"

    def data(self) -> dict[str, Any]:
        """The per-entry data of every run (JSON-ready lists)."""
        return {"entries": list(self.names), "theory": self.theory.tolist(), "runs": {
            c.id: [{k: (v.tolist() if hasattr(v, "tolist") else v) for k, v in row.items()} for row in o["rows"]]
            for c, o in zip(self.controls, self.outs)}}

    def _square(self, values: Any, part: int) -> Any:
        """Entries j <= k of part 0 (NTK) or 1 (NNGP) of ``values`` as a symmetric (L, L) array."""
        import numpy as np

        L = self.config.lags
        m = L * (L + 1) // 2
        iu = np.triu_indices(L)
        out = np.zeros((L, L))
        out[iu] = np.asarray(values, dtype=np.float64)[part * m:(part + 1) * m]
        return out + np.triu(out, 1).T

    def top_row(self) -> dict[str, Any]:
        """The verdict width's row of the worst run's last stage (mean, stderr, theory, threshold per entry)."""
        rows = self.outs[self.worst]["rows"]
        return max(rows, key=lambda r: r["width"])

    def to_json(self) -> dict[str, Any]:
        """The results object (schema :data:`SCHEMA`): the keys of the dense ``verify ntk`` where they apply."""
        import numpy as np

        from linrnn.core.jsonclean import jsonable
        from linrnn.core.outcome import exit_status

        row = self.top_row()
        with np.errstate(invalid="ignore", divide="ignore"):
            z = (row["mean"] - row["theory"]) / row["stderr"]
        sq = self._square
        out: dict[str, Any] = {
            "schema": SCHEMA,
            "command": "verify ntk",
            "family": self.spec.family,
            "model": {"family": self.spec.family, **self.spec.as_dict()},
            "config": self.flags or {},
            "backend": self.outs[0]["backend"],
            "dtype": self.outs[0]["backend"].get("dtype"),
            "shape": [self.config.lags, self.config.lags],
            "layout": "(lag, lag), input 0 and output 0",
            "width": row["width"],
            "widths": list(self.config.widths),
            "companion_width": None,
            "replicas": row["replicas"],
            "draws": self.draws,
            "mean_theory": "exact at every width",
            "z_definition": "(mean - theory) / stderr; theory = the derived kernel (exact at every width: iid units)",
            "theory": sq(row["theory"], 0), "mean": sq(row["mean"], 0), "stderr": sq(row["stderr"], 0),
            "z": sq(z, 0), "threshold": sq(row["threshold"], 0),
            "nngp_theory": sq(row["theory"], 1), "nngp_mean": sq(row["mean"], 1),
            "nngp_stderr": sq(row["stderr"], 1), "nngp_z": sq(z, 1), "nngp_threshold": sq(row["threshold"], 1),
            "checks": [{"name": f"entries:{c.id}", **o["statistic"], "outcome": o["stat_verdict"],
                        "verdict": o["stat_verdict"], "threshold": o["threshold"]}
                       for c, o in zip(self.controls, self.outs)],
            "theory_verdict": self.statistic_outcome,
            "statistic_verdict": self.statistic_outcome,
            "statistic": self.statistic,
            "error": self.error,
            "controls": {r["id"].split(":", 1)[1]: {**r, "rejected": r["verdict"] == "rejected"}
                         for r in self.records},
            "controls_rejected": all(r["verdict"] == "rejected" for r in self.records),
            "controls_skipped": [],
            "verdict": self.verdict,
            "exit_status": exit_status(self.verdict),
            "alpha": self.config.alpha,
            "alpha_per_check": self.config.alpha / len(self.controls),
            "design": self.design,
            "seconds": self.seconds,
        }
        return jsonable(out)

    def table(self) -> str:
        """A readable report in the style of the dense ``verify ntk``: theory against Monte Carlo per lag, each
        control's run, the verdict."""
        import numpy as np

        s, cfg = self.spec, self.config
        L = cfg.lags
        row = self.top_row()
        law = " ".join(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}" for k, v in s.as_dict().items())
        backend = self.outs[0]["backend"]
        lines = [f"linrnn verify ntk: family={s.family} {law} lags={L}",
                 f"backend {backend['backend']} ({backend.get('device', '?')}), dtype {backend['dtype']}, seed "
                 f"{self.seed}, widths {', '.join(map(str, cfg.widths))}, {self.draws} draws in all "
                 f"({len(self.controls)} runs), {self.seconds:.1f} s",
                 "theory: the derived kernels, exact at every width (iid units): no finite-width allowance", ""]
        with np.errstate(invalid="ignore", divide="ignore"):
            z = (row["mean"] - row["theory"]) / row["stderr"]
        shown = sorted(set(np.linspace(0, L - 1, min(L, 16)).round().astype(int).tolist()))
        for part, title in ((0, "lag NTK Theta_jj and Theta_j,j+1"), (1, "NNGP E[L_j L_j] and E[L_j L_j+1]")):
            th, mc, se, zz, thr = (self._square(a, part) for a in (row["theory"], row["mean"], row["stderr"], z,
                                                                     row["threshold"]))
            lines.append(f"{title} at n = {row['width']} ({row['replicas']} draws; run {self.controls[self.worst].id})")
            lines.append(f"{'lag':>4} {'theory':>11} {'MC mean':>11} {'+- SE':>9} {'z':>7}   "
                         f"{'theory j,j+1':>12} {'MC mean':>11} {'z':>7}")
            for j in shown:
                tail = (f"{th[j, j + 1]:>12.5g} {mc[j, j + 1]:>11.5g} {zz[j, j + 1]:>7.2f}" if j + 1 < L else "")
                lines.append(f"{j:>4} {th[j, j]:>11.5g} {mc[j, j]:>11.5g} {se[j, j]:>9.2g} {zz[j, j]:>7.2f}   {tail}")
            lines.append(f"  max |z| / threshold over every entry j <= k: "
                         f"{float(np.max(np.abs(zz) / thr)):.3g} (lags shown: {len(shown)} of {L})")
            lines.append("")
        lines.append(f"checks of the derived kernels (alpha = {cfg.alpha:g}, alpha / {len(self.controls)} per run; "
                     f"Bonferroni over entries and widths, Cornish-Fisher skewness term):")
        for c, o in zip(self.controls, self.outs):
            st = o["statistic"]
            lines.append(f"  run {c.id:<18} max |z| / threshold = {st['value']:.3g} <= 1?  "
                         f"(m = {st['entries_tested']}, stage {st['stage']})  {o['stat_verdict']}")
        lines += ["", "negative controls (wrong theories; each must be rejected):"]
        for c, r in zip(self.controls, self.records):
            status = {"rejected": "rejected", "not_rejected": "NOT rejected", "error": "ERROR"}[r["verdict"]]
            st = r["statistic"]
            lines.append(f"  {c.id:<18} {status:<13} max |z| / threshold = {st['value']:.3g} "
                         f"(stage {st['stage']}, {st['replicas']} draws): {c.statement}")
        lines += ["", "design: " + "; ".join(f"{c.id}: {o['design']['sizing']}" for c, o in zip(self.controls,
                                                                                             self.outs)),
                  self.verdict_line()]
        return "\n".join(lines)

    def verdict_line(self) -> str:
        v = self.verdict
        line = f"verdict: {v.upper()}"
        if v == "error":
            return line + f" ({self.error})"
        if v == "inconclusive":
            missing = [r for r in self.records if r["verdict"] == "not_rejected"]
            need = [r.get("decide_with") for r in missing]
            tail = ("" if any(x is None for x in need) else
                    f"; about {max(need)} draws per width would decide it")
            return line + (f" (control{'s' if len(missing) > 1 else ''} "
                           f"{', '.join(r['id'].split(':', 1)[1] for r in missing)} not rejected: the run lacks power"
                           f"{tail})")
        return line


def run_kernel_check(config: Any, model: Any, controls: Sequence[Control] | None = None, *, id_prefix: str,
                     seed: int = 0, backend: Any = "numpy", dtype: str = "float64", progress: Any = None,
                     chunk_by_model: bool = True, flags: dict[str, Any] | None = None,
                     where: str | None = None) -> KernelCheck:
    """Test the model's derived kernels at ``config.widths`` (module docstring), one run per control.

    ``config``: the fields of :class:`linrnn.verify.small_widths.SmallWidthConfig`; ``controls``: default
    ``model.kernel_controls()``; ``id_prefix``: the controls' ids are ``id_prefix:control``; ``progress``:
    ``progress(fraction, note)`` or None. ``chunk_by_model``: chunks of draws sized by the model's own
    ``bytes_per_draw`` (no n x n term); False keeps the dense engine's estimate, which the diagonal families'
    claims were first run with (their chunks seed the draws, so their numbers at a seed stay as they were).
    ``where``: refuse first (:func:`check_controls`, naming it) a setting where a control equals the theory.
    """
    from linrnn.verify.backend import Backend, get_backend
    from linrnn.verify.small_widths import SmallWidthTest, run_small_widths
    from linrnn.verify.montecarlo import stream_seed
    from linrnn.verify.threads import blas_threads

    t0 = time.perf_counter()
    controls = tuple(model.kernel_controls() if controls is None else controls)
    L, widths = config.lags, list(config.widths)
    be = backend if isinstance(backend, Backend) else get_backend(backend, seed=seed, dtype=dtype)
    theory = triangles(model.kernel(L), L)
    names = entries(L)
    draw = sampler(model, L)
    per_draw = (lambda n: model.bytes_per_draw(n, L)) if chunk_by_model else None
    run_config = dataclasses.replace(config, alpha=config.alpha / len(controls))
    runs: dict[str, dict[str, Any]] = {}
    values = {control.id: triangles(control.kernels(model, L), L) for control in controls}
    if where is not None:
        check_controls(model, L, controls, where, (theory, values))
    for idx, control in enumerate(controls):
        ctrl = values[control.id]
        test = SmallWidthTest(entries=names, values=None, theory={n: theory for n in widths},
                              control={n: ctrl for n in widths}, control_id=f"{id_prefix}:{control.id}",
                              control_name=control.statement, draw=draw, bytes_per_draw=per_draw)
        cbe = be.with_seed(None if be.seed is None else stream_seed(be.seed, 0, 7000 + idx))
        part = None if progress is None else (
            lambda f, note, i=idx: progress((i + f) / len(controls), f"{controls[i].id}: {note}"))
        # the Grams are few large products: a BLAS thread pool on a shared CPU mostly spins
        with blas_threads(1) if be.name == "numpy" else nullcontext():
            runs[control.id] = run_small_widths(run_config, model.spec, test, backend=cbe, progress=part)
    return KernelCheck(spec=model.spec, config=config, controls=controls, id_prefix=id_prefix, names=names,
                       theory=theory, control_values=values, runs=runs, seed=be.seed,
                       seconds=time.perf_counter() - t0, flags=flags)


@dataclass(frozen=True)
class KernelCheckConfig(SmallWidthConfig):
    """The sizes of ``linrnn verify ntk`` on a kernel exact at every width (the small-width check's fields)."""

    SECTION: ClassVar[str] = "verify ntk"
    LAGS: ClassVar[tuple[int, int, str]] = (2, 256, " (the L (L + 1) entries tested per width)")
    ONE_WIDTH: ClassVar[bool] = True

    widths: tuple[int, ...] = (1024,)
    lags: int = 16
    pilot: int = 8
    min_replicas: int = 16
    max_replicas: int = 4096
    max_skew: float | None = None
    max_memory: str | int = "4GB"


def verify_kernel(model: Any, widths: Sequence[int], *, lags: int, replicas: int, pilot: int, max_replicas: int,
                  max_skew: float | None, alpha: float, max_memory: int, seed: int = 0, backend: Any = "numpy",
                  dtype: str = "float64", progress: bool = True, flags: dict[str, Any] | None = None) -> KernelCheck:
    """``linrnn verify ntk`` for a model whose derived kernels are exact at every width (its specification's
    ``exact_at_every_width``): the settings checked in one sentence each (naming the flag), then
    :func:`run_kernel_check` at ``widths`` with ``model.kernel_controls()``.

    Unlike the claims, whose small widths make thousands of draws cheap, the design here is sized
    as the dense ``verify ntk``'s, for power against the controls (which at large widths a few
    draws give: the lag NTK of one draw is a mean over its n units), not for the skewness of the
    tested means unless ``max_skew`` is given: the NNGP values L_j L_k of one draw are products of
    nearly Gaussian numbers at every width (skewness near 2.8 on the diagonal), so a bound of 0.05
    would ask for thousands of draws whatever n. The Cornish-Fisher term still widens each
    threshold by its entry's sample skewness.
    """
    from linrnn.core.validate import check_size, format_bytes
    from linrnn.verify.progress import Progress

    if not getattr(model.spec, "exact_at_every_width", False):
        raise UsageError(f"the {model.spec.family} family's derived kernels are not exact at every width; "
                         "its lag NTK is checked by the dense engine")
    if not widths:
        raise UsageError("give at least one width")
    ws = tuple(sorted({check_size("width", w) for w in widths}))
    lags = check_size("lags", lags)
    lo, hi, _ = KernelCheckConfig.LAGS
    if not lo <= lags <= hi:
        raise UsageError(f"--lags must be between {lo} and {hi} for the {model.spec.family} family (every entry "
                         f"j <= k is tested; at lag 0 alone no control differs from the theory), got {lags}")
    least = 16 if max_skew is not None else 4
    if pilot < least:
        raise UsageError(f"--pilot must be at least {least} for the {model.spec.family} family (the pilot estimates "
                         f"each entry's {'skewness' if max_skew is not None else 'standard deviation'}), got {pilot}")
    if not 2 <= replicas <= max_replicas:
        raise UsageError(f"--replicas must be at least 2 and at most --max-replicas ({max_replicas}), got {replicas}")
    if max_skew is not None and not 0 < max_skew < 1:
        raise UsageError(f"--max-skew must lie strictly between 0 and 1, got {max_skew}")
    if not 0 < alpha < 1:
        raise UsageError(f"--alpha must lie strictly between 0 and 1, got {alpha!r}")
    one = model.bytes_per_draw(max(ws), lags)
    if one > max_memory:
        raise UsageError(f"one draw at width {max(ws)} needs about {format_bytes(one)} of memory, beyond the budget "
                         f"of {format_bytes(max_memory)}; raise --max-memory or lower the width or the lags")
    config = KernelCheckConfig(widths=ws, lags=lags, pilot=pilot, min_replicas=replicas, max_replicas=max_replicas,
                               max_skew=max_skew, alpha=alpha, max_memory=max_memory)
    controls = tuple(model.kernel_controls())
    with Progress(1.0, "verify ntk", enabled=progress) as bar:
        done = [0.0]

        def advance(fraction: float, note: str) -> None:
            if fraction > done[0]:
                bar.advance(fraction - done[0], note)
                done[0] = fraction

        return run_kernel_check(config, model, controls, id_prefix="verify_ntk", seed=seed, backend=backend,
                                dtype=dtype, progress=advance, flags=flags, where=f"--lags = {lags}")
