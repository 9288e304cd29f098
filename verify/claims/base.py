"""What every claim of the registry shares: the claim object, its result, and typed configuration.

A claim is a registry entry (:class:`Claim`): a name, the configuration table it
reads (``section``), the experiment it belongs to, a frozen configuration dataclass
holding its defaults (sizes, alpha, ...; never the model), and two plain functions
of its module:

* ``check(config, model)`` raises :class:`UsageError` for a configuration the claim
  cannot run (the suite calls it for every claim before running any);
* ``memory(config, model) -> int``: the peak working memory of its largest
  computation in bytes (an upper estimate, checked against the memory budget before
  any claim runs);
* ``run(config, model, *, seed, backend, dtype, progress) -> ClaimResult``: a pure
  function of (config, model, seed, backend kind, dtype). Inputs and output are
  picklable, so another process can run a claim.

``model`` is the :class:`linrnn.core.spec.ModelSpec` of the ``[model]`` table, built
once and shared by the derivation and every claim: q = sigma_W^2 is set once.
Grids that sweep q (``sigma_w2s``) are claim configuration.

:func:`configure` applies a mapping (a TOML table, command-line flags) to a
configuration dataclass: unknown keys and wrong types are a :class:`UsageError`
that names ``section.key``; values are then validated by the dataclass itself.

Only the standard library is imported here (``linrnn verify train --help`` reads the
configuration dataclasses' defaults).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from linrnn.core.configure import MAX_INT, configure, field_names  # noqa: F401  (the claims' vocabulary)
from linrnn.core.jsonclean import finite_or_none, jsonable  # noqa: F401  (re-exported: the claims use both)
from linrnn.core.errors import UsageError
from linrnn.core.outcome import CONTROL_OUTCOMES, STATISTIC_OUTCOMES, UNTESTED, claim_outcome, untested

Progress = Callable[[float, str], None]

BACKENDS = ("auto", "numpy", "cupy")


# ------------------------------------------------------------------ JSON-ready data




def errbars(values: list[Any] | None, factor: float = 2.0) -> list[Any] | None:
    """``factor`` standard errors (None stays None): the +-2 SE bars of the figures."""
    return None if values is None else [None if v is None else factor * v for v in values]


# ------------------------------------------------------------------ the result


_CONTRACT = ("id", "title", "statement", "formula", "statistic", "threshold", "verdict", "figures", "controls",
             "config", "notes", "statistic_verdict", "error", "alpha", "design")


@dataclass(frozen=True)
class ClaimResult:
    """The outcome of one claim, in the contract of ``docs/claims.md``; JSON-ready once constructed.

    ``figures`` maps a name to a figure in a kind of :mod:`linrnn.reports.figures`
    (``{"kind": ..., "title": ..., "caption": ..., ...data}``); ``controls`` are the
    negative controls (each ``{"id", "statement", "statistic", "threshold", "verdict"}``
    and optionally ``formula``); ``backend`` describes the backend that ran it;
    ``data`` holds anything else worth keeping in the results.
    """

    id: str
    title: str
    statement: str
    formula: str
    statistic: dict[str, Any]
    threshold: dict[str, Any]
    verdict: str
    figures: dict[str, Any]
    controls: list[dict[str, Any]]
    config: dict[str, Any]
    notes: list[str]
    backend: dict[str, Any] = field(default_factory=dict)
    data: dict[str, Any] = field(default_factory=dict)
    #: the claim's own test: "pass" (not refuted), "fail" (refuted at level ``alpha``) or "error"
    statistic_verdict: str = ""
    #: one sentence naming the cause when a statistic is not finite (then statistic_verdict is "error")
    error: str | None = None
    #: the stated false-failure rate of the claim's own test (probability of "fail" when the theory holds)
    alpha: float | None = None
    #: the design that sized the run: method, pilot size, sizes used, power target, sizes needed
    design: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            object.__setattr__(self, f.name, jsonable(getattr(self, f.name)))
        # controls: "rejected" / "not_rejected" / "error" (legacy "fail" = rejected, "pass" = not rejected)
        legacy = {"fail": "rejected", "pass": "not_rejected"}
        controls = [{**c, "verdict": legacy.get(c.get("verdict"), c.get("verdict"))} for c in self.controls]
        object.__setattr__(self, "controls", controls)
        stat = self.statistic_verdict or ("error" if self.error else self.verdict)
        if self.error and stat != "error":
            raise ValueError(f"claim {self.id!r}: an error sentence goes with statistic_verdict 'error'")
        if stat not in STATISTIC_OUTCOMES:
            raise ValueError(f"claim {self.id!r}: statistic_verdict must be one of {', '.join(STATISTIC_OUTCOMES)}, "
                             f"got {stat!r}")
        for c in controls:
            if c["verdict"] not in CONTROL_OUTCOMES:
                raise ValueError(f"claim {self.id!r}: control {c.get('id')!r} has verdict {c['verdict']!r}; "
                                 f"expected one of {', '.join(CONTROL_OUTCOMES)}")
        object.__setattr__(self, "statistic_verdict", stat)
        object.__setattr__(self, "verdict", claim_outcome(stat, [c["verdict"] for c in controls]))
        if untested(stat, controls) and UNTESTED + "." not in self.notes:
            object.__setattr__(self, "notes", [*self.notes, UNTESTED + "."])
        for name, fig in self.figures.items():
            if not (isinstance(fig, dict) and isinstance(fig.get("kind"), str)):
                raise ValueError(f"claim {self.id!r}: figure {name!r} names no kind of linrnn.reports.figures")
        for c in self.controls:
            missing = [k for k in ("id", "statement", "statistic", "threshold", "verdict") if k not in c]
            if missing:
                raise ValueError(f"claim {self.id!r}: a control lacks {', '.join(missing)}")

    def claim_dict(self) -> dict[str, Any]:
        """The claim as the dict of ``docs/claims.md`` (contract keys, then ``data``'s keys)."""
        return {**{k: getattr(self, k) for k in _CONTRACT}, **self.data}

    def as_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> ClaimResult:
        return cls(**dict(d))


# ------------------------------------------------------------------ the registry entry


@dataclass(frozen=True)
class Claim:
    """One entry of :data:`linrnn.verify.claims.REGISTRY`.

    ``name``: the registry key (also the cache entry and the ``only=`` name of the
    suite); ``section``: the configuration table it reads (claims of one experiment
    share it); ``experiment``: the computation it comes from (the results'
    ``experiment``); ``config_type``: its frozen configuration dataclass;
    ``run``/``check``: the functions of its module (see the module docstring).
    """

    name: str
    section: str
    experiment: str
    title: str
    config_type: type
    run: Callable[..., ClaimResult]
    check: Callable[[Any, Any], None]
    #: ``memory(config, model)``: peak bytes of the claim's largest computation, an upper estimate that grows
    #: with every size of its configuration; ``report`` and ``calibrate`` check it against their memory budget
    #: before any claim runs (required: a claim without one could exhaust the machine unchecked)
    memory: Callable[[Any, Any], int]
    #: The model family the claim belongs to (``linrnn.families``), or None for a claim of every family. A
    #: family's claim runs on that family's specification with the ``[model]`` table's parameters, whatever
    #: the ``[model]`` family is (the suite makes it: :func:`linrnn.families.claim_model`).
    family: str | None = None

    def default_config(self) -> Any:
        return self.config_type()

    def config(self, values: Mapping[str, Any] | None = None, base: Any = None) -> Any:
        """``base`` (default: the dataclass defaults) with ``values`` applied (:func:`configure`)."""
        return configure(self.config_type() if base is None else base, values or {}, self.section)


# ------------------------------------------------------------------ the claims' configuration


def result_config(model: Any, config: Any, **extra: Any) -> dict[str, Any]:
    """The ``config`` of a claim's result: the model's fields, the claim's fields, then ``extra``."""
    return {**jsonable(model), **jsonable(config), **jsonable(extra)}


# ------------------------------------------------------------------ validation helpers


def positive_int(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise UsageError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


def in_open_interval(name: str, value: float, lo: float, hi: float, why: str = "") -> float:
    v = float(value)
    if not lo < v < hi:
        raise UsageError(f"{name} must lie in ({lo:g}, {hi:g}){why}, got {value!r}")
    return v


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


def check_widths(widths: Any, name: str = "widths") -> tuple[int, ...]:
    """At least two different positive widths, sorted and without repeats."""
    try:
        ws = [int(w) for w in widths]
    except (TypeError, ValueError):
        raise UsageError(f"{name} must hold at least two different positive widths, got {widths!r}") from None
    if len(set(ws)) < 2 or min(ws) < 1 or any(int(w) != w for w in widths):
        raise UsageError(f"{name} must hold at least two different positive widths, got {widths!r}")
    return tuple(sorted(set(ws)))


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


def set_fields(obj: Any, **values: Any) -> None:
    """Assign normalised values in a frozen dataclass's ``__post_init__``."""
    for k, v in values.items():
        object.__setattr__(obj, k, v)


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
