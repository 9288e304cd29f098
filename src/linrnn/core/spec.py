"""The model specification: one frozen, validated object that travels from the command line to the numerics.

A linear RNN in the sense of ``docs/conventions.md``: parameters C (n_y x n),
F (n x n_x), W (n x n) with effective matrices P_e = alpha_P P, where

* ``ntk``:      raw entries iid N(0, 1); alpha_C = sigma_C / sqrt(n),
  alpha_F = sigma_F / sqrt(n_x), alpha_W = sigma_W / sqrt(n);
* ``standard``: the raw parameters are the effective matrices (every alpha is 1),
  drawn entrywise C ~ N(0, sigma_C^2 / n), F ~ N(0, sigma_F^2 / n_x), W ~ N(0, sigma_W^2 / n).

The lag NTK is Theta = s * sum_P eta_P <dL/dP, dL/dP> with s = 1 (``ntk``) or 1/n
(``standard``), and gradient descent with base step eta moves the raw parameters by
``eta * eta_P * step_factor(n) * dLoss/dP`` with step_factor 1 (``ntk``) or 1/n
(``standard``). The learning-rate *multipliers* eta_C, eta_F, eta_W are the fields
``lr_c``, ``lr_f``, ``lr_w`` (their tuple is :attr:`ModelSpec.lr_mults`); the *base
step* eta is never part of the model and is called ``lr`` where a trainer takes it.

Everything about a parameterization is defined here once; derive, verify and the
reports read it from the spec. Values are validated once, in ``__post_init__``.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

from linrnn.core.errors import UsageError
from linrnn.core.validate import check_nonnegative, check_positive, check_size

Param = Literal["ntk", "standard"]
PARAMS: tuple[str, ...] = ("ntk", "standard")


def check_param(param: str) -> str:
    """Return ``param`` if it names a parameterization, else raise :class:`UsageError`."""
    if param not in PARAMS:
        raise UsageError(f"unknown parameterization {param!r}; choose one of {', '.join(PARAMS)}")
    return param


#: Every field of :class:`ModelSpec` but ``param``: (its rule, what it is, a metavar). The rule is checked once,
#: in ``ModelSpec.__post_init__``, and the command-line flags (``--sigma-w2`` ...) are made from this table
#: (:mod:`linrnn.model_flags`) with the same rule, so every command names, defaults and validates them alike.
FIELD_RULES: dict[str, tuple[str, str, str]] = {
    "sigma_w2": ("positive", "transition variance q = sigma_W^2", "Q"),
    "sigma_c2": ("positive", "read-out variance sigma_C^2", "V"),
    "sigma_f2": ("positive", "input variance sigma_F^2", "V"),
    "n_in": ("size", "input dimension n_x", "NX"),
    "n_out": ("size", "output dimension n_y", "NY"),
    "lr_c": ("nonnegative", "learning-rate multiplier eta_C", "ETA"),
    "lr_f": ("nonnegative", "learning-rate multiplier eta_F", "ETA"),
    "lr_w": ("nonnegative", "learning-rate multiplier eta_W", "ETA"),
}


#: The rules a field of a family's specification may name (:func:`check_field`).
RULES = ("positive", "nonnegative", "size", "unit", "angle", "real")


def check_field(rule: str, name: str, value: Any) -> Any:
    """``value`` checked by ``rule`` (one of :data:`RULES`; ``name`` in the sentence): one :class:`UsageError`.

    ``unit``: a number in [0, 1]; ``angle``: a number in [0, 2 pi] (radians); ``real``: any finite number.
    """
    if rule == "real":
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise UsageError(f"{name} must be a number, got {value!r}") from None
        if isinstance(value, bool) or not math.isfinite(number):
            raise UsageError(f"{name} must be a finite number, got {value!r}")
        return number
    if rule == "positive":
        return check_positive(name, value)
    if rule == "nonnegative":
        return check_nonnegative(name, value)
    if rule in ("unit", "angle"):
        value = check_nonnegative(name, value)
        top = 1.0 if rule == "unit" else 2 * math.pi
        if value > top:
            raise UsageError(f"{name} must be at most {'1' if rule == 'unit' else '2 pi'}, got {value!r}")
        return value
    if rule != "size":
        raise ValueError(f"unknown field rule {rule!r}")
    return check_size(name, value)


class FamilySpec:
    """What every model family's specification shares: mix it into a frozen dataclass.

    The dataclass has a field ``family`` (``dataclasses.field(init=False, default=NAME)``),
    the field ``param`` where the family has parameterizations (checked against ``CHOICES``),
    and :attr:`FIELD_RULES` for every other field: (rule of :func:`check_field`, what it is,
    a metavar). The command-line flags of every command (:mod:`linrnn.model_flags`) and the
    ``[model]`` table are made from these, so a family's parameters are named, defaulted
    and validated in one place. ``n_in`` and ``n_out`` are the input and output dimensions.
    """

    family: str
    FIELD_RULES: ClassVar[dict[str, tuple[str, str, str]]] = {}
    #: fields with a fixed set of values (the command line makes them choices)
    CHOICES: ClassVar[dict[str, tuple[str, ...]]] = {}
    #: whether the mean of the empirical kernels is the derived kernel at every width (iid units): such a family's
    #: model is checked by :mod:`linrnn.verify.kernel_check` (``verify ntk``), with no finite-width allowance
    exact_at_every_width: ClassVar[bool] = False

    def check_fields(self) -> None:
        """Apply :attr:`FIELD_RULES` and :attr:`CHOICES` to the fields (call from ``__post_init__``)."""
        for name, choices in self.CHOICES.items():
            if getattr(self, name) not in choices:
                raise UsageError(f"unknown {name} {getattr(self, name)!r}; choose one of {', '.join(choices)}")
        for name, (rule, _what, _metavar) in self.FIELD_RULES.items():
            label = "sigma_w2 (q = sigma_W^2)" if name == "sigma_w2" else name
            object.__setattr__(self, name, check_field(rule, label, getattr(self, name)))

    @classmethod
    def fields(cls) -> tuple[str, ...]:
        """The parameters (every field but ``family``), in order: what the constructor takes."""
        return tuple(f.name for f in dataclasses.fields(cls) if f.init)  # type: ignore[arg-type]

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any], *, where: str = "[model]") -> Any:
        """A spec from a mapping (a TOML table, a results file's ``model``); unknown keys name themselves.

        A ``family`` key must name this class's family (another family's spec is made by
        :func:`linrnn.families.spec_class`).
        """
        values = dict(values)
        own = cls.__dataclass_fields__["family"].default  # type: ignore[attr-defined]
        fam = values.pop("family", own)
        if fam != own:
            raise UsageError(f"{where} is for the {fam!r} family, not {own!r}")
        unknown = sorted(set(values) - set(cls.fields()))
        if unknown:
            raise UsageError(f"unknown key{'s' if len(unknown) > 1 else ''} {', '.join(unknown)} in {where}; "
                             f"known keys: {', '.join(cls.fields())}")
        return cls(**values)

    def replace(self, **changes: Any) -> Any:
        """A copy with ``changes`` applied (validated again)."""
        return dataclasses.replace(self, **changes)  # type: ignore[type-var]

    def as_dict(self) -> dict[str, Any]:
        """The parameters (what the constructor takes), without ``family``; JSON of the spec has ``family`` too."""
        return {name: getattr(self, name) for name in self.fields()}

    def at_radius(self, radius: float) -> Any:
        """This specification with its transition's eigenvalues at initialisation of modulus at most ``radius``, the
        largest modulus its law reaches (in the limit of wide width; the whole disc where the law fills one), where the
        family has one such setting; None where it has not.

        The report's families chapter compares the families there ("same spectrum, different bias").
        """
        return None


@dataclass(frozen=True)
class ModelSpec(FamilySpec):
    """A linear RNN configuration (``docs/conventions.md``), validated once.

    Attributes
    ----------
    param: ``"ntk"`` (raw entries N(0,1), scaled by sigma/sqrt(fan-in)) or
        ``"standard"`` (raw entries are the effective matrices).
    sigma_w2: q = sigma_W^2, the transition variance (> 0).
    sigma_c2, sigma_f2: read-out and input variances (> 0).
    n_in, n_out: input and output dimensions n_x, n_y (>= 1).
    lr_c, lr_f, lr_w: learning-rate multipliers eta_C, eta_F, eta_W (>= 0, not all 0).
    """

    #: The model family this specification belongs to (``linrnn.families``): a subclass per family sets it
    #: (a field, not an argument: it is the class's) and overrides the hooks below. This base class is the
    #: dense recurrence with the engines' default hooks (iid Gaussian W); the Gaussian family's own
    #: specification (:class:`linrnn.families.gaussian.GaussianSpec`) adds its exact finite-width means.
    family: str = dataclasses.field(init=False, default="gaussian")
    #: Whether :meth:`exact_means` gives this family's exact finite-width lag-NTK and NNGP means (the Gaussian
    #: family's loop equations). A family without them is checked against the wide limit with the Richardson
    #: allowance.
    exact_finite_width: ClassVar[bool] = False
    #: The most lags :meth:`exact_means` reaches (0 without exact means).
    exact_reach: ClassVar[int] = 0

    param: str = "ntk"
    sigma_w2: float = 1.0
    sigma_c2: float = 1.0
    sigma_f2: float = 1.0
    n_in: int = 1
    n_out: int = 1
    lr_c: float = 1.0
    lr_f: float = 1.0
    lr_w: float = 1.0

    FIELD_RULES: ClassVar[dict[str, tuple[str, str, str]]] = FIELD_RULES
    CHOICES: ClassVar[dict[str, tuple[str, ...]]] = {"param": PARAMS}

    def __post_init__(self) -> None:
        check_param(self.param)
        self.check_fields()  # every field but param and family
        if self.lr_c == self.lr_f == self.lr_w == 0:
            raise UsageError("at least one of lr_c, lr_f, lr_w must be positive")

    # ---------------------------------------------------------------- the family's hooks

    def transition(self, W: Any) -> Any:
        """The raw transition matrices from ``W`` (..., n, n) with iid N(0, std_W^2) entries (:meth:`raw_stds`).

        The Gaussian family keeps them (returns ``W`` itself); a family with another law of
        W at initialisation (the orthogonal family: Haar) maps them, in the array's own
        namespace, keeping the batch axes.
        """
        return W

    def derivation_law(self) -> Any:
        """The wide-width law of W for :mod:`linrnn.derive.lag_weights` (None: iid Gaussian entries, the default)."""
        return None

    def at_radius(self, radius: float) -> Any:
        """q = radius^2: the circular law of an iid W_e fills the disc of radius sqrt(q) (Girko); a family whose W
        has another law overrides this where the radius is not sqrt(q)."""
        return self.replace(sigma_w2=float(radius) ** 2)

    def exact_means(self, lags: int, width: int) -> Any:
        """The exact finite-width means at ``width``: (E[Theta_ij], E[L_i L_j]), lags x lags float64 arrays of
        entry (0, 0), where the family derives them (:attr:`exact_finite_width`, up to :attr:`exact_reach` lags).

        The engines call this hook and never import a family; this base has none.
        """
        raise UsageError(f"this specification ({type(self).__name__}) has no exact finite-width means; the "
                         f"{self.family} family's own (linrnn.families.spec_class({self.family!r})) gives them where "
                         "they are derived")

    def limit_theories(self, lags: int) -> Any:
        """A family's own wide-limit theories for ``verify ntk`` (None: the lag weights of :meth:`derivation_law`).

        A family whose limit kernel is not diagonal in the lags returns
        :class:`linrnn.verify.check_ntk.Theories` (the lag NTK and NNGP as full kernel arrays
        and its negative controls, each with a one-sentence statement), importing its own
        derivation when called; the engines call this hook and never ask for the family.
        """
        return None

    # ---------------------------------------------------------------- the parameterization

    @property
    def q(self) -> float:
        """q = sigma_W^2, the transition variance."""
        return self.sigma_w2

    @property
    def lr_mults(self) -> tuple[float, float, float]:
        """(eta_C, eta_F, eta_W), the learning-rate multipliers, in the order C, F, W."""
        return (self.lr_c, self.lr_f, self.lr_w)

    def scales(self, n: int) -> tuple[float, float, float]:
        """(alpha_C, alpha_F, alpha_W) with P_e = alpha_P * P at width ``n``.

        ``ntk``: (sigma_C / sqrt(n), sigma_F / sqrt(n_x), sigma_W / sqrt(n)); ``standard``: (1, 1, 1).
        """
        if self.param == "standard":
            return (1.0, 1.0, 1.0)
        return (math.sqrt(self.sigma_c2 / n), math.sqrt(self.sigma_f2 / self.n_in), math.sqrt(self.sigma_w2 / n))

    def raw_stds(self, n: int) -> tuple[float, float, float]:
        """Standard deviations of the raw C, F, W entries at initialisation, at width ``n``.

        ``ntk``: (1, 1, 1); ``standard``: (sigma_C / sqrt(n), sigma_F / sqrt(n_x), sigma_W / sqrt(n)).
        In both, alpha_P * std_P is the standard deviation of the effective entries.
        """
        if self.param == "ntk":
            return (1.0, 1.0, 1.0)
        return (math.sqrt(self.sigma_c2 / n), math.sqrt(self.sigma_f2 / self.n_in), math.sqrt(self.sigma_w2 / n))

    def ntk_prefactor(self, n: int) -> float:
        """s in Theta = s * sum_P eta_P <dL/dP, dL/dP>: 1 for ``ntk``, 1/n for ``standard``."""
        return 1.0 if self.param == "ntk" else 1.0 / n

    def step_factor(self, n: int) -> float:
        """The factor of the base step in P <- P - eta * eta_P * step_factor * dLoss/dP: 1 (ntk) or 1/n (standard)."""
        return 1.0 if self.param == "ntk" else 1.0 / n
