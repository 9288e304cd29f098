"""``linrnn verify ntk`` as a plain function: Monte Carlo lag NTK and NNGP against ``linrnn.derive``.

:func:`check_lag_ntk` estimates, at one width or over a sweep, the mean and standard
error of every lag-NTK entry and of the NNGP second moment of L(0)
(:mod:`linrnn.verify.montecarlo`), and tests them against the limit formulas derived in
:mod:`linrnn.derive` (imported, never re-typed):

* Theta_inf = :func:`linrnn.derive.limit_lag_ntk` (lambda_i delta_ij delta_aa' delta_bb'),
* the NNGP E[L_i(0)[a,b] L_j(0)[a',b']] = Var_j delta_ij delta_aa' delta_bb' with
  Var_j = :func:`linrnn.derive.nngp_variance` (covariances vanish in the limit).

Checks of the true theory (family-wise level ``alpha``, split equally between the
checks by Bonferroni; the statistics are those of :mod:`linrnn.verify.stats`):

1. ``ntk_entries``: at the largest width n, each entry's bias-corrected estimate
   (two-point fit of a + B/n at n and n // 2, the allowance for the O(1/n)
   finite-width bias) is z-tested against Theta_inf, Holm-corrected over the m
   entries of the upper triangle.
2. ``nngp_entries``: the same for the NNGP second moment.
3. ``rate`` (sweeps only): the per-draw relative error e(n) = E ||Theta_r - Theta_inf||_F
   / ||Theta_inf||_F falls like n^-1/2 (the O(n^-1/2) fluctuations dominate the O(1/n)
   bias). The fit is log e = c + beta log n (+ d / n with four or more widths, the
   allowance for the O(1/n) correction to the rate), and beta's interval at level
   1 - alpha_check must contain -1/2.

Negative controls (deliberately wrong theories from
``linrnn.derive.derive_lag_weights(param).controls`` and ``.nngp_controls``, plus the wrong
rate -1 for sweeps) go through the same tests at the same thresholds and must be
rejected. The overall verdict is ``pass`` only when every check of the true theory
passes and every control is rejected (a verifier that cannot reject a wrong
formula proves nothing).

False-failure budget: a true theory fails a run with probability at most ``alpha``
(default 1e-3) when the O(n^-2) remainder is negligible; the test suite runs at most
ten such verdicts with fixed seeds, a suite-wide budget of 1e-2.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from linrnn.derive.model import ModelSpec
from linrnn.core.errors import UsageError
from linrnn.verify.backend import Backend, get_backend
from linrnn.verify.montecarlo import WidthEstimate, bytes_per_draw, chunk_size, estimate_width
from linrnn.verify.progress import Progress
from linrnn.verify.sample import check_size
from linrnn.verify.stats import EntryTest, RateFit, entry_test, loglog_fit, richardson

SCHEMA = "linrnn-bias/verify-ntk/1"

#: The rate of the per-draw relative error ||Theta_r - Theta_inf|| / ||Theta_inf||: O(n^-1/2).
EXPECTED_SLOPE = -0.5
#: The wrong rate used as the negative control of the rate check (O(1/n) fluctuations).
CONTROL_SLOPE = -1.0
#: Widths from which the rate fit includes the d / n term.
MIN_WIDTHS_FOR_CORRECTION = 4


def kernel_from_diagonal(values: np.ndarray, n_out: int, n_in: int) -> np.ndarray:
    """values_i delta_ij delta_aa' delta_bb', shape (L, n_out, n_in, L, n_out, n_in).

    The limit structure derived in :mod:`linrnn.derive.lag_weights`; with values =
    ``linrnn.derive.weights(spec, L)`` this equals ``linrnn.derive.limit_lag_ntk(spec, L)``
    (checked in the tests), and it is used for the NNGP and for the controls.
    """
    values = np.asarray(values, dtype=np.float64)
    L = values.shape[0]
    # host NumPy (theory arrays); products with 0 and 1 only, so exact
    return (
        values[:, None, None, None, None, None]
        * np.eye(L)[:, None, None, :, None, None]
        * np.eye(n_out)[None, :, None, None, :, None]
        * np.eye(n_in)[None, None, :, None, None, :]
    )


@dataclass
class Theories:
    """The true limit arrays and the negative controls, all of the lag-NTK shape."""

    ntk: np.ndarray
    nngp: np.ndarray
    ntk_controls: dict[str, np.ndarray]
    nngp_controls: dict[str, np.ndarray]
    weight_expr: str
    nngp_expr: str
    control_exprs: dict[str, str]
    skipped_controls: list[str] = field(default_factory=list)


def theories_for(spec: ModelSpec, lags: int) -> Theories:
    """Evaluate the derived limit kernel, NNGP and control theories for ``spec``.

    A control that coincides with the true theory for this configuration (for example
    ``no_linear_term`` when eta_W = 0) is no wrong theory here: it is left out and
    listed in ``skipped_controls``.
    """
    from linrnn.derive import derive_lag_weights, evaluate, limit_lag_ntk, nngp_variance

    der = derive_lag_weights(spec.param)
    n_out = spec.n_out
    ntk = limit_lag_ntk(spec, lags)
    nngp = kernel_from_diagonal(nngp_variance(spec, lags), n_out, spec.n_in)
    exprs = {f"ntk:{k}": str(e) for k, e in der.controls.items()}
    exprs.update({f"nngp:{k}": str(e) for k, e in der.nngp_controls.items()})
    skipped: list[str] = []

    def wrong_ones(prefix: str, forms: dict[str, Any], truth: np.ndarray) -> dict[str, np.ndarray]:
        out = {}
        for k, e in forms.items():
            arr = kernel_from_diagonal(evaluate(e, spec, lags), n_out, spec.n_in)
            if np.allclose(arr, truth, rtol=1e-12, atol=0.0):  # e.g. no_linear_term when eta_W = 0
                skipped.append(f"{prefix}:{k}")
            else:
                out[k] = arr
        return out

    ntk_controls = wrong_ones("ntk", der.controls, ntk)
    nngp_controls = wrong_ones("nngp", der.nngp_controls, nngp)
    return Theories(ntk, nngp, ntk_controls, nngp_controls, str(der.weight), str(der.nngp), exprs, skipped)


def rate_fit(
    est: Sequence[WidthEstimate], theory: str, *, expected: float, alpha: float, name: str
) -> RateFit:
    """Fit the per-draw relative error against ``theory`` over the widths (module docstring)."""
    widths = np.array([e.n for e in est], dtype=np.float64)
    values = np.array([e.rel_error_mean[theory] for e in est])
    errs = np.array([e.rel_error_stderr[theory] for e in est])
    extra = widths.size >= MIN_WIDTHS_FOR_CORRECTION
    fit = loglog_fit(widths, values, errs, expected=expected, alpha=alpha, name=name, inverse_width_term=extra)
    fit.extra.update({"theory": theory, "model": "log e = c + beta log n" + (" + d / n" if extra else "")})
    return fit


@dataclass
class NTKCheck:
    """Everything one ``verify ntk`` run measured and concluded."""

    config: dict[str, Any]
    backend: dict[str, Any]
    widths: list[int]
    verdict_width: int
    companion_width: int | None
    estimates: dict[int, WidthEstimate]
    theories: Theories
    ntk_estimate: np.ndarray
    ntk_estimate_stderr: np.ndarray
    nngp_estimate: np.ndarray
    nngp_estimate_stderr: np.ndarray
    checks: list[EntryTest | RateFit]
    controls: dict[str, list[EntryTest | RateFit]]
    rate: RateFit | None
    alpha: float
    alpha_check: float
    dof: float
    seconds: float
    design: dict[str, str] = field(default_factory=dict)

    @property
    def theory_passed(self) -> bool:
        return all(c.passed for c in self.checks)

    def control_rejected(self, name: str) -> bool:
        return any(not c.passed for c in self.controls[name])

    @property
    def controls_rejected(self) -> bool:
        return all(self.control_rejected(k) for k in self.controls)

    @property
    def verdict(self) -> str:
        return "pass" if self.theory_passed and self.controls_rejected else "fail"

    @property
    def top(self) -> WidthEstimate:
        return self.estimates[self.verdict_width]

    def to_json(self) -> dict[str, Any]:
        """The results object (schema :data:`SCHEMA`); arrays have the full lag-NTK shape."""
        top = self.top
        main = {c.name: c for c in self.checks}
        out: dict[str, Any] = {
            "schema": SCHEMA,
            "command": "verify ntk",
            "config": self.config,
            "backend": self.backend,
            "dtype": self.backend["dtype"],
            "shape": list(top.ntk_mean.shape),
            "layout": "(lag, output, input, lag, output, input)",
            "width": self.verdict_width,
            "companion_width": self.companion_width,
            "replicas": top.replicas,
            "theory_formula": self.theories.weight_expr,
            "nngp_formula": self.theories.nngp_expr,
            "theory": _nested(self.theories.ntk),
            "mean": _nested(top.ntk_mean),
            "stderr": _nested(top.ntk_stderr),
            "corrected_mean": _nested(self.ntk_estimate),
            "corrected_stderr": _nested(self.ntk_estimate_stderr),
            "z": _nested(main["ntk_entries"].z),
            "z_definition": "(corrected_mean - theory) / corrected_stderr; corrected = two-point fit at n and n // 2",
            "nngp_theory": _nested(self.theories.nngp),
            "nngp_mean": _nested(top.nngp_mean),
            "nngp_stderr": _nested(top.nngp_stderr),
            "nngp_corrected_mean": _nested(self.nngp_estimate),
            "nngp_corrected_stderr": _nested(self.nngp_estimate_stderr),
            "nngp_z": _nested(main["nngp_entries"].z),
            "checks": [c.summary() for c in self.checks],
            "theory_verdict": "pass" if self.theory_passed else "fail",
            "controls": {
                name: {
                    "formula": self.theories.control_exprs.get(name),
                    "rejected": self.control_rejected(name),
                    "verdict": "fail" if self.control_rejected(name) else "pass",
                    "checks": [c.summary() for c in tests],
                }
                for name, tests in self.controls.items()
            },
            "controls_rejected": self.controls_rejected,
            "controls_skipped": self.theories.skipped_controls,
            "verdict": self.verdict,
            "alpha": self.alpha,
            "alpha_per_check": self.alpha_check,
            "design": self.design,
            "seconds": self.seconds,
            "timings": {str(n): e.seconds for n, e in sorted(self.estimates.items())},
        }
        if len(self.widths) > 1:
            out["widths"] = self.widths
            out["rel_error"] = [self.estimates[n].rel_error_mean["theory"] for n in self.widths]
            out["rel_error_stderr"] = [self.estimates[n].rel_error_stderr["theory"] for n in self.widths]
            assert self.rate is not None
            out["slope"] = self.rate.slope
            out["slope_stderr"] = self.rate.stderr
            out["slope_ci"] = list(self.rate.ci)
            out["slope_ci_level"] = self.rate.level
            out["expected_slope"] = self.rate.expected
        return _clean(out)

    def table(self) -> str:
        """A readable report: theory vs Monte Carlo per lag, the checks, the controls, the verdict."""
        cfg, top = self.config, self.top
        L, ny, nx = cfg["lags"], cfg["n_out"], cfg["n_in"]
        lines = [
            f"linrnn verify ntk: param={cfg['param']} q=sigma_w2={cfg['sigma_w2']:g} sigma_c2={cfg['sigma_c2']:g} "
            f"sigma_f2={cfg['sigma_f2']:g} n_x={nx} n_y={ny} lr=(C {cfg['lr_c']:g}, F {cfg['lr_f']:g}, "
            f"W {cfg['lr_w']:g}) lags={L}",
            f"backend {self.backend['backend']} ({self.backend.get('device', '?')}), dtype {self.backend['dtype']}, "
            f"seed {cfg['seed']}, {top.replicas} replicas per width, {self.seconds:.1f} s",
            f"verdict width n = {self.verdict_width}"
            + (f" with bias companion n = {self.companion_width}" if self.companion_width else " (no bias companion)"),
            "",
            f"lag NTK diagonal Theta[(j,0,0),(j,0,0)]  (theory: lambda_j = {self.theories.weight_expr})",
        ]
        z = {c.name: c for c in self.checks}
        lines += _diag_rows(self.theories.ntk, top.ntk_mean, top.ntk_stderr, self.ntk_estimate,
                            self.ntk_estimate_stderr, z["ntk_entries"].z, self.verdict_width)
        lines.append(_offdiag_note(z["ntk_entries"].z))
        lines += ["", f"NNGP Var L_j(0)[0,0]  (theory: {self.theories.nngp_expr})"]
        lines += _diag_rows(self.theories.nngp, top.nngp_mean, top.nngp_stderr, self.nngp_estimate,
                            self.nngp_estimate_stderr, z["nngp_entries"].z, self.verdict_width)
        lines.append(_offdiag_note(z["nngp_entries"].z))
        if len(self.widths) > 1 and self.rate is not None:
            lines += ["", "width sweep: per-draw relative error e(n) = ||Theta_r - Theta_inf||_F / ||Theta_inf||_F",
                      f"{'n':>8} {'e(n)':>10} {'+- SE':>9}"]
            for n in self.widths:
                e = self.estimates[n]
                lines.append(f"{n:>8} {e.rel_error_mean['theory']:>10.4g} {e.rel_error_stderr['theory']:>9.2g}")
            r = self.rate
            lines.append(
                f"fitted slope {r.slope:+.3f} +- {r.stderr:.3f}, {100 * r.level:.2f}% interval "
                f"[{r.ci[0]:+.3f}, {r.ci[1]:+.3f}], expected {r.expected:+.2f} ({r.extra['model']})"
            )
        lines += [
            "",
            f"checks of the derived theory (family-wise alpha = {self.alpha:g}, "
            f"{self.alpha_check:.3g} per check by Bonferroni):",
        ]
        lines += [_check_line(c) for c in self.checks]
        lines += ["", "negative controls (wrong theories; each must be rejected):"]
        for name, tests in self.controls.items():
            worst = max(tests, key=lambda c: 0 if c.passed else 1)
            status = "rejected" if self.control_rejected(name) else "NOT rejected"
            lines.append(f"  {name:<24} {status:<13} {_check_line(worst, verdict=False).strip()}")
        for name in self.theories.skipped_controls:
            lines.append(f"  {name:<24} skipped: equals the derived theory for this configuration")
        lines += ["", f"design: {self.design['correction']}; {self.design['allowance']}",
                  f"verdict: {self.verdict.upper()}"
                  + ("" if self.controls_rejected else " (a control was not rejected: the run lacks power)")]
        return "\n".join(lines)


def _check_line(c: EntryTest | RateFit, verdict: bool = True) -> str:
    tail = f"  {c.verdict}" if verdict else ""
    if isinstance(c, EntryTest):
        return (f"  {c.name:<24} max|z| = {c.max_abs_z:8.3g} vs {c.threshold:.3g} "
                f"(m = {c.m}, t_{c.dof:g}, Holm rejects {c.rejected}){tail}")
    return (f"  {c.name:<24} slope {c.slope:+.3f} in [{c.ci[0]:+.3f}, {c.ci[1]:+.3f}]? "
            f"expected {c.expected:+.2f}{tail}")


def _diag_rows(theory: np.ndarray, mean: np.ndarray, se: np.ndarray, est: np.ndarray, est_se: np.ndarray,
               z: np.ndarray, n: int) -> list[str]:
    rows = [f"{'lag':>4} {'theory':>11} {'MC mean (n=' + str(n) + ')':>17} {'+- SE':>9} "
            f"{'corrected':>11} {'+- SE':>9} {'z':>7}"]
    for j in range(theory.shape[0]):
        idx = (j, 0, 0, j, 0, 0)
        rows.append(f"{j:>4} {theory[idx]:>11.5g} {mean[idx]:>17.5g} {se[idx]:>9.2g} "
                    f"{est[idx]:>11.5g} {est_se[idx]:>9.2g} {z[idx]:>7.2f}")
    return rows


def _offdiag_note(z: np.ndarray) -> str:
    """The largest |z| among the entries off the (lag, output, input) diagonal, whose theory is 0."""
    M = int(round(math.sqrt(z.size)))
    if M < 2:
        return "  (no off-diagonal entries)"
    zz = np.where(np.triu(np.ones((M, M), dtype=bool), 1), np.abs(z.reshape(M, M)), -1.0)
    row, col = np.unravel_index(int(np.argmax(zz)), zz.shape)
    i = tuple(int(x) for x in np.unravel_index(int(row), z.shape[:3]))
    j = tuple(int(x) for x in np.unravel_index(int(col), z.shape[3:]))
    return f"  off-diagonal entries (theory 0): max |z| = {zz[row, col]:.2f} at (lag,out,in) = {i} x {j}"


def _nested(a: np.ndarray) -> Any:
    return np.asarray(a, dtype=np.float64).tolist()


def _clean(obj: Any) -> Any:
    """Replace non-finite floats by None, recursively, so the JSON is standard."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: _clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_clean(v) for v in obj]
    if isinstance(obj, (np.floating, np.integer)):
        return _clean(obj.item())
    return obj


def check_lag_ntk(
    spec: ModelSpec,
    widths: Sequence[int],
    *,
    lags: int = 16,
    replicas: int = 64,
    seed: int | None = 0,
    backend: str | Backend = "auto",
    dtype: str = "float64",
    max_memory: int = 4 * 10**9,
    alpha: float = 1e-3,
    progress: bool = True,
    keep_first: bool = False,
) -> NTKCheck:
    """Run the Monte Carlo lag-NTK and NNGP checks for ``spec`` (a :class:`linrnn.core.spec.ModelSpec`).

    ``widths``: one width, or a sweep (two or more distinct widths). The entrywise
    checks run at the largest width n with the bias companion n // 2 (measured
    too when not in the sweep; none when n = 1). See the module docstring for the
    statistics. Raises :class:`UsageError` for impossible input.
    """
    t0 = time.perf_counter()
    if not widths:
        raise UsageError("give at least one width")
    ws = sorted({check_size("width", w) for w in widths})
    lags = check_size("lags", lags)
    n_out = spec.n_out
    try:
        replicas = int(replicas)
    except (TypeError, ValueError):
        raise UsageError(f"replicas must be an integer, got {replicas!r}") from None
    if replicas < 2:
        raise UsageError(f"the statistics need at least 2 replicas (standard errors), got {replicas}")
    if not (isinstance(alpha, (int, float)) and 0 < alpha < 1):
        raise UsageError(f"alpha must lie strictly between 0 and 1, got {alpha!r}")
    be = backend if isinstance(backend, Backend) else get_backend(backend, seed=seed, dtype=dtype)
    top = ws[-1]
    companion = top // 2 if top >= 2 else None
    run_widths = sorted(set(ws) | ({companion} if companion else set()))
    th = theories_for(spec, lags)
    rel_theories = {"theory": th.ntk, **{f"ntk:{k}": v for k, v in th.ntk_controls.items()}}
    itemsize = be.itemsize
    for n in run_widths:  # fail before any Monte Carlo if the budget cannot hold one draw
        per_draw = bytes_per_draw(n, spec.n_in, n_out, lags, itemsize, len(rel_theories))
        chunk_size(per_draw, max_memory, replicas, be.name, n=n)
    estimates: dict[int, WidthEstimate] = {}
    work = {n: replicas * (float(n) ** 2 + 2e3 * n) for n in run_widths}
    with Progress(sum(work.values()), "verify ntk", enabled=progress) as bar:
        for n in sorted(run_widths, reverse=True):
            estimates[n] = estimate_width(
                be, spec, n, lags=lags, replicas=replicas,
                max_memory=max_memory, theories=rel_theories, keep_first=keep_first and n == top,
                on_chunk=lambda r, n=n: bar.advance(work[n] * r / replicas, f"n={n}"),
            )

    big = estimates[top]
    small = estimates[companion] if companion else None
    ntk_est, ntk_se = richardson(big.ntk_mean, big.ntk_stderr, top,
                                 small.ntk_mean if small else None, small.ntk_stderr if small else None, companion)
    nngp_est, nngp_se = richardson(big.nngp_mean, big.nngp_stderr, top,
                                   small.nngp_mean if small else None, small.nngp_stderr if small else None, companion)
    sweep = len(ws) > 1
    n_checks = 3 if sweep else 2
    a_check = alpha / n_checks
    dof = float(min(big.replicas, small.replicas) - 1 if small else big.replicas - 1)

    checks: list[EntryTest | RateFit] = [
        entry_test("ntk_entries", ntk_est, ntk_se, th.ntk, alpha=a_check, dof=dof),
        entry_test("nngp_entries", nngp_est, nngp_se, th.nngp, alpha=a_check, dof=dof),
    ]
    controls: dict[str, list[EntryTest | RateFit]] = {}
    for name, arr in th.ntk_controls.items():
        controls[f"ntk:{name}"] = [entry_test("ntk_entries", ntk_est, ntk_se, arr, alpha=a_check, dof=dof)]
    for name, arr in th.nngp_controls.items():
        controls[f"nngp:{name}"] = [entry_test("nngp_entries", nngp_est, nngp_se, arr, alpha=a_check, dof=dof)]
    rate = None
    if sweep:
        sweep_est = [estimates[n] for n in ws]
        rate = rate_fit(sweep_est, "theory", expected=EXPECTED_SLOPE, alpha=a_check, name="rate")
        checks.append(rate)
        for name in th.ntk_controls:
            controls[f"ntk:{name}"].append(
                rate_fit(sweep_est, f"ntk:{name}", expected=EXPECTED_SLOPE, alpha=a_check, name="rate"))
        controls["rate:minus_1"] = [
            rate_fit(sweep_est, "theory", expected=CONTROL_SLOPE, alpha=a_check, name="rate")]
        th.control_exprs["rate:minus_1"] = "e(n) ~ n^-1 (fluctuations of order 1/n)"

    config = {
        "param": spec.param, "sigma_w2": spec.sigma_w2, "sigma_c2": spec.sigma_c2, "sigma_f2": spec.sigma_f2,
        "n_in": spec.n_in, "n_out": n_out, "lr_c": spec.lr_c, "lr_f": spec.lr_f, "lr_w": spec.lr_w,
        "lags": lags, "replicas": replicas, "seed": be.seed, "widths": ws, "max_memory": max_memory,
        "alpha": alpha,
    }
    design = {
        "correction": f"Holm step-down over the m entries of each symmetric array's upper triangle, "
                      f"family-wise alpha = {alpha:g} split by Bonferroni over {n_checks} checks",
        "allowance": (f"O(1/n) finite-width bias removed by a per-entry two-point fit a + B/n at n = {top} and "
                      f"n = {companion} (Richardson); residual O(n^-2) not allowed for"
                      if companion else "no bias correction at width 1"),
        "test": f"z = (corrected - theory) / SE against Student's t with {dof:g} degrees of freedom",
        "rate": "weighted log-log fit of the per-draw relative Frobenius error, expected slope -1/2; "
                f"a d/n term is fitted with {MIN_WIDTHS_FOR_CORRECTION} or more widths",
        "budget": "false failure of a true theory <= alpha per run; the test suite runs <= 10 verdicts: 1e-2",
    }
    return NTKCheck(
        config=config, backend=be.describe(), widths=ws, verdict_width=top, companion_width=companion,
        estimates=estimates, theories=th, ntk_estimate=ntk_est, ntk_estimate_stderr=ntk_se,
        nngp_estimate=nngp_est, nngp_estimate_stderr=nngp_se, checks=checks, controls=controls, rate=rate,
        alpha=alpha, alpha_check=a_check, dof=dof, seconds=time.perf_counter() - t0, design=design,
    )
