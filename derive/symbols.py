"""Every symbol of the derivation, declared once with its assumptions.

Notation follows ``docs/conventions.md``: width ``n``, input dimension ``n_x``,
transition variance ``q = sigma_W^2``, read-out and input variances ``sigma_C^2`` and
``sigma_F^2``, per-parameter learning-rate multipliers ``eta_C, eta_F, eta_W``.
The LaTeX names used by :mod:`linrnn.derive.latex` are in :data:`LATEX_NAMES`; SymPy's
printer takes them through its ``symbol_names`` setting.
"""

from __future__ import annotations

import sympy as sp

# sizes
n = sp.Symbol("n", positive=True, integer=True)  # width (hidden dimension)
n_x = sp.Symbol("n_x", positive=True, integer=True)  # input dimension
n_y = sp.Symbol("n_y", positive=True, integer=True)  # output dimension

# lags and summation indices (all non-negative integers)
i = sp.Symbol("i", integer=True, nonnegative=True)
j = sp.Symbol("j", integer=True, nonnegative=True)
k = sp.Symbol("k", integer=True, nonnegative=True)
l = sp.Symbol("l", integer=True, nonnegative=True)  # noqa: E741 - the paper's index
m = sp.Symbol("m", integer=True, nonnegative=True)

# output and input coordinates: (a, b) for one entry, (a', b') for the other
a = sp.Symbol("a", integer=True, nonnegative=True)
b = sp.Symbol("b", integer=True, nonnegative=True)
a2 = sp.Symbol("a'", integer=True, nonnegative=True)
b2 = sp.Symbol("b'", integer=True, nonnegative=True)

# variances
q = sp.Symbol("q", positive=True)  # sigma_W^2, the transition variance
sigma_c2 = sp.Symbol("sigma_C2", positive=True)
sigma_f2 = sp.Symbol("sigma_F2", positive=True)

# learning-rate multipliers
eta_c = sp.Symbol("eta_C", nonnegative=True)
eta_f = sp.Symbol("eta_F", nonnegative=True)
eta_w = sp.Symbol("eta_W", nonnegative=True)

# consequences
z = sp.Symbol("z")  # generating-function variable (complex)
eps = sp.Symbol("epsilon", positive=True)  # memory-horizon threshold, 0 < eps < 1
lam_max = sp.Symbol("Lambda", positive=True)  # max_k lambda_k

#: The model parameters a numeric evaluation must bind (lag ``j`` aside).
PARAMETERS: tuple[sp.Symbol, ...] = (q, sigma_c2, sigma_f2, n_x, eta_c, eta_f, eta_w)

LATEX_NAMES: dict[sp.Symbol, str] = {
    n_x: "n_{x}",
    n_y: "n_{y}",
    a2: "a'",
    b2: "b'",
    sigma_c2: r"\sigma_{C}^{2}",
    sigma_f2: r"\sigma_{F}^{2}",
    eta_c: r"\eta_{C}",
    eta_f: r"\eta_{F}",
    eta_w: r"\eta_{W}",
    eps: r"\varepsilon",
    lam_max: r"\lambda_{\max}",
}
