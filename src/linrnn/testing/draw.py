r"""``check_draw``: is ONE draw of a researcher's own parameters a draw of a family's law at initialisation?

A user hands in the raw parameters of one network (NumPy, or any Array-API array:
torch, JAX, CuPy, ``array_api_strict``, through ``array_api_compat``), in the raw
parameterization the family documents (``docs/conventions.md``), and the model whose
law they claim it follows. The family's own structured code evaluates, in the user's
namespace, the draw's empirical lag NTK Theta (:meth:`empirical_ntk`) and impulse
response L_j (:meth:`impulse`) for ``lags`` lags, and every distinct entry gets a z-score

    z = (x - E[x](n)) / sd[x](n),

against the mean and standard deviation of that entry at the draw's width n:

* the mean of Theta: the family's exact finite-width mean where it is derived (the
  Gaussian family's loop equations, ``model.finite_width``), the derived kernel of a
  family whose kernel is exact at every width (the diagonal families: iid units,
  ``spec.exact_at_every_width``), else the wide limit (``model.kernel``); the result says which;
* the mean of L_j: 0 (the read-out's law is symmetric under a sign change);
* the sd of L_j: exact where the second moment E[L_j^2](n) is (its square root: the mean
  is 0); else, and for every entry of Theta (whose second moments are not derived), the
  sample standard deviation of a Monte Carlo of the family's own sampler at width n.

The verdict is a Monte Carlo test (Barnard 1963; Besag and Clifford 1989), exact at any
width and for any law of the entries: the statistic is T = max |z| over the distinct
entries; the same statistic is computed for ``replicas`` fresh draws of the family's
sampler at width n, the Monte Carlo standard deviations are those of the pooled R + 1
draws (a symmetric function of them, so the user's draw and the fresh ones stay
exchangeable when the claim is true), and p = (1 + #{T_k >= T}) / (R + 1). The draw is
rejected at ``level`` when p <= level: the probability of rejecting a true draw is at
most ``level``, whatever the mean used (a mean that is only the limit costs power, never
validity). ``replicas`` defaults to ceil(5 / level) - 1 (499 at level 0.01), so p can
fall well below the level.

Before any of that, a pre-scaled draw is refused in one sentence (:class:`UsageError`):
each parameter's mean square |x|^2 is compared with that of 16 draws of the family's
sampler at width n, and a factor of 4 or more that is also more than 8 of their standard
deviations (of the log mean square) is refused, naming the parameterization whose raw
parameters it matches where the family has several (an ``ntk`` draw whose W has entries
of variance q / n is the ``standard`` parameterization's, or the effective W_e).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from linrnn.core.errors import UsageError

#: The level of :func:`check_draw` when none is given.
DEFAULT_LEVEL = 0.01
#: Draws of the family's sampler behind the pre-scaling check.
SCALE_DRAWS = 16
#: A parameter's mean square this many times off (either way) may be a pre-scaled draw ...
SCALE_FACTOR = 4.0
#: ... when it is also this many standard deviations of the sampler's log mean square off.
SCALE_SDS = 8.0
#: Bytes of draws evaluated at once in the Monte Carlo.
CHUNK_BYTES = 128 * 2**20


@dataclass(frozen=True)
class DrawCheck:
    """The result of :func:`check_draw`: z-scores, their sources, the Monte Carlo p-value and the verdict.

    ``ntk_z`` (lags, n_y, n_x, lags, n_y, n_x) and ``impulse_z`` (lags, n_y, n_x) are the
    z-scores of the draw's entries (``ntk_mean``, ``ntk_sd``, ``impulse_sd`` the references);
    ``statistic`` is max |z| over the distinct entries, ``worst`` names that entry;
    ``p_value`` the Monte Carlo p-value over ``replicas`` fresh draws; ``verdict`` is
    ``"fail"`` when ``p_value <= level`` (the draw is not from the family's law), else ``"pass"``;
    ``sources`` says where each mean and standard deviation comes from.
    """

    family: str
    model: str
    width: int
    lags: int
    level: float
    replicas: int
    statistic: float
    worst: str
    p_value: float
    verdict: str
    ntk_z: np.ndarray = field(repr=False)
    impulse_z: np.ndarray = field(repr=False)
    ntk_mean: np.ndarray = field(repr=False)
    ntk_sd: np.ndarray = field(repr=False)
    impulse_sd: np.ndarray = field(repr=False)
    sources: dict[str, str] = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        return self.verdict == "pass"

    def paragraph(self) -> str:
        """The verdict in one paragraph: outcome, statistic, p-value, level, and the sources of the references."""
        what = ("is consistent with" if self.passed else "is NOT a draw of")
        return (f"check_draw: this width-{self.width} draw {what} the {self.model} law at level {self.level:g}: "
                f"max |z| = {self.statistic:.3g} over the distinct entries of its lag NTK and impulse response "
                f"({self.lags} lags; worst {self.worst}), Monte Carlo p = {self.p_value:.3g} (its rank among "
                f"{self.replicas} fresh draws of the family's sampler at width {self.width}). "
                f"Means: lag NTK, {self.sources['ntk_mean']}; impulse response, {self.sources['impulse_mean']}. "
                f"Standard deviations: lag NTK, {self.sources['ntk_sd']}; impulse response, "
                f"{self.sources['impulse_sd']}.")

    __str__ = paragraph


# ------------------------------------------------------------------ the user's arrays


def to_host(a: Any) -> np.ndarray:
    """A copy (or view) of an array of any Array-API library on host NumPy: the boundary to the statistics."""
    if isinstance(a, (np.ndarray, np.generic)):
        return np.asarray(a)
    from array_api_compat import is_cupy_array, is_torch_array

    if is_cupy_array(a):
        return a.get()
    if is_torch_array(a):
        return a.detach().cpu().numpy()
    try:
        return np.from_dlpack(a).copy()
    except (TypeError, BufferError, RuntimeError, AttributeError):
        return np.asarray(a)


def _model(model: Any) -> Any:
    from linrnn.core.spec import FamilySpec

    if isinstance(model, FamilySpec):
        from linrnn.families import model_of

        return model_of(model)
    if not all(hasattr(model, m) for m in ("spec", "init", "impulse", "empirical_ntk", "kernel")):
        raise UsageError(f"model must be a linrnn model (linrnn.family(name, ...)) or its specification, "
                         f"got {type(model).__name__}")
    return model


def describe(spec: Any) -> str:
    """``family(field=value, ...)``: a specification in one phrase."""
    return f"{spec.family}(" + ", ".join(f"{k}={v!r}" for k, v in spec.as_dict().items()) + ")"


def _fields(draw: Any) -> tuple[str, ...]:
    return tuple(f.name for f in dataclasses.fields(draw) if f.name != "spec")


def _as_draw(params: Any, model: Any) -> tuple[Any, dict[str, np.ndarray], int]:
    """(the family's draw object of ``params``, host copies of its arrays, the width n), shapes checked.

    ``params``: the family's draw object, a mapping of its parameter names, or a tuple in their order. The
    width is read from the axes that grow with it (found from two tiny draws of the family's sampler).
    """
    probe2, probe3 = model.init(width=2, seed=0), model.init(width=3, seed=0)
    kind, names = type(probe2), _fields(probe2)
    if isinstance(params, kind):
        arrays = {k: getattr(params, k) for k in names}
    elif isinstance(params, dict):
        if set(params) != set(names):
            raise UsageError(f"the {model.spec.family} family's parameters are {', '.join(names)}; got "
                             f"{', '.join(map(str, params)) or 'none'}")
        arrays = dict(params)
    elif isinstance(params, (tuple, list)) and len(params) == len(names):
        arrays = dict(zip(names, params))
    else:
        raise UsageError(f"params must be one draw of the {model.spec.family} family: its draw object, a dict or a "
                         f"tuple of its raw parameters {', '.join(names)}")
    host = {k: to_host(v) for k, v in arrays.items()}
    grow = {k: [ax for ax, (a, b) in enumerate(zip(np.shape(getattr(probe2, k)), np.shape(getattr(probe3, k))))
                if a != b] for k in names}
    first = next(k for k in names if grow[k])
    ax = grow[first][0]
    if host[first].ndim != np.ndim(getattr(probe2, first)):
        raise UsageError(f"check_draw takes one draw: {first} has shape {host[first].shape}, one draw's has "
                         f"{np.ndim(getattr(probe2, first))} axes")
    n = int(host[first].shape[ax])
    for k in names:
        want = tuple(n if i in grow[k] else s for i, s in enumerate(np.shape(getattr(probe2, k))))
        if host[k].shape != want:
            raise UsageError(f"check_draw takes one draw of the {model.spec.family} family at width {n}: {k} must "
                             f"have shape {want}, got {host[k].shape}")
        if not np.all(np.isfinite(host[k])):
            raise UsageError(f"{k} has entries that are not finite")
    return kind(**arrays, spec=model.spec), host, n


# ------------------------------------------------------------------ pre-scaled draws


def _log_mean_squares(arrays: dict[str, Any], batch: bool) -> dict[str, np.ndarray]:
    out = {}
    for k, a in arrays.items():
        a = np.abs(np.asarray(a)) ** 2
        axes = tuple(range(1 if batch else 0, a.ndim))
        out[k] = np.log(np.mean(a, axis=axes))
    return out


def check_scale(model: Any, host: dict[str, np.ndarray], n: int, seed: int) -> None:
    """Refuse (one sentence) a draw whose parameters are off the family's raw scale (module docstring)."""
    user = _log_mean_squares(host, batch=False)

    def reference(m: Any) -> dict[str, np.ndarray]:
        ref = m.init(width=n, seed=seed + 1, batch=SCALE_DRAWS)
        return _log_mean_squares({k: getattr(ref, k) for k in host}, batch=True)

    ref = reference(model)
    for k, lms in ref.items():
        mu, sd = float(np.mean(lms)), float(np.std(lms, ddof=1))
        off = float(user[k]) - mu
        if abs(off) < max(math.log(SCALE_FACTOR), SCALE_SDS * sd):
            continue
        spec = model.spec
        hint = "pass the raw parameters the family documents (docs/conventions.md)"
        if "param" in spec.fields():
            from linrnn.families import model_of

            for other in type(spec).CHOICES.get("param", ()):
                if other == spec.param:
                    continue
                alt = reference(model_of(spec.replace(param=other)))
                if all(abs(float(user[j]) - float(np.mean(alt[j]))) < math.log(2.0) for j in alt):
                    hint = (f"they match the {other!r} parameterization's raw parameters: pass the raw {spec.param!r} "
                            f"parameters (docs/conventions.md) or a model with param={other!r}")
                    break
        factor = math.exp(off)
        raise UsageError(f"{k} has entries of mean square {math.exp(float(user[k])):.3g}, "
                         f"{'1/' + format(1 / factor, '.3g') if factor < 1 else format(factor, '.3g')} times the "
                         f"{math.exp(mu):.3g} that the {spec.family} family's sampler draws at width {n} in its raw "
                         f"{getattr(spec, 'param', '')} parameterization: a pre-scaled draw? {hint}".replace("raw  ", "raw "))


# ------------------------------------------------------------------ references


def _references(model: Any, lags: int, n: int) -> tuple[np.ndarray, np.ndarray | None, dict[str, str]]:
    """(the mean of the lag NTK, the exact E[L_j^2] (lags, n_y, n_x) or None, the sources' sentences)."""
    spec = model.spec

    def full_layout(K: np.ndarray) -> np.ndarray:  # delta_aa' delta_bb' times the (0, 0) entries
        return np.einsum("jk,ac,bd->jabkcd", K, np.eye(spec.n_out), np.eye(spec.n_in))

    limit = model.kernel(lags)
    fw: dict[str, Any] = {}
    if hasattr(model, "finite_width"):
        try:
            fw = model.finite_width(lags, n)
        except UsageError:  # beyond the exact engine's reach: the limit below
            fw = {}
    every = bool(model.spec.exact_at_every_width)
    means, src = {}, {}
    for part in ("ntk", "nngp"):
        if fw.get(part) is not None:
            means[part] = full_layout(np.asarray(fw[part], dtype=np.float64))
            src[part] = f"the exact finite-width mean at n = {n} ({type(model).__name__}.finite_width)"
        elif every:
            means[part] = np.asarray(limit[part], dtype=np.float64)
            src[part] = "the derived kernel, exact at every width (iid units)"
        else:
            means[part] = np.asarray(limit[part], dtype=np.float64)
            src[part] = "the derived wide-limit kernel (no exact finite-width mean is derived for this family)"
    exact_second = "exact finite-width" in src["nngp"] or every
    m = lags * spec.n_out * spec.n_in
    second = np.diagonal(means["nngp"].reshape(m, m)).reshape(lags, spec.n_out, spec.n_in) if exact_second else None
    sources = {"ntk_mean": src["ntk"], "impulse_mean": "0 (the read-out's law is symmetric under a sign change)"}
    if exact_second:
        sources["impulse_sd"] = f"exact: the square root of E[L_j^2] (mean 0), {src['nngp']}"
    return means["ntk"], second, sources


def _entries(ntk: np.ndarray, imp: np.ndarray, lags: int) -> np.ndarray:
    """The distinct entries of a batch: the upper triangle of the (M x M) lag NTK, then the impulse response."""
    k = ntk.shape[0]
    m = int(round(math.sqrt(ntk[0].size)))
    iu = np.triu_indices(m)
    return np.concatenate([ntk.reshape(k, m, m)[:, iu[0], iu[1]], imp.reshape(k, -1)], axis=1)


def _label(idx: int, lags: int, ny: int, nx: int) -> str:
    m = lags * ny * nx
    iu = np.triu_indices(m)
    if idx < len(iu[0]):
        i = np.unravel_index(iu[0][idx], (lags, ny, nx))
        j = np.unravel_index(iu[1][idx], (lags, ny, nx))
        return f"Theta[({', '.join(map(str, map(int, i)))}), ({', '.join(map(str, map(int, j)))})]"
    j, a, b = np.unravel_index(idx - len(iu[0]), (lags, ny, nx))
    return f"L_{int(j)}[{int(a)}, {int(b)}]"


def _evaluate(model: Any, params: Any, lags: int) -> tuple[np.ndarray, np.ndarray]:
    return (np.asarray(to_host(model.empirical_ntk(params, lags)), dtype=np.float64),
            np.asarray(to_host(model.impulse(params, lags)), dtype=np.float64))


def check_draw(params: Any, model: Any, *, lags: int = 8, level: float = DEFAULT_LEVEL, replicas: int | None = None,
               seed: int = 0) -> DrawCheck:
    """Test whether ``params`` (ONE draw of raw parameters) is a draw of ``model``'s law at initialisation.

    ``params``: the family's draw object (``model.init(width=n)``), a dict of its raw
    parameters (``{"W": ..., "F": ..., "C": ...}`` for a dense family; ``c``, ``b``,
    ``lam`` for the diagonal one), or a tuple in that order, as NumPy or any Array-API
    arrays; ``model``: ``linrnn.family(name, ...)`` or its specification. ``lags``: the
    lags of the lag NTK and impulse response tested; ``level``: the test's false-rejection
    rate; ``replicas``: the fresh draws of the family's sampler (default ceil(5 / level) - 1);
    ``seed``: their generator's seed. The z-scores, their references and the Monte Carlo
    test are described in the module docstring. Bad input (a batch of draws, wrong shapes,
    a pre-scaled draw) is one sentence (:class:`UsageError`) before the Monte Carlo.
    """
    from linrnn.core.validate import check_size
    from linrnn.verify.backend import get_backend

    model = _model(model)
    lags = check_size("lags", lags)
    if isinstance(level, bool) or not isinstance(level, (int, float)) or not 0 < level < 1:
        raise UsageError(f"level must be a number strictly between 0 and 1, got {level!r}")
    least = math.ceil(1 / level) - 1
    replicas = math.ceil(5 / level) - 1 if replicas is None else replicas
    if isinstance(replicas, bool) or not isinstance(replicas, int) or replicas < least:
        raise UsageError(f"replicas must be an integer of at least {least} (= 1 / level - 1, so that the Monte Carlo "
                         f"p-value can reach level {level:g}), got {replicas!r}")
    draw, host, n = _as_draw(params, model)
    check_scale(model, host, n, seed)
    spec = model.spec
    ntk_mean, second, sources = _references(model, lags, n)
    ntk_user, imp_user = _evaluate(model, draw, lags)
    user = _entries(ntk_user[None], imp_user[None], lags)[0]
    # the fresh draws, in chunks that fit CHUNK_BYTES
    per_draw = 16 * sum(a.size for a in host.values()) * 8 + 8 * 4 * ntk_user.size
    chunk = max(1, min(replicas, CHUNK_BYTES // per_draw))
    be = get_backend("numpy", seed=seed)
    rows = []
    done = 0
    while done < replicas:
        k = min(chunk, replicas - done)
        ntk, imp = _evaluate(model, model.init(width=n, backend=be, batch=k), lags)
        rows.append(_entries(ntk, imp, lags))
        done += k
    sims = np.concatenate(rows, axis=0)
    pooled = np.concatenate([user[None], sims], axis=0)
    m = lags * spec.n_out * spec.n_in
    iu = np.triu_indices(m)
    mean = np.concatenate([ntk_mean.reshape(m, m)[iu], np.zeros(m)])
    sd = np.std(pooled, axis=0, ddof=1)
    n_ntk = len(iu[0])
    if second is not None:
        sd[n_ntk:] = np.sqrt(second.reshape(-1))
    else:
        sources["impulse_sd"] = (f"Monte Carlo: the sample standard deviation of {replicas + 1} draws ({replicas} of "
                                 f"the family's sampler at width {n} and this one)")
    sources["ntk_sd"] = (f"Monte Carlo: the sample standard deviation of {replicas + 1} draws ({replicas} of the "
                         f"family's sampler at width {n} and this one)")
    scale = float(np.max(np.abs(pooled))) or 1.0
    live = sd > 1e-12 * scale

    def zscores(x: np.ndarray) -> np.ndarray:
        dev = x - mean
        z = np.divide(dev, sd, out=np.zeros_like(dev), where=live)
        return np.where(live, z, np.where(np.abs(dev) <= 1e-9 * scale, 0.0, np.inf * np.sign(dev)))

    z_user = zscores(user)
    stat = float(np.max(np.abs(z_user)))
    t_sims = np.max(np.abs(zscores(sims)), axis=1)
    p = float((1 + np.count_nonzero(t_sims >= stat)) / (replicas + 1))
    ntk_z = np.zeros((m, m))
    ntk_z[iu] = z_user[:n_ntk]
    ntk_z = ntk_z + np.triu(ntk_z, 1).T
    shape = (lags, spec.n_out, spec.n_in)
    return DrawCheck(
        family=spec.family, model=describe(spec), width=n, lags=lags, level=float(level), replicas=replicas,
        statistic=stat, worst=_label(int(np.argmax(np.abs(z_user))), *shape), p_value=p,
        verdict="fail" if p <= level else "pass",
        ntk_z=ntk_z.reshape(shape + shape), impulse_z=z_user[n_ntk:].reshape(shape), ntk_mean=ntk_mean,
        ntk_sd=_symmetric(sd[:n_ntk], m).reshape(shape + shape), impulse_sd=sd[n_ntk:].reshape(shape),
        sources=sources,
    )


def _symmetric(upper: np.ndarray, m: int) -> np.ndarray:
    out = np.zeros((m, m))
    out[np.triu_indices(m)] = upper
    return out + np.triu(out, 1).T


def draw_of(params: Any, model: Any) -> Any:
    """The family's draw object of ``params`` (a dict or tuple of raw arrays, shapes checked), for ``model``'s methods."""
    return _as_draw(params, _model(model))[0]


def assert_draw(params: Any, model: Any, **options: Any) -> DrawCheck:
    """:func:`check_draw`, raising :class:`AssertionError` with its paragraph when the draw is rejected."""
    result = check_draw(params, model, **options)
    if not result.passed:
        raise AssertionError(result.paragraph())
    return result


__all__ = ["DEFAULT_LEVEL", "DrawCheck", "assert_draw", "check_draw", "draw_of", "to_host"]
