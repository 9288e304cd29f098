"""The shifted family's specification: the fields of ModelSpec and the shift a, W_e = a I + sqrt(q / n) G at init.

Imports the standard library and the core only (the command-line flags read it); the
transition imports the array namespace when it runs, :meth:`ShiftedSpec.limit_theories`
the family's derivation.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

from linrnn.core.errors import UsageError
from linrnn.core.spec import FIELD_RULES, ModelSpec


@dataclass(frozen=True)
class ShiftedSpec(ModelSpec):
    """An identity-shifted dense linear RNN: the fields of :class:`~linrnn.core.spec.ModelSpec` and the shift ``a``.

    W_e = a I + sqrt(q / n) G with G iid N(0, 1) (``docs/conventions.md``, "Model families"):
    the Gaussian part is the Gaussian family's W (its scales, its multiplier eta_W, trained),
    the shift a (``shift``, any real number) is fixed. The raw W holds both: W = (a / alpha_W) I
    + G_raw with W_e = alpha_W W, so the gradient with respect to the raw W is the Gaussian
    family's. The default a = 1 is the identity initialisation of the IRNN (Le, Jaitly and
    Hinton 2015), the recurrence this family is for; a small q (``sigma_w2``) is the noise one
    adds to it, and a = 0 is the Gaussian family.
    """

    family: str = field(init=False, default="shifted")
    exact_finite_width: ClassVar[bool] = False

    shift: float = 1.0

    FIELD_RULES: ClassVar[dict[str, tuple[str, str, str]]] = {
        **FIELD_RULES, "shift": ("real", "identity shift a of the shifted family (W_e = a I + sqrt(q/n) G)", "A"),
    }

    def at_radius(self, radius: float) -> Any:
        """shift = radius / 2, q = (radius / 2)^2: the eigenvalues fill the disc of radius sqrt(q) around the shift
        (the circular law moved by a I), whose largest modulus is |a| + sqrt(q) = radius."""
        half = float(radius) / 2
        return self.replace(shift=half, sigma_w2=half**2)

    def transition(self, W: Any) -> Any:
        """W + (a / alpha_W) I per matrix (raw scale), so that W_e = alpha_W W = a I + alpha_W G."""
        from linrnn.verify.backend import array_namespace

        xp = array_namespace(W)
        n = int(W.shape[-1])
        return W + xp.eye(n, dtype=W.dtype) * (self.shift / self.scales(n)[2])

    def derivation_law(self) -> Any:
        """None of the lag-weight engines' laws fits: the shifted family's limit kernel is not diagonal in the lags."""
        raise UsageError("the shifted family's wide-limit lag NTK is not diagonal in the lags, so it has no lag "
                         "weights lambda_j: its kernels are `linrnn derive kernel --family shifted`, checked by "
                         "`linrnn verify ntk --family shifted` and its claim shifted_kernel")

    def limit_theories(self, lags: int) -> Any:
        """The derived lag NTK and NNGP as full kernels with the family's negative controls
        (:func:`linrnn.families.shifted.theories.limit_theories`)."""
        from linrnn.families.shifted.theories import limit_theories

        return limit_theories(self, lags)


SPEC = ShiftedSpec

__all__ = ["SPEC", "ShiftedSpec"]
