r"""The wide-limit lag kernels of the identity-shifted dense RNN, derived by SymPy operations on the model.

Model (``docs/conventions.md``): W_e = a I + X with X = sqrt(q / n) G, G iid N(0, 1) (the
Gaussian family's W, trained), the shift a fixed; C, F and both parameterizations as
in the Gaussian family. The derivation reuses the dense engines' steps
(:mod:`linrnn.derive.lag_weights`: the gradients as outer products of Krylov vectors,
checked against ``sympy.diff``; the lag NTK as Frobenius products of them; the
wide-width rules for the columns of F_e and rows of C_e) with this family's rule for
the Krylov inner products, which it derives first (:func:`derive_krylov_rule`):

1. a I commutes with X, so (a I + X)^p = sum_m C(p, m) a^(p-m) X^m (the binomial sum,
   checked against ``sympy.expand`` of the non-commutative power, p <= 5);
2. <W_e^p u, W_e^r v> ~ tau((W_e^T)^p W_e^r) <u, v> for u, v independent of W (tau the
   normalised trace), and (W_e^T)^p W_e^r = sum_{m, m'} C(p, m) C(r, m') a^(p+r-m-m')
   (X^T)^m X^{m'}: the product of the two sums, each word X*^m X^{m'} in its own term;
3. X is circular in the wide limit: tau(X*^m X^{m'}) = delta_{m m'} q^m, the Gaussian
   family's rule (:data:`linrnn.derive.law.GAUSSIAN`), applied word by word;
4. the Kronecker delta is summed by SymPy and its guard (m <= r) becomes the upper limit,
   so g(p, r) = sum_{m=0}^{min(p, r)} C(p, m) C(r, m) a^(p+r-2m) q^m. The same expansion
   with the rule applied term by term for p, r <= 5 (``sympy.expand`` of the
   non-commutative product) must give the same polynomials (:func:`check_krylov_rule`).

The parts of Theta (C, F: g(i, j); W: the double sum over split points
q sum_{k<i} sum_{l<j} g(k, l) g(i-1-k, j-1-l) in ``ntk``) keep their exact power of n,
whose limit SymPy takes; the NNGP is E[L_i L_j] -> v_C n v_F g(i, j). Neither is
diagonal in the lags unless a = 0, where g(p, r) = delta_pr q^p gives back the Gaussian
lambda_j delta_jk (a test). :func:`derive_shifted` returns the closed forms with g as
the function :data:`g` and its derived sum :attr:`ShiftedDerivation.g_sum`; they are
evaluated by :mod:`linrnn.families.shifted.kernel` (float64, mpmath where float64 fails).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import sympy as sp
from sympy.matrices.expressions import Identity, MatPow, MatrixSymbol

from linrnn.derive import symbols as S
from linrnn.derive.lag_weights import (
    EFFECTIVE, ETA, PARTS, RAW, C_e, Expect, F_e, Frob, Inner, W_e, apply_wide_width_rules, c_a, c_a2,
    check_gradient_rules, e_a, e_a2, e_b, e_b2, entry_gradients, f_b, f_b2, frobenius, parameterization,
)
from linrnn.derive.law import GAUSSIAN, TransitionLaw, source_key
from linrnn.derive.steps import Derivation

#: the shift a (any real number)
a = sp.Symbol("a", real=True)
#: the powers of the Krylov rule and the index of the binomial sums
p, r = sp.symbols("p r", integer=True, nonnegative=True)
m, m2 = sp.symbols("m m'", integer=True, nonnegative=True)
#: the circular part X = sqrt(q / n) G and its adjoint, as non-commuting symbols
X, X_adj = sp.symbols("X X^*", commutative=False)
#: the coefficient of <u, v> in the limit of <W_e^p u, W_e^r v>
g = sp.Function("g")
#: the lags of the scalar kernels, and the split points of the W-part's double sum
j, k = S.j, S.k
s, t = sp.symbols("s t", integer=True, nonnegative=True)

#: Powers up to which the symbolic rule is checked against the non-commutative expansion.
CHECK_POWER = 5


def tau_word(word: list[Any], variance: Any) -> Any:
    """tau(X*^m X^m') of a word [X*^m, X^m'] (either part may be absent) for circular X of variance ``variance``:
    delta_{m m'} variance^m, the Gaussian family's rule (:data:`linrnn.derive.law.GAUSSIAN`)."""
    bases = [factor.as_base_exp()[0] for factor in word]
    if bases not in ([], [X_adj], [X], [X_adj, X]):
        raise ValueError(f"not a word X*^m X^m': {word}")
    powers = {X_adj: sp.Integer(0), X: sp.Integer(0)}
    powers.update(dict(factor.as_base_exp() for factor in word))
    return GAUSSIAN.inner_limit(powers[X_adj], powers[X], variance)


def apply_trace(expr: Any, variance: Any) -> Any:
    """Replace the word of every term of ``expr`` (a sum of coefficient * word) by its trace (:func:`tau_word`)."""
    out = sp.Integer(0)
    for term in sp.Add.make_args(sp.expand(expr)):
        coeff, word = term.args_cnc()
        out += sp.Mul(*coeff) * (tau_word(word, variance) if word else sp.Integer(1))
    return out


def binomial_sum(power: Any, var: Any, adjoint: bool) -> sp.Sum:
    """(a I + X)^power (or its adjoint) as sum_var C(power, var) a^(power - var) X^var: a I commutes with X."""
    return sp.Sum(sp.binomial(power, var) * a ** (power - var) * (X_adj if adjoint else X) ** var, (var, 0, power))


def _fold_guard(inner: Any, var: Any, lo: Any, hi: Any) -> sp.Sum:
    """sum_{var=lo}^{hi} of ``inner`` = Piecewise((f, var <= bound), (0, True)) as sum_{var=lo}^{min(hi, bound)} f."""
    if not isinstance(inner, sp.Piecewise):
        return sp.Sum(inner, (var, lo, hi))
    (value, cond), (rest, _true) = inner.args
    if rest != 0 or not isinstance(cond, sp.LessThan) or cond.lhs != var:
        raise ValueError(f"an unexpected guard of the delta sum: {inner}")
    return sp.Sum(value, (var, lo, sp.Min(hi, cond.rhs)))


def krylov_rule(p_: Any, r_: Any, variance: Any) -> Any:
    """g(p, r) = lim tau((W_e^T)^p W_e^r) as SymPy: the product of the two binomial sums, the circular rule applied
    to each word, the Kronecker delta summed (module docstring, steps 1-4)."""
    body = binomial_sum(p_, m, True).function * binomial_sum(r_, m2, False).function  # word X*^m X^m', in order
    ruled = apply_trace(body, variance)
    inner = sp.piecewise_fold(sp.Sum(ruled, (m2, 0, r_)).doit())
    folded = _fold_guard(inner, m, 0, p_)
    return sp.Sum(sp.powsimp(folded.function), *folded.limits)


def expanded_rule(p_: int, r_: int, variance: Any) -> Any:
    """g(p, r) for integers p, r by ``sympy.expand`` of (a + X*)^p (a + X)^r and the rule term by term."""
    return sp.expand(apply_trace(sp.expand((a + X_adj) ** p_ * (a + X) ** r_), variance))


def check_krylov_rule(g_sum: Any, top: int = CHECK_POWER) -> bool:
    """Whether the derived g(p, r) equals the non-commutative expansion with the rule, every p, r <= ``top``."""
    lam = sp.Lambda((p, r), g_sum)
    return all(sp.expand(lam(pp, rr).doit() - expanded_rule(pp, rr, S.q)) == 0
               for pp in range(top + 1) for rr in range(top + 1))


def _inner_limit(p_: Any, r_: Any, growth: Any) -> Any:
    if growth != S.q:  # n v_W: q in both parameterizations
        raise AssertionError(f"the variance of the circular part is {growth}, not q")
    return g(p_, r_)


#: The shifted family's Krylov rule as a :class:`~linrnn.derive.law.TransitionLaw` for the engines' helpers
#: (:func:`linrnn.derive.lag_weights.apply_wide_width_rules`): <W_e^p u, W_e^r v> ~ g(p, r) <u, v>.
LAW = TransitionLaw(
    name="shifted", key=source_key(__file__), inner_limit=_inner_limit,
    note=r"For $W_e = a I + X$ with $X$ circular of variance $q$ (iid Gaussian entries of variance $q/n$) and "
         r"$u, v$ independent of $W_e$, $\langle W_e^{p} u, W_e^{r} v\rangle / \langle u, v\rangle$ concentrates on "
         r"$\tau((W_e^{T})^{p} W_e^{r}) = g(p, r)$, derived above; ",
    title="identity-shifted Gaussian W",
)


def _pull_constants(expr: Any) -> Any:
    """Every Sum with the factors of its body that do not depend on its index taken outside (innermost first)."""
    def pull(s: sp.Sum) -> Any:
        body, limits = s.function, s.limits
        names = {lim[0] for lim in limits}
        inside, outside = [], []
        for factor in sp.Mul.make_args(body):
            (inside if factor.free_symbols & names else outside).append(factor)
        return sp.Mul(*outside) * sp.Sum(sp.Mul(*inside), *limits)

    return expr.replace(lambda e: isinstance(e, sp.Sum), pull)


def _limit(expr: Any) -> tuple[Any, int]:
    """(the n -> infinity limit, the power of n) of ``expr``, a monomial in n times terms free of n."""
    expr = sp.powsimp(sp.expand(expr), force=True)
    coeff, order = expr.as_coeff_exponent(S.n)
    if coeff.has(S.n) or not order.is_integer:
        raise AssertionError(f"not a monomial in n: {expr}")
    if order > 0:  # pragma: no cover - would mean a diverging kernel
        raise AssertionError(f"diverges with n: {expr}")
    return (coeff if order == 0 else sp.Integer(0)), int(order)


def _scalar(expr: Any) -> Any:
    """A kernel entry times delta_aa' delta_bb' as its scalar (the same output and input), lags (i, j) -> (j, k)."""
    one = expr.subs({S.a2: S.a, S.b2: S.b}).xreplace({S.k: s, S.l: t})  # the split points first: k is a lag next
    return one.xreplace({S.i: j, S.j: k})


@dataclass
class ShiftedDerivation:
    """The shifted family's derivation for one parameterization and the closed forms it reaches.

    ``g_sum``: g(p, r) as a SymPy Sum in p, r, a, q; ``ntk``, ``nngp``: the scalar kernels
    Theta_inf(j, k) and E[L_j L_k] (times delta_aa' delta_bb' across channels) in terms of
    the function :data:`g`; ``parts``: each part's limit (``C``, ``F``, ``W``); ``orders``:
    each part's power of n; ``steps``: the derivation as data.
    """

    param: str
    g_sum: Any
    ntk: Any
    nngp: Any
    parts: dict[str, Any]
    orders: dict[str, int]
    steps: Derivation = field(default_factory=lambda: Derivation(""))
    title: str = ""

    def explicit(self, expr: Any) -> Any:
        """``expr`` with g replaced by its derived sum."""
        return expr.replace(g, sp.Lambda((p, r), self.g_sum))


@lru_cache(maxsize=None)
def derive_shifted(param: str = "ntk") -> ShiftedDerivation:
    """The derivation for ``param`` (cached on disk, :func:`linrnn.derive.cache.disk_cached`)."""
    from linrnn.derive.cache import disk_cached

    parameterization(param)
    return disk_cached(f"shifted-kernel-{LAW.key}-{param}", lambda: _derive(param), ShiftedDerivation)


def derive_krylov_rule(d: Derivation) -> Any:
    """Steps 1-4 of the module docstring, added to ``d``; returns g(p, r) as a SymPy Sum."""
    sec = "The Krylov rule of a shifted circular matrix"
    n = S.n
    u, v = MatrixSymbol("u", n, 1), MatrixSymbol("v", n, 1)
    checked = all(sp.expand(binomial_sum(pp, m, False).doit() - sp.expand((a + X) ** pp)) == 0
                  for pp in range(CHECK_POWER + 1))
    if not checked:  # pragma: no cover - the binomial sum of commuting a I and X
        raise AssertionError("the binomial sum disagrees with sympy.expand")
    d.add("binomial", (a + X) ** p, binomial_sum(p, m, False),
          r"$aI$ commutes with $X$; checked against \texttt{sympy.expand} of the non-commutative power for "
          rf"$p \le {CHECK_POWER}$.", section=sec)
    d.add("krylov-trace", Inner(MatPow(W_e, p) * u, MatPow(W_e, r) * v),
          sp.Symbol(r"\tau\left((W_e^{T})^{p} W_e^{r}\right)") * Inner(u, v),
          r"For $u, v$ independent of $W_e$ with iid entries, $u^{T} A v$ concentrates on "
          r"$(\operatorname{tr} A / n)\langle u, v\rangle$; $\tau$ is the limit of $\operatorname{tr}/n$.",
          relation="~", section=sec)
    product = binomial_sum(p, m, True).function * binomial_sum(r, m2, False).function
    d.add("product", sp.Symbol(r"\tau\left((W_e^{T})^{p} W_e^{r}\right)"),
          sp.Sum(sp.Symbol(r"\tau") * product, (m2, 0, r), (m, 0, p)),
          r"The product of the two binomial sums ($X^{*} = X^{T}$): one word $X^{*m} X^{m'}$ per term.",
          section=sec)
    d.add("circular", sp.Symbol(r"\tau") * X_adj ** m * X ** m2, tau_word([X_adj ** m, X ** m2], S.q),
          r"$X$ is a circular element of variance $q$ in the limit (Voiculescu; the Gaussian family's rule): only "
          r"matched powers survive.", section=sec)
    g_sum = krylov_rule(p, r, S.q)
    ok = check_krylov_rule(g_sum)
    if not ok:  # pragma: no cover - guards the steps above
        raise AssertionError("the derived Krylov rule disagrees with the non-commutative expansion")
    d.add("g", g(p, r), g_sum,
          r"The rule applied word by word and the Kronecker delta summed by SymPy; checked against "
          rf"\texttt{{sympy.expand}} of $(a + X^{{*}})^{{p}} (a + X)^{{r}}$ with the rule, $p, r \le {CHECK_POWER}$.",
          section=sec)
    d.add("rule-W", Inner(MatPow(W_e, S.k) * u, MatPow(W_e, S.l) * v), g(S.k, S.l) * Inner(u, v),
          LAW.note + "the same for $W_e^{T}$ (its $g$ is the same by symmetry).", relation="~", section=sec)
    return g_sum


def _derive(param: str) -> ShiftedDerivation:
    par = parameterization(param)
    i, jj, kk, ll, n = S.i, S.j, S.k, S.l, S.n
    title = f"The lag kernels of the identity-shifted dense RNN ({param} parameterization)"
    d = Derivation(title)
    L = sp.IndexedBase("L")

    sec = "Model and impulse response"
    G = MatrixSymbol("G", n, n)
    d.add("model", W_e, a * Identity(n) + par.scale["W"] * G,
          rf"The shift $a$ is fixed; $G$ has iid entries of variance ${sp.latex(par.raw_variance['W'])}$ and is the "
          r"trained part, so $W_e = \alpha_W W$ with the raw $W = (a/\alpha_W) I + G$: the gradient with respect to the "
          r"raw $W$ is the Gaussian family's.", relation=":=", section=sec)
    d.add("circular-part", MatrixSymbol("X", n, n), par.scale["W"] * G,
          rf"an entry of $X$ has variance ${sp.latex(par.entry_variance('W'))}$.", relation=":=", section=sec)
    for part in ("C", "F"):
        d.add(f"scale-{part}", EFFECTIVE[part], par.scale[part] * RAW[part],
              f"Raw entries of ${part}$ are iid with variance ${sp.latex(par.raw_variance[part])}$.",
              relation=":=", section=sec)
    d.add("impulse", sp.Symbol("L_{j}"), C_e * MatPow(W_e, jj) * F_e, section=sec)
    d.add("entry", L[jj, S.a, S.b], Inner(c_a, MatPow(W_e, jj) * f_b),
          r"with $c_a = C_e^{T} e_a$ and $f_b = F_e e_b$.", section=sec)

    sec = "Gradients and the lag NTK"
    if not check_gradient_rules():  # pragma: no cover
        raise AssertionError("gradient rules disagree with sympy.diff")
    grads_1 = entry_gradients(i, c_a, f_b, e_a, e_b, kk)
    grads_2 = entry_gradients(jj, c_a2, f_b2, e_a2, e_b2, ll)
    for part in PARTS:
        d.add(f"grad-{part}", sp.Derivative(L[jj, S.a, S.b], EFFECTIVE[part]),
              entry_gradients(jj, c_a, f_b, e_a, e_b, kk)[part].as_expr(),
              r"Matrix calculus and the product rule; checked entrywise against \texttt{sympy.diff} for lags "
              r"$0, \dots, 3$ ($aI$ is constant).", section=sec)
    exact = {part: par.ntk_prefactor * ETA[part] * par.scale[part] ** 2 * frobenius(grads_1[part], grads_2[part])
             for part in PARTS}
    d.add("ntk-def", sp.Symbol(r"\Theta_{(i,a,b),(j,a',b')}"),
          sp.Add(*[par.ntk_prefactor * ETA[part] * par.scale[part] ** 2
                   * Frob(sp.Symbol(rf"\partial_{{{part}_e}} L_{{i}}[a,b]"),
                          sp.Symbol(rf"\partial_{{{part}_e}} L_{{j}}[a',b']")) for part in PARTS], evaluate=False),
          r"Gradient descent on the raw parameters (\texttt{docs/conventions.md}).", section=sec)
    for part in PARTS:
        d.add(f"ntk-{part}", sp.Symbol(rf"\Theta^{{({part})}}_{{(i,a,b),(j,a',b')}}"), exact[part], section=sec)

    g_sum = derive_krylov_rule(d)

    sec = "Wide-width limits"
    parts: dict[str, Any] = {}
    orders: dict[str, int] = {}
    for part in PARTS:
        ruled = _pull_constants(apply_wide_width_rules(exact[part], par, LAW))
        limit, orders[part] = _limit(ruled)
        parts[part] = sp.simplify(limit)
        d.add(f"order-{part}", sp.Symbol(rf"\Theta^{{({part})}}_{{(i,a,b),(j,a',b')}}"), ruled,
              "Order $n^{0}$: survives the limit." if orders[part] == 0 else
              f"Order $n^{{{orders[part]}}}$: vanishes as $n\\to\\infty$.", relation="~", section=sec)
    kernel = sp.Add(*parts.values())
    scalar = sp.collect(sp.expand(_scalar(kernel)), [g(j, k)])
    channel = sp.simplify(kernel - kernel.subs({S.a2: S.a, S.b2: S.b}) * sp.KroneckerDelta(S.a, S.a2)
                          * sp.KroneckerDelta(S.b, S.b2))
    if channel != 0:  # pragma: no cover
        raise AssertionError(f"the kernel is not delta_aa' delta_bb' times a scalar: {channel}")

    sec = "The limit kernel"
    d.add("kernel", sp.Limit(sp.Symbol(r"\Theta_{(j,a,b),(k,a',b')}"), n, sp.oo),
          sp.Function(r"\Theta_{\infty}")(j, k) * sp.KroneckerDelta(S.a, S.a2) * sp.KroneckerDelta(S.b, S.b2),
          "Across channels the kernel is the identity; across lags it is not diagonal unless $a = 0$.", section=sec)
    d.add("kernel-scalar", sp.Function(r"\Theta_{\infty}")(j, k), scalar,
          r"The $C$- and $F$-parts carry $g(j, k)$, the $W$-part the double sum over the split points "
          r"of the two gradients.", section=sec)

    sec = "The initial function (NNGP)"
    cov_exact = sp.KroneckerDelta(S.a, S.a2) * par.entry_variance("C") * Inner(MatPow(W_e, i) * f_b,
                                                                                MatPow(W_e, jj) * f_b2)
    d.add("nngp-C", Expect(L[i, S.a, S.b] * L[jj, S.a2, S.b2]), Expect(cov_exact),
          r"Average over $C_e$: $\mathbb{E}[c_a c_{a'}^{T}] = \delta_{aa'} v_C I_n$.", section=sec)
    cov, _order = _limit(apply_wide_width_rules(cov_exact, par, LAW))
    nngp = sp.simplify(_scalar(cov))
    d.add("nngp", sp.Symbol(r"\mathbb{E}[L_{j} L_{k}]"), nngp,
          r"Times $\delta_{aa'}\delta_{bb'}$; the same in both parameterizations.", section=sec)
    return ShiftedDerivation(param=param, g_sum=g_sum, ntk=scalar, nngp=nngp, parts=parts, orders=orders, steps=d,
                             title=title)
