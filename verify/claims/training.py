"""Shared machinery of the training claims (``linrnn.verify.claims``): data, draws, training, checks.

The training claims of the implicit-bias theory (Emami et al., "Implicit Bias of
Linear RNNs", ICML 2021) are registry entries, one module each:
:mod:`linrnn.verify.claims.dynamics_equivalence`, :mod:`~linrnn.verify.claims.min_norm`,
:mod:`~linrnn.verify.claims.short_memory` and :mod:`~linrnn.verify.claims.co2`. This
module holds what they share:

* data and draws from a configuration (:class:`linrnn.verify.claims.training_config.TrainConfig`
  fields) and a seed: :func:`make_data` (teacher and inputs, data stream ``stream``),
  :func:`draw_rnn` (raw C, F, W seeded from (seed, n, replica)), :func:`reseeded`;
* the step (:func:`choose_lr`) and the paired RNN/SCNN training (:func:`train_pair`);
* the group-sequential design and its tests (:class:`TTest`, a one-sample t-test on per-replica
  scalars with its exact noncentral-t power and size; :func:`run_design`: pilot -> sizes
  for power 0.999 -> fresh main-stage replicas -> a further stage where a control is not
  rejected, every look at alpha / looks; :func:`control_entry`: a control's
  outcome rejected / not_rejected / error with its predicted power and the size that
  would decide it);
* the wrong lag weights of the negative controls (:func:`wrong_weights`), the
  closed-form expected test loss of the SCNN over the NNGP initialisation
  (:func:`expected_test_loss`) and the distance-against-width figure
  (:func:`distance_figure`).

The model (parameterization, variances, learning-rate multipliers, q) is a model
specification passed whole; the seed is an argument. Results are deterministic on
one backend.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from linrnn.core.errors import UsageError
from linrnn.verify.backend import Backend, get_backend
from linrnn.core.figdata import errbars
from linrnn.verify.design import FURTHER_OFFSET

Progress = Callable[[float, str], None]


# ----------------------------------------------------------------- data and draws


def resolve_backend(backend: Backend | str | None, seed: int | None = 0, dtype: str = "float64") -> Backend:
    """A :class:`Backend` from a backend or its name (``None`` means NumPy)."""
    if isinstance(backend, Backend):
        return backend
    return get_backend(backend or "numpy", seed=seed, dtype=dtype)


def reseeded(backend: Backend, *key: int) -> Backend:
    """A fresh backend of the same kind whose generator is seeded from ``key`` (SeedSequence)."""
    seed = int(np.random.SeedSequence([int(k) for k in key]).generate_state(1)[0])
    return get_backend(backend.name, seed=seed, dtype=backend.dtype_name)


def teacher_of(config: Any) -> np.ndarray:
    """The teacher impulse response (T, 1, 1) named by ``config.teacher`` with its options."""
    from linrnn.verify.teachers import teacher_impulse

    opts = {"decay": {"rho": config.rho}, "spike": {"delay": config.delay},
            "oscillator": {"r": config.r, "omega": config.omega}}
    if config.teacher not in opts:
        raise UsageError(f"unknown teacher {config.teacher!r}; choose one of {', '.join(opts)}")
    return teacher_impulse(config.teacher, config.seq_len, **opts[config.teacher])


def make_data(config: Any, backend: Backend, seed: int, n_seq: int | None = None,
              stream: int = 0) -> tuple[Any, Any, np.ndarray]:
    """(x, y, L*) from the configured teacher and inputs; data stream ``stream`` of the seed."""
    from linrnn.verify.teachers import make_dataset

    teacher = teacher_of(config)
    b = reseeded(backend, seed, 1, stream)
    x, y = make_dataset(teacher, n_seq or config.n_seq, inputs=config.inputs, phi=config.phi,
                        noise_std=config.noise, backend=b)
    return x, y, teacher


def choose_lr(config: Any, corr: Any, spec: Any, draws: Any = None, guard: Any = None) -> float:
    """The base step: ``lr_factor`` x :func:`linrnn.verify.scnn.auto_lr_rnn` (``lr = 'auto'``) or the given float.

    With ``draws`` (the initial points to be trained) the automatic step comes from their
    finite-width Gauss-Newton curvature; without, from the wide limit's lag weights.
    ``guard`` (a sweep's pilot draws at every width, :func:`guard_draws`): the wide limit's
    step is kept while every guard draw is inside its linear stability limit with headroom
    (lr mu_max < 2 / GUARD_HEADROOM for each draw's own finite-width curvature), and is
    capped at that limit otherwise (:func:`guarded_step`): at long sequences or q >= 1 the
    limit's step leaves the linear regime of some draws at finite width.
    A given float is never changed.
    """
    from linrnn.verify.claims.training_config import check_lr
    from linrnn.verify.scnn import auto_lr_rnn

    if config.lr != "auto":
        return float(check_lr(config.lr))
    if draws is not None:
        return float(config.lr_factor) * auto_lr_rnn(corr, spec, draws)
    limit = float(config.lr_factor) * auto_lr_rnn(corr, spec)
    if guard is None:
        return limit
    return guarded_step(limit, corr, guard)[0]


def guarded_step(limit: float, corr: Any, draws: Any) -> tuple[float, float]:
    """(step, mu_max): the wide limit's step ``limit``, capped at ``2 / (GUARD_HEADROOM mu_max)`` with mu_max the
    draws' largest finite-width curvature (:func:`linrnn.verify.curvature.rnn_curvature`).

    The headroom is for the replicas the guard did not see: their curvatures scatter
    around the guards' (a maximum over :data:`GUARD_DRAWS` draws per width), and a replica
    beyond its own linear stability limit leaves the kernel regime the claims compare
    with (or diverges, leaving the claim without a finite statistic)."""
    from linrnn.verify.curvature import rnn_curvature

    mu = max(rnn_curvature(d, corr).mu_max for d in draws)
    return min(limit, 2.0 / (GUARD_HEADROOM * mu)), mu


#: How many initial points guard a sweep's automatic step, and the headroom their largest curvature must leave.
GUARD_DRAWS = 16
GUARD_HEADROOM = 1.25


def guard_draws(seed: int, spec: Any, widths: Sequence[int], backend: Backend) -> list[Any]:
    """The initial points that guard a sweep's automatic step: at each of ``widths``, the replicas
    r = 0..GUARD_DRAWS-1 of the pilot (index :data:`PILOT_OFFSET` + r), the same draws the pilot trains where it
    has that many. Every width: the curvature's tail is heavy at long T (a draw whose W has a spectral
    radius near or above 1), and the most curved draw need not be at the smallest width."""
    return [draw_rnn(seed, spec, int(n), PILOT_OFFSET + r, backend) for n in widths for r in range(GUARD_DRAWS)]


def draw_rnn(seed: int, spec: Any, n: int, replica: int, backend: Backend) -> Any:
    """Replica ``replica`` of ``spec`` at width n (an RNNDraw of host arrays), seeded from (seed, n, replica)."""
    from linrnn.verify.sample import RNNDraw, sample_rnn

    b = reseeded(backend, seed, 2, n, replica)
    d = sample_rnn(b, spec, n)
    return RNNDraw(b.to_numpy(d.W), b.to_numpy(d.F), b.to_numpy(d.C), spec)


def train_pair(draw: Any, corr: Any, lr: float, steps: int, lam: np.ndarray) -> tuple[np.ndarray, np.ndarray, Any]:
    """Train the RNN ``draw`` and the SCNN (lag weights ``lam``) from the RNN's L(0): (impulse, scnn, TrainResult)."""
    from linrnn.verify.scnn import scnn_trajectory
    from linrnn.verify.train import train_rnn

    res = train_rnn(draw, None, None, loss=corr.loss, lr=lr, steps=steps, corr=corr)
    res.raise_if_diverged()
    assert res.impulse is not None
    scnn = scnn_trajectory(res.impulse[0], corr, lam, lr=lr, steps=steps)
    return res.impulse, scnn, res


def distinct_controls(truth: np.ndarray, candidates: Mapping[str, np.ndarray], *,
                      up_to_scale: bool = False) -> dict[str, np.ndarray]:
    """The candidate lag weights that make a control: those that differ from ``truth`` (:mod:`linrnn.core.outcome`).

    Equal means equal to relative 1e-12 per lag; with ``up_to_scale``, also c * truth for
    any c (for a claim whose prediction does not change when every lag weight is scaled,
    as the lambda-weighted min-norm interpolant does not: such a control is no control).
    """
    t = np.asarray(truth, dtype=np.float64)
    out = {}
    for name, arr in candidates.items():
        a = np.asarray(arr, dtype=np.float64)
        scale = float(np.dot(a, t) / np.dot(t, t)) if up_to_scale and np.dot(t, t) > 0 else 1.0
        if not np.allclose(a, scale * t, rtol=1e-12, atol=0.0):
            out[name] = a
    return out


def wrong_weights(spec: Any, lags: int, truth: np.ndarray, names: Sequence[str] | None = None, *,
                  up_to_scale: bool = False) -> dict[str, np.ndarray]:
    """The lag weights of the derivation's negative controls ``names`` (all by default) that differ from the truth
    (:func:`distinct_controls`)."""
    from linrnn.derive import evaluate, lag_formulas

    forms = lag_formulas(spec.param, spec.derivation_law()).controls
    names = list(forms) if names is None else list(names)
    unknown = sorted(set(names) - set(forms))
    if unknown:
        raise UsageError(f"unknown control {unknown[0]!r}; choose from {', '.join(forms)}")
    cands = {name: np.asarray(evaluate(forms[name], spec, lags), dtype=np.float64) for name in names}
    return distinct_controls(truth, cands, up_to_scale=up_to_scale)


def require_weight_controls(model: Any, seq_len: int, names: Sequence[str], section: str, *,
                            qs: Sequence[float] | None = None, plain: bool = False, up_to_scale: bool = False) -> None:
    """Refuse (:class:`UsageError`, before any work) a training claim none of whose controls differs from the theory.

    The candidates are the lag weights of the controls ``names`` (and, with ``plain``, the
    plain weights lambda_j = 1 of an unweighted interpolant) at every q of ``qs`` (default:
    the model's); a candidate is a control if it differs from the derived weights at some q
    (:func:`distinct_controls`, ``up_to_scale`` as there). The sentence names the setting
    and the controls of the derivation that would test the claim.
    """
    from linrnn.core.outcome import untestable
    from linrnn.derive import lag_formulas, weights

    qs = [model.sigma_w2] if qs is None else list(qs)

    def differing(cands: Sequence[str], with_plain: bool) -> set[str]:
        found: set[str] = set()
        for q in qs:
            spec = model.replace(sigma_w2=q)
            lam = np.asarray(weights(spec, seq_len), dtype=np.float64)
            found |= set(wrong_weights(spec, seq_len, lam, cands, up_to_scale=up_to_scale))
            if with_plain:
                found |= set(distinct_controls(lam, {"plain_min_norm": np.ones(seq_len)}, up_to_scale=up_to_scale))
        return found

    if differing(names, plain):
        return
    others = [k for k in sorted(differing(list(lag_formulas(model.param, model.derivation_law()).controls), False)) if k not in names]
    setting = f"[{section}] controls = {list(names)}"
    remedy = (f"add {' or '.join(others)} to [{section}] controls" if others else
              "no control of the derivation differs from the derived lag weights for this model")
    if not names and not plain:
        raise untestable(setting, "the lag weights", "no negative control is named", remedy)
    every = ", ".join((["plain_min_norm"] if plain else []) + list(names))
    raise untestable(setting, "the lag weights",
                     f"every negative control ({every}) equals the derived lag weights"
                     + (" up to a scale, which leaves the interpolant unchanged," if up_to_scale else "")
                     + f" for this model (lr_w = {model.lr_w:g})" + (" at every q asked" if len(qs) > 1 else ""),
                     remedy)


def stable(corr: Any, lam: np.ndarray, lr: float) -> bool:
    """Whether gradient descent with step ``lr`` on the SCNN with lag weights ``lam`` is stable (eta mu_max < 2)."""
    from linrnn.verify.scnn import LagCurvature

    return lr * LagCurvature(corr, lam).mu_max < 2.0


def tick(progress: Progress | None, amount: float, note: str) -> None:
    if progress is not None:
        progress(amount, note)


# ----------------------------------------------------------------- shared figures and theory


def distance_figure(fig: dict[str, Any]) -> dict[str, Any]:
    """Kind ``lines`` from the distance-against-width data of the dynamics and min-norm claims.

    ``fig`` holds ``widths``, ``distance_mean``, ``distance_se``, optionally ``controls``
    ({name: {mean, se}}) and ``fit`` ({slope, ci}); the data are kept in the figure.
    """
    series = [{"label": "derived lag weights (bars: +-2 SE)", "x": fig["widths"], "y": fig["distance_mean"],
               "yerr": errbars(fig["distance_se"]), "style": "points"}]
    for k, v in (fig.get("controls") or {}).items():
        series.append({"label": f"control {k}", "x": fig["widths"], "y": v["mean"], "yerr": errbars(v.get("se")),
                       "style": "points"})
    slope = (fig.get("fit") or {}).get("slope")
    return {**fig, "kind": "lines", "title": "Distance to the theory against the width",
            "caption": "Mean relative distance between the trained RNN and the prediction of the theory over "
                       "the seeds, against the width, log-log axes; derived lag weights against the wrong "
                       "weights of the negative controls (bars: +-2 standard errors)"
                       + (f"; fitted slope {slope:.3f}." if isinstance(slope, float) else "."),
            "xlabel": "width n (hidden units)", "ylabel": "relative distance (dimensionless)",
            "xscale": "log", "yscale": "log", "series": series}


def expected_test_loss(
    corr_train: Any, corr_test: Any, lam: np.ndarray, nngp: np.ndarray, lr: float, steps: int
) -> float:
    """E over L(0) ~ N(0, diag(nngp)) of the test loss of the SCNN after ``steps`` GD steps.

    In matrix layout (rows p = outputs, columns (j, a)), L(K) = L(0) A + R_yx P with
    P = D^{1/2} Q diag(eta phi_K(eta mu)) Q^T D^{1/2} (see :mod:`linrnn.verify.scnn`) and
    A = I - R_xx P. With the test quadratic Loss_t(L) = 1/2 r_yy - <L, R^t_yx> +
    1/2 tr(L R^t_xx L^T) and independent rows of covariance S = diag(nngp_j (x) 1_{n_x}):

        E Loss_t = Loss_t(R_yx P) + (n_y / 2) tr(A R^t_xx A^T S).
    """
    from linrnn.verify.backend import array_namespace
    from linrnn.verify.scnn import LagCurvature, gd_filter

    curv = LagCurvature(corr_train, lam)
    be = corr_train.backend
    xp = array_namespace(curv.mu)
    phi = gd_filter(xp, lr * curv.mu, xp.asarray(np.array([steps], dtype=np.int64)))[0]
    qs = curv.q * curv.s[:, None]
    P = be.to_numpy((qs * (lr * phi)[None, :]) @ qs.T)
    rxx, ryx = be.to_numpy(corr_train.rxx), be.to_numpy(corr_train.ryx)
    rt, yt = be.to_numpy(corr_test.rxx), be.to_numpy(corr_test.ryx)
    m = ryx @ P
    mean_loss = 0.5 * corr_test.ryy - float(np.sum(m * yt)) + 0.5 * float(np.sum(m * (m @ rt)))
    A = np.eye(P.shape[0]) - rxx @ P
    s = np.repeat(np.asarray(nngp, dtype=np.float64), corr_train.n_x)
    var = 0.5 * corr_train.n_y * float(np.trace(A @ rt @ A.T * s[:, None]))
    return mean_loss + var


# ----------------------------------------------------------------- the design of the training claims
#
# Every training claim is a set of one-sample t-tests on per-replica scalars (a replica
# is one independent draw of the RNN at each width the claim uses, trained, with every
# candidate theory evaluated on the same trajectories). The claim's own tests share its
# alpha (Bonferroni); each negative control is a test of the same kind whose rejection is
# wanted. The sizes come from verify/design.py's group-sequential design: a pilot estimates
# each control's effect per replica d (its sd inflated to the upper chi-square bound); the
# main stage draws fresh replicas, as many as the smallest R at which a t-test of level
# ``level`` rejects with probability ``power`` under the noncentral t with noncentrality
# sqrt(R) d (the exact power of the t-test for normal replicas, in place of design.py's
# normal approximation: at the few tens of replicas used the difference matters); where a
# control is still not rejected, a further stage of fresh replicas, sized the same way on
# every replica drawn so far, is tested alone. Every test runs at level / looks.

#: Offset of the pilot's replica indices: the pilot's draws never coincide with the main stage's.
PILOT_OFFSET = 1_000_000


@dataclass(frozen=True)
class TTest:
    """A one-sample t-test on the per-replica values ``key``: H0 mean = ``null`` (``side`` two)
    or the one-sided H0 mean >= null (``side`` "less": rejected when the mean is significantly
    below) / mean <= null ("greater"), at level ``level``."""

    key: str
    null: float
    side: str
    level: float

    def crit(self, replicas: int) -> float:
        from linrnn.verify.stats import t_isf

        p = self.level / 2 if self.side == "two" else self.level
        return t_isf(p, max(int(replicas) - 1, 1))

    def t(self, values: np.ndarray) -> tuple[float, float, float]:
        """(mean, sd, t) of the values against ``null``; t is +-inf for a zero sd and NaN for non-finite values."""
        v = np.asarray(values, dtype=np.float64)
        mean = float(v.mean())
        sd = float(v.std(ddof=1)) if v.size > 1 else math.nan
        if not (math.isfinite(mean) and math.isfinite(sd)):
            return mean, sd, math.nan
        diff = mean - self.null
        if sd == 0:
            return mean, sd, (0.0 if diff == 0 else math.copysign(math.inf, diff))
        return mean, sd, diff / (sd / math.sqrt(v.size))

    def rejects(self, t: float, replicas: int) -> bool:
        c = self.crit(replicas)
        if self.side == "two":
            return abs(t) > c
        return t < -c if self.side == "less" else t > c

    def effect(self, mean: float, sd: float) -> float:
        """Standardized effect per replica in the rejecting direction (negative: the data lean the other way)."""
        if not (math.isfinite(mean) and math.isfinite(sd)) or sd <= 0:
            return math.nan if not math.isfinite(mean) else (math.inf if mean != self.null else 0.0)
        diff = (mean - self.null) / sd
        return abs(diff) if self.side == "two" else (-diff if self.side == "less" else diff)

    def power(self, effect: float, replicas: int) -> float:
        """P(reject) at ``replicas`` for the standardized effect ``effect`` (noncentral t)."""
        from scipy import stats

        if not math.isfinite(effect):
            return 1.0 if effect == math.inf else 0.0
        R = int(replicas)
        if R < 2:
            return 0.0
        c, nc = self.crit(R), math.sqrt(R) * effect
        p = float(stats.nct.sf(c, R - 1, nc))
        if not math.isfinite(p):  # scipy's nct can return NaN far in a tail: the normal limit there
            p = float(stats.norm.sf(c - nc))
        if self.side == "two":
            lo = float(stats.nct.cdf(-c, R - 1, nc))
            p += lo if math.isfinite(lo) else float(stats.norm.cdf(-c - nc))
        return min(1.0, p)

    def needed(self, effect: float, power: float, limit: int = 1 << 20) -> float:
        """Smallest R >= 2 with power(effect, R) >= power; inf if even ``limit`` replicas do not reach it."""
        if not (math.isfinite(effect) or effect == math.inf) or effect <= 0:
            return math.inf
        if effect == math.inf:
            return 2.0
        if self.power(effect, limit) < power:
            return math.inf
        lo, hi = 1, 2
        while self.power(effect, hi) < power:
            lo, hi = hi, hi * 2
        while hi - lo > 1:
            mid = (lo + hi) // 2
            lo, hi = (mid, hi) if self.power(effect, mid) < power else (lo, mid)
        return float(hi)


def check_design(config: Any) -> Any:
    """The :class:`linrnn.verify.design.Design` of a training claim's configuration (UsageError if invalid)."""
    from linrnn.verify.design import Design

    return Design(pilot=config.pilot, min_replicas=config.min_replicas, max_replicas=config.max_replicas,
                  budget_seconds=config.budget_seconds)


def stack(reps: Sequence[dict[str, float]]) -> dict[str, np.ndarray]:
    keys = reps[0].keys()
    return {k: np.array([r[k] for r in reps], dtype=np.float64) for k in keys}


# a further stage's replica indices start at s x FURTHER_OFFSET (verify.design), above the pilot's
# (the claims treat indices >= PILOT_OFFSET as not the main stage's)
assert FURTHER_OFFSET >= 2 * PILOT_OFFSET


@dataclass
class Staged:
    """What :func:`run_design` drew and decided: the stages, the tests at the per-look level, the design record."""

    #: the last stage's per-replica values: the claim's own tests are decided on them
    values: dict[str, np.ndarray]
    record: dict[str, Any]
    #: the claim's own tests and the controls' tests at the per-look level (alpha / looks)
    own: dict[str, TTest]
    controls: dict[str, Any]
    stages: Any  # linrnn.verify.design.Stages

    def values_for(self, control: str) -> dict[str, np.ndarray]:
        """The values of the stage that decides ``control`` (its first rejection, else the last stage)."""
        return self.stages.sample_for(control)


def _per_look(tests: Any, share: float) -> Any:
    from dataclasses import replace

    if isinstance(tests, (tuple, list)):
        return tuple(replace(t, level=t.level * share) for t in tests)
    return replace(tests, level=tests.level * share)


def run_design(
    replica: Callable[[int], dict[str, float]],
    controls: dict[str, Any],
    config: Any,
    progress: Progress | None = None,
    own: dict[str, TTest] | None = None,
) -> Staged:
    """Pilot, size, main stage, and a further stage where the main stage falls short (the group-sequential design).

    ``replica(index)`` returns the scalars of one independent replica (pilot indices are
    offset by :data:`PILOT_OFFSET`, a further stage's by :data:`FURTHER_OFFSET`). ``own``:
    the claim's own tests; ``controls``: a control maps to one :class:`TTest` or to a tuple
    of them: then the pilot picks the member that needs the fewest replicas, and that
    member alone decides the control (``decisive_test``). Every test is run at the
    per-look level, its level times ``1 / looks`` (Bonferroni over the looks of
    :func:`linrnn.verify.design.sequential_stages`); the tests returned in
    :class:`Staged` carry it. The main stage uses R = max(min_replicas, needed over the
    controls) replicas, capped by max_replicas and by budget_seconds at the pilot's cost
    per replica (the only input that is not a function of the configuration and seed:
    with a budget, the size may depend on the machine's speed; the record says so). When
    the claim's own tests pass there but a control is not rejected, a further stage of
    fresh replicas is sized from every replica drawn so far (pilot and stages, the sd
    at its upper 95% bound) and tested alone.
    """
    import time

    from linrnn.verify.design import sd_upper, sequential_stages, Look

    design = check_design(config)
    share = design.alpha_share
    own = {k: _per_look(t, share) for k, t in (own or {}).items()}
    controls = {k: _per_look(t, share) for k, t in controls.items()}
    t0 = time.perf_counter()
    pilot = stack([replica(PILOT_OFFSET + r) for r in range(design.pilot)])
    pilot_seconds = time.perf_counter() - t0
    per_rep = pilot_seconds / design.pilot
    effects, needed, chosen = {}, {}, {}
    for name, tests in controls.items():
        best = (math.inf, math.nan, 0)
        for i, test in enumerate(tests if isinstance(tests, (tuple, list)) else (tests,)):
            v = pilot[test.key]
            mean, sd = float(np.mean(v)), float(np.std(v, ddof=1))
            d = test.effect(mean, sd_upper(sd, design.pilot - 1)) if math.isfinite(sd) else math.nan
            need = test.needed(d, design.power, design.max_replicas * 64) if (math.isfinite(d) or d == math.inf) \
                else math.inf
            if need < best[0] or (i == 0 and math.isinf(need)):
                best = (need, d, i)
        needed[name], effects[name], chosen[name] = best
    want = max([design.min_replicas, *[v for v in needed.values() if math.isfinite(v)]])
    pilot_finite = all(bool(np.all(np.isfinite(v))) for v in pilot.values())
    if any(math.isinf(v) for v in needed.values()) and pilot_finite:
        want = design.max_replicas
    size, capped = int(want), None
    if size >= design.max_replicas and any(v > design.max_replicas for v in needed.values()):
        size, capped = design.max_replicas, "max_replicas"
    elif size > design.max_replicas:
        size, capped = design.max_replicas, "max_replicas"
    if design.budget_seconds is not None and per_rep > 0:
        affordable = max(2, int((design.budget_seconds - per_rep * design.pilot) / per_rep))
        if affordable < size:
            size, capped = affordable, "budget_seconds"
    if not pilot_finite:  # a diverging or degenerate replica: nothing to size; the main stage reports the error
        size, capped = design.min_replicas, "pilot_not_finite"

    decisive = {k: (t[chosen[k]] if isinstance(t, (tuple, list)) else t) for k, t in controls.items()}
    seen = [pilot]

    def draw(stage: int, k: int) -> dict[str, np.ndarray]:
        base = stage * FURTHER_OFFSET
        return stack([replica(base + r) for r in range(k)])

    def look(values: dict[str, np.ndarray], stage: int) -> Look:
        seen.append(values)
        own_s = [t_summary(t, values[t.key], design.power) for t in own.values()]
        outcome = ("error" if not all(s["finite"] for s in own_s) else
                   "fail" if any(s["rejected"] for s in own_s) else "pass")
        rejected = {k: t_summary(t, values[t.key], design.power)["rejected"] for k, t in decisive.items()}

        def need(name: str, power: float) -> float:  # sized on every replica drawn so far
            t = decisive[name]
            v = np.concatenate([s[t.key] for s in seen])
            if not np.all(np.isfinite(v)):
                return math.inf
            d = t.effect(float(np.mean(v)), sd_upper(float(np.std(v, ddof=1)), v.size - 1))
            return t.needed(d, power, design.max_replicas * 64) if (math.isfinite(d) or d == math.inf) else math.inf

        return Look(outcome, rejected, need)

    stages = sequential_stages(draw, look, size, design, list(controls), seconds_spent=pilot_seconds)
    last = stages.record[-1]["replicas"]
    record = {
        "method": (f"group-sequential: a pilot of independent replicas estimates each control's effect per replica "
                   f"(sd at its upper 95% chi-square bound); the main stage draws fresh replicas, the fewest at "
                   f"which every control's t-test rejects with the target power (noncentral t), within "
                   f"[min_replicas, max_replicas] and budget_seconds; where the claim's own tests pass but a "
                   f"control is not rejected, a further stage of fresh replicas (up to {design.looks} looks), sized "
                   f"on every replica drawn so far, is tested alone; every look at alpha / {design.looks} "
                   f"(Bonferroni), a control decided by its first rejection"),
        "pilot": design.pilot, "replicas": last, "main_replicas": size, "min_replicas": design.min_replicas,
        "max_replicas": design.max_replicas, "budget_seconds": design.budget_seconds, "capped_by": capped,
        "power_target": design.power, "pilot_effects": {k: finite_or_none_(v) for k, v in effects.items()},
        "needed": {k: (None if math.isinf(v) else int(v)) for k, v in needed.items()},
        "decisive_test": chosen,
        "looks": design.looks, "alpha_share_per_look": share,
        "alpha_per_look": float(config.alpha) * share,
        "replicas_total": design.pilot + sum(r["replicas"] for r in stages.record),
        **stages.as_dict(),
    }
    return Staged(stages.last, record, own, controls, stages)


def finite_or_none_(v: float) -> float | None:
    return float(v) if math.isfinite(v) else None


def t_summary(test: TTest, values: np.ndarray, power: float) -> dict[str, Any]:
    """Mean, sd, t, critical value, rejection, and the replicas the main stage's own effect says would decide it."""
    R = int(np.asarray(values).size)
    mean, sd, t = test.t(values)
    crit = test.crit(R)
    d = test.effect(mean, sd)
    return {"mean": mean, "sd": sd, "t": t, "crit": crit, "replicas": R,
            "rejected": bool(math.isfinite(t) and test.rejects(t, R)) if not math.isinf(t) else test.rejects(t, R),
            "finite": math.isfinite(mean) and math.isfinite(sd),
            "effect": d, "needed": test.needed(d, power) if (math.isfinite(d) and d > 0) else math.inf}


def control_entry(
    cid: str, statement: str, test: TTest, values: np.ndarray, design: dict[str, Any], stat_name: str,
    cause: str,
) -> dict[str, Any]:
    """A control of the results: rejected / not_rejected / error, with its predicted power and the size that would decide it."""
    s = t_summary(test, values, design["power_target"])
    pilot_d = design["pilot_effects"].get(cid)
    power = test.power(pilot_d, s["replicas"]) if pilot_d is not None else None
    side = {"two": "two-sided", "less": "one-sided (rejects a mean below)", "greater": "one-sided (rejects a mean above)"}
    entry: dict[str, Any] = {
        "id": cid, "statement": statement,
        "statistic": {"name": stat_name, "value": s["t"] if math.isfinite(s["t"]) else None, "mean": s["mean"],
                      "sd": s["sd"], "replicas": s["replicas"]},
        "threshold": {"description": f"{side[test.side]} t-test of mean = {test.null:g} at level {test.level:.3g} "
                                     f"({s['replicas'] - 1} dof): |t| or t beyond {s['crit']:.3g}",
                      "value": s["crit"]},
        "power": power, "needed_replicas": design["needed"].get(cid),
    }
    if "decided_at_stage" in design:
        entry["statistic"]["stage"] = design["decided_at_stage"].get(cid)
    if not s["finite"]:
        entry.update(verdict="error", error=cause)
    elif s["rejected"]:
        entry["verdict"] = "rejected"
    else:
        entry["verdict"] = "not_rejected"
        entry["decide_with"] = (None if math.isinf(s["needed"]) else int(s["needed"]))
        entry["note"] = ("not rejected at this size; the main stage's effect says "
                         + (f"{int(s['needed'])} replicas would reject it with power {design['power_target']:g}"
                            if math.isfinite(s["needed"]) else "no size would reject it (no effect in its direction)"))
    # the same facts inside the statistic, which every consumer of the results keeps
    entry["statistic"].update(power=power, needed_replicas=entry["needed_replicas"],
                              decide_with=entry.get("decide_with"))
    return entry


# ----------------------------------------------------------------- typed results (what verify train prints)
#
# A training claim's ``run`` returns its ClaimResult (the registry's contract); its ``run_table`` returns one of
# the objects below, made from the same values as the result's figures, with the result itself as ``claim``.
# ``linrnn verify train`` prints them (linrnn.train_cli.TablePrinter, one method per type) and reads their
# fields, never the keys of the figures.


@dataclass(frozen=True)
class ControlLine:
    """A negative control as a table shows it: its id, verdict (rejected / not_rejected / error), the power the
    pilot predicted at the size used (None without one) and, when not rejected, the replicas that would decide it."""

    id: str
    verdict: str
    power: float | None
    decide_with: int | None = None

    @classmethod
    def of(cls, entry: Mapping[str, Any]) -> ControlLine:
        """From a control of the claim's result (:func:`control_entry` or a claim's own)."""
        return cls(entry["id"], entry["verdict"], entry.get("power"), entry.get("decide_with"))


@dataclass(frozen=True)
class DesignLine:
    """The group-sequential design a table states: pilot replicas, the replicas of the deciding stage and of each
    stage, the power target, the cap that bound the main stage (None if none) and the number of looks."""

    pilot: int
    #: replicas of the deciding (last) stage
    replicas: int
    stages: tuple[int, ...]
    power_target: float
    capped_by: str | None
    looks: int | None

    @classmethod
    def of(cls, record: Mapping[str, Any]) -> DesignLine:
        """From the design record of :func:`run_design` (``Staged.record``)."""
        stages = tuple(st["replicas"] for st in record.get("stages") or []) or (record.get("replicas"),)
        return cls(record.get("pilot"), record.get("replicas"), stages, record.get("power_target"),
                   record.get("capped_by"), record.get("looks"))


@dataclass(frozen=True)
class DistanceSweep:
    """What a width-sweep distance claim (``dynamics_equivalence``, a family's training claim) reads off its design:
    the deciding stage's per-replica values ``main`` and ``design`` record, its replicas ``R``, the claim's own tests'
    summaries ``own`` (``rate`` and ``closer:<k>``), ``statistic_verdict``, the ``controls``' records, the distances
    ``dist`` (width x replica) with their ``mean`` and ``se``, the rate's ``slope_se`` and interval ``ci``, the
    ``distance_vs_width`` figure, the ``closer`` summaries, the ``threshold`` sentence, and what the replicas
    ``keep`` (an example trajectory)."""

    main: dict[str, np.ndarray]
    design: dict[str, Any]
    R: int
    own: dict[str, Any]
    statistic_verdict: str
    controls: list[dict[str, Any]]
    dist: np.ndarray
    mean: np.ndarray
    se: np.ndarray
    slope_se: float
    ci: list[float]
    figure: dict[str, Any]
    closer: dict[str, Any]
    threshold: str
    keep: dict[str, Any]

    @property
    def rate(self) -> dict[str, Any]:
        return self.own["rate"]

    def table(self, claim: Any, widths: Sequence[int]) -> "DistanceTable":
        """The :class:`DistanceTable` of ``claim`` (the result built from this sweep)."""
        return DistanceTable(claim, tuple(widths), tuple(self.mean.tolist()), tuple(self.se.tolist()),
                             self.rate["mean"], tuple(self.ci), self.threshold, DesignLine.of(claim.design),
                             tuple(ControlLine.of(c) for c in claim.controls))


def distance_sweep(config: Any, values: Callable[[int, dict[str, Any] | None], dict[str, float]],
                   tests: tuple[dict[str, Any], dict[str, Any]], *, wrong: Sequence[str], cost: float,
                   progress: Progress | None, cause: str, statements: Mapping[str, str], names: Mapping[str, str],
                   unstable: Sequence[dict[str, Any]] = ()) -> DistanceSweep:
    """Run a width-sweep distance claim's group-sequential design and read its tests off it.

    ``values(index, keep)``: one replica's values (``keep``: where the first replicas store an example, None for
    the others); ``tests``: (the claim's own tests, the controls' tests) as ``TTest`` by name (``rate``,
    ``closer:<k>``; ``rate:minus_1`` and one per wrong candidate in ``wrong``); ``cost``: the progress units of one
    replica; ``cause``: why the statistics would not be finite; ``statements``, ``names``: each control's
    statement and statistic name; ``unstable``: control records decided without draws (a wrong theory that
    diverges at the step used). The replicas run with one BLAS thread (matrix-vector products: a thread pool
    only spins).
    """
    from linrnn.verify.threads import blas_threads

    own, ctrl = tests
    keep: dict[str, Any] = {}

    def replica(index: int) -> dict[str, float]:
        v = values(index, keep if index < 1_000_000 else None)
        tick(progress, cost, f"replica {index % 1_000_000}")
        return v

    with blas_threads(1):
        staged = run_design(replica, ctrl, config, progress, own=own)
    main, design, own, ctrl = staged.values, staged.record, staged.own, staged.controls  # tests at alpha / looks
    R = design["replicas"]
    own_s = {k: t_summary(t, main[t.key], design["power_target"]) for k, t in own.items()}
    finite = all(s["finite"] for s in own_s.values())
    statistic_verdict = "error" if not finite else ("fail" if any(s["rejected"] for s in own_s.values()) else "pass")
    controls = [control_entry(cid, statements[cid], t, staged.values_for(cid)[t.key], design, names[cid], cause)
                for cid, t in ctrl.items()]
    controls += list(unstable)
    widths = list(config.widths)
    dist = np.stack([main[f"d{n}"] for n in widths])
    mean, se = dist.mean(axis=1), dist.std(axis=1, ddof=1) / math.sqrt(R)
    rate = own_s["rate"]
    slope_se = rate["sd"] / math.sqrt(R)
    ci = [rate["mean"] - rate["crit"] * slope_se, rate["mean"] + rate["crit"] * slope_se]
    figure = distance_figure({"widths": widths, "distance_mean": mean.tolist(), "distance_se": se.tolist(),
                              "distance_per_replica": dist.tolist(), "fit": {"slope": rate["mean"], "ci": ci}})
    closer = {k: {"mean": s["mean"], "t": s["t"] if math.isfinite(s["t"]) else None, "crit": s["crit"],
                  "rejected": s["rejected"]} for k, s in own_s.items() if k != "rate"}
    a_look, m = design["alpha_per_look"], max(len(wrong), 1)
    threshold = (f"slope: two-sided t-test of -1/2 at level a/2 ({R - 1} dof, |t| <= "
                 f"{rate['crit']:.3g}); closeness: mean u not significantly below 0, one-sided at "
                 f"a/(2 m) = {a_look / (2 * m):.3g} each; a = alpha / {design['looks']} = "
                 f"{a_look:.3g} per look (alpha = {float(config.alpha):g})")
    return DistanceSweep(main, design, R, own_s, statistic_verdict, controls, dist, mean, se, slope_se, ci, figure,
                         closer, threshold, keep)


@dataclass(frozen=True)
class DistanceTable:
    """Dynamics equivalence: the mean distance d(n) to the SCNN per width, with its standard error, and the mean
    per-replica slope of log d(n) on log n with its interval (``threshold``: the test's description)."""

    claim: Any  # linrnn.verify.claims.base.ClaimResult
    widths: tuple[int, ...]
    distance_mean: tuple[float, ...]
    distance_se: tuple[float, ...]
    slope: float
    ci: tuple[float, float]
    threshold: str
    design: DesignLine
    controls: tuple[ControlLine, ...]


@dataclass(frozen=True)
class ErrorVsQTable:
    """Short memory: per q, the theory's test error, the RNNs' control-variate estimate with its standard error
    and t, and the raw mean at width n; the best q of each, and max |t| (None if not finite) against ``threshold``."""

    claim: Any
    sigma_w2: tuple[float, ...]
    theory: tuple[float, ...]
    bias_corrected: tuple[float, ...]
    bias_corrected_se: tuple[float, ...]
    z: tuple[float, ...]
    experiment_mean: tuple[float, ...]
    experiment_se: tuple[float, ...]
    best_q_theory: float
    best_q_experiment: float
    max_abs_t: float | None
    threshold: float
    design: DesignLine
    controls: tuple[ControlLine, ...]


@dataclass(frozen=True)
class Co2Row:
    """One model of the CO2 claim's descriptive table: test R^2 and its standard error (``sigma_w2`` None for the
    autoregressions)."""

    model: str
    sigma_w2: float | None
    test_r2: float
    test_r2_se: float


@dataclass(frozen=True)
class Co2Table:
    """The CO2 claim: per q, the theory's relative test error, the RNNs' bias-corrected estimate, its standard
    error and z (None where not finite); max |z| against ``threshold``; the replica pairs after the pilot; the
    controls; the descriptive rows. ``error``: the sentence of a run that could not finish (then no rows)."""

    claim: Any
    sigma_w2: tuple[float, ...] = ()
    theory: tuple[float, ...] = ()
    bias_corrected: tuple[float, ...] = ()
    bias_corrected_se: tuple[float, ...] = ()
    z: tuple[float | None, ...] = ()
    max_abs_z: float | None = None
    threshold: float | None = None
    alpha: float | None = None
    replicas: int | None = None
    pilot: int | None = None
    controls: tuple[ControlLine, ...] = ()
    rows: tuple[Co2Row, ...] = ()
    error: str | None = None
