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

    def __init__(self, settings: dict | None = None) -> None:
        base = {"symbol_names": dict(S.LATEX_NAMES), "mul_symbol": None}
        base.update(settings or {})
        super().__init__(base)

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
