r"""The law of the transition matrix W at initialisation, as the derivation needs it: one object per family.

The wide-width derivation (:mod:`linrnn.derive.lag_weights`) reduces the lag NTK and
the NNGP to Krylov inner products ``<W_e^p u, W_e^r v>`` with u, v built from the other
parameters (independent of W). A model family enters the derivation only through the
limit of those: ``<W_e^p u, W_e^r v> ~ c(p, r) <u, v>`` as n -> infinity. A family gives
its :class:`TransitionLaw` from its specification
(:meth:`linrnn.core.spec.ModelSpec.derivation_law`); the Gaussian family's is
:data:`GAUSSIAN`, the default of the engines.

Importing this module imports no SymPy: the numeric paths name a law (for the disk
cache of the formulas) without deriving; ``inner_limit`` imports SymPy when it runs.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class TransitionLaw:
    r"""A family's wide-width rule for the Krylov inner products of W_e.

    ``inner_limit(p, r, growth)``: the SymPy coefficient c with ``<W_e^p u, W_e^r v> ~ c <u, v>``
    as n -> infinity, ``growth`` being n v_W (v_W the variance of an entry of W_e).
    ``note``: why (the text of the derivation step, LaTeX). ``name`` and ``key`` (a hash of
    the code that defines the rule, :func:`source_key`) name the cached derivation.
    """

    name: str
    key: str
    inner_limit: Callable[[Any, Any, Any], Any]
    note: str
    title: str = ""


def source_key(*paths: str | Path) -> str:
    """A short hash of the source files ``paths`` (a law's cache key: its code changes, its derivation is redone)."""
    h = hashlib.sha256()
    for p in paths:
        h.update(Path(p).read_bytes())
    return h.hexdigest()[:16]


def _gaussian_inner_limit(p: Any, r: Any, growth: Any) -> Any:
    import sympy as sp

    return sp.KroneckerDelta(p, r) * growth**p


#: iid centred Gaussian entries (a circular element in free probability): the default law of the engines
#: (its code is in ``derive/``, whose every module is hashed into the cache key already).
GAUSSIAN = TransitionLaw(
    name="gaussian", key="", inner_limit=_gaussian_inner_limit,
    note=r"For $W_e$ with iid centred Gaussian entries of variance $v_W$ and $u, v$ built from the other parameters, "
         r"normalised inner products of Krylov vectors concentrate as $n\to\infty$ (relative fluctuations "
         r"$O(n^{-1/2})$, bias of the expectation $O(n^{-1})$); ",
    title="Gaussian W",
)


def cache_name(stem: str, param: str, law: TransitionLaw | None) -> str:
    """The disk-cache name of what is derived for ``param`` under ``law`` (the Gaussian law keeps the names it
    had before families: ``{stem}-{param}``)."""
    if law is None or law.name == "gaussian":
        return f"{stem}-{param}"
    return f"{stem}-{law.name}-{law.key}-{param}"


def law_or_default(law: TransitionLaw | None) -> TransitionLaw:
    """``law``, or :data:`GAUSSIAN` for None."""
    return GAUSSIAN if law is None else law
