"""The training claims' shared configuration: fields, their checks, and the memory of a run.

:class:`TrainConfig` holds the data, optimiser and design sizes that
:mod:`~linrnn.verify.claims.dynamics_equivalence`, :mod:`~linrnn.verify.claims.min_norm` and
:mod:`~linrnn.verify.claims.short_memory` share (the CO2 claim reads ``check_lr`` and the
memory helpers); their engine is :mod:`linrnn.verify.claims.training`.

Only the standard library is imported here (``linrnn verify train --help`` reads the
configuration dataclasses' defaults).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from linrnn.core.configure import set_fields
from linrnn.core.errors import UsageError
from linrnn.core.validate import in_open_interval, positive_int


# ------------------------------------------------------------------ validation and memory


def check_lr(lr: str | float) -> str | float:
    """``'auto'`` or a finite positive number (the base step of gradient descent)."""
    if lr == "auto":
        return lr
    try:
        v = float(lr)
    except (TypeError, ValueError):
        raise UsageError(f"lr must be 'auto' or a positive number, got {lr!r}") from None
    if isinstance(lr, bool) or not math.isfinite(v) or v <= 0:
        raise UsageError(f"lr must be 'auto' or a positive number, got {lr!r}")
    return v


def training_memory(config: Any, model: Any, widths: Any, n_seq: int | None = None) -> int:
    """Peak bytes of one training run of ``config`` at the largest of ``widths`` (:func:`linrnn.verify.train.train_bytes`)."""
    from linrnn.verify.train import train_bytes

    return train_bytes(max(int(w) for w in widths), model.n_in, model.n_out, config.seq_len,
                       config.n_seq if n_seq is None else n_seq, config.steps)


#: Bytes one per-replica value of a two-stage design costs while the claim runs: its Python float in the
#: replica's dict (with the dict's share), its float64 copy in the stacked arrays, and its place in the results
#: (JSON text) where the claim keeps per-replica data; an upper estimate.
REPLICA_VALUE_BYTES = 128


def replica_memory(config: Any, values: int, extra: int = 0) -> int:
    """Peak bytes of the per-replica values of a two-stage design: ``values`` per replica, for the pilot and the
    largest main stage (``pilot + max_replicas`` replicas, plus ``extra``) kept at once."""
    return REPLICA_VALUE_BYTES * int(values) * (int(config.pilot) + int(config.max_replicas) + int(extra))


def check_scalar_model(model: Any, claim: str) -> None:
    """The training claims use scalar sequences: n_in = n_out = 1."""
    if model.n_in != 1 or model.n_out != 1:
        raise UsageError(f"the {claim} claim trains on scalar sequences: it needs [model] n_in = 1 and n_out = 1, "
                         f"got n_in = {model.n_in}, n_out = {model.n_out}")


# ------------------------------------------------------------------ the training claims' shared fields


TEACHERS = ("decay", "spike", "oscillator")
#: The losses of :mod:`linrnn.verify.train` (``LOSSES``) and the inputs of :mod:`linrnn.verify.teachers`
#: (``INPUTS``), written here without importing NumPy (a test checks they agree).
LOSSES = ("all", "last")
INPUTS = ("white", "ar1")
#: The negative controls of the derivation (:func:`linrnn.derive.lag_formulas` ``.controls``; a test checks
#: they agree): the wrong lag weights a training claim may name in ``controls``.
CONTROLS = ("no_linear_term", "q_times_1.1")


def _finite_powers(name: str, value: float, lags: int) -> None:
    """The teacher's ``value ** j`` for j < lags must be finite float64 numbers."""
    try:
        top = abs(float(value)) ** max(lags - 1, 0)
    except OverflowError:
        top = math.inf
    if not math.isfinite(top) or top > 1e300:
        raise UsageError(f"{name} = {value!r} makes the teacher's impulse response overflow float64 within "
                         f"seq_len = {lags} lags; choose |{name}| nearer 1")


def check_data_fields(config: Any) -> None:
    """The teacher and input fields of a training configuration, checked in one place (UsageError)."""
    if config.loss not in LOSSES:
        raise UsageError(f"unknown loss {config.loss!r}; choose one of {', '.join(LOSSES)}")
    if config.teacher not in TEACHERS:
        raise UsageError(f"unknown teacher {config.teacher!r}; choose one of {', '.join(TEACHERS)}")
    if config.inputs not in INPUTS:
        raise UsageError(f"unknown inputs {config.inputs!r}; choose one of {', '.join(INPUTS)}")
    if isinstance(config.delay, bool) or not isinstance(config.delay, int) or config.delay < 0:
        raise UsageError(f"delay must be a non-negative integer, got {config.delay!r}")
    for key in ("rho", "r", "omega", "phi", "noise"):
        v = getattr(config, key)
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
            raise UsageError(f"{key} must be a finite number, got {v!r}")
    if config.noise < 0:
        raise UsageError(f"noise must be non-negative (a standard deviation), got {config.noise!r}")
    if config.teacher == "spike" and config.delay >= config.seq_len:
        raise UsageError(f"the spike delay must be an integer in 0..{config.seq_len - 1} (seq_len = {config.seq_len}), "
                         f"got {config.delay}")
    if config.teacher == "decay":
        _finite_powers("rho", config.rho, config.seq_len)
    if config.teacher == "oscillator":
        _finite_powers("r", config.r, config.seq_len)
    if config.inputs == "ar1" and not abs(config.phi) < 1:
        raise UsageError(f"the AR(1) coefficient phi must satisfy |phi| < 1 for a stationary input, got {config.phi!r}")
    unknown = [c for c in config.controls if c not in CONTROLS]
    if unknown:  # an empty list is the claim's to judge: min_norm keeps its plain control, others have none left
        raise UsageError(f"controls must name only {', '.join(CONTROLS)}, got {list(config.controls)!r}")


@dataclass(frozen=True)
class TrainConfig:
    """Data, optimiser and test sizes shared by the training claims (defaults: the dynamics claim's).

    The model (parameterization, variances, learning-rate multipliers, q) is not
    here: it is the ``[model]`` table.
    """

    loss: str = "all"
    seq_len: int = 16
    n_seq: int = 32
    teacher: str = "decay"
    rho: float = 0.8
    delay: int = 4
    r: float = 0.9
    omega: float = 0.5
    inputs: str = "white"
    phi: float = 0.0
    noise: float = 0.0
    seeds: int = 10
    steps: int = 100
    lr: str | float = "auto"
    lr_factor: float = 0.5
    alpha: float = 1e-3
    controls: tuple[str, ...] = ("no_linear_term", "q_times_1.1")
    #: the two-stage design (linrnn.verify.design): pilot replicas, bounds of the main stage, time budget
    pilot: int = 16
    min_replicas: int = 16
    max_replicas: int = 512
    budget_seconds: float | None = None

    def __post_init__(self) -> None:
        for key in ("seq_len", "n_seq", "steps", "seeds"):
            set_fields(self, **{key: positive_int(key, getattr(self, key))})
        from linrnn.verify.design import Design

        Design(pilot=self.pilot, min_replicas=self.min_replicas, max_replicas=self.max_replicas,
               budget_seconds=self.budget_seconds)
        in_open_interval("alpha", self.alpha, 0, 1)
        in_open_interval("lr_factor", self.lr_factor, 0, 2, " (2 is the stability limit)")
        set_fields(self, lr=check_lr(self.lr), controls=tuple(self.controls))
        check_data_fields(self)
