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

Outcomes (:mod:`linrnn.core.outcome`): each check is pass / fail / error (error when
any statistic or entry is not finite: never a pass, and never dropped), each control
rejected / not_rejected / error, and the run pass / fail / inconclusive / error.
A run whose float32 arithmetic overflowed or underflowed is an ``error`` whose
sentence names the lag and the remedy (:func:`precision_error`).

Sizes (``pilot`` > 0, :mod:`linrnn.verify.design`): a pilot of fresh draws at every
width (and at n // 4, for the bias remainder) estimates each control's effect per
replica; the main stage draws new replicas, at least ``replicas``, sized for power
0.999 against every control at the Holm critical value of this run's ``alpha``,
capped by ``max_replicas``, ``budget_seconds`` and the bias allowance. Where the
theory passes there but a control is not rejected, a further stage of fresh replicas,
sized on the main stage's estimate within the same caps, is tested alone (the
group-sequential design of :func:`linrnn.verify.design.sequential_stages`); every look
is tested at ``alpha_check / looks``, so a true theory still fails with probability at
most ``alpha``, and a control is decided by the first stage that rejects it. With
``pilot = 0`` exactly ``replicas`` draws are used ("fixed" design, one look at the full
``alpha``); the result still says which size each unrejected control would need.

False-failure budget: a true theory fails a run with probability at most ``alpha``
(default 1e-3) when the O(n^-2) remainder is negligible (the design's bias allowance
keeps any remainder the pilot can see below a quarter of a standard error); the test
suite runs at most ten such verdicts with fixed seeds, a suite-wide budget of 1e-2.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from linrnn.derive.model import ModelSpec
from linrnn.core.jsonclean import jsonable
from linrnn.core.errors import UsageError
from linrnn.core.outcome import UNTESTED, claim_outcome, exit_status, untestable, untested
from linrnn.verify import design as dsg
from linrnn.verify.backend import Backend, get_backend
from linrnn.verify.montecarlo import WidthEstimate, bytes_per_draw, chunk_size, estimate_width, stream_seed
from linrnn.verify.progress import Progress
from linrnn.verify.sample import check_size
from linrnn.verify.stats import EntryTest, RateFit, entry_test, loglog_fit, richardson, t_isf

SCHEMA = "linrnn-bias/verify-ntk/2"

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


def kernel_from_matrix(matrix: np.ndarray, n_out: int, n_in: int) -> np.ndarray:
    """matrix[i, j] delta_aa' delta_bb', shape (L, n_out, n_in, L, n_out, n_in) (all lag pairs)."""
    m = np.asarray(matrix, dtype=np.float64)
    return (
        m[:, None, None, :, None, None]
        * np.eye(n_out)[None, :, None, None, :, None]
        * np.eye(n_in)[None, None, :, None, None, :]
    )


#: The negative controls at finite width: the same wrong theory as the limit control of
#: ``derive_lag_weights(param).controls`` (and ``.nngp_controls``) of that name, made by
#: changing the model before the exact finite-width expectation is taken. Their wide
#: limits are the limit controls (checked in the tests).
FINITE_WIDTH_CONTROLS: dict[str, Any] = {
    "no_linear_term": lambda spec: spec.replace(lr_w=0.0),  # lambda_j = q^j (A + B j) with B = 0
    "q_times_1.1": lambda spec: spec.replace(sigma_w2=1.1 * spec.sigma_w2),
}

#: How the Monte Carlo mean is compared with theory (``mean`` of :func:`check_lag_ntk`).
MEAN_MODES = ("auto", "exact", "richardson")


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
    #: exact mode: the wide limits beside the finite-width means (None in Richardson mode)
    limit_ntk: np.ndarray | None = None
    limit_nngp: np.ndarray | None = None
    #: whether the limit kernel is diagonal in the lags (the lag weights); False for a family's own full kernel
    #: (:meth:`linrnn.core.spec.ModelSpec.limit_theories`), whose controls' statements are ``control_exprs``
    lag_diagonal: bool = True


#: The most theories (the derived one and its controls) whose relative errors a draw carries (the lag weights).
THEORIES = 3


def theory_count(own: Theories | None) -> int:
    """The theories a draw carries relative errors for: :data:`THEORIES`, or a family's own theory and controls."""
    return THEORIES if own is None else max(THEORIES, 1 + len(own.ntk_controls))


def theories_for(spec: ModelSpec, lags: int) -> Theories:
    """Evaluate the derived limit kernel, NNGP and control theories for ``spec``.

    A control that coincides with the true theory for this configuration (for example
    ``no_linear_term`` when eta_W = 0) is no wrong theory here: it is left out and
    listed in ``skipped_controls``.
    """
    from linrnn.derive import evaluate, lag_formulas, limit_lag_ntk, nngp_variance

    der = lag_formulas(spec.param, spec.derivation_law())  # the derivation's formulas as data: no SymPy once cached
    n_out = spec.n_out
    ntk = limit_lag_ntk(spec, lags, underflow="keep")  # underflow: named in the verdict (precision_error)
    nngp = kernel_from_diagonal(nngp_variance(spec, lags, underflow="keep"), n_out, spec.n_in)
    exprs = {f"ntk:{k}": e.text for k, e in der.controls.items()}
    exprs.update({f"nngp:{k}": e.text for k, e in der.nngp_controls.items()})
    skipped: list[str] = []

    def wrong_ones(prefix: str, forms: dict[str, Any], truth: np.ndarray) -> dict[str, np.ndarray]:
        out = {}
        for k, e in forms.items():
            arr = kernel_from_diagonal(evaluate(e, spec, lags, underflow="keep"), n_out, spec.n_in)
            if np.allclose(arr, truth, rtol=1e-12, atol=0.0):  # e.g. no_linear_term when eta_W = 0
                skipped.append(f"{prefix}:{k}")
            else:
                out[k] = arr
        return out

    ntk_controls = wrong_ones("ntk", der.controls, ntk)
    nngp_controls = wrong_ones("nngp", der.nngp_controls, nngp)
    return Theories(ntk, nngp, ntk_controls, nngp_controls, der.weight.text, der.nngp.text, exprs, skipped)


def require_family_controls(spec: ModelSpec, own: Theories, lags: int, setting: str = "lags") -> None:
    """Refuse (:class:`UsageError`, before any draw) a family's own theories ``own`` at ``lags`` when every
    control of the lag NTK or of the NNGP equals the derived kernel; the sentence names the fewest lags that
    separate them (up to :data:`_LAG_SEARCH` more), or says that none does for this model."""
    if own.ntk_controls and own.nngp_controls:
        return
    arrays = " and the ".join(name for name, got in (("lag NTK", own.ntk_controls), ("NNGP", own.nngp_controls))
                              if not got)
    where = "at lag 0" if lags == 1 else f"at lags 0..{lags - 1}"

    def separates(m: int) -> bool:
        try:
            t = spec.limit_theories(m)
        except UsageError:
            return False
        return bool(t.ntk_controls and t.nngp_controls)

    more = next((m for m in range(lags + 1, lags + 8) if separates(m)), None)
    raise untestable(f"{setting} = {lags}", f"the {spec.family} family's limit kernels",
                     f"every negative control of the {arrays} equals the derived kernel {where}",
                     f"use {setting} >= {more}" if more else "no number of lags separates them for this model")


def differing_controls(spec: ModelSpec, lags: int) -> tuple[list[str], list[str]]:
    """The NTK and the NNGP controls of the derivation that differ from the derived theory at lags 0..lags-1.

    The kernels are lambda_j (or Var_j) delta_ij delta_aa' delta_bb' (:func:`kernel_from_diagonal`,
    linear and one-to-one in the values), so a control's kernel equals the theory's exactly
    when its values per lag do: this compares the values, as :func:`theories_for` compares
    the kernels (same tolerance), without building them.
    """
    from linrnn.derive import evaluate, lag_formulas, nngp_variance, weights

    der = lag_formulas(spec.param, spec.derivation_law())
    out: list[list[str]] = []
    for forms, truth in ((der.controls, weights(spec, lags, underflow="keep")),
                         (der.nngp_controls, nngp_variance(spec, lags, underflow="keep"))):
        t = np.asarray(truth, dtype=np.float64)
        out.append([k for k, e in forms.items()
                    if not np.allclose(np.asarray(evaluate(e, spec, lags, underflow="keep"), dtype=np.float64), t,
                                       rtol=1e-12, atol=0.0)])
    return out[0], out[1]


#: How many more lags :func:`require_lag_controls` tries when it looks for the fewest that test the theory.
_LAG_SEARCH = 64


def require_lag_controls(spec: ModelSpec, lags: int, setting: str = "lags") -> None:
    """Refuse (:class:`UsageError`, before any draw) lags at which every control of an array equals the theory.

    The lag-NTK and NNGP checks each need a control that differs from the derived theory
    (:mod:`linrnn.core.outcome`); at lags = 1 none does (lambda_0 and Var_0 involve neither
    q nor the W-gradient term). The sentence names ``setting`` and the fewest lags that
    test both arrays.
    """
    ntk, nngp = differing_controls(spec, lags)
    if ntk and nngp:
        return
    arrays = " and the ".join(name for name, got in (("lag NTK", ntk), ("NNGP", nngp)) if not got)
    where = "at lag 0" if lags == 1 else f"at lags 0..{lags - 1}"
    more = next((m for m in range(lags + 1, lags + _LAG_SEARCH) if all(differing_controls(spec, m))), None)
    raise untestable(f"{setting} = {lags}", "the lag weights",
                     f"every negative control of the {arrays} equals the derived theory {where}",
                     f"use {setting} >= {more}" if more else "no number of lags separates them for this model")


def exact_reaches(spec: ModelSpec, lags: int) -> bool:
    """Whether the exact finite-width mean covers this check (lags within the engine's reach, controls mapped)."""
    from linrnn.derive.formulas import lag_formulas

    if lags > spec.exact_reach or not spec.exact_finite_width:  # a family without exact finite-width means
        return False
    der = lag_formulas(spec.param, spec.derivation_law())  # the cached closed forms: no SymPy import with a warm cache
    return set(der.controls) | set(der.nngp_controls) <= set(FINITE_WIDTH_CONTROLS)


def exact_theories_for(spec: ModelSpec, lags: int, width: int, limit: Theories) -> Theories:
    """The exact finite-width expectations at ``width`` (the family's ``exact_means``) and the controls there.

    ``ntk``: E[Theta](n) for every entry (off-diagonal lags included); ``nngp``:
    E[L_i L_j](n); the controls are :data:`FINITE_WIDTH_CONTROLS` of the limit's
    control names; ``limit`` (from :func:`theories_for`) is kept beside them.
    """
    n_out, n_in = spec.n_out, spec.n_in
    theta, nngp = spec.exact_means(lags, width)
    ntk_arr, nngp_arr = kernel_from_matrix(theta, n_out, n_in), kernel_from_matrix(nngp, n_out, n_in)
    skipped: list[str] = []

    def wrong(prefix: str, names: Any, truth: np.ndarray, pick: int) -> dict[str, np.ndarray]:
        out = {}
        for name in names:
            arr = kernel_from_matrix(FINITE_WIDTH_CONTROLS[name](spec).exact_means(lags, width)[pick], n_out, n_in)
            if np.allclose(arr, truth, rtol=1e-12, atol=0.0):
                skipped.append(f"{prefix}:{name}")
            else:
                out[name] = arr
        return out

    ntk_names = list(limit.ntk_controls) + [k.split(":", 1)[1] for k in limit.skipped_controls if k.startswith("ntk:")]
    nngp_names = list(limit.nngp_controls) + [k.split(":", 1)[1] for k in limit.skipped_controls
                                              if k.startswith("nngp:")]
    exprs = {k: f"exact finite-width mean of the model with {_CONTROL_CHANGE[k.split(':', 1)[1]]} "
                f"(wide limit {v})" for k, v in limit.control_exprs.items()}
    return Theories(ntk_arr, nngp_arr, wrong("ntk", ntk_names, ntk_arr, 0), wrong("nngp", nngp_names, nngp_arr, 1),
                    limit.weight_expr, limit.nngp_expr, exprs, skipped, limit_ntk=limit.ntk, limit_nngp=limit.nngp)


_CONTROL_CHANGE = {"no_linear_term": "eta_W = 0", "q_times_1.1": "q replaced by 1.1 q"}


def rate_fit(
    est: Sequence[WidthEstimate], theory: str, *, expected: float, alpha: float, name: str
) -> RateFit:
    """Fit the per-draw relative error against ``theory`` over the widths (module docstring)."""
    widths = np.array([e.n for e in est], dtype=np.float64)
    values = np.array([e.rel_error_mean[theory] for e in est])
    errs = np.array([e.rel_error_stderr[theory] for e in est])
    extra = widths.size >= MIN_WIDTHS_FOR_CORRECTION
    if not (np.all(np.isfinite(values)) and np.all(np.isfinite(errs)) and np.all(values > 0) and np.all(errs > 0)):
        nan = math.nan
        return RateFit(nan, nan, nan, (nan, nan), 1 - alpha, nan, 0, nan, expected, name,
                       {"theory": theory, "model": "not fitted: a relative error is not finite"})
    fit = loglog_fit(widths, values, errs, expected=expected, alpha=alpha, name=name, inverse_width_term=extra)
    fit.extra.update({"theory": theory, "model": "log e = c + beta log n" + (" + d / n" if extra else "")})
    return fit


@dataclass(frozen=True)
class NTKDesign:
    """How one ``verify ntk`` run was sized and tested: the ``design`` of its results object, typed.

    The pilot's fields (``pilot_seconds`` ... ``pilot_widths``) are None without a pilot
    (``pilot = 0``), and then left out of the results; ``stage_record`` is the record of
    :meth:`linrnn.verify.design.Stages.as_dict` (stages, how the run stopped, where each
    control was decided), kept whole.
    """

    method: str
    sizing: str
    pilot: int
    #: replicas per width of the deciding (last) stage; ``main_replicas``: those of the main stage
    replicas: int
    main_replicas: int
    looks: int
    alpha_share_per_look: float
    stage_record: dict[str, Any]
    min_replicas: int
    max_replicas: int
    budget_seconds: float | None
    power_target: float
    alpha_per_check: float
    alpha_per_check_per_look: float
    #: the cap that bound the main stage ("max_replicas", "budget_seconds", "bias") or None
    capped_by: str | None
    #: per control (``needed``) and per control and check (``needed_checks``): the replicas per width for the
    #: power target, from the pilot (or the main stage without one); ``needed_main*``: from the main stage
    needed: dict[str, int | None]
    needed_checks: dict[str, int | None]
    needed_main: dict[str, int | None]
    needed_main_checks: dict[str, int | None]
    #: sentences of the results: the multiple-comparison correction, the finite-width allowance, the test,
    #: the rate fit and the false-failure budget
    correction: str
    #: "exact" (the exact finite-width mean is the theory) or "richardson" (the bias-corrected limit)
    mean_theory: str
    allowance: str
    test: str
    rate: str
    budget: str
    pilot_seconds: float | None = None
    seconds_per_replica: float | None = None
    bias_cap: int | None = None
    pilot_widths: list[int] | None = None

    @property
    def stages(self) -> list[dict[str, Any]]:
        """Per stage: its replicas, alpha share, outcomes and (where a control was undecided) the next size."""
        return self.stage_record["stages"]

    @property
    def decided_at_stage(self) -> dict[str, int]:
        """Per control: the stage (from 1) that decided it."""
        return self.stage_record["decided_at_stage"]

    def as_dict(self) -> dict[str, Any]:
        """The ``design`` object of the results (schema :data:`SCHEMA`), in its order."""
        out: dict[str, Any] = {
            "method": self.method, "sizing": self.sizing, "pilot": self.pilot, "replicas": self.replicas,
            "main_replicas": self.main_replicas, "looks": self.looks,
            "alpha_share_per_look": self.alpha_share_per_look, **self.stage_record,
            "min_replicas": self.min_replicas, "max_replicas": self.max_replicas,
            "budget_seconds": self.budget_seconds, "power_target": self.power_target,
            "alpha_per_check": self.alpha_per_check, "alpha_per_check_per_look": self.alpha_per_check_per_look,
            "capped_by": self.capped_by, "needed": self.needed, "needed_checks": self.needed_checks,
            "needed_main": self.needed_main, "needed_main_checks": self.needed_main_checks,
        }
        if self.pilot_seconds is not None:
            out.update({"pilot_seconds": self.pilot_seconds, "seconds_per_replica": self.seconds_per_replica,
                        "bias_cap": self.bias_cap, "pilot_widths": self.pilot_widths})
        out.update({"correction": self.correction, "mean_theory": self.mean_theory, "allowance": self.allowance,
                    "test": self.test, "rate": self.rate, "budget": self.budget})
        return out


@dataclass(frozen=True)
class CheckResult:
    """One test of a run as the run judged it.

    ``outcome``: the test's pass / fail / error, an error whenever the run's arithmetic
    failed (:meth:`NTKCheck.check_outcome`); for a control's test, ``power`` (predicted at
    the size used, None without a pilot) and ``needed`` (replicas per width for the power
    target, None where no size would do).
    """

    test: EntryTest | RateFit
    outcome: str
    power: float | None = None
    needed: int | None = None

    @property
    def name(self) -> str:
        return self.test.name

    def as_dict(self, sizes: bool = False) -> dict[str, Any]:
        """The check in the results: the test's summary, its outcome, and with ``sizes`` the power and need."""
        out = {**self.test.summary(), "outcome": self.outcome, "verdict": self.outcome}
        if sizes:
            out.update({"power": self.power, "needed": self.needed})
        return out


@dataclass(frozen=True)
class ControlResult:
    """One negative control of a run: its formula, verdict (rejected / not_rejected / error) and its checks."""

    name: str
    formula: str | None
    verdict: str
    power: float | None
    needed: int | None
    checks: tuple[CheckResult, ...]

    @property
    def rejected(self) -> bool:
        return self.verdict == "rejected"

    def as_dict(self) -> dict[str, Any]:
        return {"formula": self.formula, "rejected": self.rejected, "verdict": self.verdict, "power": self.power,
                "needed": self.needed, "checks": [c.as_dict(sizes=True) for c in self.checks]}


@dataclass(frozen=True)
class KernelArrays:
    """One tested array of a run (the lag NTK or the NNGP second moment), in the full lag-NTK shape.

    ``theory``: the theory tested (the exact finite-width mean at the verdict width, or
    the limit); ``limit``: the wide limit; ``mean``, ``stderr``: the Monte Carlo mean and
    its standard error at the verdict width; ``corrected``, ``corrected_stderr``: the
    estimate tested (bias-corrected by the two-point fit, or the raw mean in exact mode).
    """

    theory: np.ndarray
    limit: np.ndarray
    mean: np.ndarray
    stderr: np.ndarray
    corrected: np.ndarray
    corrected_stderr: np.ndarray


@dataclass
class NTKCheck:
    """Everything one ``verify ntk`` run measured and concluded.

    Read it by its fields and methods (:meth:`check_results`, :meth:`control_results`,
    :meth:`kernel`, :attr:`design`); :meth:`to_json` writes the results object.
    """

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
    design: NTKDesign
    #: one sentence naming why a statistic is not finite (float32 overflow / underflow), else None
    error: str | None = None
    #: per control: predicted power at the size used (None without a pilot)
    power: dict[str, float | None] = field(default_factory=dict)
    #: per control: replicas per width that would reject it with power 0.999 (from the main stage)
    needed: dict[str, float] = field(default_factory=dict)

    @property
    def theory_passed(self) -> bool:
        return self.statistic_outcome == "pass"

    @property
    def statistic_outcome(self) -> str:
        """The derived theory's own tests: error (precision, not finite) > fail > pass."""
        outs = [c.outcome for c in self.checks]
        if self.error or "error" in outs:
            return "error"
        return "fail" if "fail" in outs else "pass"

    def check_outcome(self, c: EntryTest | RateFit) -> str:
        return "error" if self.error else c.outcome

    def control_outcome(self, name: str) -> str:
        """rejected when any of the control's checks fails; error when one is an error; else not_rejected."""
        outs = [self.check_outcome(c) for c in self.controls[name]]
        if "error" in outs:
            return "error"
        return "rejected" if "fail" in outs else "not_rejected"

    def control_rejected(self, name: str) -> bool:
        return self.control_outcome(name) == "rejected"

    @property
    def controls_rejected(self) -> bool:
        return all(self.control_rejected(k) for k in self.controls)

    @property
    def verdict(self) -> str:
        """pass / fail / inconclusive / error (:func:`linrnn.core.outcome.claim_outcome`)."""
        return claim_outcome(self.statistic_outcome, [self.control_outcome(k) for k in self.controls])

    def verdict_line(self) -> str:
        """The last line of the table: the verdict and, unless pass, why (and what size would decide it)."""
        v = self.verdict
        line = f"verdict: {v.upper()}"
        if untested(self.statistic_outcome, self.controls):
            return line + f" ({UNTESTED})"
        if v == "error":
            return line + f" ({self.error or 'a statistic is not finite'})"
        if v == "inconclusive":
            missing = [k for k in self.controls if self.control_outcome(k) == "not_rejected"]
            need = max((self.needed.get(k, math.inf) for k in missing), default=math.inf)
            names = ", ".join(missing)
            tail = ("no size at this width would decide it" if not math.isfinite(need)
                    else f"about {int(need)} replicas per width would decide it")
            if self.design.capped_by == "bias":
                tail += (f" (the design capped the run at {self.design.replicas} replicas so the O(n^-2) "
                         "remainder stays below a quarter of a standard error: a larger width decides it)")
            return line + f" (control{'s' if len(missing) > 1 else ''} {names} not rejected: the run lacks power; {tail})"
        return line

    @property
    def top(self) -> WidthEstimate:
        return self.estimates[self.verdict_width]

    @property
    def shape(self) -> tuple[int, ...]:
        """The lag-NTK shape (lag, output, input, lag, output, input)."""
        return tuple(self.top.ntk_mean.shape)

    @property
    def exact(self) -> bool:
        """Whether the theory tested is the exact finite-width mean (else the bias-corrected limit)."""
        return self.design.mean_theory == "exact"

    def kernel(self, which: str) -> KernelArrays:
        """The arrays of ``which`` ("ntk": the lag NTK, "nngp": the NNGP second moment of L(0))."""
        th, top = self.theories, self.top
        if which == "ntk":
            return KernelArrays(th.ntk, th.ntk if th.limit_ntk is None else th.limit_ntk, top.ntk_mean,
                                top.ntk_stderr, self.ntk_estimate, self.ntk_estimate_stderr)
        if which == "nngp":
            return KernelArrays(th.nngp, th.nngp if th.limit_nngp is None else th.limit_nngp, top.nngp_mean,
                                top.nngp_stderr, self.nngp_estimate, self.nngp_estimate_stderr)
        raise ValueError(f"no kernel {which!r}; choose ntk or nngp")

    @property
    def rel_error(self) -> list[float]:
        """Per width: the mean per-draw relative error e(n) against the theory."""
        return [self.estimates[n].rel_error_mean["theory"] for n in self.widths]

    @property
    def rel_error_stderr(self) -> list[float]:
        return [self.estimates[n].rel_error_stderr["theory"] for n in self.widths]

    def check_results(self) -> dict[str, CheckResult]:
        """The derived theory's checks by name (ntk_entries, nngp_entries and, for a sweep, rate)."""
        return {c.name: CheckResult(c, self.check_outcome(c)) for c in self.checks}

    def control_results(self) -> dict[str, ControlResult]:
        """The negative controls by name (``ntk:...``, ``nngp:...``, ``rate:minus_1``), each with its checks."""
        out = {}
        for name, tests in self.controls.items():
            checks = tuple(CheckResult(c, self.check_outcome(c), self.power.get(f"{name}|{c.name}"),
                                       _int_or_none(self.needed.get(f"{name}|{c.name}", math.inf))) for c in tests)
            out[name] = ControlResult(name, self.theories.control_exprs.get(name), self.control_outcome(name),
                                      self.power.get(name), _int_or_none(self.needed.get(name, math.inf)), checks)
        return out

    def to_json(self) -> dict[str, Any]:
        """The results object (schema :data:`SCHEMA`); arrays have the full lag-NTK shape."""
        top = self.top
        main = {c.name: c for c in self.checks}
        ntk, nngp = self.kernel("ntk"), self.kernel("nngp")
        out: dict[str, Any] = {
            "schema": SCHEMA,
            "command": "verify ntk",
            "config": self.config,
            "backend": self.backend,
            "dtype": self.backend["dtype"],
            "shape": list(self.shape),
            "layout": "(lag, output, input, lag, output, input)",
            "width": self.verdict_width,
            "companion_width": self.companion_width,
            "replicas": top.replicas,
            "theory_formula": self.theories.weight_expr,
            "nngp_formula": self.theories.nngp_expr,
            "theory": _nested(ntk.theory),
            "mean": _nested(ntk.mean),
            "stderr": _nested(ntk.stderr),
            "corrected_mean": _nested(ntk.corrected),
            "corrected_stderr": _nested(ntk.corrected_stderr),
            "z": _nested(main["ntk_entries"].z),
            "z_definition": ("(mean - theory) / stderr; theory = the exact finite-width mean at n"
                             if self.exact else
                             "(corrected_mean - theory) / corrected_stderr; corrected = two-point fit at n and n // 2"),
            "mean_theory": self.design.mean_theory,
            "limit_theory": _nested(ntk.limit),
            "nngp_limit_theory": _nested(nngp.limit),
            "nngp_theory": _nested(nngp.theory),
            "nngp_mean": _nested(nngp.mean),
            "nngp_stderr": _nested(nngp.stderr),
            "nngp_corrected_mean": _nested(nngp.corrected),
            "nngp_corrected_stderr": _nested(nngp.corrected_stderr),
            "nngp_z": _nested(main["nngp_entries"].z),
            "checks": [c.as_dict() for c in self.check_results().values()],
            "theory_verdict": self.statistic_outcome,
            "statistic_verdict": self.statistic_outcome,
            "error": self.error,
            "controls": {name: c.as_dict() for name, c in self.control_results().items()},
            "controls_rejected": self.controls_rejected,
            "controls_skipped": self.theories.skipped_controls,
            "verdict": self.verdict,
            "exit_status": exit_status(self.verdict),
            "alpha": self.alpha,
            "alpha_per_check": self.alpha_check,
            "design": self.design.as_dict(),
            "seconds": self.seconds,
            "timings": {str(n): e.seconds for n, e in sorted(self.estimates.items())},
        }
        if len(self.widths) > 1:
            out["widths"] = self.widths
            out["rel_error"] = self.rel_error
            out["rel_error_stderr"] = self.rel_error_stderr
            assert self.rate is not None
            out["slope"] = self.rate.slope
            out["slope_stderr"] = self.rate.stderr
            out["slope_ci"] = list(self.rate.ci)
            out["slope_ci_level"] = self.rate.level
            out["expected_slope"] = self.rate.expected
        return jsonable(out)  # NumPy scalars to Python, non-finite floats to None (standard JSON)

    def table(self) -> str:
        """A readable report: theory vs Monte Carlo per lag, the checks, the controls, the verdict."""
        cfg, top = self.config, self.top
        L, ny, nx = cfg["lags"], cfg["n_out"], cfg["n_in"]
        exact = self.exact
        lines = [
            f"linrnn verify ntk: param={cfg['param']} q=sigma_w2={cfg['sigma_w2']:g} sigma_c2={cfg['sigma_c2']:g} "
            f"sigma_f2={cfg['sigma_f2']:g} n_x={nx} n_y={ny} lr=(C {cfg['lr_c']:g}, F {cfg['lr_f']:g}, "
            f"W {cfg['lr_w']:g}) lags={L}" + _family_fields(cfg),
            f"backend {self.backend['backend']} ({self.backend.get('device', '?')}), dtype {self.backend['dtype']}, "
            f"seed {cfg['seed']}, {top.replicas} replicas per width, {self.seconds:.1f} s",
            f"verdict width n = {self.verdict_width}"
            + (f" with bias companion n = {self.companion_width}" if self.companion_width else " (no bias companion)")
            + ("; theory = the exact finite-width mean at that width (no bias allowance)" if exact else ""),
            "",
            "lag NTK diagonal Theta[(j,0,0),(j,0,0)]  (theory: "
            + ("exact E[Theta_jj](n), whose limit is " if exact else "")
            + ("lambda_j = " if self.theories.lag_diagonal else "") + f"{self.theories.weight_expr})",
        ]
        z = {c.name: c for c in self.checks}
        lines += _diag_rows(self.theories.ntk, top.ntk_mean, top.ntk_stderr, self.ntk_estimate,
                            self.ntk_estimate_stderr, z["ntk_entries"].z, self.verdict_width,
                            self.theories.limit_ntk if exact else None)
        lines.append(_offdiag_note(z["ntk_entries"].z, exact, self.theories.lag_diagonal))
        lines += ["", "NNGP Var L_j(0)[0,0]  (theory: " + ("exact E[L_j^2](n), whose limit is " if exact else "")
                  + f"{self.theories.nngp_expr})"]
        lines += _diag_rows(self.theories.nngp, top.nngp_mean, top.nngp_stderr, self.nngp_estimate,
                            self.nngp_estimate_stderr, z["nngp_entries"].z, self.verdict_width,
                            self.theories.limit_nngp if exact else None)
        lines.append(_offdiag_note(z["nngp_entries"].z, exact, self.theories.lag_diagonal))
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
            f"{self.alpha_check:.3g} per check by Bonferroni"
            + (f", {self.design.alpha_per_check_per_look:.3g} per check and look over "
               f"{self.design.looks} looks" if self.design.looks > 1 else "") + "):",
        ]
        lines += [_check_line(c, self.check_outcome(c)) for c in self.checks]
        for c in self.checks:
            if isinstance(c, EntryTest):
                lines.append(f"    {c.name}: {c.entries_note}")
        lines += ["", "negative controls (wrong theories; each must be rejected):"]
        for name, tests in self.controls.items():
            worst = max(tests, key=lambda c: {"fail": 2, "error": 1}.get(c.outcome, 0))
            out = self.control_outcome(name)
            status = {"rejected": "rejected", "not_rejected": "NOT rejected", "error": "ERROR"}[out]
            pw = self.power.get(name)
            shown = "n/a" if pw is None else ("> 0.9999" if pw > 0.99995 else f"{pw:.4f}")
            tail = f"  (predicted power {shown})" if pw is not None and out != "not_rejected" else ""
            lines.append(f"  {name:<24} {status:<13} {_check_line(worst, None).strip()}{tail}")
            if out == "not_rejected" and pw is not None:
                lines.append(f"    {name}: the pilot predicted power {shown} at this size, but the control was not "
                             f"rejected: the pilot's {self.design.pilot} draws overestimated its effect (a prediction "
                             f"from a small sample, not a guarantee); the verdict line says how many replicas would "
                             f"decide it")
        for name in self.theories.skipped_controls:
            lines.append(f"  {name:<24} skipped: equals the derived theory for this configuration")
        d = self.design
        lines += ["", f"design: {d.method}; {d.sizing}",
                  f"  {d.correction}; {d.allowance}",
                  self.verdict_line()]
        return "\n".join(lines)


def _family_fields(cfg: dict[str, Any]) -> str:
    """`` family=NAME field=value ...`` for a family's own fields in the configuration (after ``family``), else ""."""
    if "family" not in cfg:
        return ""
    own = list(cfg.items())[list(cfg).index("family"):]
    return "".join(f" {k}={v:g}" if isinstance(v, float) else f" {k}={v}" for k, v in own)


def _int_or_none(v: float) -> int | None:
    return int(v) if math.isfinite(v) else None


def _check_line(c: EntryTest | RateFit, outcome: str | None) -> str:
    tail = f"  {outcome}" if outcome else ""
    if isinstance(c, EntryTest):
        return (f"  {c.name:<24} max|z| = {c.max_abs_z:8.3g} vs {c.threshold:.3g} "
                f"(m = {c.m}, t_{c.dof:g}, Holm rejects {c.rejected}){tail}")
    return (f"  {c.name:<24} slope {c.slope:+.3f} in [{c.ci[0]:+.3f}, {c.ci[1]:+.3f}]? "
            f"expected {c.expected:+.2f}{tail}")


def _diag_rows(theory: np.ndarray, mean: np.ndarray, se: np.ndarray, est: np.ndarray, est_se: np.ndarray,
               z: np.ndarray, n: int, limit: np.ndarray | None = None) -> list[str]:
    """Per lag: theory, Monte Carlo mean and SE, then the bias-corrected estimate and its SE (Richardson) or,
    with ``limit`` (exact mode: the raw mean is tested, there is no corrected estimate), the wide limit."""
    mc = f"{'MC mean (n=' + str(n) + ')':>17} {'+- SE':>9}"
    rows = [f"{'lag':>4} {'exact mean':>11} {'wide limit':>11} {mc} {'z':>7}" if limit is not None else
            f"{'lag':>4} {'theory':>11} {mc} {'corrected':>11} {'+- SE':>9} {'z':>7}"]
    for j in range(theory.shape[0]):
        idx = (j, 0, 0, j, 0, 0)
        if limit is not None:
            rows.append(f"{j:>4} {theory[idx]:>11.5g} {limit[idx]:>11.5g} {mean[idx]:>17.5g} {se[idx]:>9.2g} "
                        f"{z[idx]:>7.2f}")
        else:
            rows.append(f"{j:>4} {theory[idx]:>11.5g} {mean[idx]:>17.5g} {se[idx]:>9.2g} "
                        f"{est[idx]:>11.5g} {est_se[idx]:>9.2g} {z[idx]:>7.2f}")
    return rows


def _offdiag_note(z: np.ndarray, exact: bool = False, lag_diagonal: bool = True) -> str:
    """The largest |z| among the entries off the (lag, output, input) diagonal (theory 0 in the limit of a
    lag-diagonal kernel)."""
    M = int(round(math.sqrt(z.size)))
    if M < 2:
        return "  (no off-diagonal entries)"
    zz = np.where(np.triu(np.ones((M, M), dtype=bool), 1), np.abs(z.reshape(M, M)), -1.0)
    row, col = np.unravel_index(int(np.argmax(zz)), zz.shape)
    i = tuple(int(x) for x in np.unravel_index(int(row), z.shape[:3]))
    j = tuple(int(x) for x in np.unravel_index(int(col), z.shape[3:]))
    what = "exact finite-width theory" if exact else ("theory 0" if lag_diagonal else "the derived kernel")
    return f"  off-diagonal entries ({what}): max |z| = {zz[row, col]:.2f} at (lag,out,in) = {i} x {j}"


def _nested(a: np.ndarray) -> Any:
    return np.asarray(a, dtype=np.float64).tolist()


def precision_error(estimates: dict[int, WidthEstimate], th: Theories, dtype: str,
                    spec: ModelSpec | None = None) -> str | None:
    """One sentence when the working dtype overflowed or underflowed, else None.

    Overflow: some estimate (mean, standard error, relative error) is not finite; the
    sentence names the first lag with a non-finite entry and the largest theory value.
    Underflow: some lag's derived entries fall below n * tiny (each entry sums n products
    of the Krylov vectors' entries, each below the smallest normal number of the dtype)
    or a diagonal entry came out exactly 0 where the theory is not: the sentence names
    the lag beyond which the entries lost their precision. With ``spec``, the derived
    entries' magnitudes are evaluated exactly (mpmath: lambda_j and Var L_j(0)), so that
    a theory whose own float64 values underflowed to 0 (``q = 1e-300``: ``q^2`` is 0) is
    named as the underflow it is, not left as a statistic that is not finite.
    """
    info = np.finfo(np.dtype(dtype))
    L = th.ntk.shape[0]
    fix = "rerun with --dtype float64" if dtype == "float32" else "use fewer lags or a smaller --sigma-w2"

    # entry (i, ., j, .) involves lags up to max(i, j): the first lag whose entries are not finite
    lag_of = np.maximum.outer(np.arange(L), np.arange(L))

    first_bad: int | None = None
    for e in estimates.values():
        bad = np.zeros((L, L), dtype=bool)
        for a in (e.ntk_mean, e.ntk_stderr, e.nngp_mean, e.nngp_stderr):
            a = np.asarray(a)
            x = int(round(math.sqrt(a.size // (L * L))))  # outputs x inputs per lag
            bad |= ~np.all(np.isfinite(a.reshape(L, x, L, x)), axis=(1, 3))
        rel_bad = not all(math.isfinite(v) for v in [*e.rel_error_mean.values(), *e.rel_error_stderr.values()])
        if bad.any():
            lag = int(lag_of[bad].min())
            first_bad = lag if first_bad is None else min(first_bad, lag)
        elif rel_bad:
            first_bad = L - 1 if first_bad is None else first_bad
    if first_bad is not None:
        diag = np.array([th.ntk[(j, 0, 0, j, 0, 0)] for j in range(L)])
        return (f"{dtype} overflowed at lag {first_bad} (the lag-NTK entries and the products that make them "
                f"exceed the largest {dtype}, {info.max:.2g}; the derived entries reach "
                f"{np.max(np.abs(diag)):.2g} at lag {L - 1}); {fix}")
    n = max(estimates)
    floor = n * float(info.tiny)
    low = _exactly_below(spec, L, floor) if spec is not None else []
    for arr in (th.ntk, th.nngp):
        diag = np.abs(np.array([arr[(j, 0, 0, j, 0, 0)] for j in range(L)]))
        low.extend(j for j in range(L) if 0 < diag[j] < floor)
    top = estimates[n]
    for mean, arr in ((top.ntk_mean, th.ntk), (top.nngp_mean, th.nngp)):
        low.extend(j for j in range(L) if mean[(j, 0, 0, j, 0, 0)] == 0 and arr[(j, 0, 0, j, 0, 0)] != 0)
    if low:
        j = min(low)
        return (f"{dtype} underflowed: the lag-NTK entries at lags beyond {j - 1} are below {floor:.2g} "
                f"(each sums n = {n} products below the smallest normal {dtype}, {info.tiny:.2g}) and lose "
                f"their precision; "
                f"{'rerun with --dtype float64' if dtype == 'float32' else 'use fewer lags or a larger --sigma-w2'}")
    return None


def _exactly_below(spec: ModelSpec, lags: int, floor: float) -> list[int]:
    """Lags j < ``lags`` whose derived lambda_j or Var L_j(0), evaluated exactly, is nonzero and below ``floor``."""
    import mpmath

    from linrnn.derive.formulas import lag_formulas
    from linrnn.derive.numeric import evaluate

    der = lag_formulas(spec.param, spec.derivation_law())
    out = []
    for expr in (der.weight, der.nngp):
        values = evaluate(expr, spec, lags, 30)
        out += [j for j, v in enumerate(values) if v != 0 and abs(v) < mpmath.mpf(floor)]
    return out


def _corrected_sd(big: WidthEstimate, small: WidthEstimate | None, key: str) -> np.ndarray:
    """Per-replica standard deviation of the bias-corrected entry (the two-point fit), sd = SE sqrt(R)."""
    se_n = np.asarray(getattr(big, key + "_stderr")) * math.sqrt(big.replicas)
    if small is None:
        return se_n
    n, h = big.n, small.n
    se_h = np.asarray(getattr(small, key + "_stderr")) * math.sqrt(small.replicas)
    return np.sqrt((n * se_n) ** 2 + (h * se_h) ** 2) / (n - h)


def _upper(a: np.ndarray) -> np.ndarray:
    """Mask of the upper triangle of the flattened M x M layout."""
    M = int(round(math.sqrt(a.size)))
    return np.triu(np.ones((M, M), dtype=bool)).reshape(a.shape)


def entry_effect(theory: np.ndarray, control: np.ndarray, sd: np.ndarray) -> tuple[float, float]:
    """(|control - theory|, sd) at the entry where the standardized distance is largest (the control's effect)."""
    mask = _upper(theory) & (sd > 0) & np.isfinite(sd)
    if not mask.any():
        return math.nan, math.nan
    d = np.where(mask, np.abs(control - theory) / np.where(mask, sd, 1.0), -1.0)
    k = np.unravel_index(int(np.argmax(d)), d.shape)
    return float(abs(control[k] - theory[k])), float(sd[k])


def _entry_crit(alpha: float, m: int) -> Any:
    """Holm's first critical |z| at level alpha over m entries, as a function of the replicas R (t, R - 1 dof)."""
    return lambda r: t_isf(alpha / (2 * max(m, 1)), math.inf if math.isinf(r) else max(r - 1.0, 1.0))


def _measure(be: Backend, spec: ModelSpec, widths: Sequence[int], *, lags: int, replicas: int, max_memory: int,
             theories: dict[int, dict[str, np.ndarray]], keep_first_at: int | None, bar: Progress | None,
             work: dict[int, float], share: float) -> dict[int, WidthEstimate]:
    out: dict[int, WidthEstimate] = {}
    for n in sorted(widths, reverse=True):
        # overflow and underflow are detected in the results (precision_error), not raised midway
        with np.errstate(over="ignore", under="ignore", invalid="ignore", divide="ignore"):
            out[n] = estimate_width(
                be, spec, n, lags=lags, replicas=replicas, max_memory=max_memory, theories=theories[n],
                keep_first=keep_first_at == n,
                on_chunk=None if bar is None else (lambda r, n=n: bar.advance(share * work[n] * r / replicas,
                                                                              f"n={n}")),
            )
    return out


def _tests(estimates: dict[int, WidthEstimate], ws: list[int], top: int, companion: int | None, th: Theories,
           a_check: float) -> tuple[Any, ...]:
    big = estimates[top]
    small = estimates[companion] if companion else None
    ntk_est, ntk_se = richardson(big.ntk_mean, big.ntk_stderr, top,
                                 small.ntk_mean if small else None, small.ntk_stderr if small else None, companion)
    nngp_est, nngp_se = richardson(big.nngp_mean, big.nngp_stderr, top,
                                   small.nngp_mean if small else None, small.nngp_stderr if small else None, companion)
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
    if len(ws) > 1:
        sweep_est = [estimates[n] for n in ws]
        rate = rate_fit(sweep_est, "theory", expected=EXPECTED_SLOPE, alpha=a_check, name="rate")
        checks.append(rate)
        for name in th.ntk_controls:
            controls[f"ntk:{name}"].append(
                rate_fit(sweep_est, f"ntk:{name}", expected=EXPECTED_SLOPE, alpha=a_check, name="rate"))
        controls["rate:minus_1"] = [
            rate_fit(sweep_est, "theory", expected=CONTROL_SLOPE, alpha=a_check, name="rate")]
    return checks, controls, rate, (ntk_est, ntk_se, nngp_est, nngp_se), dof


def control_needs(estimates: dict[int, WidthEstimate], top: int, companion: int | None, th: Theories,
                  checks: list[EntryTest | RateFit], controls: dict[str, list[EntryTest | RateFit]],
                  a_check: float, power: float, *, inflate: bool) -> tuple[dict[str, float], dict[str, tuple]]:
    """Per control, the replicas per width that reject it with ``power`` (min over its checks), and the effects.

    Entry checks: effect = max over entries of |control - theory| / sd (sd of one replica
    of the bias-corrected entry), at Holm's first critical value (t, R - 1 dof) of the
    check's m entries. Rate checks: effect = |slope of the control - slope of the
    theory| (for rate:minus_1: |-1 - (-1/2)|; for a wrong kernel: its fitted slope's
    distance from -1/2) over the slope's sd of one replica, at the normal critical
    value. With ``inflate`` the sd is its upper 95% bound (the pilot).
    """
    big = estimates[top]
    small = estimates[companion] if companion else None
    sds = {"ntk": _corrected_sd(big, small, "ntk"), "nngp": _corrected_sd(big, small, "nngp")}
    truth = {"ntk": th.ntk, "nngp": th.nngp}
    wrong = {"ntk": th.ntk_controls, "nngp": th.nngp_controls}
    ms = {c.name: c.m for c in checks if isinstance(c, EntryTest)}
    dof = min(big.replicas, small.replicas if small else big.replicas) - 1
    need: dict[str, float] = {}
    effects: dict[str, tuple] = {}
    z_rate = t_isf(a_check / 2, math.inf)
    for name, tests in controls.items():
        kind, key = name.split(":", 1)
        best = math.inf
        for c in tests:
            if isinstance(c, EntryTest):
                eff, sd = entry_effect(truth[kind], wrong[kind][key], sds[kind])
                crit = _entry_crit(a_check, ms[c.name])
            else:
                slope_sd = c.stderr * math.sqrt(min(e.replicas for e in estimates.values()))
                target = EXPECTED_SLOPE if kind == "ntk" else CONTROL_SLOPE
                slope = c.slope if kind == "ntk" else EXPECTED_SLOPE
                eff, sd = abs(slope - target), slope_sd
                crit = lambda r, z=z_rate: z  # noqa: E731
            sd_used = dsg.sd_upper(sd, dof) if inflate and math.isfinite(sd) else sd
            r = dsg.replicas_for_crit(eff, sd_used, crit, power) if math.isfinite(eff) and math.isfinite(sd) \
                else math.inf
            effects[f"{name}|{c.name}"] = (eff, sd, crit)
            need[f"{name}|{c.name}"] = r
            best = min(best, r)
        need[name] = best
    return need, effects


def remainder_cap(estimates: dict[int, WidthEstimate], top: int, th: Theories, a_check: float) -> float:
    """R_bias of :func:`linrnn.verify.design.bias_cap` from the widths n, n/2, n/4 (min over entries; inf if unseen).

    The two-point estimate at n leaves r = (a(n, n/2) - a(n/2, n/4)) / 3 (for m(n) =
    a + B/n + c/n^2); its significant part (beyond the Bonferroni t critical value at
    :data:`linrnn.verify.design.BIAS_LEVEL` over the entries of both arrays, pilot degrees
    of freedom) caps the replicas so that it stays below BIAS_FRACTION standard errors.
    """
    h, q = top // 2, top // 4
    if q < 1 or h == q or not {top, h, q} <= set(estimates):
        return math.inf
    cap = math.inf
    en, eh, eq = estimates[top], estimates[h], estimates[q]
    m_all = 2 * int(np.count_nonzero(_upper(en.ntk_mean)))
    dof = min(e.replicas for e in (en, eh, eq)) - 1.0
    k = t_isf(dsg.BIAS_LEVEL / (2 * m_all), dof)  # Bonferroni over both arrays: a chance detection is rare
    for key in ("ntk", "nngp"):
        mn, mh, mq = (np.asarray(getattr(e, key + "_mean")) for e in (en, eh, eq))
        sn, sh, sq = (np.asarray(getattr(e, key + "_stderr")) for e in (en, eh, eq))
        a1 = (top * mn - h * mh) / (top - h)
        a2 = (h * mh - q * mq) / (h - q)
        # a1 - a2 = (2 m_n - m_h) - (2 m_h - m_q) for exact halvings; general widths by the same weights
        w = np.array([top / (top - h), -h / (top - h) - h / (h - q), q / (h - q)])
        r = (a1 - a2) / 3.0
        r_se = np.sqrt((w[0] * sn) ** 2 + (w[1] * sh) ** 2 + (w[2] * sq) ** 2) / 3.0
        sd = _corrected_sd(en, eh, key)
        mask = _upper(mn) & (sd > 0) & np.isfinite(sd) & np.isfinite(r) & np.isfinite(r_se)
        for idx in zip(*np.nonzero(mask)):
            cap = min(cap, dsg.bias_cap(float(r[idx]), float(r_se[idx]), float(sd[idx]), k=k))
    return cap


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
    pilot: int = 0,
    max_replicas: int = 4096,
    budget_seconds: float | None = None,
    power: float = dsg.POWER,
    memory_flag: str = "--max-memory",
    mean: str = "auto",
    lags_flag: str = "lags",
) -> NTKCheck:
    """Run the Monte Carlo lag-NTK and NNGP checks for ``spec`` (a :class:`linrnn.core.spec.ModelSpec`).

    ``widths``: one width, or a sweep (two or more distinct widths). The entrywise
    checks run at the largest width n with the bias companion n // 2 (measured
    too when not in the sweep; none when n = 1). ``pilot`` = 0: exactly ``replicas``
    draws per width; ``pilot`` >= 2: the group-sequential design of :mod:`linrnn.verify.design`
    (``pilot`` fresh draws per width, then at least ``replicas`` new ones, as many as
    power 0.999 against every control needs, capped by ``max_replicas``,
    ``budget_seconds`` and the bias allowance; a further stage where a control is left
    undecided; every look at alpha / looks). See the module docstring for the
    statistics. Raises :class:`UsageError` for impossible input, and for a draw that does
    not fit ``max_memory`` before any work (the sentence names ``memory_flag``, the
    setting that raises the budget where the caller reads it), and for lags at which every
    negative control equals the derived theory (:func:`require_lag_controls`; the sentence
    names ``lags_flag``), before any draw.

    ``mean``: ``"exact"`` compares the raw Monte Carlo mean at each width with the exact
    finite-width expectation E[Theta](n), E[L L](n) of :mod:`linrnn.families.gaussian.finite_width`
    (no companion width, no bias allowance; the controls are the same wrong theories
    at finite width, :data:`FINITE_WIDTH_CONTROLS`); ``"richardson"`` compares the
    two-point bias-corrected estimate with the wide limit; ``"auto"`` (default) is
    exact wherever the engine reaches the lags (:func:`exact_reaches`).
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
    for what, count in (("replicas", replicas), ("max_replicas", max_replicas), ("pilot", pilot)):
        if isinstance(count, int) and count > 2**63 - 1:
            raise UsageError(f"{what} must be an integer of at most 64 bits (2^63 - 1), got one of "
                             f"{len(str(count))} digits")
    if not (isinstance(alpha, (int, float)) and 0 < alpha < 1):
        raise UsageError(f"alpha must lie strictly between 0 and 1, got {alpha!r}")
    if isinstance(pilot, bool) or not isinstance(pilot, int) or pilot < 0 or pilot == 1:
        raise UsageError(f"pilot must be 0 (no design) or an integer >= 2, got {pilot!r}")
    plan_design = dsg.Design(pilot=max(pilot, 2), min_replicas=replicas, max_replicas=max(max_replicas, replicas)
                             if pilot == 0 else max_replicas, budget_seconds=budget_seconds, power=power,
                             looks=dsg.LOOKS if pilot else 1)  # a fixed design (no pilot) takes one look
    if mean not in MEAN_MODES:
        raise UsageError(f"mean must be one of {', '.join(MEAN_MODES)}, got {mean!r}")
    family_limit = spec.limit_theories(lags)  # a family's own limit kernels (None: the derived lag weights)
    reaches = family_limit is None and mean != "richardson" and exact_reaches(spec, lags)
    if mean == "exact" and not reaches:
        if not spec.exact_finite_width:
            raise UsageError(f"the {spec.family} family has no exact finite-width lag-NTK mean; use mean richardson")
        raise UsageError(f"the exact finite-width mean reaches at most {spec.exact_reach} lags, got {lags}; "
                         f"use mean richardson")
    exact = mean == "exact" or (mean == "auto" and reaches)
    be = backend if isinstance(backend, Backend) else get_backend(backend, seed=seed, dtype=dtype)
    top = ws[-1]
    companion = top // 2 if top >= 2 and not exact else None
    run_widths = sorted(set(ws) | ({companion} if companion else set()))
    quarter = top // 4 if top >= 4 and not exact else None
    pilot_widths = sorted(set(run_widths) | ({quarter} if quarter else set()))
    itemsize = be.itemsize
    n_theories = theory_count(family_limit)
    for n in sorted(pilot_widths if pilot else run_widths, reverse=True):  # before any work: one draw must fit
        per_draw = bytes_per_draw(n, spec.n_in, n_out, lags, itemsize, n_theories)
        chunk_size(per_draw, max_memory, replicas, be.name, n=n, flag=memory_flag)
    if family_limit is None:
        require_lag_controls(spec, lags, lags_flag)  # a check that no wrong theory could fail tests nothing
        limit = theories_for(spec, lags)
    else:
        require_family_controls(spec, family_limit, lags, lags_flag)
        limit = family_limit
    by_width = {n: exact_theories_for(spec, lags, n, limit) if exact else limit for n in pilot_widths}
    for n, t in by_width.items():  # the finite-width controls too: still before any draw
        if not (t.ntk_controls and t.nngp_controls):
            raise untestable(f"{lags_flag} = {lags}", "the lag weights",
                             f"every negative control equals the exact finite-width mean at width {n}",
                             "use more lags or mean richardson")
    th = by_width[top]
    rel_theories = {n: {"theory": t.ntk, **{f"ntk:{k}": v for k, v in t.ntk_controls.items()}}
                    for n, t in by_width.items()}
    assert all(len(v) <= n_theories for v in rel_theories.values())
    sweep = len(ws) > 1
    n_checks = 3 if sweep else 2
    a_check = alpha / n_checks * plan_design.alpha_share  # Bonferroni over the checks and over the looks
    work = {n: float(n) ** 2 + 2e3 * n for n in pilot_widths}

    plan: dsg.Plan | None = None
    pilot_info: dict[str, Any] = {}
    pilot_power: dict[str, float | None] = {}
    with Progress(1.0, "verify ntk", enabled=progress) as bar:
        main_r = replicas
        if pilot:
            pilot_seed = None if be.seed is None else stream_seed(be.seed, 0, 7)
            pbe = be.with_seed(pilot_seed)
            tp = time.perf_counter()
            share = 0.1 / sum(work[n] * pilot for n in pilot_widths)
            pest = _measure(pbe, spec, pilot_widths, lags=lags, replicas=pilot, max_memory=max_memory,
                            theories=rel_theories, keep_first_at=None, bar=bar,
                            work={n: work[n] * pilot for n in pilot_widths}, share=share)
            pilot_seconds = time.perf_counter() - tp
            # the cost of one replica of the main stage (the pilot also ran n // 4, whose cost is removed)
            per_rep = pilot_seconds / pilot * sum(work[n] for n in run_widths) / sum(work[n] for n in pilot_widths)
            p_err = precision_error(pest, th, be.dtype_name, spec if family_limit is None else None)
            with np.errstate(over="ignore", under="ignore", invalid="ignore", divide="ignore"):
                pchecks, pcontrols, _, _, _ = _tests(pest, ws, top, companion, th, a_check)
            if p_err is None:
                need, effects = control_needs(pest, top, companion, th, pchecks, pcontrols, a_check, power,
                                              inflate=True)
                cap = remainder_cap(pest, top, th, a_check)
                plan = dsg.size({k: v for k, v in need.items() if "|" not in k}, plan_design,
                                seconds_per_replica=per_rep, bias_cap=cap)
                plan.needed.update({k: v for k, v in need.items() if "|" in k})
                for k, (eff, sd, crit) in effects.items():
                    pilot_power[k] = (dsg.predicted_power(eff, sd, plan.replicas, crit(plan.replicas))
                                      if math.isfinite(eff) and math.isfinite(sd) else None)
                for k in pcontrols:  # a control is rejected when any of its checks is: at least the best one's
                    pw = [v for key, v in pilot_power.items() if key.split("|")[0] == k and v is not None]
                    pilot_power[k] = max(pw) if pw else None
            else:  # the pilot says the arithmetic failed: the main stage runs at the minimum size, to report it
                cap = math.inf
                plan = dsg.Plan(replicas, {k: math.inf for k in pcontrols}, None)
            main_r = plan.replicas
            pilot_info = {"pilot_seconds": pilot_seconds, "seconds_per_replica": per_rep,
                          "bias_cap": None if math.isinf(cap) else int(cap), "pilot_widths": pilot_widths}
        looked: dict[int, tuple[Any, ...]] = {}

        def draw(stage: int, k: int) -> dict[int, WidthEstimate]:
            sbe = be if stage == 0 else be.with_seed(None if be.seed is None else stream_seed(be.seed, stage, 9))
            share = (0.9 if pilot else 1.0) / sum(work[n] * k for n in run_widths)
            return _measure(sbe, spec, run_widths, lags=lags, replicas=k, max_memory=max_memory,
                            theories=rel_theories, keep_first_at=top if keep_first else None, bar=bar,
                            work={n: work[n] * k for n in run_widths}, share=share)

        def look(est: dict[int, WidthEstimate], stage: int) -> dsg.Look:
            err = precision_error(est, th, be.dtype_name, spec if family_limit is None else None)
            with np.errstate(over="ignore", under="ignore", invalid="ignore", divide="ignore"):
                got = _tests(est, ws, top, companion, th, a_check)
            looked[stage] = (err, *got)
            outs = [c.outcome for c in got[0]]
            own = "error" if err or "error" in outs else ("fail" if "fail" in outs else "pass")
            rejected = {k: err is None and any(c.outcome == "fail" for c in tests) for k, tests in got[1].items()}
            cache: dict[float, dict[str, float]] = {}

            def need(name: str, pw: float) -> float:  # from this stage's estimate, the sd at its upper bound
                if err is not None:
                    return math.inf
                if pw not in cache:
                    cache[pw] = control_needs(est, top, companion, th, got[0], got[1], a_check, pw, inflate=True)[0]
                return cache[pw][name]

            return dsg.Look(own, rejected, need)

        names = ([f"ntk:{k}" for k in th.ntk_controls] + [f"nngp:{k}" for k in th.nngp_controls]
                 + (["rate:minus_1"] if sweep else []))
        stages = dsg.sequential_stages(draw, look, main_r, plan_design, names,
                                       seconds_spent=time.perf_counter() - t0,
                                       limit=pilot_info.get("bias_cap") if pilot else None)
    estimates = stages.last
    last = len(stages.samples) - 1
    error, checks, controls, rate, arrays, dof = looked[last]
    # a control is decided by the first stage that rejects it: its checks are that stage's
    controls = {k: (looked[stages.decided_at[k]][2][k] if k in stages.decided_at else v) for k, v in controls.items()}
    ntk_est, ntk_se, nngp_est, nngp_se = arrays
    if sweep:
        th.control_exprs["rate:minus_1"] = "e(n) ~ n^-1 (fluctuations of order 1/n)"
    needed, _ = (control_needs(estimates, top, companion, th, checks, controls, a_check, power, inflate=True)
                 if error is None else ({k: math.inf for k in controls}, {}))

    config = {
        "param": spec.param, "sigma_w2": spec.sigma_w2, "sigma_c2": spec.sigma_c2, "sigma_f2": spec.sigma_f2,
        "n_in": spec.n_in, "n_out": n_out, "lr_c": spec.lr_c, "lr_f": spec.lr_f, "lr_w": spec.lr_w,
        "lags": lags, "replicas": replicas, "seed": be.seed, "widths": ws, "max_memory": max_memory,
        "alpha": alpha, "pilot": pilot, "max_replicas": max_replicas, "budget_seconds": budget_seconds,
        "mean": mean,
    }
    extra = {k: v for k, v in spec.as_dict().items() if k not in config}  # a family's own fields (the shift)
    if extra:
        config.update({"family": spec.family, **extra})
    sizes = [r["replicas"] for r in stages.record]
    if pilot:
        assert plan is not None
        method = "group-sequential"
        sizing = (f"a pilot of {pilot} fresh draws per width estimated each control's effect; the main stage drew "
                  f"{main_r} new replicas per width, for power {power:g} against every control at the Holm "
                  f"critical values of alpha = {a_check:.3g} per check and look (at least {replicas}"
                  + (f"; capped by {plan.capped_by}" if plan.capped_by else "") + ")"
                  + (f"; a control it left undecided got a further stage of {', '.join(map(str, sizes[1:]))} fresh "
                     f"replicas per width, sized on the main stage's estimate and tested alone"
                     if len(sizes) > 1 else "")
                  + f" (up to {plan_design.looks} looks, alpha split over them by Bonferroni)")
    else:
        method = "fixed"
        sizing = f"{replicas} replicas per width, no pilot (pilot = 0): the size is not designed for power"
    design = NTKDesign(
        method=method,
        sizing=sizing,
        pilot=pilot,
        replicas=sizes[-1],
        main_replicas=main_r,
        looks=plan_design.looks,
        alpha_share_per_look=plan_design.alpha_share,
        stage_record=stages.as_dict(),
        min_replicas=replicas,
        max_replicas=max_replicas,
        budget_seconds=budget_seconds,
        power_target=power,
        alpha_per_check=alpha / n_checks,
        alpha_per_check_per_look=a_check,
        capped_by=plan.capped_by if plan else None,
        needed={k: _int_or_none(v) for k, v in (plan.needed if plan else needed).items() if "|" not in k},
        needed_checks={k: _int_or_none(v) for k, v in (plan.needed if plan else needed).items() if "|" in k},
        needed_main={k: _int_or_none(v) for k, v in needed.items() if "|" not in k},
        needed_main_checks={k: _int_or_none(v) for k, v in needed.items() if "|" in k},
        **pilot_info,
        correction=f"Holm step-down over the m entries of each symmetric array's upper triangle, "
                   f"family-wise alpha = {alpha:g} split by Bonferroni over {n_checks} checks",
        mean_theory="exact" if exact else "richardson",
        allowance=(f"no bias allowance: the raw Monte Carlo mean at n = {top} is compared with the exact "
                   f"finite-width expectation E[Theta](n), E[L L](n) (linrnn.families.gaussian.finite_width, every order "
                   f"in 1/n), the controls with the same wrong theories at n = {top}" if exact else
                   f"O(1/n) finite-width bias removed by a per-entry two-point fit a + B/n at n = {top} and "
                   f"n = {companion} (Richardson); the O(n^-2) remainder, estimated in the pilot from n, n/2 "
                   f"and n/4, caps the replicas so that a remainder the pilot sees stays below "
                   f"{dsg.BIAS_FRACTION:g} SE" + ("" if pilot else " (not applied: no pilot)")
                   if companion else "no bias correction at width 1"),
        test=(f"z = (mean - exact finite-width mean) / SE against Student's t with {dof:g} degrees of freedom"
              if exact else f"z = (corrected - theory) / SE against Student's t with {dof:g} degrees of freedom"),
        rate="weighted log-log fit of the per-draw relative Frobenius error, expected slope -1/2; "
             f"a d/n term is fitted with {MIN_WIDTHS_FOR_CORRECTION} or more widths",
        budget="false failure of a true theory <= alpha per run; the test suite runs <= 10 verdicts: 1e-2",
    )
    return NTKCheck(
        config=config, backend=be.describe(), widths=ws, verdict_width=top, companion_width=companion,
        estimates=estimates, theories=th, ntk_estimate=ntk_est, ntk_estimate_stderr=ntk_se,
        nngp_estimate=nngp_est, nngp_estimate_stderr=nngp_se, checks=checks, controls=controls, rate=rate,
        alpha=alpha, alpha_check=alpha / n_checks, dof=dof, seconds=time.perf_counter() - t0, design=design,
        error=error, power=pilot_power, needed=needed,
    )
