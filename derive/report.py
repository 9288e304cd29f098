"""The data behind ``linrnn derive weights`` and its two renderings (table, JSON).

JSON numbers from the mpmath path are written as exact decimal literals with
``dps`` significant digits, which JSON allows at any magnitude; read them with
``json.loads(text, parse_float=decimal.Decimal)`` to keep values beyond float64.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

import mpmath
import numpy as np

from linrnn.derive.model import ModelSpec

SCHEMA_VERSION = 1
_JSON_NUMBER = re.compile(r"-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?")


@dataclass
class WeightsReport:
    spec: ModelSpec
    lags: int
    dps: int | None
    weights: list[Any]
    nngp: list[Any]
    expression: str  # LaTeX of lambda_j
    nngp_expression: str
    regime: str
    peak_lag: int | None
    horizon: float | None
    horizon_lag: int | None
    total: Any
    eps: float
    notices: list[str] = field(default_factory=list)

    @property
    def precision(self) -> str:
        return "float64" if self.dps is None else f"mpmath, {self.dps} significant digits"


def weights_report(spec: ModelSpec, lags: int, *, dps: int | None = None, eps: float = 1e-3) -> WeightsReport:
    """Evaluate lambda_j and Var L_j(0) for j < lags with the consequences of ``spec``.

    The formulas come from the derivation's cached data
    (:func:`linrnn.derive.formulas.lag_formulas`): with a warm cache, SymPy is not imported.
    """
    from linrnn.derive.formulas import lag_formulas
    from linrnn.derive.numeric import evaluate, float64_range, summarize

    der = lag_formulas(spec.param, spec.derivation_law())
    w = evaluate(der.weight, spec, lags, dps, underflow="keep")  # underflow is noted below, not raised
    v = evaluate(der.nngp, spec, lags, dps, underflow="keep")
    notices: list[str] = []
    if dps is None:
        tiny = float(np.finfo(np.float64).tiny)
        if 0 < spec.sigma_w2 < tiny:
            notices.append(f"q = sigma_W^2 is itself subnormal in float64 (below {tiny:.3g}: kept as "
                           f"{spec.sigma_w2:g}, with fewer significant digits)")
        for name, expr, values in (("lambda_j", der.weight, w), ("the NNGP variance", der.nngp, v)):
            subnormal, zero = float64_range(expr, spec, values)
            parts = []
            if subnormal:
                parts.append(f"is subnormal in float64 {_lags_text(subnormal, lags)} (below {tiny:.3g}: "
                             f"printed with fewer significant digits)")
            if zero:
                parts.append(f"underflows float64 to 0 {_lags_text(zero, lags)} (printed as 0)")
            if parts:
                notices.append(f"{name} {' and '.join(parts)}; rerun with --dps 30 for its exact magnitude")
    summary = summarize(spec, eps=eps, dps=max(30, dps or 0))
    return WeightsReport(
        spec=spec, lags=lags, dps=dps,
        weights=list(w), nngp=list(v),
        expression=der.weight.latex,
        nngp_expression=der.nngp.latex,
        regime=summary.regime, peak_lag=summary.peak_lag, horizon=summary.horizon,
        horizon_lag=summary.horizon_lag, total=summary.total, eps=eps, notices=notices,
    )


def _lags_text(js: list[int], lags: int) -> str:
    """'at j = 3', 'for j = 1 to 3', 'from j = 2 on' (to the last lag printed) or 'at j = 1, 3, 5'."""
    if len(js) == 1:
        return f"at j = {js[0]}"
    if js == list(range(js[0], js[-1] + 1)):
        return f"from j = {js[0]} on" if js[-1] == lags - 1 else f"for j = {js[0]} to {js[-1]}"
    return "at j = " + ", ".join(map(str, js[:6])) + (", ..." if len(js) > 6 else "")


def _number(x: Any, dps: int | None) -> Any:
    """A JSON-ready number: float for float64, an exact literal for mpmath."""
    if x is None:
        return None
    if isinstance(x, mpmath.mpf):
        if dps is None:
            return float(x)
        text = mpmath.nstr(x, dps, strip_zeros=False, min_fixed=1, max_fixed=0)
        if not _JSON_NUMBER.fullmatch(text):  # pragma: no cover - guards the formatter
            raise ValueError(f"mpmath produced {text!r}, which is not a JSON number")
        return _Literal(text)
    return float(x)


class _Literal(str):
    """A number already formatted as a JSON literal."""


def to_dict(report: WeightsReport) -> dict[str, Any]:
    dps = report.dps
    return {
        "schema_version": SCHEMA_VERSION,
        "model": report.spec.as_dict(),
        "lags": report.lags,
        "precision": report.precision,
        "expression": report.expression,
        "nngp_expression": report.nngp_expression,
        "weights": [_number(x, dps) for x in report.weights],
        "nngp": [_number(x, dps) for x in report.nngp],
        "regime": report.regime,
        "peak_lag": report.peak_lag,
        "horizon": report.horizon,
        "horizon_lag": report.horizon_lag,
        "eps": report.eps,
        "total": _number(report.total, dps),
    }


def format_json(report: WeightsReport) -> str:
    """One JSON object; mpmath numbers appear as exact number literals."""
    literals: list[str] = []

    def hide(obj: Any) -> Any:
        if isinstance(obj, _Literal):
            literals.append(str(obj))
            return f"\x00{len(literals) - 1}\x00"
        if isinstance(obj, list):
            return [hide(x) for x in obj]
        if isinstance(obj, dict):
            return {k: hide(v) for k, v in obj.items()}
        return obj

    text = json.dumps(hide(to_dict(report)), allow_nan=False)
    text = re.sub(r'"\\u0000(\d+)\\u0000"', lambda m: literals[int(m.group(1))], text)
    return text + "\n"


def _fmt(x: Any, digits: int = 6) -> str:
    if isinstance(x, mpmath.mpf):
        return mpmath.nstr(x, digits, min_fixed=-3, max_fixed=6)
    return f"{float(x):.{digits}g}"


def format_table(report: WeightsReport) -> str:
    """A readable table of j, lambda_j, lambda_j / lambda_0 and Var L_j(0)."""
    spec = report.spec
    lines = [
        f"# lag weights of the wide linear RNN ({spec.param} parameterization; {report.precision})",
        f"# q = sigma_W^2 = {spec.sigma_w2:g}, sigma_C^2 = {spec.sigma_c2:g}, sigma_F^2 = {spec.sigma_f2:g}, "
        f"n_x = {spec.n_in}, eta = (C {spec.lr_c:g}, F {spec.lr_f:g}, W {spec.lr_w:g})",
        f"# lambda_j = {_weight_text(spec)}",
        f"# regime: {report.regime} ({_regime_sentence(report.regime)})",
    ]
    if report.horizon is not None:
        lines.append(
            f"# peak at lag {report.peak_lag}; memory horizon (lambda_j / max = {report.eps:g}) at "
            f"j = {report.horizon:.4f}, first lag below: {report.horizon_lag}; sum of all weights = {_fmt(report.total)}"
        )
    else:
        lines.append("# no memory horizon: the weights do not decay (q >= 1) and their sum diverges")
    lam0 = report.weights[0]
    header = f"{'j':>6}  {'lambda_j':>14}  {'lambda_j/lambda_0':>18}  {'Var L_j(0)':>14}"
    lines += [header, "-" * len(header)]
    for jj, (w, v) in enumerate(zip(report.weights, report.nngp)):
        rel = (w / lam0) if lam0 != 0 else (mpmath.nan if isinstance(w, mpmath.mpf) else np.nan)
        lines.append(f"{jj:>6}  {_fmt(w):>14}  {_fmt(rel):>18}  {_fmt(v):>14}")
    return "\n".join(lines) + "\n"


def _weight_text(spec: ModelSpec) -> str:
    """``sympy.sstr`` of the derived lambda_j (kept in its cached formula)."""
    from linrnn.derive.formulas import lag_formulas

    return lag_formulas(spec.param, spec.derivation_law()).weight.text


def _regime_sentence(regime: str) -> str:
    return {
        "decaying": "q < 1: weights decay geometrically, a bias toward short memory",
        "critical": "q = 1: weights grow linearly with the lag",
        "exploding": "q > 1: weights grow geometrically with the lag",
    }[regime]
