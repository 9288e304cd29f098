"""The diagonal family's specification: complex diagonal units on a ring, trained directly.

Imports the standard library and the core only (the command-line flags read it).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

from linrnn.core.errors import UsageError
from linrnn.core.spec import FIELD_RULES, FamilySpec

#: The fields of the initialisation law every diagonal family shares (the ring of eigenvalues).
RING_RULES: dict[str, tuple[str, str, str]] = {
    "r_min": ("unit", "smallest eigenvalue modulus r_min (|lambda|^2 uniform on [r_min^2, r_max^2])", "R"),
    "r_max": ("unit", "largest eigenvalue modulus r_max", "R"),
    "theta_max": ("angle", "largest eigenvalue phase theta_max in radians (arg lambda uniform on [0, theta_max])",
                  "RAD"),
}
#: The input and output dimensions, as in the dense families.
CHANNEL_RULES: dict[str, tuple[str, str, str]] = {name: FIELD_RULES[name] for name in ("n_in", "n_out")}


def check_ring(spec: Any, mults: tuple[str, ...]) -> None:
    """The checks across fields every diagonal family makes: r_min <= r_max and some multiplier positive."""
    spec.check_fields()
    if spec.r_min > spec.r_max:
        raise UsageError(f"r_min ({spec.r_min:g}) must be at most r_max ({spec.r_max:g})")
    if all(getattr(spec, m) == 0 for m in mults):
        raise UsageError(f"at least one of {', '.join(mults)} must be positive")


@dataclass(frozen=True)
class RingSpec(FamilySpec):
    """What the diagonal families' specifications share: the ring law of the eigenvalues (``r_min``, ``r_max``,
    ``theta_max``), the channels, the read-out and input multipliers ``lr_c``, ``lr_f``, the checks across fields,
    and the setting at a spectral radius. A family subclasses it, sets ``family``, adds its other multipliers
    (after these fields) and lists all of them in ``MULTIPLIERS``."""

    family: str = field(init=False, default="")
    r_min: float = 0.0
    r_max: float = 0.9
    theta_max: float = 1.0
    n_in: int = 1
    n_out: int = 1
    lr_c: float = 1.0
    lr_f: float = 1.0

    #: The rules of the shared fields (a subclass adds its multipliers').
    RING_FIELD_RULES: ClassVar[dict[str, tuple[str, str, str]]] = {
        **RING_RULES, **CHANNEL_RULES,
        "lr_c": ("nonnegative", "learning-rate multiplier eta_C", "ETA"),
        "lr_f": ("nonnegative", "learning-rate multiplier eta_F (the input vector b of a diagonal family)", "ETA"),
    }
    #: iid units: the mean of the empirical kernels is the derived kernel at every width
    exact_at_every_width: ClassVar[bool] = True
    #: The multipliers, in the order of the trained parameters.
    MULTIPLIERS: ClassVar[tuple[str, ...]] = ("lr_c", "lr_f")

    def __post_init__(self) -> None:
        check_ring(self, self.MULTIPLIERS)

    def at_radius(self, radius: float) -> Any:
        """|lambda| <= radius, filling the disc: r_min = 0, r_max = radius, theta_max = 2 pi (the law of the dense
        Gaussian family's eigenvalues at q = radius^2)."""
        import math

        return self.replace(r_min=0.0, r_max=float(radius), theta_max=2 * math.pi)


@dataclass(frozen=True)
class DiagonalSpec(RingSpec):
    """Complex diagonal linear RNN units (``docs/conventions.md``, "Model families").

    y_j = Re(sum_i c_i lambda_i^j b_i) / sqrt(n); c_i, b_i ~ CN(0, 1); |lambda_i|^2 ~
    U[r_min^2, r_max^2], arg lambda_i ~ U[0, theta_max]. Trained: c, b and lambda
    (their real and imaginary parts) with the multipliers ``lr_c``, ``lr_f`` (b) and
    ``lr_w`` (lambda).
    """

    family: str = field(init=False, default="diagonal")
    lr_w: float = 1.0

    FIELD_RULES: ClassVar[dict[str, tuple[str, str, str]]] = {
        **RingSpec.RING_FIELD_RULES,
        "lr_w": ("nonnegative", "learning-rate multiplier eta_W (the eigenvalues lambda of the diagonal family)",
                 "ETA"),
    }
    #: The multipliers, in the order of the trained parameters (c, b, lambda).
    MULTIPLIERS: ClassVar[tuple[str, ...]] = ("lr_c", "lr_f", "lr_w")


SPEC = DiagonalSpec

__all__ = ["CHANNEL_RULES", "DiagonalSpec", "RING_RULES", "RingSpec", "SPEC", "check_ring"]
