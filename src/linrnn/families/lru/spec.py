"""The LRU family's specification (Orvieto et al., ICML 2023): the ring law of the diagonal family, LRU parameters.

Imports the standard library and the core only (the command-line flags read it).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

from linrnn.core.errors import UsageError
from linrnn.families.diagonal.spec import RingSpec


@dataclass(frozen=True)
class LRUSpec(RingSpec):
    """The linear recurrent unit's parameterization (``docs/conventions.md``, "Model families").

    y_j = Re(sum_i c_i gamma_i lambda_i^j b_i) / sqrt(n) with lambda = exp(-exp(nu_log) +
    i exp(theta_log)) and gamma = exp(gamma_log); at initialisation |lambda|^2 ~
    U[r_min^2, r_max^2], arg lambda ~ U[0, theta_max] (drawn as the LRU paper's code
    does), gamma_log = log sqrt(1 - |lambda|^2), c, b ~ CN(0, 1). Trained: c, b,
    gamma_log, nu_log, theta_log with the multipliers ``lr_c``, ``lr_f``, ``lr_gamma``,
    ``lr_nu``, ``lr_theta``. theta_max > 0 (theta_log = log arg lambda) and r_min < 1
    (gamma > 0).
    """

    family: str = field(init=False, default="lru")
    lr_gamma: float = 1.0
    lr_nu: float = 1.0
    lr_theta: float = 1.0

    FIELD_RULES: ClassVar[dict[str, tuple[str, str, str]]] = {
        **RingSpec.RING_FIELD_RULES,
        "lr_gamma": ("nonnegative", "learning-rate multiplier of the LRU's gamma_log", "ETA"),
        "lr_nu": ("nonnegative", "learning-rate multiplier of the LRU's nu_log", "ETA"),
        "lr_theta": ("nonnegative", "learning-rate multiplier of the LRU's theta_log", "ETA"),
    }
    MULTIPLIERS: ClassVar[tuple[str, ...]] = ("lr_c", "lr_f", "lr_gamma", "lr_nu", "lr_theta")

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.theta_max == 0:
            raise UsageError("the lru family needs theta_max > 0 (its parameter theta_log is log arg lambda)")
        if self.r_min == 1:
            raise UsageError("the lru family needs r_min < 1 (its input gain gamma = sqrt(1 - |lambda|^2) vanishes "
                             "on the unit circle)")


SPEC = LRUSpec

__all__ = ["LRUSpec", "SPEC"]
