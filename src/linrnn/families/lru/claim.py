r"""Claim ``lru_kernel``: the LRU family's derived lag kernels are its Monte Carlo means at small widths.

As the diagonal family's claim (:mod:`linrnn.families.diagonal.claim`: same statistic,
design and check, :mod:`linrnn.verify.kernel_check`), with the LRU model's three controls
(:data:`linrnn.families.lru.model.CONTROLS`): the diagonal families' two and ``no_half``, the
kernel without the factor 1/2 of the real parameters gamma_log, nu_log, theta_log (what
treating them as the complex ones would give: E Re(A_j) Re(A_k) = Re E[A_j conj A_k] / 2
for circular c, b), i.e. the derived kernel with their multipliers doubled.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from linrnn.families.diagonal.claim import Config as DiagonalConfig
from linrnn.families.diagonal.claim import check, memory, run_claim
from linrnn.verify.claims.base import Claim, ClaimResult, Progress


@dataclass(frozen=True)
class Config(DiagonalConfig):
    """Sizes of the LRU family's small-width check (those of the diagonal family's)."""

    SECTION: ClassVar[str] = "lru"


def run(config: Config, model: Any, *, seed: int = 0, backend: Any = "numpy", dtype: str = "float64",
        progress: Progress | None = None) -> ClaimResult:
    check(config, model)
    return run_claim(config, model, claim_id="lru_kernel", title="LRU: exact lag kernels", seed=seed,
                     backend=backend, dtype=dtype, progress=progress)


CLAIM = Claim(name="lru_kernel", section="lru", experiment="lru", family="lru", title="LRU: exact lag kernels",
              config_type=Config, run=run, check=check, memory=memory)
