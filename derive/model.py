"""One model configuration, validated once, shared by derive, verify and the CLI."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any, Literal

from linrnn.core.errors import UsageError
from linrnn.core.validate import check_nonnegative, check_positive

Param = Literal["ntk", "standard"]
PARAMS: tuple[str, ...] = ("ntk", "standard")


@dataclass(frozen=True)
class ModelSpec:
    """A linear RNN configuration in the sense of ``docs/conventions.md``.

    Attributes
    ----------
    param: ``"ntk"`` (raw entries N(0,1), scaled by sigma/sqrt(fan-in)) or
        ``"standard"`` (raw entries are the effective matrices).
    sigma_w2: q = sigma_W^2, the transition variance (> 0).
    sigma_c2, sigma_f2: read-out and input variances (> 0).
    n_in: input dimension n_x (>= 1).
    lr_c, lr_f, lr_w: learning-rate multipliers eta_C, eta_F, eta_W (>= 0, not all 0).
    """

    param: str = "ntk"
    sigma_w2: float = 1.0
    sigma_c2: float = 1.0
    sigma_f2: float = 1.0
    n_in: int = 1
    lr_c: float = 1.0
    lr_f: float = 1.0
    lr_w: float = 1.0

    def __post_init__(self) -> None:
        if self.param not in PARAMS:
            raise UsageError(f"unknown parameterization {self.param!r}; choose one of {', '.join(PARAMS)}")
        object.__setattr__(self, "sigma_w2", check_positive("sigma_w2 (q = sigma_W^2)", self.sigma_w2))
        object.__setattr__(self, "sigma_c2", check_positive("sigma_c2", self.sigma_c2))
        object.__setattr__(self, "sigma_f2", check_positive("sigma_f2", self.sigma_f2))
        try:
            n_in = int(self.n_in)
        except (TypeError, ValueError):
            raise UsageError(f"n_in must be a positive integer, got {self.n_in!r}") from None
        if n_in != self.n_in or n_in < 1:
            raise UsageError(f"n_in must be a positive integer, got {self.n_in!r}")
        object.__setattr__(self, "n_in", n_in)
        for name in ("lr_c", "lr_f", "lr_w"):
            object.__setattr__(self, name, check_nonnegative(name, getattr(self, name)))
        if self.lr_c == self.lr_f == self.lr_w == 0:
            raise UsageError("at least one of lr_c, lr_f, lr_w must be positive")

    @property
    def q(self) -> float:
        return self.sigma_w2

    @property
    def lr(self) -> tuple[float, float, float]:
        """(eta_C, eta_F, eta_W), the order used by ``linrnn.verify.empirical_lag_ntk``."""
        return (self.lr_c, self.lr_f, self.lr_w)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def substitutions(self) -> dict[Any, Any]:
        """SymPy substitutions binding every model symbol of :mod:`linrnn.derive.symbols`.

        Values become exact rationals (``nsimplify`` of the decimal literal) so that
        symbolic consequences stay exact; numeric paths convert as they need.
        """
        import sympy as sp

        from linrnn.derive import symbols as s

        def exact(x: float) -> sp.Expr:
            return sp.Rational(repr(x)) if math.isfinite(x) else sp.Float(x)

        return {
            s.q: exact(self.sigma_w2),
            s.sigma_c2: exact(self.sigma_c2),
            s.sigma_f2: exact(self.sigma_f2),
            s.n_x: sp.Integer(self.n_in),
            s.eta_c: exact(self.lr_c),
            s.eta_f: exact(self.lr_f),
            s.eta_w: exact(self.lr_w),
        }
