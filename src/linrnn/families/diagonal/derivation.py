r"""The lag kernels of diagonal complex recurrences, derived by SymPy from the unit's impulse response and its law.

A diagonal family (``diagonal``, ``lru``) is a sum of n iid units; the output at lag j
is L_j = (1/sqrt(n)) sum_i u_j(unit i) with u_j the unit's real impulse response
(``Re(c lambda^j b)`` for the diagonal family). The derivation (:func:`derive_unit_kernel`)
takes the unit as data (:class:`Unit`: its impulse response as a SymPy expression of its
real trained parameters, the multiplier of each, the values of the parameters at
initialisation in polar coordinates lambda = rho e^{i phi}) and the law of (rho, phi)
as data (:data:`RADIAL_LAWS`, :data:`PHASE_DENSITY`), and lets SymPy do the work:

1. the gradients of u_j by ``sympy.diff`` with respect to every real trained parameter
   (the real and imaginary parts of a complex one);
2. the unit's lag NTK sum_P eta_P du_j/dP du_k/dP and its second moment u_j u_k;
3. the expectation over c, b (real and imaginary parts iid N(0, 1/2), i.e. CN(0, 1)),
   monomial by monomial, each Gaussian moment by ``sympy.integrate``;
4. the substitution j = (p + d)/2, k = (p - d)/2 (p = j + k, d = j - k), after which
   each part factors (``sympy.separatevars``) into a polynomial in (p, d), a function of
   rho and a function of phi: rho and phi are independent at initialisation;
5. the expectations over rho (density 2 rho / (r_max^2 - r_min^2): |lambda|^2 uniform
   on [r_min^2, r_max^2]; also the disc r_min = 0 and the circle r_min = r_max) and over
   phi (uniform on [0, theta_max]; also the point theta_max = 0), by ``sympy.integrate``.

Width. The parameters of unit i enter only u(unit i), the units are iid and E u_j = 0,
so E[Theta_jk](n) = (1/n) sum_i E[theta_unit] = E[theta_unit] and E[L_j L_k](n) =
E[u_j u_k] at every width n: the mean equals the wide limit exactly (step ``width``);
only the spread shrinks, as n^{-1/2}. Channels: with c in C^{n_y}, b in C^{n_x} per
unit, E[c_a conj c_a'] = delta_aa', E[c_a c_a'] = 0, so every kernel is the scalar one
times delta_aa' delta_bb'.

The closed forms are evaluated by :mod:`linrnn.families.diagonal.kernel` (mpmath) and
checked in the tests against numerical quadrature of the law and against the issue's
first derivation for the diagonal family; they are never typed in.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import sympy as sp

from linrnn.derive.steps import Derivation

# ---------------------------------------------------------------- symbols (declared once)
j, k = sp.symbols("j k", integer=True, nonnegative=True)
p = sp.Symbol("p", integer=True, nonnegative=True)  # j + k
d = sp.Symbol("d", integer=True)  # j - k
rho = sp.Symbol("rho", positive=True)  # |lambda|
phi = sp.Symbol("phi", positive=True)  # arg lambda
r_min = sp.Symbol("r_min", nonnegative=True)
r_max = sp.Symbol("r_max", positive=True)
theta_max = sp.Symbol("theta_max", positive=True)
c_r, c_i, b_r, b_i = sp.symbols("c_r c_i b_r b_i", real=True)  # real and imaginary parts of c and b
n = sp.Symbol("n", positive=True, integer=True)
unit_index = sp.Symbol("i", positive=True, integer=True)
#: the unit's complex read-out and input weights
c = c_r + sp.I * c_i
b = b_r + sp.I * b_i
#: c and b: real and imaginary parts iid N(0, 1/2)
GAUSSIANS = (c_r, c_i, b_r, b_i)

#: Radial laws of |lambda| on [r_min, r_max], as densities in rho: "area" is the family's law (|lambda|^2
#: uniform on [r_min^2, r_max^2]); "radius" (|lambda| uniform) is the claim's negative control.
RADIAL_LAWS: dict[str, Any] = {"area": 2 * rho / (r_max**2 - r_min**2), "radius": 1 / (r_max - r_min)}
#: arg lambda uniform on [0, theta_max].
PHASE_DENSITY = 1 / theta_max


@dataclass(frozen=True)
class Unit:
    """One unit of a diagonal family, as data for :func:`derive_unit_kernel`.

    ``impulse(m)``: the unit's lag-m response u_m as SymPy (real); ``params``: (label,
    multiplier field of the spec, its real SymPy symbols); ``init``: the substitution of
    the trained parameters' values at initialisation in terms of ``rho``, ``phi``;
    ``polar``: (pattern, replacement) pairs applied before ``init`` (lambda -> rho e^{i phi}).
    """

    family: str
    impulse: Callable[[Any], Any]
    params: tuple[tuple[str, str, tuple[Any, ...]], ...]
    init: dict[Any, Any]
    polar: tuple[tuple[Any, Any], ...] = ()
    note: str = ""


@dataclass(frozen=True)
class Part:
    """One part of a kernel: E[part](j, k) = poly(p, d) * radial(p) * phase(d) with p = j + k, d = j - k.

    ``mult``: the spec field of its learning-rate multiplier (None for the NNGP);
    ``radial``: E over the ring (r_min < r_max), ``radial_disc`` (r_min = 0),
    ``radial_circle`` (r_min = r_max, in r_max); ``phase``: E over [0, theta_max]
    (theta_max > 0), ``phase_point`` (theta_max = 0).
    """

    label: str
    mult: str | None
    poly: Any
    radial: Any
    radial_disc: Any
    radial_circle: Any
    phase: Any
    phase_point: Any

    def expr(self) -> Any:
        """E[part](j, k) on the ring, as SymPy in j, k."""
        return (self.poly * self.radial * self.phase).subs({p: j + k, d: j - k}, simultaneous=True)


@dataclass(frozen=True, eq=False)
class UnitKernel:
    """The derived kernels of a diagonal family under one radial law.

    ``parts``: the NTK's parts, one per trained parameter; ``nngp``: E[L_j L_k] (one part);
    ``ntk``: Theta(j, k) = sum_P eta_P E[part_P](j, k) as SymPy (``mults``: field ->
    the symbol eta_P); ``steps``: the derivation.
    """

    family: str
    radial_law: str
    parts: tuple[Part, ...]
    nngp: Part
    ntk: Any
    nngp_expr: Any
    mults: dict[str, Any] = field(default_factory=dict)
    steps: Any = None


def gaussian_moment(m: int) -> Any:
    """E[z^m] for z ~ N(0, 1/2), by ``sympy.integrate`` against the density exp(-z^2) / sqrt(pi)."""
    return _moment(int(m))


@lru_cache(maxsize=None)
def _moment(m: int) -> Any:
    z = sp.Symbol("z", real=True)
    return sp.integrate(z**m * sp.exp(-(z**2)) / sp.sqrt(sp.pi), (z, -sp.oo, sp.oo))


def expect_gaussians(expr: Any) -> Any:
    """E over c_r, c_i, b_r, b_i iid N(0, 1/2) of a polynomial in them (other symbols as coefficients)."""
    poly = sp.Poly(sp.expand(expr), *GAUSSIANS)
    total = sp.Integer(0)
    for powers, coeff in poly.terms():
        moment = sp.Integer(1)
        for power in powers:
            moment *= gaussian_moment(power)
        total += coeff * moment
    return sp.simplify(total)


def _at_init(unit: Unit, expr: Any) -> Any:
    for pattern, replacement in unit.polar:
        expr = expr.subs(pattern, replacement)
    return sp.expand(sp.powsimp(sp.expand(expr.subs(unit.init))))


def _limit_at_zero(expr: Any) -> Any:
    """The limit of an antiderivative as rho -> 0+, branch by branch and term by term (``sympy.limit``)."""
    expr = sp.piecewise_fold(expr)
    if isinstance(expr, sp.Piecewise):
        # SymPy's antiderivative of rho^(p - m - 1) splits p != m from p = m (p = j + k >= 0). For p > m the limit
        # is taken with p = m + q, q > 0; for p < m the integral diverges at 0 (nan: such a p occurs only where the
        # part's polynomial vanishes); at p = m, the branch at p = m.
        (e, cond), (fallback, last) = expr.args[0], expr.args[-1]
        m = next((c.args[1] for c in (cond,) if isinstance(c, sp.Ne) and c.args[0] == p), None)
        if len(expr.args) != 2 or m is None or last != sp.true:  # pragma: no cover - no other branches arise
            raise NotImplementedError(f"a branch condition {cond} of the radial antiderivative")
        q = sp.Dummy("q", positive=True, integer=True)
        above = _limit_at_zero(e.subs(p, m + q)).subs(q, p - m)
        return sp.Piecewise((above, p > m), (sp.nan, p < m), (_limit_at_zero(fallback.subs(p, m)), True))
    return sp.Add(*[sp.limit(term, rho, 0, "+") for term in sp.Add.make_args(sp.expand(expr))])


def _part(d_: Derivation, unit: Unit, label: str, mult: str | None, per_unit: Any, lhs: Any, radial_law: str,
          section: str) -> Part:
    """Steps 3-5 for one part (its per-unit expression ``per_unit`` in the trained parameters)."""
    at_init = _at_init(unit, per_unit)
    mean = d_.add(f"Ecb-{label}", sp.Symbol(r"\mathbb{E}_{c,b}") * lhs, expect_gaussians(at_init),
                  r"At initialisation ($\lambda = \rho e^{i\phi}$), averaged over $c, b$ with real and imaginary "
                  r"parts iid $N(0, 1/2)$: each Gaussian moment by integration.", section=section)
    in_pd = sp.simplify(sp.trigsimp(mean.subs({j: (p + d) / 2, k: (p - d) / 2}, simultaneous=True)))
    split = sp.separatevars(in_pd, [rho, phi], dict=True) if in_pd != 0 else {rho: 0, phi: 1, "coeff": 1}
    if split is None:  # pragma: no cover - the law is a product law: every part factors
        raise AssertionError(f"the part {label} does not factor into rho and phi: {in_pd}")
    g, h, poly = split[rho], split[phi], sp.factor(split["coeff"])
    density = RADIAL_LAWS[radial_law]
    antiderivative = sp.integrate(g * density, rho)
    radial = sp.factor_terms(antiderivative.subs(rho, r_max) - antiderivative.subs(rho, r_min))
    disc = sp.factor_terms((antiderivative.subs(rho, r_max) - _limit_at_zero(antiderivative)).subs(r_min, 0))
    phase = sp.simplify(sp.integrate(h * PHASE_DENSITY, (phi, 0, theta_max)))
    law = ("$|\\lambda|^2$ uniform on $[r_{min}^2, r_{max}^2]$" if radial_law == "area"
           else "$|\\lambda|$ uniform on $[r_{min}, r_{max}]$ (the control's law)")
    d_.add(f"radial-{label}", sp.Symbol(r"\mathbb{E}_{\rho}") * g, radial,
           f"$p = j + k$, $d = j - k$; the radial factor integrated over {law} (on the disc $r_{{min}} = 0$ the "
           r"antiderivative's limit at $\rho \to 0^+$ replaces its value).", section=section)
    d_.add(f"phase-{label}", sp.Symbol(r"\mathbb{E}_{\phi}") * h, phase,
           r"The phase factor integrated over $\phi$ uniform on $[0, \theta_{max}]$.", section=section)
    return Part(label=label, mult=mult, poly=poly, radial=radial, radial_disc=disc,
                radial_circle=sp.simplify(g.subs(rho, r_max)), phase=phase, phase_point=sp.simplify(h.subs(phi, 0)))


def derive_unit_kernel(unit: Unit, radial_law: str = "area") -> UnitKernel:
    """Derive the lag NTK and NNGP of a diagonal family from its unit (module docstring)."""
    der = Derivation(f"The lag kernels of the {unit.family} family")
    sec = f"The {unit.family} unit"
    u_j, u_k = unit.impulse(j), unit.impulse(k)
    der.add("unit", sp.Symbol("u_j"), u_j, r"One unit's impulse response at lag $j$; the output is "
            r"$L_j = n^{-1/2}\sum_{i=1}^{n} u_j^{(i)}$. " + unit.note, section=sec)
    parts, mults = [], {}
    for label, mult, syms in unit.params:
        grads_j = [sp.diff(u_j, s) for s in syms]
        for s, g in zip(syms, grads_j):
            der.add(f"grad-{label}-{s}", sp.Derivative(sp.Symbol("u_j"), s), g, section=sec)
        per_unit = sum(gj * sp.diff(u_k, s) for gj, s in zip(grads_j, syms))
        lhs = sp.Symbol(rf"\theta^{{({label})}}_{{jk}}")
        der.add(f"ntk-unit-{label}", lhs, per_unit, "The unit's lag NTK from this parameter: the sum over its "
                "real coordinates of the products of the gradients at lags $j$ and $k$.", section=sec)
        parts.append(_part(der, unit, label, mult, per_unit, lhs, radial_law, sec))
        mults[mult] = sp.Symbol(rf"\eta_{{{label}}}", nonnegative=True)
    lhs = sp.Symbol(r"u_j u_k")
    nngp = _part(der, unit, "nngp", None, u_j * u_k, lhs, radial_law, sec)
    ntk = sum(mults[part.mult] * part.expr() for part in parts)
    nngp_expr = nngp.expr()
    sec = "The kernels"
    theta = sp.Function("theta_unit")(j, k)
    der.add("width", sp.Symbol(r"\mathbb{E}[\Theta_{jk}](n)"),
            sp.Sum(theta, (unit_index, 1, n)).doit() / n,
            "The $n$ units are iid and each parameter enters one unit: the mean at width $n$ is the unit's mean, "
            "at every width (the same holds for $\\mathbb{E}[L_j L_k]$, since $\\mathbb{E}\\,u_j = 0$).", section=sec)
    der.add("ntk", sp.Symbol(r"\Theta_\infty(j, k)"), ntk, r"The sum of the parts with their multipliers "
            r"(times $\delta_{aa'}\delta_{bb'}$ across channels).", section=sec)
    der.add("nngp", sp.Symbol(r"\mathbb{E}[L_j L_k]"), nngp_expr, "The NNGP covariance of the initial impulse "
            "response.", section=sec)
    return UnitKernel(family=unit.family, radial_law=radial_law, parts=tuple(parts), nngp=nngp, ntk=ntk,
                      nngp_expr=nngp_expr, mults=mults, steps=der)


@lru_cache(maxsize=None)
def cached_unit_kernel(make_unit: Callable[[], Unit], radial_law: str, files: tuple[str, ...]) -> UnitKernel:
    """:func:`derive_unit_kernel` of ``make_unit()``, kept on disk (:func:`linrnn.derive.cache.disk_cached`)
    under a key that hashes ``files`` (the unit's module) and this module."""
    from linrnn.derive.cache import disk_cached
    from linrnn.derive.law import source_key

    if radial_law not in RADIAL_LAWS:
        raise ValueError(f"unknown radial law {radial_law!r}")
    unit = make_unit()
    key = source_key(__file__, *files)
    return disk_cached(f"{unit.family}-kernel-{radial_law}-{key}", lambda: derive_unit_kernel(unit, radial_law),
                       UnitKernel)


# ---------------------------------------------------------------- the diagonal family's unit
lam_r, lam_i = sp.symbols("lambda_r lambda_i", real=True)


def diagonal_unit() -> Unit:
    """u_j = Re(c lambda^j b), trained: c, b, lambda (real and imaginary parts), multipliers lr_c, lr_f, lr_w."""
    lam = lam_r + sp.I * lam_i
    return Unit(family="diagonal", impulse=lambda m: sp.re(c * lam**m * b),
                params=(("c", "lr_c", (c_r, c_i)), ("b", "lr_f", (b_r, b_i)), ("lambda", "lr_w", (lam_r, lam_i))),
                init={}, polar=((lam, rho * sp.exp(sp.I * phi)),),
                note=r"$\lambda = \lambda_r + i\lambda_i$, $c = c_r + i c_i$, $b = b_r + i b_i$.")


def kernel_derivation(radial_law: str = "area") -> UnitKernel:
    """The diagonal family's derived kernels under ``radial_law`` (cached)."""
    return cached_unit_kernel(diagonal_unit, radial_law, ())
