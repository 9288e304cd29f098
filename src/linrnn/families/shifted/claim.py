r"""Claim ``shifted_kernel``: the shifted family's derived lag kernels are the wide limit of its Monte Carlo.

At the family's own setting of table ``[shifted]`` (default shift a = 0.5, q = 0.25: the
spectral edge |a| + sqrt(q) = 1 of the IRNN-like initialisation, where the shift matters
most; the other model fields from ``[model]``), ``linrnn verify ntk`` of the family
(:func:`linrnn.verify.check_ntk.check_lag_ntk` with the family's limit theories,
:meth:`~linrnn.families.shifted.spec.ShiftedSpec.limit_theories`) tests every entry
j <= k < ``lags`` of the empirical lag NTK and of L_j L_k at width ``width`` against the
derived Theta_inf(j, k) and E[L_j L_k]. The family has no exact finite-width mean, so the
Monte Carlo mean is bias-corrected by the two-point fit at n and n // 2 (Richardson) with
the design's remainder cap; z per entry, Holm over the entries of each array, Bonferroni
over the two arrays and the looks of the group-sequential design.

Negative controls, each tested on the lag NTK and on the NNGP and each to be rejected
(:data:`linrnn.families.shifted.theories.CONTROL_STATEMENTS`): the derived kernel forced
lag-diagonal; the Gaussian "spectral twin" at q' = a^2 + q (the same tau(W_e^T W_e)); the
derived kernel at a = 0.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from linrnn.core.errors import UsageError
from linrnn.verify.claims.base import Claim, ClaimResult, Progress, result_config

SECTION = "shifted"


@dataclass(frozen=True)
class Config:
    """The shifted family's check: its own ``shift`` and ``sigma_w2`` (the other model fields are ``[model]``'s),
    ``lags``, the verdict ``width`` (its bias companion is width // 2), the group-sequential design's ``pilot``,
    ``replicas`` (the fewest of the main stage), ``max_replicas`` and ``budget_seconds`` (0: none), ``alpha`` and
    ``max_memory`` of a batch of draws."""

    shift: float = 0.5
    sigma_w2: float = 0.25
    lags: int = 8
    width: int = 512
    replicas: int = 128
    pilot: int = 32
    max_replicas: int = 2048
    budget_seconds: float = 0.0
    alpha: float = 1e-3
    max_memory: str | int = "2GB"

    def __post_init__(self) -> None:
        from linrnn.core.spec import check_field
        from linrnn.core.validate import in_open_interval, parse_memory, positive_int

        check_field("real", "shifted.shift", self.shift)
        check_field("positive", "shifted.sigma_w2", self.sigma_w2)
        if positive_int("shifted.lags", self.lags) < 2:
            raise UsageError(f"shifted.lags must be at least 2 (the kernel's lags must correlate), got {self.lags}")
        if positive_int("shifted.width", self.width) < 4:
            raise UsageError(f"shifted.width must be at least 4 (its bias companion is width // 2), got {self.width}")
        for name in ("replicas", "max_replicas"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 2:
                raise UsageError(f"shifted.{name} must be an integer of at least 2, got {value!r}")
        if isinstance(self.pilot, bool) or not isinstance(self.pilot, int) or self.pilot < 0 or self.pilot == 1:
            raise UsageError(f"shifted.pilot must be 0 (no design) or an integer of at least 2, got {self.pilot!r}")
        if self.pilot and self.max_replicas < self.replicas:
            raise UsageError(f"shifted.max_replicas ({self.max_replicas}) is below shifted.replicas ({self.replicas})")
        if not (math.isfinite(self.budget_seconds) and self.budget_seconds >= 0):
            raise UsageError(f"shifted.budget_seconds must be 0 (none) or a positive number, got {self.budget_seconds!r}")
        in_open_interval("shifted.alpha", self.alpha, 0, 1)
        try:
            parse_memory(self.max_memory)
        except UsageError as exc:
            raise UsageError(f"shifted.max_memory: {exc}") from None


def claim_spec(config: Config, model: Any) -> Any:
    """The specification checked: ``model`` (the family's, from ``[model]``) with the table's shift and q."""
    return model.replace(shift=config.shift, sigma_w2=config.sigma_w2)


def memory(config: Config, model: Any) -> int:
    """Peak bytes of one draw at ``width`` with the relative errors of the theory and its three NTK controls."""
    from linrnn.verify.montecarlo import bytes_per_draw

    return bytes_per_draw(config.width, model.n_in, model.n_out, config.lags, 8, 4)


def check(config: Config, model: Any) -> None:
    """One draw must fit ``max_memory``, and every array must keep a control that differs from the theory."""
    from linrnn.core.validate import check_memory, parse_memory
    from linrnn.verify.check_ntk import require_family_controls

    check_memory(f"the shifted family's check ([shifted] width {config.width}, lags = {config.lags}), one draw,",
                 memory(config, model), parse_memory(config.max_memory), "[shifted] max_memory in the configuration")
    spec = claim_spec(config, model)
    require_family_controls(spec, spec.limit_theories(config.lags), config.lags, "[shifted] lags")


def _controls(r: Any) -> list[dict[str, Any]]:
    from linrnn.families.shifted.theories import CONTROL_STATEMENTS
    from linrnn.verify.claims.ntk_sweep import entry_stat

    out = []
    for name, ctrl in r.control_results().items():
        kind, key = name.split(":", 1)
        for c in ctrl.checks:
            stat, thr = entry_stat(c)
            out.append({"id": f"shifted:{name}",
                        "statement": f"{'lag NTK' if kind == 'ntk' else 'NNGP'}: {CONTROL_STATEMENTS[key]}",
                        "formula": None, "statistic": stat, "threshold": thr,
                        "verdict": {"fail": "rejected", "pass": "not_rejected"}.get(c.outcome, "error"),
                        "power": c.power, "needed": c.needed})
    return out


def run(config: Config, model: Any, *, seed: int = 0, backend: Any = "numpy", dtype: str = "float64",
        progress: Progress | None = None) -> ClaimResult:
    import numpy as np

    from linrnn.core.validate import parse_memory
    from linrnn.verify.check_ntk import check_lag_ntk
    from linrnn.verify.claims import ntk_sweep

    check(config, model)
    spec = claim_spec(config, model)
    r = check_lag_ntk(spec, [config.width], lags=config.lags, replicas=config.replicas, seed=seed, backend=backend,
                      dtype=dtype, max_memory=parse_memory(config.max_memory), alpha=config.alpha, progress=False,
                      pilot=config.pilot, max_replicas=config.max_replicas,
                      budget_seconds=config.budget_seconds or None, mean="richardson",
                      memory_flag="[shifted] max_memory in the configuration", lags_flag="[shifted] lags")
    checks = r.check_results()
    worst = max(checks.values(), key=lambda c: c.test.max_abs_z if np.isfinite(c.test.max_abs_z) else np.inf)
    ctrls = _controls(r)
    stat, thr = ntk_sweep.entry_stat(worst)
    stat = {**stat, "name": "max |z| over the entries of the lag NTK and of the NNGP (bias-corrected vs derived)",
            "per_check": {name: float(c.test.max_abs_z) for name, c in checks.items()}}
    fields = ntk_sweep.claim_fields(r, worst, ctrls)
    outs = [c.outcome for c in checks.values()]
    fields["statistic_verdict"] = "error" if r.error or "error" in outs else ("fail" if "fail" in outs else "pass")
    fields["error"] = r.error or ("a statistic is not finite" if fields["statistic_verdict"] == "error" else None)
    L, top = config.lags, r.verdict_width
    ntk = r.kernel("ntk")
    mean = np.asarray(ntk.mean, dtype=np.float64)[:, 0, 0, :, 0, 0]
    theory = np.asarray(ntk.theory, dtype=np.float64)[:, 0, 0, :, 0, 0]
    return ClaimResult(
        id="shifted_kernel", title="Identity-shifted RNN: non-diagonal lag kernels",
        statement=f"For the identity-shifted dense RNN W_e = a I + sqrt(q/n) G (a = {spec.shift:g}, q = "
                  f"{spec.sigma_w2:g}), the Monte Carlo means of the empirical lag NTK and of L_j L_k (every "
                  f"j <= k < {L}) at width n = {top}, bias-corrected with n = {r.companion_width}, equal the derived "
                  "wide-limit kernels, which are not diagonal in the lags.",
        formula=r"\Theta_\infty(j,k) = \frac{\sigma_C^2\sigma_F^2}{n_x}\Big[(\eta_C+\eta_F)\,g(j,k) + \eta_W q"
                r"\sum_{s<j}\sum_{t<k} g(s,t)\,g(j-1-s,k-1-t)\Big],\quad g(p,r) = \sum_{m} \binom{p}{m}"
                r"\binom{r}{m} a^{p+r-2m} q^{m}\ (\mathrm{ntk})",
        statistic=stat, threshold=thr, verdict=fields["statistic_verdict"],
        figures={
            "heatmap": {
                "kind": "heatmap", "title": "Shifted RNN: empirical lag NTK against the derived kernel",
                "caption": f"Left: Monte Carlo mean of the empirical lag NTK at width n = {top} ({r.top.replicas} "
                           "draws); right: the derived wide-limit kernel (not diagonal in the lags). Same colour "
                           "scale.",
                "panels": [{"title": f"Monte Carlo mean, n = {top}", "matrix": mean},
                           {"title": r"derived $\Theta_\infty(j, k)$", "matrix": theory}],
                "axis_label": "lag k", "axis_label_y": "lag j", "colorbar_label": r"$\Theta[j, k]$ (dimensionless)",
            },
            "per_lag": ntk_sweep.per_lag_figure(r, "ntk", checks["ntk_entries"],
                                                r"NTK diagonal $\Theta[(j,0,0),(j,0,0)]$ (dimensionless)",
                                                "Shifted RNN lag NTK"),
        },
        controls=ctrls, config=result_config(spec, config),
        notes=[r.design.correction + ".", r.design.allowance + ".",
               "Derived kernels: linrnn.families.shifted (SymPy: the binomial sums of (aI + X)^p with X circular)."],
        backend=r.backend, data={"theory_formula": r.theories.weight_expr, "nngp_formula": r.theories.nngp_expr,
                                 "seconds": r.seconds},
        **fields,
    )


CLAIM = Claim(name="shifted_kernel", section=SECTION, experiment="shifted", family="shifted",
              title="Identity-shifted RNN: non-diagonal lag kernels", config_type=Config, run=run, check=check,
              memory=memory)
