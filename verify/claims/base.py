"""The claim contract: the registry entry (:class:`Claim`), its result (:class:`ClaimResult`), its progress callback.

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

This module holds the contract only. The tools the claims share live where they
belong: :func:`linrnn.core.configure.configure` applies a table to a configuration
dataclass (``set_fields`` normalises its values), :mod:`linrnn.core.validate` checks
numbers and widths, :mod:`linrnn.core.jsonclean` cleans JSON, and the training claims'
shared fields are :mod:`linrnn.verify.claims.training_config`.

Only the standard library is imported here (``linrnn verify train --help`` reads the
configuration dataclasses' defaults).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from linrnn.core.configure import configure
from linrnn.core.jsonclean import jsonable
from linrnn.core.outcome import CONTROL_OUTCOMES, STATISTIC_OUTCOMES, UNTESTED, claim_outcome, untested

#: ``progress(amount, note)``: the work done since the last call, and a short note.
Progress = Callable[[float, str], None]


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


# ------------------------------------------------------------------ the result's configuration


def result_config(model: Any, config: Any, **extra: Any) -> dict[str, Any]:
    """The ``config`` of a claim's result: the model's fields, the claim's fields, then ``extra``."""
    return {**jsonable(model), **jsonable(config), **jsonable(extra)}
