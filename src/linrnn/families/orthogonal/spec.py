"""The orthogonal family's specification: the fields of ModelSpec, W_e = sqrt(q) O (Haar) at initialisation.

Imports the standard library and the core only (the command-line flags read it); the
transition imports the array namespace when it runs.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, ClassVar

from linrnn.core.spec import ModelSpec


@dataclass(frozen=True)
class OrthogonalSpec(ModelSpec):
    """A scaled-orthogonal linear RNN: the fields of :class:`~linrnn.core.spec.ModelSpec`, W_e = sqrt(q) O at init."""

    family: str = field(init=False, default="orthogonal")
    exact_finite_width: ClassVar[bool] = False

    def transition(self, W: Any) -> Any:
        """sqrt(n v_W) O per matrix (raw scale), O = Q diag(sign diag R) from the QR of the Gaussian ``W``."""
        from linrnn.verify.backend import array_namespace

        xp = array_namespace(W)
        n = int(W.shape[-1])
        Q, R = xp.linalg.qr(W)
        d = xp.linalg.diagonal(R)
        signs = xp.where(d < 0, xp.asarray(-1.0, dtype=W.dtype), xp.asarray(1.0, dtype=W.dtype))
        scale = self.raw_stds(n)[2] * math.sqrt(n)  # ntk: sqrt(n); standard: sqrt(q)
        return Q * (signs[..., None, :] * scale)

    def at_radius(self, radius: float) -> Any:
        """q = radius^2: the eigenvalues of sqrt(q) O lie on the circle of radius sqrt(q) (the same largest modulus
        as the Gaussian family's disc, not the same law)."""
        return self.replace(sigma_w2=float(radius) ** 2)

    def derivation_law(self) -> Any:
        from linrnn.families.orthogonal.law import LAW

        return LAW


SPEC = OrthogonalSpec

__all__ = ["OrthogonalSpec", "SPEC"]
