"""The exact finite-width lag NTK and NNGP as float arrays, for the Monte Carlo checks.

:mod:`linrnn.families.gaussian.finite_width` gives each entry as a rational function of ``n``; the
checks in :mod:`linrnn.verify` need all ``lags x lags`` entries at a few widths, many
times. Both things they need are derived once and kept on disk as data
(:func:`linrnn.derive.cache.data_cached`, JSON keyed by the derivation's source), so that
with a warm cache this module never imports SymPy:

* the integer trace polynomials ``T(i, j)`` and ``S_W(i, j)`` of the engine, per number
  of lags (their coefficients as JSON integers);
* the SymPy structure of :func:`linrnn.families.gaussian.finite_width.part_from_traces` and
  :func:`~linrnn.families.gaussian.finite_width.nngp_from_traces` as the source of one NumPy
  function of ``(i, j, n, model symbols, g, s)`` that ``lambdify`` prints
  (:func:`linrnn.derive.formulas.lambdified_source`), where ``g = T(i,j)/n^{(i+j)/2+1}``
  and ``s = S_W(i,j)/n^{(i+j)/2+1}`` are evaluated exactly as fractions, so no power of
  ``n`` overflows.

Entries with ``a != a'`` or ``b != b'`` are 0 (see the engine).
"""

from __future__ import annotations

import numbers
from fractions import Fraction
from functools import lru_cache
from typing import Any

import numpy as np

from linrnn.core.errors import UsageError
from linrnn.derive.model import ModelSpec

__all__ = ["REACH", "exact_matrices", "exact_traces"]

#: The most lags for which the checks use the exact mean (lags 0..15: about 15 s once, then cached).
REACH = 16


def _key() -> str:
    """The engine's source hash (this folder's derivation modules): its cached data are redone when they change
    (the derive layer's own hash, :func:`linrnn.derive.cache.code_key`, covers ``derive/`` only)."""
    from pathlib import Path

    from linrnn.derive.law import source_key

    here = Path(__file__).resolve().parent
    return source_key(*(here / f for f in ("finite_width.py", "finite_width_arrays.py")))

#: The engine's integer polynomials in n (coefficients, lowest power first).
IntPoly = tuple[int, ...]


def _trace_data(lags: int) -> dict[str, Any]:
    from linrnn.families.gaussian import finite_width as fw

    return {
        "T": [[list(fw.gram_trace(i, j)) for j in range(lags)] for i in range(lags)],
        "S": [[list(fw.w_part_traces(i, j)) for j in range(lags)] for i in range(lags)],
    }


@lru_cache(maxsize=8)
def exact_traces(lags: int) -> dict[str, list[list[IntPoly]]]:
    """``{"T": T(i, j), "S": S_W(i, j)}`` for ``i, j < lags`` as integer polynomials in n (disk-cached data)."""
    from linrnn.derive.cache import data_cached

    if not 1 <= lags <= REACH + 4:
        raise UsageError(f"the exact finite-width arrays reach at most {REACH + 4} lags, got {lags}")
    def parse(d: dict[str, Any]) -> dict[str, list[list[IntPoly]]]:
        out = {k: [[tuple(_coefficient(c) for c in p) for p in row] for row in d[k]] for k in ("T", "S")}
        if any(len(rows) != lags or any(len(row) != lags for row in rows) for rows in out.values()):
            raise ValueError(f"the cached traces are not {lags} x {lags}")
        return out

    return data_cached(f"finite-width-traces-{_key()}-{lags}", lambda: _trace_data(lags), parse)


def _coefficient(c: Any) -> int:
    """An integer coefficient of the cached traces (a bool, a float or a string is a malformed entry)."""
    if isinstance(c, bool) or not isinstance(c, numbers.Integral):
        raise ValueError(f"a trace coefficient must be an integer, got {c!r}")
    return int(c)


def _entry_data(param: str) -> dict[str, Any]:
    """The printed NumPy sources of the Theta and NNGP entries as functions of the traces (imports SymPy)."""
    import sympy as sp

    from linrnn.families.gaussian import finite_width as fw
    from linrnn.derive import symbols as S
    from linrnn.derive.formulas import lambdified_source

    g, s_w = sp.symbols("g s_W")
    i, j, n = S.i, S.j, S.n
    scale = n ** ((i + j) / 2 + 1)
    theta = sp.Add(*(fw.part_from_traces(param, part, i, j, g * scale, s_w * scale) for part in fw.PARTS))
    nngp = fw.nngp_from_traces(i, j, g * scale)
    args = (i, j, n, *S.PARAMETERS, g, s_w)
    out: dict[str, Any] = {"param": param, "args": [str(a) for a in args]}
    for key, expr in (("theta", theta), ("nngp", nngp)):
        source, names = lambdified_source(args, sp.powsimp(sp.expand(expr), force=True), "numpy")  # n cancels
        if source is None:  # pragma: no cover - rational functions and powers print to NumPy
            raise AssertionError(f"the {key} entry does not print to NumPy")
        out[key] = {"text": str(expr), "numpy": source, "names": names}
    return out


@lru_cache(maxsize=None)
def _entry_functions(param: str) -> tuple[Any, Any]:
    """NumPy functions of (i, j, n, q, sigma_C^2, sigma_F^2, n_x, eta_C, eta_F, eta_W, g, s), from the cache."""
    from linrnn.derive.cache import data_cached
    from linrnn.derive.formulas import compile_source

    def parse(d: dict[str, Any]) -> tuple[Any, Any]:
        fns = tuple(compile_source(d[k]["numpy"], d[k]["names"], "numpy") for k in ("theta", "nngp"))
        if not all(callable(fn) for fn in fns):
            raise ValueError("the cached entries do not define functions")
        return fns  # type: ignore[return-value]

    return data_cached(f"finite-width-entries-{_key()}-{param}", lambda: _entry_data(param), parse)


def _normalised(poly: IntPoly, power: Fraction, width: int) -> float:
    """poly(width) / width^power exactly, then a float (power is a half-integer or an integer)."""
    value = Fraction(sum(c * width**k for k, c in enumerate(poly)))
    if power.denominator == 1:
        return float(value / Fraction(width) ** int(power))
    return float(value / Fraction(width) ** int(power - Fraction(1, 2))) / float(np.sqrt(width))


@lru_cache(maxsize=64)
def _normalised_traces(lags: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """(T(i,j), S_W(i,j)) / width^{(i+j)/2+1} for i, j < lags (read-only arrays, memoised)."""
    traces = exact_traces(lags)
    g = np.zeros((lags, lags))
    s = np.zeros((lags, lags))
    for a in range(lags):
        for b in range(lags):
            power = Fraction(a + b, 2) + 1
            g[a, b] = _normalised(traces["T"][a][b], power, width)
            s[a, b] = _normalised(traces["S"][a][b], power, width)
    g.flags.writeable = False
    s.flags.writeable = False
    return g, s


def exact_matrices(spec: ModelSpec, lags: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """(E[Theta[(i,a,b),(j,a,b)]], E[L_i[a,b] L_j[a,b]]) at width ``width``, each ``lags x lags``, float64.

    Exact expectations at finite width (the same coordinates a = a', b = b'; other
    coordinate pairs are 0), all lag pairs, from the loop-equation engine (Gaussian W: a family whose
    specification says ``exact_finite_width = False`` is refused).
    """
    if not spec.exact_finite_width:
        raise UsageError(f"the exact finite-width means of linrnn.families.gaussian.finite_width are for Gaussian W, not for "
                         f"the {spec.family} family")
    g, s = _normalised_traces(lags, width)
    ii, jj = np.meshgrid(np.arange(lags, dtype=np.float64), np.arange(lags, dtype=np.float64), indexing="ij")
    theta_fn, nngp_fn = _entry_functions(spec.param)
    params = (spec.sigma_w2, spec.sigma_c2, spec.sigma_f2, float(spec.n_in), spec.lr_c, spec.lr_f, spec.lr_w)
    with np.errstate(invalid="ignore"):
        theta = np.asarray(theta_fn(ii, jj, float(width), *params, g, s), dtype=np.float64) * np.ones_like(g)
        nngp = np.asarray(nngp_fn(ii, jj, float(width), *params, g, s), dtype=np.float64) * np.ones_like(g)
    odd = (np.add.outer(np.arange(lags), np.arange(lags)) % 2).astype(bool)
    theta[odd] = 0.0  # q^{(i+j)/2} with an odd sum multiplies an exact 0
    nngp[odd] = 0.0
    return theta, nngp
