r"""The project's LaTeX printer: SymPy's, with the derivation's notation.

Notation is set through the printer (symbol names, a few matrix conventions), never by
editing printed strings. :mod:`linrnn.derive.latex` (the document) and
:mod:`linrnn.derive.formulas` (the cached closed forms) both print through it; it
imports nothing of theirs, so neither depends on the other through it.
"""

from __future__ import annotations

import sympy as sp
from sympy.printing.latex import LatexPrinter

from linrnn.derive import symbols as S

RELATIONS = {"=": "=", "~": r"\simeq", "->": r"\to", ":=": r"\mathrel{:=}"}


class DerivationPrinter(LatexPrinter):
    """SymPy's LaTeX printer with the project's symbol names and conventions.

    * model symbols print as in the paper (``\\sigma_{C}^{2}``, ``\\eta_{W}``, ...);
    * ``Derivative(L[j,a,b], W_e)`` prints as a partial derivative of an entry;
    * ``Limit`` prints as ``\\lim_{n\\to\\infty}``.
    """

    #: A fraction whose LaTeX is longer than this many characters is printed as 1/denominator times its numerator
    #: (SymPy's ``long_frac_ratio``), so that the numerator's sum can break across lines (breqn) in the document.
    LONG_FRACTION = 200

    def __init__(self, settings: dict | None = None) -> None:
        base = {"symbol_names": dict(S.LATEX_NAMES), "mul_symbol": None}
        base.update(settings or {})
        super().__init__(base)

    def _print_Mul(self, expr: sp.Mul) -> str:
        tex = super()._print_Mul(expr)
        if self._settings["long_frac_ratio"] is None and tex.startswith(r"\frac") and len(tex) > self.LONG_FRACTION:
            self._settings["long_frac_ratio"] = 1
            try:
                tex = super()._print_Mul(expr)
            finally:
                self._settings["long_frac_ratio"] = None
        return tex

    def _print_Order(self, expr: sp.Order) -> str:
        """``O(1/n^2)`` where SymPy writes ``O(1/n^2; n -> oo)``: one variable at infinity, the only limit in use."""
        if len(expr.variables) == 1 and expr.point and expr.point[0] is sp.oo:
            return rf"O\left({self._print(expr.expr)}\right)"
        return super()._print_Order(expr)

    def _print_Add(self, expr: sp.Add, order: str | None = None) -> str:
        """A sum that would start with a minus sign and holds a positive number starts with that number (``1 - q z``,
        not ``- q z + 1``), as SymPy already prints ``1 - q``."""
        terms = list(self._as_ordered_terms(expr, order=order))
        if terms and terms[0].could_extract_minus_sign():
            lead = next((t for t in terms if t.is_Number and t.is_positive), None)
            if lead is not None:
                terms.remove(lead)
                terms.insert(0, lead)
                return super()._print_Add(sp.Add(*terms, evaluate=False), order="none")
        return super()._print_Add(expr, order=order)

    def _print_Derivative(self, expr: sp.Derivative) -> str:
        (var, count), = expr.variable_count
        return rf"\frac{{\partial {self._print(expr.expr)}}}{{\partial {self._print(var)}}}"

    def _print_Indexed(self, expr: sp.Indexed) -> str:
        base = self._print(expr.base.label)
        if len(expr.indices) == 3:
            lag, out, inp = (self._print(x) for x in expr.indices)
            return rf"{base}_{{{lag}}}[{out},{inp}]"
        return super()._print_Indexed(expr)


def latex(expr: sp.Basic) -> str:
    """LaTeX of ``expr`` with the project's printer."""
    return DerivationPrinter().doprint(expr)
