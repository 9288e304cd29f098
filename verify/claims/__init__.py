"""The claims of the suite as a registry: :data:`REGISTRY`, an ordered mapping name -> :class:`Claim`.

One module per claim, each with a frozen configuration dataclass ``Config`` (its
defaults), ``check(config, model)`` and ``run(config, model, *, seed, backend, dtype,
progress) -> ClaimResult`` (:mod:`linrnn.verify.claims.base`), and its entry ``CLAIM``:

* :mod:`~linrnn.verify.claims.ntk_limit`, :mod:`~linrnn.verify.claims.nngp`,
  :mod:`~linrnn.verify.claims.width_rate`: one lag-NTK width sweep (table ``[ntk]``,
  memoised in :mod:`~linrnn.verify.claims.ntk_sweep`) read three ways;
* :mod:`~linrnn.verify.claims.dynamics_equivalence`, :mod:`~linrnn.verify.claims.min_norm`,
  :mod:`~linrnn.verify.claims.short_memory`: the training claims
  (shared machinery in :mod:`linrnn.verify.claims.training`);
* :mod:`~linrnn.verify.claims.co2`: the weekly Mauna Loa CO2 task (:mod:`linrnn.verify.co2`).

The order of :data:`REGISTRY` is the report order; the model families' own claims (the Gaussian
family's ``finite_width``, ...) follow (:func:`linrnn.families.claims`). Importing this package loads only
the standard library and the configuration dataclasses; NumPy and SymPy are imported
when a claim runs.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from linrnn.verify.claims import (
    co2, dynamics_equivalence, min_norm, nngp, ntk_limit, short_memory, width_rate,
)
from linrnn.verify.claims.base import Claim, ClaimResult

#: The claims in report order.
REGISTRY: Mapping[str, Claim] = MappingProxyType({c.name: c for c in (
    ntk_limit.CLAIM, nngp.CLAIM, width_rate.CLAIM, dynamics_equivalence.CLAIM, min_norm.CLAIM, short_memory.CLAIM,
    co2.CLAIM,
)})

__all__ = ["REGISTRY", "Claim", "ClaimResult"]
