r"""The lag weights of the equivalent scaled convolution, derived in SymPy.

Following Emami, Sahraee-Ardakan, Pandit, Rangan and Fletcher, "Implicit Bias of
Linear RNNs" (ICML 2021), and the conventions of ``docs/conventions.md``:

1. The impulse response ``L_j = C_e W_e^j F_e`` has entries
   ``L_j[a,b] = c_a^T W_e^j f_b`` with ``c_a = C_e^T e_a`` and ``f_b = F_e e_b``.
2. Its gradients are sums of outer products of Krylov vectors. They are obtained
   from the matrix-calculus rule ``d(u^T X v)/dX = u v^T`` and the product rule
   for ``X^j``, and checked entrywise against ``sympy.diff`` (:func:`check_gradient_rules`).
3. The lag NTK is ``Theta = s * sum_P eta_P alpha_P^2 <dL/dP_e, dL'/dP_e>_F``, and
   Frobenius inner products of outer-product sums factor into inner products of
   Krylov vectors.
4. As n -> infinity the normalised inner products of Krylov vectors of a Gaussian
   matrix concentrate (a circular element in free probability):
   ``<W_e^k x, W_e^l y> ~ delta_kl (n v_W)^k <x, y>``, where ``v_W`` is the variance
   of an entry of ``W_e``; likewise for ``W_e^T``, and ``<x, y> ~ n v_x delta`` for
   the columns of F_e and rows of C_e. Products of such inner products concentrate
   on the product of their limits. These rules are applied symbolically, and the
   sums over the Krylov index are evaluated by SymPy (Kronecker-delta summation).
5. Every contribution is kept with its exact power of n, so the derivation shows
   which parts survive the limit and at what order the others vanish.

The result is the limit kernel ``Theta_inf = lambda_i delta_ij delta_aa' delta_bb'``,
the lag weights ``lambda_j``, and the NNGP covariance of the initial ``L_j(0)``.
None of these closed forms is typed in: they come out of the operations below.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache

import sympy as sp
from sympy.matrices.expressions import MatMul, MatPow, MatrixExpr, MatrixSymbol, Transpose

from linrnn.derive import symbols as S
from linrnn.derive.law import TransitionLaw, cache_name, law_or_default
from linrnn.derive.steps import Derivation

# --------------------------------------------------------------------------- notation


class Inner(sp.Function):
    r"""The Euclidean inner product ``<x, y> = x^T y`` of two column vectors."""

    nargs = 2
    is_commutative = True

    def _latex(self, printer: sp.printing.latex.LatexPrinter, exp: object = None) -> str:
        x, y = self.args
        body = rf"\left\langle {printer._print(x)}, {printer._print(y)} \right\rangle"
        return body if exp is None else rf"{body}^{{{exp}}}"


class Frob(sp.Function):
    r"""The Frobenius inner product ``<X, Y>_F = tr(X^T Y)`` (notation only)."""

    nargs = 2
    is_commutative = True

    def _latex(self, printer: sp.printing.latex.LatexPrinter, exp: object = None) -> str:
        x, y = self.args
        body = rf"\left\langle {printer._print(x)}, {printer._print(y)} \right\rangle_{{F}}"
        return body if exp is None else rf"{body}^{{{exp}}}"


class Expect(sp.Function):
    r"""Expectation over the Gaussian initialisation (notation only)."""

    nargs = 1
    is_commutative = True

    def _latex(self, printer: sp.printing.latex.LatexPrinter, exp: object = None) -> str:
        body = rf"\mathbb{{E}}\left[{printer._print(self.args[0])}\right]"
        return body if exp is None else rf"{body}^{{{exp}}}"


# effective matrices (the ones in the recurrence) and their raw counterparts
W_e = MatrixSymbol("W_e", S.n, S.n)
C_e = MatrixSymbol("C_e", S.n_y, S.n)
F_e = MatrixSymbol("F_e", S.n, S.n_x)
W_raw = MatrixSymbol("W", S.n, S.n)
C_raw = MatrixSymbol("C", S.n_y, S.n)
F_raw = MatrixSymbol("F", S.n, S.n_x)
RAW = {"C": C_raw, "F": F_raw, "W": W_raw}
EFFECTIVE = {"C": C_e, "F": F_e, "W": W_e}

# rows of C_e, columns of F_e, and unit vectors, for the entries (a, b) and (a', b')
c_a = MatrixSymbol("c_a", S.n, 1)
c_a2 = MatrixSymbol("c_{a'}", S.n, 1)
f_b = MatrixSymbol("f_b", S.n, 1)
f_b2 = MatrixSymbol("f_{b'}", S.n, 1)
e_a = MatrixSymbol("e_a", S.n_y, 1)
e_a2 = MatrixSymbol("e_{a'}", S.n_y, 1)
e_b = MatrixSymbol("e_b", S.n_x, 1)
e_b2 = MatrixSymbol("e_{b'}", S.n_x, 1)

#: vector -> (family, coordinate symbol). Family "c": rows of C_e; "f": columns of
#: F_e; "ey"/"ex": unit vectors of R^{n_y} / R^{n_x}.
VECTORS: dict[MatrixSymbol, tuple[str, sp.Symbol]] = {
    c_a: ("c", S.a),
    c_a2: ("c", S.a2),
    f_b: ("f", S.b),
    f_b2: ("f", S.b2),
    e_a: ("ey", S.a),
    e_a2: ("ey", S.a2),
    e_b: ("ex", S.b),
    e_b2: ("ex", S.b2),
}

PARTS = ("C", "F", "W")
ETA = {"C": S.eta_c, "F": S.eta_f, "W": S.eta_w}


# ------------------------------------------------------------------ parameterizations


@dataclass(frozen=True)
class Parameterization:
    r"""How raw parameters become effective ones (``docs/conventions.md``).

    ``P_e = scale[P] * P`` with raw entries of variance ``raw_variance[P]``;
    gradient descent on the raw parameters gives the lag NTK prefactor ``s``.
    """

    name: str
    scale: dict[str, sp.Expr]
    raw_variance: dict[str, sp.Expr]
    ntk_prefactor: sp.Expr

    def entry_variance(self, part: str) -> sp.Expr:
        """Variance of one entry of the effective matrix ``P_e``."""
        return self.scale[part] ** 2 * self.raw_variance[part]


def parameterization(name: str) -> Parameterization:
    """The two parameterizations of the conventions, transcribed (not solved)."""
    if name == "ntk":
        return Parameterization(
            "ntk",
            scale={"C": sp.sqrt(S.sigma_c2 / S.n), "F": sp.sqrt(S.sigma_f2 / S.n_x), "W": sp.sqrt(S.q / S.n)},
            raw_variance={"C": sp.Integer(1), "F": sp.Integer(1), "W": sp.Integer(1)},
            ntk_prefactor=sp.Integer(1),
        )
    if name == "standard":
        return Parameterization(
            "standard",
            scale={"C": sp.Integer(1), "F": sp.Integer(1), "W": sp.Integer(1)},
            raw_variance={"C": S.sigma_c2 / S.n, "F": S.sigma_f2 / S.n_x, "W": S.q / S.n},
            ntk_prefactor=1 / S.n,
        )
    raise ValueError(f"unknown parameterization {name!r}")


# ------------------------------------------------------------------------ gradients


@dataclass(frozen=True)
class OuterSum:
    r"""``G = sum_{var=lo}^{hi} x(var) y(var)^T``, or the single term ``x y^T``."""

    x: MatrixExpr
    y: MatrixExpr
    var: sp.Symbol | None = None
    lo: sp.Expr = sp.Integer(0)
    hi: sp.Expr = sp.Integer(0)

    def rename(self, new: sp.Symbol) -> OuterSum:
        if self.var is None:
            return self
        return OuterSum(self.x.subs(self.var, new), self.y.subs(self.var, new), new, self.lo, self.hi)

    def as_expr(self) -> sp.Basic:
        term = self.x * self.y.T
        if self.var is None:
            return term
        return sp.Sum(term, (self.var, self.lo, self.hi))

    def explicit(self, subs: dict[sp.Basic, sp.Basic]) -> sp.Matrix:
        """Evaluate for concrete lags and explicit matrices (used by the checks)."""
        if self.var is None:
            return (self.x * self.y.T).subs(subs).doit().as_explicit()
        lo, hi = int(self.lo.subs(subs)), int(self.hi.subs(subs))
        rows, cols = self.x.shape[0].subs(subs), self.y.shape[0].subs(subs)
        total = sp.zeros(int(rows), int(cols))
        for value in range(lo, hi + 1):
            term = (self.x * self.y.T).subs(self.var, value).subs(subs)
            total += term.doit().as_explicit()
        return total


def linear_gradient(u: MatrixExpr, v: MatrixExpr) -> OuterSum:
    r"""``d(u^T X v)/dX = u v^T`` (matrix calculus)."""
    return OuterSum(u, v)


def power_gradient(u: MatrixExpr, X: MatrixExpr, power: sp.Expr, v: MatrixExpr, var: sp.Symbol) -> OuterSum:
    r"""Product rule for ``d(u^T X^p v)/dX``.

    ``d(X^p) = sum_{k=0}^{p-1} X^k (dX) X^{p-1-k}``, so with the linear rule
    ``d(u^T A dX B v)/dX = (A^T u)(B v)^T`` the gradient is
    ``sum_{k=0}^{p-1} (X^T)^k u (X^{p-1-k} v)^T``: outer products of Krylov vectors.
    """
    return OuterSum(MatPow(X.T, var) * u, MatPow(X, power - 1 - var) * v, var, sp.Integer(0), power - 1)


def entry_gradients(lag: sp.Expr, c: MatrixSymbol, f: MatrixSymbol, ey: MatrixSymbol, ex: MatrixSymbol, var: sp.Symbol) -> dict[str, OuterSum]:
    r"""Gradients of ``L_lag[a,b] = e_a^T C_e W_e^lag F_e e_b`` w.r.t. the effective matrices."""
    return {
        "C": linear_gradient(ey, MatPow(W_e, lag) * f),  # e_a^T C_e (W^lag f_b)
        "F": linear_gradient(MatPow(W_e.T, lag) * c, ex),  # (W^{T lag} c_a)^T F_e e_b
        "W": power_gradient(c, W_e, lag, f, var),  # c_a^T W_e^lag f_b
    }


def check_gradient_rules(max_lag: int = 3, size: int = 2) -> bool:
    """Check :func:`entry_gradients` entrywise against ``sympy.diff`` on explicit matrices.

    For every lag 0..max_lag, explicit ``size x size`` symbolic matrices are
    substituted and each gradient is compared with the derivative of the scalar
    ``L_j[a,b]`` taken entry by entry.
    """
    ny, nx = 2, 2
    Wm = sp.Matrix(size, size, lambda r, s: sp.Symbol(f"w{r}{s}"))
    Cm = sp.Matrix(ny, size, lambda r, s: sp.Symbol(f"c{r}{s}"))
    Fm = sp.Matrix(size, nx, lambda r, s: sp.Symbol(f"f{r}{s}"))
    a_idx, b_idx = 1, 0
    ea = sp.Matrix([1 if r == a_idx else 0 for r in range(ny)])
    eb = sp.Matrix([1 if r == b_idx else 0 for r in range(nx)])
    subs = {
        S.n: size, S.n_y: ny, S.n_x: nx, W_e: Wm, C_e: Cm, F_e: Fm,
        c_a: Cm.T * ea, f_b: Fm * eb, e_a: ea, e_b: eb,
    }
    for lag in range(max_lag + 1):
        entry = (Cm * Wm**lag * Fm)[a_idx, b_idx]
        grads = entry_gradients(sp.Integer(lag), c_a, f_b, e_a, e_b, S.k)
        for part, mat in (("C", Cm), ("F", Fm), ("W", Wm)):
            expected = mat.applyfunc(lambda x: sp.diff(entry, x))
            got = grads[part].explicit(subs)
            if (got - expected).applyfunc(sp.expand) != sp.zeros(*expected.shape):
                return False
    return True


def frobenius(g1: OuterSum, g2: OuterSum) -> sp.Expr:
    r"""``<sum_k x_k y_k^T, sum_l x'_l y'_l^T>_F = sum_k sum_l <x_k, x'_l> <y_k, y'_l>``."""
    body = Inner(g1.x, g2.x) * Inner(g1.y, g2.y)
    if g2.var is not None:
        body = sp.Sum(body, (g2.var, g2.lo, g2.hi))
    if g1.var is not None:
        body = sp.Sum(body, (g1.var, g1.lo, g1.hi))
    return body


# --------------------------------------------------------------- wide-width rules


def _krylov(x: sp.Basic) -> tuple[MatrixSymbol, sp.Expr, bool]:
    """Split ``x`` into (base vector, power, transposed) for ``x = (W_e or W_e^T)^p v``."""
    if x in VECTORS:
        return x, sp.Integer(0), False
    if isinstance(x, MatMul) and len(x.args) == 2 and x.args[1] in VECTORS:
        mat, vec = x.args
        power = sp.Integer(1)
        if isinstance(mat, MatPow):
            mat, power = mat.args
        transposed = isinstance(mat, Transpose)
        if transposed:
            mat = mat.arg
        if mat == W_e:
            return vec, power, transposed
    raise ValueError(f"not a Krylov vector of W_e: {x}")


def wide_width_inner(x: sp.Basic, y: sp.Basic, par: Parameterization, law: TransitionLaw | None = None) -> sp.Expr:
    r"""The n -> infinity value of ``<x, y>`` for Krylov vectors ``x, y``.

    * unit vectors: ``<e_a, e_a'> = delta_aa'`` (exact);
    * ``<W_e^k u, W_e^l v> ~ delta_kl (n v_W)^k <u, v>`` and the same for ``W_e^T``
      (Gaussian ``W_e`` with entry variance ``v_W``; relative error O(n^{-1/2}));
    * ``<f_b, f_b'> ~ n v_F delta_bb'`` and ``<c_a, c_a'> ~ n v_C delta_aa'``.
    Mixed inner products (``W_e^k`` against ``W_e^{T l}``) do not arise here.
    """
    (u, p, tu), (v, r, tv) = _krylov(x), _krylov(y)
    fam_u, idx_u = VECTORS[u]
    fam_v, idx_v = VECTORS[v]
    if fam_u != fam_v:
        raise ValueError(f"inner product of vectors from different families: {x}, {y}")
    if fam_u in ("ey", "ex"):
        return sp.KroneckerDelta(idx_u, idx_v)
    if tu != tv:
        raise ValueError("mixed W_e / W_e^T inner products are not needed by this derivation")
    growth = sp.simplify(S.n * par.entry_variance("W"))  # n v_W
    base = S.n * par.entry_variance("C" if fam_u == "c" else "F")
    return law_or_default(law).inner_limit(p, r, growth) * base * sp.KroneckerDelta(idx_u, idx_v)


def apply_wide_width_rules(expr: sp.Basic, par: Parameterization, law: TransitionLaw | None = None) -> sp.Expr:
    """Replace every :class:`Inner` by its wide-width value under ``law`` (default: Gaussian W)."""
    return expr.replace(Inner, lambda x, y: wide_width_inner(x, y, par, law))


def canonical_delta(expr: sp.Expr) -> sp.Expr:
    r"""Rewrite ``delta(x+c, y+c)`` as ``delta(x, y)`` (shifts of both arguments)."""

    def rule(x: sp.Expr, y: sp.Expr) -> sp.Expr:
        d = sp.expand(x - y)
        if d == 0:
            return sp.Integer(1)
        if d.is_number:
            return sp.Integer(0)
        pos = [t for t in sp.Add.make_args(d) if t.could_extract_minus_sign() is False]
        neg = [-t for t in sp.Add.make_args(d) if t.could_extract_minus_sign()]
        return sp.KroneckerDelta(sp.Add(*pos), sp.Add(*neg))

    return expr.replace(sp.KroneckerDelta, rule)


def _sum_over_range(body: sp.Expr, var: sp.Symbol, lo: sp.Expr, hi: sp.Expr) -> sp.Expr:
    """``sum_{var=lo}^{hi} body``, discharging Piecewise guards implied by the range.

    deltasummation leaves guards such as ``var <= hi``; substituting
    ``var = hi - m`` with ``m >= 0`` decides them, after which SymPy sums.
    """
    m = sp.Dummy("m", integer=True, nonnegative=True)
    inside = sp.piecewise_fold(body.subs(var, hi - m)).subs(m, hi - var)
    return sp.simplify(sp.Sum(inside, (var, lo, hi)).doit())


def _evaluate_sum(body: sp.Expr, limits: list[tuple[sp.Symbol, sp.Expr, sp.Expr]]) -> sp.Expr:
    """Evaluate ``sum`` over ``limits`` (innermost first) with Kronecker deltas in ``body``."""
    if not limits:
        return body
    if len(limits) == 1:
        var, lo, hi = limits[0]
        return _sum_over_range(body, var, lo, hi)
    (inner_var, ilo, ihi), (outer_var, lo, hi), *rest = limits
    if rest:
        raise ValueError("at most double sums arise in this derivation")
    # the delta that ties the two Krylov indices (delta_{k l}) is summed first
    tie = sp.KroneckerDelta(outer_var, inner_var)
    factors = sp.Mul.make_args(sp.expand(body))
    if tie not in factors:
        raise ValueError(f"no delta tying {outer_var} and {inner_var} in {body}")
    rest_body = sp.Mul(*[f for f in factors if f != tie])
    inner = sp.Piecewise((rest_body.subs(inner_var, outer_var), sp.Le(outer_var, ihi)), (0, True))
    inner = canonical_delta(inner)
    lag_delta = sp.KroneckerDelta(S.i, S.j)
    if inner.has(lag_delta):
        # a delta between the two lags factors out; inside it, set j = i
        reduced = sp.piecewise_fold(inner.subs(lag_delta, 1)).subs(S.j, S.i)
        return lag_delta * _sum_over_range(reduced, outer_var, lo, hi.subs(S.j, S.i))
    return _sum_over_range(inner, outer_var, lo, hi)


def evaluate_sums(expr: sp.Expr) -> sp.Expr:
    """Evaluate every Krylov-index sum of a rule-substituted NTK part.

    The inner sum is collapsed by its Kronecker delta (``l = k``, valid while
    ``k <= j - 1``); the remaining delta between the lag indices,
    ``delta(i-1-k, j-1-k) = delta_ij``, factors out; the outer sum is then
    evaluated by SymPy over its range.
    """
    def handle(sum_expr: sp.Sum) -> sp.Expr:
        return _evaluate_sum(sum_expr.function, [tuple(lim) for lim in sum_expr.limits])

    return sp.simplify(canonical_delta(expr.replace(lambda e: isinstance(e, sp.Sum), handle)))


# ------------------------------------------------------------------- the derivation


@dataclass
class LagWeightsDerivation:
    """The derivation for one parameterization, and the closed forms it reaches.

    Attributes
    ----------
    weight: lambda_j, a SymPy expression in ``j`` and the model symbols.
    nngp: Var L_j(0)[a,b] as n -> infinity (covariances across lags, outputs and
        inputs vanish in the limit).
    kernel: the limit lag NTK entry ``Theta_inf[(i,a,b),(j,a',b')]``.
    parts_exact: each part's diagonal value with its exact power of n.
    orders: the power of n of each part (0 survives, negative vanishes).
    controls, nngp_controls: deliberately wrong theories for negative controls,
        made by SymPy operations on the derived forms.
    steps: the derivation as data (:class:`linrnn.derive.steps.Derivation`).
    """

    param: str
    weight: sp.Expr
    nngp: sp.Expr
    kernel: sp.Expr
    parts_exact: dict[str, sp.Expr]
    orders: dict[str, int]
    linear_form: tuple[sp.Expr, sp.Expr]  # (A, B) with lambda_j = q^j (A + B j)
    controls: dict[str, sp.Expr] = field(default_factory=dict)
    nngp_controls: dict[str, sp.Expr] = field(default_factory=dict)
    steps: Derivation = field(default_factory=lambda: Derivation(""))


def _theta_symbol(part: str | None) -> sp.Symbol:
    sup = "" if part is None else f"^{{({part})}}"
    return sp.Symbol(rf"\Theta{sup}_{{(i,a,b),(j,a',b')}}")


def _lambda_j() -> sp.Symbol:
    return sp.Symbol(r"\lambda_{j}")


def _polynomial_in_lag(weight: sp.Expr) -> tuple[sp.Expr, sp.Expr]:
    """Write ``lambda_j = q^j (A + B j)`` and return (A, B); fails loudly otherwise."""
    reduced = sp.expand(sp.powsimp(sp.expand(weight * S.q ** (-S.j)), force=True))
    reduced = sp.expand(sp.powsimp(reduced, force=True))
    poly = sp.Poly(reduced, S.j)
    if poly.degree() > 1 or reduced.has(S.q**S.j):
        raise ValueError(f"lambda_j / q^j is not a polynomial of degree <= 1 in j: {reduced}")
    coeffs = dict(poly.terms())
    A = sp.simplify(coeffs.get((0,), sp.Integer(0)))
    B = sp.simplify(coeffs.get((1,), sp.Integer(0)))
    return A, B


@lru_cache(maxsize=None)
def derive_lag_weights(param: str = "ntk", law: TransitionLaw | None = None) -> LagWeightsDerivation:
    """Derive the wide-width lag NTK, lag weights and NNGP for ``param`` and the law of W ``law``.

    ``law``: the family's :class:`TransitionLaw` (None: Gaussian W). The result is kept in
    the disk cache of :mod:`linrnn.derive.cache` (keyed by this code and the law's);
    :func:`_derive_lag_weights` does the work.
    """
    from linrnn.derive.cache import disk_cached

    parameterization(param)  # validate before touching the cache
    return disk_cached(cache_name("lag-weights", param, law), lambda: _derive_lag_weights(param, law),
                       LagWeightsDerivation)


def _derive_lag_weights(param: str, law: TransitionLaw | None = None) -> LagWeightsDerivation:
    par = parameterization(param)
    law = law_or_default(law)
    title = f"Lag weights of a wide linear RNN ({param} parameterization)"
    d = Derivation(title if law.name == "gaussian" else f"{title}, {law.title or law.name + ' W'}")
    i, j, k, l, n = S.i, S.j, S.k, S.l, S.n
    L = sp.IndexedBase("L")

    # -- model
    sec = "Model and impulse response"
    d.add("impulse", sp.Symbol("L_{j}"), C_e * MatPow(W_e, j) * F_e,
          r"Unrolling $h_t = W_e h_{t-1} + F_e x_t$, $y_t = C_e h_t$ gives $y_t = \sum_{j=0}^{t} L_j x_{t-j}$.",
          section=sec)
    for part in PARTS:
        d.add(f"scale-{part}", EFFECTIVE[part], par.scale[part] * RAW[part],
              f"Raw entries of ${part}$ are iid with variance ${sp.latex(par.raw_variance[part])}$; "
              f"an entry of ${part}_e$ has variance ${sp.latex(par.entry_variance(part), symbol_names=S.LATEX_NAMES)}$.",
              relation=":=", section=sec)
    d.add("entry", L[j, S.a, S.b], Inner(c_a, MatPow(W_e, j) * f_b),
          r"with $c_a = C_e^{T} e_a$ (a row of $C_e$) and $f_b = F_e e_b$ (a column of $F_e$).",
          section=sec)

    # -- gradients
    sec = "Gradients as outer products of Krylov vectors"
    grads_1 = entry_gradients(i, c_a, f_b, e_a, e_b, k)
    grads_2 = entry_gradients(j, c_a2, f_b2, e_a2, e_b2, l)
    gradients_ok = check_gradient_rules()
    if not gradients_ok:  # pragma: no cover - guards the rules above
        raise AssertionError("gradient rules disagree with sympy.diff")
    for part in PARTS:
        note = {
            "C": r"From $\partial (u^{T} X v)/\partial X = u v^{T}$.",
            "F": r"From $\partial (u^{T} X v)/\partial X = u v^{T}$.",
            "W": r"Product rule $d(W_e^{j}) = \sum_{k} W_e^{k}\,(dW_e)\,W_e^{j-1-k}$: "
                 r"outer products of the Krylov vectors $(W_e^{T})^{k} c_a$ and $W_e^{m} f_b$.",
        }[part]
        note += r" Checked entrywise against \texttt{sympy.diff} for lags $0,\dots,3$." if gradients_ok else ""
        d.add(f"grad-{part}", sp.Derivative(L[j, S.a, S.b], EFFECTIVE[part]),
              entry_gradients(j, c_a, f_b, e_a, e_b, k)[part].as_expr(), note, section=sec)
    d.add("chain", sp.Derivative(L[j, S.a, S.b], sp.Symbol("P")),
          sp.Symbol(r"\alpha_{P}") * sp.Derivative(L[j, S.a, S.b], sp.Symbol("P_{e}")),
          r"Chain rule to the raw parameters, $P_e = \alpha_P P$ with $\alpha_P$ as above.", section=sec)

    # -- NTK as inner products
    sec = "The lag NTK as inner products of Krylov vectors"
    d.add("ntk-def", _theta_symbol(None),
          sp.Add(*[par.ntk_prefactor * ETA[part] * par.scale[part] ** 2
                   * Frob(sp.Symbol(rf"\partial_{{{part}_e}} L_{{i}}[a,b]"), sp.Symbol(rf"\partial_{{{part}_e}} L_{{j}}[a',b']"))
                   for part in PARTS], evaluate=False),
          rf"Gradient descent on the raw parameters with prefactor $s = {sp.latex(par.ntk_prefactor)}$ "
          r"(the lag NTK's scale: $s = 1$ in the \texttt{ntk} parameterization, $1/n$ in \texttt{standard}); $\langle x y^{T}, x' y^{\prime T}\rangle_F = \langle x, x'\rangle\langle y, y'\rangle$.",
          section=sec)
    exact_parts: dict[str, sp.Expr] = {}
    for part in PARTS:
        prefactor = par.ntk_prefactor * ETA[part] * par.scale[part] ** 2
        inner_form = prefactor * frobenius(grads_1[part], grads_2[part])
        exact_parts[part] = inner_form
        d.add(f"ntk-{part}", _theta_symbol(part), inner_form, section=sec)

    # -- wide-width rules
    sec = "Wide-width expectations"
    x_sym, y_sym = MatrixSymbol("u", n, 1), MatrixSymbol("v", n, 1)
    growth = sp.simplify(n * par.entry_variance("W"))
    d.add("rule-W", Inner(MatPow(W_e, k) * x_sym, MatPow(W_e, l) * y_sym),
          law.inner_limit(k, l, growth) * Inner(x_sym, y_sym),
          law.note + rf"here $n v_W = {sp.latex(growth)}$. The same holds for $W_e^{{T}}$.",
          relation="~", section=sec)
    for vec1, vec2 in ((f_b, f_b2), (c_a, c_a2)):
        d.add(f"rule-{vec1.name}", Inner(vec1, vec2), wide_width_inner(vec1, vec2, par, law),
              "Law of large numbers over the $n$ iid coordinates.", relation="~", section=sec)
    d.add("rule-product", Expect(Inner(x_sym, y_sym) * Inner(MatrixSymbol("u'", n, 1), MatrixSymbol("v'", n, 1))),
          Expect(Inner(x_sym, y_sym)) * Expect(Inner(MatrixSymbol("u'", n, 1), MatrixSymbol("v'", n, 1))),
          "Normalised inner products concentrate, so products of them converge to the products of their limits.",
          relation="~", section=sec)

    # -- apply rules, evaluate sums
    sec = "Sums over the Krylov index and orders in n"
    kernel_parts: dict[str, sp.Expr] = {}
    diag_parts: dict[str, sp.Expr] = {}
    orders: dict[str, int] = {}
    for part in PARTS:
        ruled = apply_wide_width_rules(exact_parts[part], par, law)
        summed = sp.simplify(evaluate_sums(ruled))
        kernel_parts[part] = summed
        d.add(f"sum-{part}", _theta_symbol(part), summed,
              "Rules applied; Kronecker-delta sums evaluated by SymPy." if part == "W" else "Rules applied.",
              relation="~", section=sec)
        diag = sp.simplify(summed.subs({S.a2: S.a, S.b2: S.b}).subs(i, j).doit())
        diag_parts[part] = diag
        coeff, order = sp.powsimp(sp.expand(diag), force=True).as_coeff_exponent(n)
        if sp.simplify(coeff * n**order - diag) != 0 or coeff.has(n):
            raise AssertionError(f"{part}-part is not a monomial in n: {diag}")
        orders[part] = int(order)
        limit = sp.limit(diag, n, sp.oo)
        if order == 0:
            note = "Order $n^{0}$: survives the limit."
        elif order < 0:
            note = f"Order $n^{{{int(order)}}}$: vanishes as $n\\to\\infty$."
        else:  # pragma: no cover - would mean a diverging NTK
            raise AssertionError(f"{part}-part diverges with n: {diag}")
        d.add(f"order-{part}", sp.Symbol(rf"\Theta^{{({part})}}_{{(j,a,b),(j,a,b)}}"), diag, note,
              relation="~", section=sec)
        d.add(f"limit-{part}", sp.Limit(sp.Symbol(rf"\Theta^{{({part})}}_{{(j,a,b),(j,a,b)}}"), n, sp.oo), limit,
              section=sec)

    kernel = sp.simplify(sum(sp.limit(kernel_parts[p], n, sp.oo) for p in PARTS))
    weight = sp.factor(sp.simplify(sum(sp.limit(diag_parts[p], n, sp.oo) for p in PARTS)))
    structure = sp.simplify(kernel - weight.subs(j, i) * sp.KroneckerDelta(i, j) * sp.KroneckerDelta(S.a, S.a2)
                            * sp.KroneckerDelta(S.b, S.b2))
    if structure != 0:  # pragma: no cover
        raise AssertionError(f"limit kernel is not diagonal: residual {structure}")

    sec = "The lag weights"
    d.add("kernel", sp.Limit(_theta_symbol(None), n, sp.oo),
          sp.Symbol(r"\lambda_{i}") * sp.KroneckerDelta(i, j)
          * sp.KroneckerDelta(S.a, S.a2) * sp.KroneckerDelta(S.b, S.b2),
          "The limit kernel is diagonal in lag, output and input: gradient descent on the wide RNN moves each "
          r"lag independently, as the scaled convolution with $\rho_j^{2} = \lambda_j$.", section=sec)
    d.add("weight", _lambda_j(), weight, section=sec)
    A, B = _polynomial_in_lag(weight)
    d.add("linear-form", _lambda_j(), S.q**j * (sp.Symbol("A") + sp.Symbol("B") * j),
          rf"with $A = {sp.latex(A, symbol_names=S.LATEX_NAMES)}$ and $B = {sp.latex(B, symbol_names=S.LATEX_NAMES)}$: "
          r"a geometric factor times a polynomial of degree one in the lag (the $j$ counts the "
          r"split points of the $W$-gradient).", section=sec)

    # -- NNGP
    sec = "The initial function (NNGP)"
    cov_exact = sp.KroneckerDelta(S.a, S.a2) * par.entry_variance("C") * Inner(MatPow(W_e, i) * f_b, MatPow(W_e, j) * f_b2)
    d.add("nngp-C", Expect(L[i, S.a, S.b] * L[j, S.a2, S.b2]), Expect(cov_exact),
          r"Average over $C_e$ first: $\mathbb{E}[c_a c_{a'}^{T}] = \delta_{aa'} v_C I_n$, so "
          r"$\mathbb{E}_C[c_a^{T} X c_{a'}] = \delta_{aa'} v_C \operatorname{tr} X$.", section=sec)
    cov_limit = sp.simplify(canonical_delta(apply_wide_width_rules(cov_exact, par, law)))
    d.add("nngp-limit", sp.Limit(Expect(L[i, S.a, S.b] * L[j, S.a2, S.b2]), n, sp.oo), cov_limit,
          "Across lags, outputs and inputs the initial impulse response is uncorrelated in the limit.",
          section=sec)
    nngp = sp.factor(cov_limit.subs({S.a2: S.a, S.b2: S.b}).subs(i, j))
    d.add("nngp", sp.Symbol(r"\operatorname{Var} L_{j}(0)[a,b]"), nngp,
          "The same in both parameterizations: it depends only on the law of the effective matrices.",
          section=sec)

    controls = {
        "no_linear_term": sp.factor(A * S.q**j),
        "q_times_1.1": weight.subs(S.q, sp.Rational(11, 10) * S.q),
    }
    nngp_controls = {"q_times_1.1": nngp.subs(S.q, sp.Rational(11, 10) * S.q)}
    return LagWeightsDerivation(
        param=param,
        weight=weight,
        nngp=nngp,
        kernel=kernel,
        parts_exact={p: diag_parts[p] for p in PARTS},
        orders=orders,
        linear_form=(A, B),
        controls=controls,
        nngp_controls=nngp_controls,
        steps=d,
    )
