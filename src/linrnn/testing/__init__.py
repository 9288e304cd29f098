r"""Theoretical claims in a researcher's own tests: :func:`assert_claim`, :func:`check_draw`, strategies, a pytest plugin.

::

    import linrnn
    from linrnn.testing import assert_claim, check_draw

    model = linrnn.family("diagonal", r_max=0.95, theta_max=0.5)
    assert_claim("diagonal_kernel", model)        # the claim at size "tiny": a few seconds on one core
    check_draw(my_params, model).passed           # ONE draw of my own parameters against the family's law

* :func:`assert_claim` runs a claim of the registry (:func:`linrnn.families.claims`) for
  ``model`` at a named size and raises :class:`AssertionError` carrying the claim's verdict
  in one paragraph (statistic, threshold, controls) when the theory is refuted (outcome
  ``fail``; :class:`ClaimError`, also an AssertionError, when a statistic is not finite).
  When the theory is not refuted but some negative control was not rejected (the run
  could not have seen a wrong theory: outcome ``inconclusive``) it raises
  :class:`ClaimInconclusive`, which is *not* an AssertionError: a plain pytest run
  reports it as an error, and the plugin's fixture turns it into a skip whose reason is
  the paragraph (counted apart in the plugin's summary). On ``pass`` it returns a
  :class:`ClaimCheck`.
* :func:`check_draw` (:mod:`linrnn.testing.draw`): z-scores of one user-supplied draw's
  empirical lag NTK and impulse response, and a Monte Carlo test at a stated level.
* :mod:`linrnn.testing.strategies`: Hypothesis strategies for every family's specification.
* :mod:`linrnn.testing.plugin`: the pytest plugin (entry point ``pytest11``), inactive
  unless a test uses its fixture ``linrnn_claim`` or its marker ``linrnn_claim``.

Sizes. ``"tiny"`` (``linrnn/testing/tiny.toml``) runs each supported claim in a few
seconds on one core: the Gaussian ``nngp`` and ``ntk_limit`` (one width sweep at n = 16,
32, four lags), ``finite_width`` (n = 4, 8, three lags), ``orthogonal_nngp``,
``diagonal_kernel`` and ``lru_kernel`` (n = 4, 8, four lags). The profiles of
``linrnn report`` (``"quick"``, ``"full"``) are sizes too (their tables for the claim's
section). Every size keeps the claims' designs: a pilot sizes the main stage for power
0.999 against every negative control at the claim's alpha, within the size's caps.

Calibration of ``tiny``: ``python benchmarks/calibrate_tiny.py --seeds 200`` runs each
supported claim over 200 seeds and writes its false-failure rate and each control's
power, with Clopper-Pearson intervals, to ``linrnn/testing/calibration_tiny.json``; the
plugin's summary quotes it. Measured (seeds 0-199, stated alpha 1e-3): every control
rejected at every seed (power 200/200 for each, 95% CI [0.982, 1]); false failures 0/200
for nngp, ntk_limit, orthogonal_nngp, diagonal_kernel and lru_kernel (rate below 0.0183
at 95%), and 1/200 for finite_width (seed 186, statistic 1.005), which over 1000 further
seeds had none: 1/1200, 95% CI [2.1e-5, 4.6e-3]. The README gives the table.

Seeds and alpha. ``seed=None`` derives a seed from the claim's configuration section,
the model and the size (SHA-256), so a test gives the same verdict run after run and the
claims of one sweep (``nngp``, ``ntk_limit``) share their draws; ``alpha`` (default
1e-3) is the claim's stated false-failure rate (the plugin passes each claim its share
of the session's family-wise alpha).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import time
from dataclasses import dataclass
from typing import Any

from linrnn.core.errors import UsageError

#: Loaded on first use (NumPy), so that the pytest plugin costs nothing in a session that does not use it.
_DRAW_NAMES = ("DrawCheck", "assert_draw", "check_draw", "draw_of", "to_host")


def __getattr__(name: str) -> Any:
    if name in _DRAW_NAMES:
        from linrnn.testing import draw

        return getattr(draw, name)
    raise AttributeError(f"module 'linrnn.testing' has no attribute {name!r}")

#: The claims :func:`assert_claim` runs: those with a tiny size (a few seconds on one core).
SUPPORTED: tuple[str, ...] = ("nngp", "ntk_limit", "finite_width", "orthogonal_nngp", "diagonal_kernel", "lru_kernel")
#: A claim's stated false-failure rate when none is given.
DEFAULT_ALPHA = 1e-3
TINY = "tiny"


class ClaimInconclusive(Exception):
    """The theory was not refuted, but some negative control was not rejected: the run lacked power.

    ``check`` is the :class:`ClaimCheck`; the message is its paragraph.
    """

    def __init__(self, check: ClaimCheck) -> None:
        super().__init__(check.paragraph())
        self.check = check


class ClaimError(AssertionError):
    """A statistic of the claim is not finite (an overflow, an underflow): nothing was decided; never a pass."""


@dataclass(frozen=True)
class ClaimCheck:
    """One claim run by :func:`run_claim`: the claim, the model, size, seed, alpha, the result and its seconds."""

    name: str
    model: str
    size: str
    seed: int
    alpha: float
    result: Any
    seconds: float

    @property
    def outcome(self) -> str:
        """``pass``, ``fail``, ``inconclusive`` or ``error`` (:mod:`linrnn.core.outcome`)."""
        return str(self.result.verdict)

    @property
    def control_power(self) -> list[tuple[str, str, float | None]]:
        """(id, verdict, predicted power at the sizes used) of each negative control."""
        return [(c["id"], c["verdict"], c.get("power")) for c in self.result.controls]

    def paragraph(self) -> str:
        """The claim's verdict in one paragraph: outcome, statistic, threshold, controls, alpha, how to rerun."""
        r = self.result
        stat, thr = r.statistic, r.threshold
        value = stat.get("value")
        head = {"pass": "holds", "fail": "is REFUTED", "inconclusive": "is INCONCLUSIVE",
                "error": "could not be decided (ERROR)"}[self.outcome]
        ctrls = "; ".join(
            f"{c['id']} ({c['statement']}) {c['verdict'].replace('_', ' ')}"
            + (f", predicted power {c['power']:.3g}" if isinstance(c.get("power"), (int, float)) else "")
            for c in r.controls) or "none"
        thr_value = thr.get("value")
        text = (f"Claim {self.name} ({r.title}) {head} for {self.model} at size {self.size!r}, seed {self.seed}: "
                f"{stat.get('name', 'statistic')} = {_num(value)}; threshold: {thr.get('description', '')}"
                + (f" (threshold {_num(thr_value)})" if isinstance(thr_value, (int, float))
                   and f"at most {_num(thr_value)}" not in str(thr.get("description", "")) else "")
                + f". Negative controls: {ctrls}. Stated false-failure rate alpha = {_num(r.alpha)}.")
        if r.error:
            text += f" Error: {r.error}"
        return text + (f" Rerun: linrnn.testing.assert_claim({self.name!r}, model, size={self.size!r}, "
                       f"seed={self.seed}, alpha={self.alpha!r}).")


def _num(x: Any) -> str:
    return f"{x:.4g}" if isinstance(x, (int, float)) and not isinstance(x, bool) else str(x)


# ------------------------------------------------------------------ sizes


def sizes() -> tuple[str, ...]:
    """The named sizes: ``tiny``, then the profiles of ``linrnn report``."""
    from linrnn.suite import profile_names

    return (TINY, *profile_names())


def _tiny_tables() -> dict[str, Any]:
    import importlib.resources

    from linrnn.suite import _toml

    text = (importlib.resources.files("linrnn.testing") / "tiny.toml").read_text(encoding="utf-8")
    return _toml().loads(text)


def size_table(size: str, section: str) -> dict[str, Any]:
    """The configuration table of ``section`` at ``size`` (without ``alpha``: :func:`claim_config` sets it)."""
    from linrnn.suite import load_profile

    if size not in sizes():
        raise UsageError(f"unknown size {size!r}; choose one of {', '.join(sizes())}")
    tables = _tiny_tables() if size == TINY else load_profile(size)
    table = tables.get(section, {})
    return {k: v for k, v in table.items() if k != "alpha"}


def _spec(model: Any) -> Any:
    from linrnn.core.spec import FamilySpec

    spec = getattr(model, "spec", model)
    if not isinstance(spec, FamilySpec):
        raise UsageError(f"model must be a linrnn model (linrnn.family(name, ...)) or its specification, "
                         f"got {type(model).__name__}")
    return spec


def claim_config(name: str, model: Any, size: str = TINY, alpha: float = DEFAULT_ALPHA) -> tuple[Any, Any, Any]:
    """(the registry's claim, its configuration at ``size`` stating false-failure rate ``alpha``, the spec it runs on).

    Refuses (one sentence, before any work) a claim without a tiny size, a model of
    another family than a family's claim, an ``alpha`` outside (0, 1), and a
    configuration the claim itself cannot run (its ``check``).
    """
    from linrnn.core.spec import ModelSpec
    from linrnn.families import claims

    if name not in SUPPORTED:
        raise UsageError(f"assert_claim runs the claims {', '.join(SUPPORTED)} (those with a tiny size), "
                         f"not {name!r}")
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or not 0 < alpha < 1:
        raise UsageError(f"alpha must be a number strictly between 0 and 1, got {alpha!r}")
    registry = claims()
    claim = registry[name]
    spec = _spec(model)
    if claim.family is not None and spec.family != claim.family:
        raise UsageError(f"claim {name} is a claim of the {claim.family} family, and this model is of the "
                         f"{spec.family} family")
    if claim.family is None and not isinstance(spec, ModelSpec):
        raise UsageError(f"claim {name} runs dense recurrences (the gaussian or orthogonal family), and this model "
                         f"is of the {spec.family} family")
    # the claims of one section share one computation whose alpha is family-wise over them (the [ntk] sweep
    # states alpha / 3 per claim): the section's alpha is k * alpha for a claim stating alpha
    k = sum(c.section == claim.section for c in registry.values())
    config = dataclasses.replace(claim.config(size_table(size, claim.section)), alpha=k * float(alpha))
    claim.check(config, spec)
    return claim, config, spec


def derived_seed(section: str, spec: Any, size: str) -> int:
    """The seed of ``seed=None``: SHA-256 of the section, the specification and the size, as a 31-bit integer."""
    blob = json.dumps({"section": section, "family": spec.family, "spec": spec.as_dict(), "size": size},
                      sort_keys=True, default=str)
    return int(hashlib.sha256(blob.encode()).hexdigest()[:8], 16) & 0x7FFFFFFF


def run_claim(name: str, model: Any, size: str = TINY, seed: int | None = None, *,
              alpha: float = DEFAULT_ALPHA) -> ClaimCheck:
    """Run the claim ``name`` for ``model`` at ``size`` and return its :class:`ClaimCheck` whatever the outcome."""
    from linrnn.testing.draw import describe

    claim, config, spec = claim_config(name, model, size, alpha)
    if seed is None:
        seed = derived_seed(claim.section, spec, size)
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise UsageError(f"seed must be a non-negative integer or None, got {seed!r}")
    start = time.perf_counter()
    result = claim.run(config, spec, seed=seed, backend="numpy", dtype="float64")
    seconds = time.perf_counter() - start
    if result.alpha is not None and result.alpha > float(alpha) * (1 + 1e-9):
        raise RuntimeError(f"claim {name} stated alpha {result.alpha} above the {alpha} asked (a bug)")
    return ClaimCheck(name=name, model=describe(spec), size=size, seed=seed, alpha=float(alpha), result=result,
                      seconds=seconds)


def assert_claim(name: str, model: Any, size: str = TINY, seed: int | None = None, *,
                 alpha: float = DEFAULT_ALPHA) -> ClaimCheck:
    """Assert the registry claim ``name`` for ``model`` (``linrnn.family(...)`` or its specification).

    ``size``: ``"tiny"`` (a few seconds on one core) or a profile name; ``seed``: None
    derives one from the claim's section, the model and the size (:func:`derived_seed`);
    ``alpha``: the claim's false-failure rate. Raises :class:`AssertionError` with the
    verdict paragraph when the theory is refuted, :class:`ClaimError` (an AssertionError)
    when a statistic is not finite, :class:`ClaimInconclusive` when a control was not
    rejected; returns the :class:`ClaimCheck` on a pass. Bad input is a
    :class:`linrnn.core.errors.UsageError` (one sentence) before any draw.
    """
    check = run_claim(name, model, size, seed, alpha=alpha)
    if check.outcome == "fail":
        raise AssertionError(check.paragraph())
    if check.outcome == "error":
        raise ClaimError(check.paragraph())
    if check.outcome == "inconclusive":
        raise ClaimInconclusive(check)
    return check


def describe_model(model: Any) -> str:
    """``family(field=value, ...)``: a model or specification in one phrase."""
    from linrnn.testing.draw import describe

    return describe(_spec(model))


def calibration() -> dict[str, Any] | None:
    """The committed calibration of the tiny size (``linrnn/testing/calibration_tiny.json``), or None."""
    import importlib.resources

    path = importlib.resources.files("linrnn.testing") / "calibration_tiny.json"
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (FileNotFoundError, ValueError):
        return None


def bonferroni(family_alpha: float, claims: int) -> float:
    """Each of ``claims`` claims' alpha when they share ``family_alpha`` (the union bound)."""
    return family_alpha / max(1, claims) if math.isfinite(family_alpha) else family_alpha


__all__ = ["DEFAULT_ALPHA", "SUPPORTED", "ClaimCheck", "ClaimError", "ClaimInconclusive", "DrawCheck",
           "assert_claim", "assert_draw", "bonferroni", "calibration", "check_draw", "claim_config",
           "derived_seed", "describe_model", "draw_of", "run_claim", "size_table", "sizes", "to_host"]
