r"""Claim ``lru_kernel``: the LRU family's derived lag kernels are its Monte Carlo means at small widths.

As the diagonal family's claim (:mod:`linrnn.families.diagonal.claim`: same statistic,
design and controls), with a third control: ``no_half``, the kernel without the factor
1/2 of the real parameters gamma_log, nu_log, theta_log (what treating them as the
complex ones would give: E Re(A_j) Re(A_k) = Re E[A_j conj A_k] / 2 for circular c, b),
i.e. the derived kernel with their multipliers doubled.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, ClassVar

from linrnn.families.diagonal.claim import CONTROLS as RING_CONTROLS
from linrnn.families.diagonal.claim import Config as DiagonalConfig
from linrnn.families.diagonal.claim import Control, _bytes_per_draw, check_controls, memory, run_claim
from linrnn.verify.claims.base import Claim, ClaimResult, Progress

#: The LRU's real parameters' multipliers (the factor 1/2 of the control ``no_half``).
REAL_MULTIPLIERS = ("lr_gamma", "lr_nu", "lr_theta")


@dataclass(frozen=True)
class Config(DiagonalConfig):
    """Sizes of the LRU family's small-width check (those of the diagonal family's)."""

    SECTION: ClassVar[str] = "lru"


def _no_half(model: Any, lags: int) -> dict[str, Any]:
    from linrnn.families import model_of

    spec = model.spec
    doubled = model_of(dataclasses.replace(spec, **{m: 2 * getattr(spec, m) for m in REAL_MULTIPLIERS}))
    return {"ntk": doubled.kernel(lags)["ntk"], "nngp": model.kernel(lags)["nngp"]}


CONTROLS = (*RING_CONTROLS, Control("no_half", "the lag NTK without the factor 1/2 of the real parameters gamma_log, "
                                               "nu_log, theta_log", _no_half))


def check(config: Config, model: Any) -> None:
    """One draw must fit ``max_memory``; every control must differ from the theory somewhere."""
    from linrnn.core.validate import check_memory, parse_memory

    check_memory(f"the lru family's check ([lru] widths up to {max(config.widths)}, lags = {config.lags}), one draw,",
                 _bytes_per_draw(model, max(config.widths), config.lags), parse_memory(config.max_memory),
                 "[lru] max_memory in the configuration")
    check_controls(config, model, CONTROLS)


def run(config: Config, model: Any, *, seed: int = 0, backend: Any = "numpy", dtype: str = "float64",
        progress: Progress | None = None) -> ClaimResult:
    check(config, model)
    return run_claim(config, model, CONTROLS, claim_id="lru_kernel", title="LRU: exact lag kernels", seed=seed,
                     backend=backend, dtype=dtype, progress=progress)


CLAIM = Claim(name="lru_kernel", section="lru", experiment="lru", family="lru", title="LRU: exact lag kernels",
              config_type=Config, run=run, check=check, memory=memory)
