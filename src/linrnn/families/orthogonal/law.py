r"""The Haar moments E tr(O^m) of the orthogonal group and the orthogonal family's wide-width law of W.

Moments (the one input this family adds to the derivation). For O Haar-distributed on
O(n), ``tr(O^m)`` is the power sum p_m of the eigenvalues, and

1. p_m = sum_{k=0}^{m-1} (-1)^k s_{(m-k, 1^k)} (Murnaghan-Nakayama: the power sum is the
   alternating sum of the Schur functions of the hooks of size m);
2. E_{O(n)} s_lambda(O) = 1 when every part of lambda is even and l(lambda) <= n, else 0
   (the spherical representations of (GL_n, O_n): Macdonald, *Symmetric Functions and
   Hall Polynomials*, 2nd ed., VII.3; the same fact gives Diaconis and Shahshahani's
   (1994) and Rains's (1997) moments of traces of Haar orthogonal matrices).

Hence E tr(O^m) is the signed count of the even hooks of size m with at most n rows:
:func:`trace_moment` enumerates the hooks (exact integers, any m and n), and
:func:`trace_moment_expr` sums the same hook expansion in SymPy for a symbolic m >= 1
(the hook (m-k, 1^k) has a part 1 for k >= 1, so only k = 0 can be even). The tests check
both against each other and against Monte Carlo of Haar matrices at n = 4, 8, 16.

The law (:data:`LAW`). W_e = sqrt(n v_W) O in both parameterizations (the raw W of ``ntk``
is sqrt(n) O; of ``standard``, sqrt(q) O), and O^T = O^{-1}, so
<W_e^p u, W_e^r v> = (n v_W)^{(p+r)/2} <u, O^{r-p} v> exactly. For u, v independent of O,
E[O^m] commutes with every orthogonal matrix, hence equals (E tr(O^m) / n) I, and the
normalised inner products concentrate on their means; the coefficient of <u, v> in the
limit is lim_n (n v_W)^{(p+r)/2} E tr(O^{r-p}) / n, which :func:`inner_limit` takes with
``sympy.limit``. Only this module is family-specific on the derive side; the derivation
itself is :func:`linrnn.derive.lag_weights.derive_lag_weights` with this law.
"""

from __future__ import annotations

from typing import Any

from linrnn.derive.law import TransitionLaw, source_key


def hooks(m: int) -> list[tuple[int, ...]]:
    """The hooks of size m >= 1: (m - k, 1^k), k = 0 .. m-1 (k is the leg length)."""
    return [(m - k,) + (1,) * k for k in range(m)]


def trace_moment(m: int, n: int) -> int:
    """E tr(O^m) for O Haar on O(n), m >= 0: n for m = 0, else the signed count of the even hooks of size m
    with at most n rows (see the module docstring)."""
    if m < 0 or n < 1:
        raise ValueError(f"need m >= 0 and n >= 1, got m = {m}, n = {n}")
    if m == 0:
        return n
    return sum((-1) ** (len(h) - 1) for h in hooks(m) if len(h) <= n and all(part % 2 == 0 for part in h))


def trace_moment_expr(m: Any, n: Any) -> Any:
    """E tr(O^m) for a symbolic m (and width n), as SymPy: n at m = 0, else the hook sum taken by SymPy.

    The hook (m-k, 1^k) is even exactly when k = 0 and m is even; its sign is (-1)^k.
    """
    import sympy as sp

    k = sp.Dummy("k", integer=True, nonnegative=True)
    even_hook = sp.KroneckerDelta(k, 0) * (1 + (-1) ** (m - k)) / 2  # [(m-k, 1^k) has only even parts]
    hook_sum = sp.Sum((-1) ** k * even_hook, (k, 0, m - 1)).doit()
    hook_sum = sp.piecewise_fold(hook_sum).subs(sp.Le(1, m), True).subs(sp.Ge(m, 1), True)  # m >= 1 here
    hook_sum = sp.simplify(hook_sum.subs({sp.Min(0, m - 1): 0}) if hook_sum.has(sp.Min) else hook_sum)
    return n * sp.KroneckerDelta(m, 0) + (1 - sp.KroneckerDelta(m, 0)) * hook_sum


def inner_limit(p: Any, r: Any, growth: Any) -> Any:
    r"""The coefficient c(p, r) of <u, v> in lim <W_e^p u, W_e^r v>: (n v_W)^{(p+r)/2} lim E tr(O^{r-p}) / n."""
    import sympy as sp

    from linrnn.derive import symbols as S

    P, R = sp.Symbol("P", integer=True, nonnegative=True), sp.Symbol("R", integer=True, nonnegative=True)
    moment = sp.limit(trace_moment_expr(R - P, S.n) / S.n, S.n, sp.oo)  # a Kronecker delta of R - P
    # the limit is delta(P, R): (n v_W)^{(P+R)/2} is (n v_W)^P on its support
    if moment.has(S.n) or any(moment.subs({P: a, R: b}) != (1 if a == b else 0) for a in range(4) for b in range(4)):
        raise AssertionError(f"the normalised Haar moment is not a delta of the powers: {moment}")
    return (sp.KroneckerDelta(P, R) * (growth ** ((P + R) / 2)).subs(R, P)).subs({P: p, R: r}, simultaneous=True)


#: The orthogonal family's law of W for :func:`linrnn.derive.lag_weights.derive_lag_weights`.
LAW = TransitionLaw(
    name="orthogonal", key=source_key(__file__), inner_limit=inner_limit,
    note=r"For $W_e = \sqrt{n v_W}\,O$ with $O$ Haar-distributed on $O(n)$: $\langle W_e^{p} u, W_e^{r} v\rangle "
         r"= (n v_W)^{(p+r)/2} \langle u, O^{r-p} v\rangle$ exactly ($O^{T} = O^{-1}$), "
         r"$\mathbb{E}[O^{m}] = (\mathbb{E}\operatorname{tr} O^{m}/n) I$ by Haar invariance, and "
         r"$\mathbb{E}\operatorname{tr} O^{m} = \tfrac{1}{2}(1 + (-1)^{m})$ for $m \ge 1$ (the even hooks: "
         r"Macdonald VII.3; Diaconis and Shahshahani 1994), so the coefficient tends to "
         r"$\delta_{pr}(n v_W)^{p}$ with relative corrections $O(n^{-1})$; ",
    title="Haar orthogonal W",
)
