r"""The derived closed forms as data: printed once from SymPy, evaluated without it.

The numeric paths (``linrnn verify``, ``linrnn report render``, the claims on a
worker) need numbers from the derivation, not SymPy objects. Each closed form the
derivation arrives at (:func:`linrnn.derive.lag_weights.derive_lag_weights`,
:func:`linrnn.derive.weight_consequences.consequences`) is kept here as a :class:`Formula`:

* ``text`` (``str(expr)``), ``latex`` (``sympy.latex`` with the project's symbol
  names) and ``latex_doc`` (the derivation document's printer);
* ``numpy`` and ``mpmath``: the source of the function ``sympy.lambdify`` generates
  for that module, with the names it binds from the module's namespace, so that
  evaluating it gives exactly what the lambdified function gives;
* ``exact``: for a rational function of its arguments, source that evaluates it in
  :class:`fractions.Fraction` arithmetic (exact, like ``expr.subs`` with rationals).

The formulas of a parameterization are cached as JSON keyed by the derivation's
source (:func:`linrnn.derive.cache.data_cached`): with a warm cache, neither this
module nor its callers import SymPy. A cold cache derives them (seconds of SymPy)
and writes the entry.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from fractions import Fraction
from functools import lru_cache
from typing import Any

#: Arguments of a lag formula: the lag j, then the model parameters (the names of
#: :data:`linrnn.derive.symbols.PARAMETERS`, checked when the formulas are printed).
LAG_ARGS: tuple[str, ...] = ("j", "q", "sigma_C2", "sigma_F2", "n_x", "eta_C", "eta_F", "eta_W")
#: Arguments of a formula of the model parameters alone.
PARAM_ARGS: tuple[str, ...] = LAG_ARGS[1:]
#: Arguments of the memory horizon: the threshold eps, the peak weight Lambda, the parameters.
HORIZON_ARGS: tuple[str, ...] = ("epsilon", "Lambda", *PARAM_ARGS)

SCHEMA = 1


@dataclass(frozen=True)
class Formula:
    """One closed form, printed from SymPy: its texts and the sources that evaluate it (module docstring)."""

    text: str
    latex: str
    latex_doc: str
    args: tuple[str, ...]
    numpy: str | None
    numpy_names: Mapping[str, str] = field(default_factory=dict)
    mpmath: str | None = None
    mpmath_names: Mapping[str, str] = field(default_factory=dict)
    exact: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"text": self.text, "latex": self.latex, "latex_doc": self.latex_doc, "args": list(self.args),
                "numpy": self.numpy, "numpy_names": dict(self.numpy_names), "mpmath": self.mpmath,
                "mpmath_names": dict(self.mpmath_names), "exact": self.exact}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Formula:
        """The formula of :meth:`to_dict`'s data; data of the wrong shape or types (a malformed cache entry), or
        a source that is not Python, is a ``ValueError``."""
        if not isinstance(d, Mapping):
            raise ValueError(f"a formula must be an object, got {type(d).__name__}")
        texts = {k: d.get(k) for k in ("text", "latex", "latex_doc")}
        sources = {k: d.get(k) for k in ("numpy", "mpmath", "exact")}
        names = {k: d.get(k) for k in ("numpy_names", "mpmath_names")}
        if (not all(isinstance(v, str) for v in texts.values())
                or not all(v is None or isinstance(v, str) for v in sources.values())
                or not all(isinstance(v, Mapping) and all(isinstance(a, str) and isinstance(b, str)
                                                          for a, b in v.items()) for v in names.values())
                or not isinstance(d.get("args"), list) or not all(isinstance(a, str) for a in d["args"])):
            raise ValueError("a formula's data has missing keys or values of the wrong type")
        for source in sources.values():
            if source is not None:
                compile(source, "<linrnn formula>", "exec")  # a SyntaxError (a ValueError) when it is not Python
        return cls(text=texts["text"], latex=texts["latex"], latex_doc=texts["latex_doc"], args=tuple(d["args"]),
                   numpy=sources["numpy"], numpy_names=dict(names["numpy_names"]), mpmath=sources["mpmath"],
                   mpmath_names=dict(names["mpmath_names"]), exact=sources["exact"])

    def numpy_fn(self) -> Callable[..., Any]:
        """The float64 function of ``args`` (what ``lambdify(..., modules="numpy")`` returns)."""
        if self.numpy is None:
            raise ValueError(f"{self.text} has no NumPy form (it needs a function NumPy lacks); use mpmath")
        return _compile(self.numpy, tuple(sorted(self.numpy_names.items())), "numpy")

    def mpmath_fn(self) -> Callable[..., Any]:
        """The mpmath function of ``args`` (what ``lambdify(..., modules="mpmath")`` returns)."""
        if self.mpmath is None:  # pragma: no cover - every formula of the derivation prints to mpmath
            raise ValueError(f"{self.text} has no mpmath form")
        return _compile(self.mpmath, tuple(sorted(self.mpmath_names.items())), "mpmath")

    def exact_value(self, values: Mapping[str, Fraction]) -> Fraction:
        """The exact value at rational arguments (only for a rational function: ``exact`` is set)."""
        if self.exact is None:
            raise ValueError(f"{self.text} is not a rational function of {', '.join(self.args)}")
        fn = _compile(self.exact, (("Fraction", "Fraction"),), "fractions")
        return Fraction(fn(*(values[a] for a in self.args)))


def compile_source(source: str, names: Mapping[str, str], module: str) -> Callable[..., Any]:
    """The function a printed source defines (:func:`lambdified_source`), its names bound from ``module``."""
    return _compile(source, tuple(sorted(names.items())), module)


@lru_cache(maxsize=256)
def _compile(source: str, names: tuple[tuple[str, str], ...], module: str) -> Callable[..., Any]:
    """Execute a generated ``def`` with the names it uses bound to attributes of ``module``."""
    mod = importlib.import_module(module)
    namespace: dict[str, Any] = {name: getattr(mod, attr) for name, attr in names}
    exec(compile(source, f"<linrnn formula ({module})>", "exec"), namespace)  # noqa: S102 - our own printed source
    fns = [v for k, v in namespace.items() if callable(v) and k not in dict(names) and not k.startswith("__")]
    if len(fns) != 1:  # pragma: no cover - guards the printer
        raise AssertionError(f"generated source defines {len(fns)} functions")
    return fns[0]


# ----------------------------------------------------------------- printing (SymPy side)


def lambdified_source(symbols: Any, expr: Any, module: str) -> tuple[str | None, dict[str, str]]:
    """The source of ``sympy.lambdify(symbols, expr, module)`` and the names it binds from ``module``.

    ``(None, {})`` where the expression needs a function the module lacks. Evaluate the
    source with :func:`compile_source` (no SymPy).
    """
    import inspect

    import sympy as sp

    try:
        fn = sp.lambdify(symbols, expr, modules=module)
    except Exception:  # a function the module lacks
        return None, {}
    mod = importlib.import_module(module)
    names: dict[str, str] = {}
    for name in fn.__code__.co_names:
        obj = fn.__globals__.get(name)
        attr = name if getattr(mod, name, None) is obj else next(
            (a for a in dir(mod) if getattr(mod, a, None) is obj), None)
        if attr is None:
            return None, {}
        names[name] = attr
    return inspect.getsource(fn), names


def formula_of(expr: Any, args: tuple[str, ...] = LAG_ARGS) -> Formula:
    """Print a SymPy expression in the symbols named ``args`` as a :class:`Formula` (imports SymPy)."""
    import sympy as sp

    from linrnn.derive import symbols as S
    from linrnn.derive.printer import latex as latex_doc

    by_name = {str(s): s for s in (S.j, *S.PARAMETERS, S.eps, S.lam_max)}
    symbols = [by_name[a] for a in args]
    extra = expr.free_symbols - set(symbols)
    if extra:
        raise ValueError(f"expression has unbound symbols {sorted(map(str, extra))}")

    np_src, np_names = lambdified_source(symbols, expr, "numpy")
    mp_src, mp_names = lambdified_source(symbols, expr, "mpmath")
    # exact arithmetic for the rational functions of the parameters (A, B, the total, j_c)
    exact = _exact_source(expr, symbols) if not expr.has(S.j) and expr.is_rational_function(*symbols) else None
    return Formula(text=str(expr), latex=sp.latex(expr, symbol_names=S.LATEX_NAMES), latex_doc=latex_doc(expr),
                   args=tuple(args), numpy=np_src, numpy_names=np_names, mpmath=mp_src, mpmath_names=mp_names,
                   exact=exact)


def _exact_source(expr: Any, symbols: list[Any]) -> str:
    """``def _exact(args): return <expr>`` with every rational constant a ``Fraction`` (exact arithmetic)."""
    from sympy.printing.pycode import PythonCodePrinter

    class FractionPrinter(PythonCodePrinter):
        def _print_Rational(self, e: Any) -> str:
            return f"Fraction({e.p}, {e.q})"

        def _print_Integer(self, e: Any) -> str:
            return f"Fraction({e.p})"

        _print_Half = _print_Rational
        _print_One = _print_Integer
        _print_Zero = _print_Integer
        _print_NegativeOne = _print_Integer

    body = FractionPrinter({"strict": True}).doprint(expr)
    return f"def _exact({', '.join(map(str, symbols))}):\n    return {body}\n"


# ----------------------------------------------------------------- the formulas of the derivation


@dataclass(frozen=True)
class LagFormulas:
    """The closed forms of :func:`~linrnn.derive.lag_weights.derive_lag_weights` for one parameterization.

    ``weight`` lambda_j, ``nngp`` Var L_j(0)[a,b], the negative controls (wrong
    theories made from them) and the linear form lambda_j = q^j (A + B j) as (A, B).
    """

    param: str
    weight: Formula
    nngp: Formula
    controls: dict[str, Formula]
    nngp_controls: dict[str, Formula]
    linear_form: tuple[Formula, Formula]


@dataclass(frozen=True)
class ConsequenceFormulas:
    """The closed forms of :func:`~linrnn.derive.weight_consequences.consequences` that the numeric summary evaluates."""

    param: str
    total: Formula
    peak_threshold: Formula
    horizon: Formula
    horizon_geometric: Formula


def _lag_data(param: str, law: Any = None) -> dict[str, Any]:
    from linrnn.derive.lag_weights import derive_lag_weights

    der = derive_lag_weights(param, law)
    A, B = der.linear_form
    return {"schema": SCHEMA, "param": param, "weight": formula_of(der.weight).to_dict(),
            "nngp": formula_of(der.nngp).to_dict(),
            "controls": {k: formula_of(e).to_dict() for k, e in der.controls.items()},
            "nngp_controls": {k: formula_of(e).to_dict() for k, e in der.nngp_controls.items()},
            "linear_form": [formula_of(A, PARAM_ARGS).to_dict(), formula_of(B, PARAM_ARGS).to_dict()]}


def _consequence_data(param: str) -> dict[str, Any]:
    from linrnn.derive.weight_consequences import consequences

    con = consequences(param)
    return {"schema": SCHEMA, "param": param, "total": formula_of(con.total, PARAM_ARGS).to_dict(),
            "peak_threshold": formula_of(con.peak_threshold, PARAM_ARGS).to_dict(),
            "horizon": formula_of(con.horizon, HORIZON_ARGS).to_dict(),
            "horizon_geometric": formula_of(con.horizon_geometric, HORIZON_ARGS).to_dict()}


def _check_param(param: str) -> str:
    from linrnn.core.spec import PARAMS

    if param not in PARAMS:
        raise ValueError(f"unknown parameterization {param!r}")
    return param


@lru_cache(maxsize=None)
def lag_formulas(param: str = "ntk", law: Any = None) -> LagFormulas:
    """The lag formulas of ``param``, from the disk cache (no SymPy) or printed from the derivation.

    ``law``: a model family's :class:`~linrnn.derive.lag_weights.TransitionLaw` (None:
    Gaussian W); a specification gives its own as ``spec.derivation_law()``
    (:func:`formulas_of`).
    """
    from linrnn.derive.cache import data_cached

    f = Formula.from_dict

    def parse(d: dict[str, Any]) -> LagFormulas:
        A, B = d["linear_form"]
        return LagFormulas(param=param, weight=f(d["weight"]), nngp=f(d["nngp"]),
                           controls={k: f(v) for k, v in d["controls"].items()},
                           nngp_controls={k: f(v) for k, v in d["nngp_controls"].items()},
                           linear_form=(f(A), f(B)))

    from linrnn.derive.law import cache_name

    return data_cached(cache_name("lag-formulas", _check_param(param), law), lambda: _lag_data(param, law), parse)


def formulas_of(spec: Any) -> LagFormulas:
    """The lag formulas of a model specification: its parameterization under its family's law of W."""
    return lag_formulas(spec.param, spec.derivation_law())


@lru_cache(maxsize=None)
def consequence_formulas(param: str = "ntk") -> ConsequenceFormulas:
    """The consequences' formulas of ``param``, from the disk cache (no SymPy) or printed from the derivation."""
    from linrnn.derive.cache import data_cached

    f = Formula.from_dict

    def parse(d: dict[str, Any]) -> ConsequenceFormulas:
        return ConsequenceFormulas(param=param, total=f(d["total"]), peak_threshold=f(d["peak_threshold"]),
                                   horizon=f(d["horizon"]), horizon_geometric=f(d["horizon_geometric"]))

    return data_cached(f"consequence-formulas-{_check_param(param)}", lambda: _consequence_data(param), parse)
