"""The claim suite behind ``linrnn report``: run the experiments, assemble the results file.

:func:`run_report` is the plain function the command calls. It resolves the
configuration (a profile, ``linrnn/profiles/<name>.toml``, with overrides from a TOML
file), runs the derivation and every claim of the registry
:data:`linrnn.verify.claims.REGISTRY` in its order (or reuses its cached result),
assembles one results object in the schema of :mod:`linrnn.reports.schema`, and
publishes the report directory atomically through :mod:`linrnn.reports.render`. This
module may import ``linrnn.derive`` and ``linrnn.verify``; ``linrnn.reports`` never does.

Configuration (:func:`resolve_config`): a profile is data, a TOML file with a
top-level ``backend``, ONE ``[model]`` table (the model specification that the
derivation and every claim read, so q = sigma_W^2 is set once), a ``[derivation]``
table (:class:`DerivationConfig`) and one table per claim configuration, named by the
claim's ``section`` (``[ntk]``: the width sweep shared by ``ntk_limit``, ``nngp`` and
``width_rate``; ``[dynamics_equivalence]``, ``[min_norm]``, ``[short_memory]``,
``[co2]``). A table or key left out takes the defaults of the configuration
dataclass. ``--config FILE.toml`` overrides profile fields in the same layout;
unknown sections or keys and values of the wrong type are a :class:`UsageError`
that names them.

Experiments: ``derivation`` (``linrnn.derive``: the formulas shown in the report, the
LaTeX appendix ``derivation.tex``, and ``derivation.pdf`` where a LaTeX engine is
installed, and the figure of lambda_j against j for several q), then one experiment
per registry entry, which calls the claim's ``run(config, model, seed=..., backend=...,
dtype=...)``. Claims of one computation (the three NTK claims) share it within a
process through their memoised sweep (:mod:`linrnn.verify.claims.ntk_sweep`).

Cache: each experiment's payload is stored in ``DIR/.cache/<name>-<key>.json``, the
key hashing the experiment's configuration and model, the seed, the resolved backend
and dtype, the package version and the source code of ``linrnn.derive``,
``linrnn.verify`` (subpackages included) and this module. The cache is written as
soon as an experiment finishes, directly into ``DIR/.cache`` (the report itself is
built in a temporary directory), so a run interrupted after some experiments resumes
from them; ``use_cache=False`` neither reads nor writes it.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import importlib.metadata
import importlib.resources
import json
import math
import os
import platform
import sys
import time
from collections.abc import Callable, Mapping, Sequence
import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from linrnn import __version__
from linrnn.core.errors import UsageError
from linrnn.core.jsonclean import jsonable
from linrnn.core.provenance import package_versions
from linrnn.core.outcome import exit_status

TITLE = "Implicit bias of wide linear RNNs: claims, checks and verdicts"

BACKEND_CHOICES = ("auto", "numpy", "cupy")


# ------------------------------------------------------------------ configuration


@dataclass(frozen=True)
class DerivationConfig:
    """The ``[derivation]`` table: memory-horizon threshold, PDF, and the lambda_j figure's q values and lags."""

    eps: float = 1e-3
    pdf: bool = True
    figure_q: tuple[float, ...] = (0.7, 0.8, 0.9, 0.95, 1.0, 1.02, 1.05)
    figure_lags: int = 100
    #: the exact finite-width collapse figure (linrnn.families.gaussian.corrections): its widths and
    #: numbers of lags for the NNGP and the lag-NTK diagonal (0 leaves the figure out)
    collapse_widths: tuple[int, ...] = (16, 64, 256, 1024)
    collapse_lags: int = 17
    collapse_ntk_lags: int = 13

    def __post_init__(self) -> None:
        from linrnn.core.validate import check_positive, check_size

        qs = tuple(self.figure_q)
        if not qs:
            raise UsageError("derivation.figure_q must hold at least one q = sigma_W^2 for the lag-weight figure")
        bad = [q for q in qs if isinstance(q, bool) or not isinstance(q, (int, float)) or not 0 < q < math.inf]
        if bad:
            raise UsageError(f"derivation.figure_q must hold finite positive values of q = sigma_W^2, got {bad[0]!r} "
                             f"in {list(qs)!r}")
        object.__setattr__(self, "figure_q", tuple(float(q) for q in qs))
        object.__setattr__(self, "collapse_widths",
                           tuple(check_size("derivation.collapse_widths", w) for w in self.collapse_widths))
        for name in ("collapse_lags", "collapse_ntk_lags"):
            value = check_size(f"derivation.{name}", getattr(self, name), minimum=0)
            if value > 21:
                raise UsageError(f"derivation.{name} must be at most 21 (the exact engine's reach), got {value}")
        check_positive("derivation.eps", self.eps)
        object.__setattr__(self, "figure_lags", check_size("derivation.figure_lags", self.figure_lags))


#: Bytes per plotted value of the lag-weight figure: its float64 value, the Python float and JSON text of it in
#: the payload, the cache entry and the results file, and matplotlib's path (an upper estimate).
FIGURE_BYTES_PER_VALUE = 256


def derivation_memory(config: DerivationConfig) -> int:
    """Peak bytes of the derivation experiment: the lag-weight figure's ``len(figure_q) * figure_lags`` values."""
    return FIGURE_BYTES_PER_VALUE * len(config.figure_q) * int(config.figure_lags)


#: The memory budget of ``linrnn report`` when --max-memory is not given.
DEFAULT_MAX_MEMORY = "8GB"

#: The family-wise false-failure level of a run when the profile sets none.
FAMILY_ALPHA = 1e-3


@dataclass(frozen=True)
class SuiteConfig:
    """A resolved configuration: the backend name, the model and one configuration object per section.

    ``family_alpha``: the family-wise false-failure level of a run (the top-level key
    ``family_alpha``); ``explicit_alpha``: the sections whose ``alpha`` a profile or
    override table sets itself (Bonferroni leaves them alone); ``alphas``: how
    :func:`with_family_alpha` set each section's alpha (empty before).
    """

    profile: str
    backend: str
    model: Any
    sections: Mapping[str, Any]
    family_alpha: float = FAMILY_ALPHA
    explicit_alpha: frozenset[str] = frozenset()
    alphas: Mapping[str, Any] = field(default_factory=dict)
    #: the experiments a profile runs (its top-level ``experiments`` key), None: the derivation and every claim
    experiments: tuple[str, ...] | None = None

    def __getitem__(self, section: str) -> Any:
        return self.sections[section]

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready: ``backend``, ``model`` and the sections, as written to the results' ``config``."""
        out = {"backend": self.backend, "model": _clean(self.model),
               **{name: _clean(cfg) for name, cfg in self.sections.items()}}
        out["family_alpha"] = {"family_alpha": self.family_alpha, "method": "bonferroni",
                               "sections": _clean(dict(self.alphas))}
        return out


def profile_names() -> tuple[str, ...]:
    """The profiles shipped in ``linrnn/profiles`` (``quick`` first)."""
    root = importlib.resources.files("linrnn") / "profiles"
    names = [p.name[: -len(".toml")] for p in root.iterdir() if p.name.endswith(".toml")]
    return tuple(sorted(names, key=lambda n: (n != "quick", n)))


def _toml() -> Any:
    try:
        import tomllib  # Python >= 3.11
    except ModuleNotFoundError:  # pragma: no cover - Python 3.10
        try:
            import tomli as tomllib  # type: ignore[no-redef]
        except ModuleNotFoundError:
            raise UsageError("reading TOML configuration needs Python 3.11 or the tomli package") from None
    return tomllib


def load_profile(name: str) -> dict[str, Any]:
    """The tables of the shipped profile ``name`` (``linrnn/profiles/<name>.toml``)."""
    names = profile_names()
    if name not in names:
        raise UsageError(f"unknown profile {name!r}; choose one of {', '.join(names)}")
    text = (importlib.resources.files("linrnn") / "profiles" / f"{name}.toml").read_text(encoding="utf-8")
    return _toml().loads(text)


def default_sections() -> dict[str, Any]:
    """``derivation`` and the configuration section of every registry claim, at their dataclass defaults."""
    from linrnn.families import claims as all_claims

    REGISTRY = all_claims()

    out: dict[str, Any] = {"derivation": DerivationConfig()}
    for claim in REGISTRY.values():
        out.setdefault(claim.section, claim.default_config())
    for name, (config_type, *_) in chapters().items():
        out[name] = config_type()
    return out


def chapters() -> dict[str, tuple[type, Callable[..., dict[str, Any]], Callable[[Any], int]]]:
    """The report's chapters (not claims: data a reader compares, no verdict), by name: (configuration type,
    the function of a configuration that computes the chapter, its peak memory in bytes). A profile runs a
    chapter when its ``experiments`` key names it."""
    from linrnn.families.chapter import ChapterConfig, families_chapter, memory

    return {"families": (ChapterConfig, families_chapter, memory)}


def _family_alpha(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < 1:
        raise UsageError(f"family_alpha must be a number strictly between 0 and 1, got {value!r}")
    return float(value)


def _apply(backend: str, model: Any, sections: dict[str, Any], tables: Mapping[str, Any],
           extra: dict[str, Any] | None = None) -> tuple[str, Any]:
    """Apply the TOML ``tables`` to (backend, model, sections); ``sections`` is updated in place.

    ``extra`` collects ``family_alpha`` and, in ``explicit_alpha``, the sections whose
    table sets ``alpha``.
    """
    from linrnn.core.configure import configure

    extra = {} if extra is None else extra
    for section, over in tables.items():
        if section == "backend":
            if not isinstance(over, str):
                raise UsageError(f"backend must be a string (one of {', '.join(BACKEND_CHOICES)}), got {over!r}")
            backend = over
        elif section == "family_alpha":
            extra["family_alpha"] = _family_alpha(over)
        elif section == "experiments":
            if not (isinstance(over, list) and over and all(isinstance(x, str) for x in over)):
                raise UsageError(f"experiments must be a non-empty list of experiment names, got {over!r}")
            extra["experiments"] = tuple(over)
        elif section == "model":
            if isinstance(over, Mapping) and "family" in over:  # the family first: its spec class takes the keys
                from linrnn.families import as_family

                over = dict(over)
                name = over.pop("family")
                if not isinstance(name, str):
                    raise UsageError(f"model.family must be a string naming a model family, got {name!r}")
                model = as_family(model, name)
            model = configure(model, over, "model")
        elif section in sections:
            sections[section] = configure(sections[section], over, section)
            if isinstance(over, Mapping) and "alpha" in over:
                extra.setdefault("explicit_alpha", set()).add(section)
        else:
            raise UsageError(f"unknown section [{section}] in the configuration; known sections: "
                             f"{', '.join(sorted(['model', *sections]))} (and the keys backend, family_alpha, experiments)")
    return backend, model


def resolve_config(profile: str, overrides: Mapping[str, Any] | None = None) -> SuiteConfig:
    """The profile's configuration with ``overrides`` (TOML tables by section) applied.

    Unknown sections or keys, and values of the wrong type, are a :class:`UsageError`
    that names them; the model and each section are validated by their dataclasses.
    """
    from linrnn.core.spec import ModelSpec
    from linrnn.families import default_spec

    tables = load_profile(profile)
    sections = default_sections()
    extra: dict[str, Any] = {}
    backend, model = _apply("auto", default_spec(), sections, tables, extra)
    backend, model = _apply(backend, model, sections, overrides or {}, extra)
    if not isinstance(model, ModelSpec):  # the engines' claims (NTK sweep, training, co2) run dense recurrences
        from linrnn.families import claims as all_claims, spec_classes

        dense = [name for name, cls in spec_classes().items() if issubclass(cls, ModelSpec)]
        own = [c.name for c in all_claims().values() if c.family == model.family]
        raise UsageError(f"[model] family = {model.family!r} is not a dense recurrence, and the report's claims on "
                         f"[model] run dense ones ({', '.join(dense)}); the {model.family} family's own claims "
                         f"({', '.join(own) or 'none'}) run in every report: choose a dense family")
    return SuiteConfig(profile=profile, backend=backend, model=model, sections=sections,
                       family_alpha=extra.get("family_alpha", FAMILY_ALPHA),
                       explicit_alpha=frozenset(extra.get("explicit_alpha", ())),
                       experiments=extra.get("experiments"))


def with_family_alpha(cfg: SuiteConfig, claims: Sequence[str]) -> SuiteConfig:
    """``cfg`` with each claim section's ``alpha`` set by Bonferroni over the ``claims`` run.

    Each of the m claims run gets ``family_alpha / m``. A section shared by k of them
    (``[ntk]``: one sweep whose ``alpha`` is already family-wise over its claims) gets
    ``k * family_alpha / m``, so the run's family-wise false-failure rate is at most
    ``family_alpha`` (the union bound). A section whose table sets ``alpha`` itself
    keeps it (recorded as ``explicit``). The choices go to ``cfg.alphas`` and from
    there into the results' ``config.family_alpha``.
    """
    from linrnn.families import claims as all_claims

    REGISTRY = all_claims()

    names = [n for n in claims if n in REGISTRY]
    m = len(names)
    per_section: dict[str, list[str]] = {}
    for n in names:
        per_section.setdefault(REGISTRY[n].section, []).append(n)
    sections = dict(cfg.sections)
    alphas: dict[str, Any] = {}
    for section, members in per_section.items():
        conf = sections[section]
        if not any(f.name == "alpha" for f in dataclasses.fields(conf)):
            continue
        if section in cfg.explicit_alpha:
            alphas[section] = {"alpha": float(conf.alpha), "source": "explicit", "claims": members}
            continue
        alpha = cfg.family_alpha * len(members) / m
        sections[section] = dataclasses.replace(conf, alpha=alpha)
        alphas[section] = {"alpha": alpha, "source": f"bonferroni: {len(members)} of {m} claims",
                           "claims": members}
    return dataclasses.replace(cfg, sections=sections, alphas=alphas)


def check_memory_budget(needs: Mapping[str, int], workers: int, budget: int, flag: str = "--max-memory") -> None:
    """Refuse, before any work, a run whose ``workers`` largest experiments (peak bytes ``needs``) exceed ``budget``.

    With K workers up to K experiments run at once, so the K largest estimates must
    fit together; the sentence names them, their sizes, the budget and ``flag``.
    """
    from linrnn.core.validate import check_memory, format_bytes

    if not needs:
        return
    largest = sorted(needs, key=needs.__getitem__, reverse=True)[:max(1, workers)]
    together = sum(needs[n] for n in largest)
    if len(largest) == 1:
        what = f"the experiment {largest[0]}"
    else:
        what = (f"the {len(largest)} largest experiments, run at once on {workers} workers "
                f"({', '.join(f'{n}: {format_bytes(needs[n])}' for n in largest)}),")
    check_memory(what, together, budget, f"{flag} (or lower --workers)" if len(largest) > 1 else flag,
                 plural=len(largest) > 1)


def check_claims(configs: Mapping[str, Any], model: Any, workers: int, budget: int,
                 flag: str = "--max-memory") -> None:
    """Check the registry claims ``configs`` (name -> configuration) can run, before any of them runs.

    The memory of the ``workers`` largest together against ``budget``
    (:func:`check_memory_budget`; every claim of the registry has a memory estimate),
    then each claim's ``check(config, model)`` (what needs the model, e.g. the controls
    it names, which may evaluate the theory at the claim's sizes: hence after sizing).
    ``linrnn report`` and ``linrnn calibrate`` both call it.
    """
    from linrnn.families import claim_model, claims as all_claims

    REGISTRY = all_claims()

    # sizes first: a claim's own check may evaluate its theory at its sizes (the controls it names)
    check_memory_budget({name: int(REGISTRY[name].memory(conf, claim_model(REGISTRY[name], model)))
                         for name, conf in configs.items()}, workers, budget, flag)
    for name, conf in configs.items():
        REGISTRY[name].check(conf, claim_model(REGISTRY[name], model))


def load_toml(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read a TOML configuration file (``tomllib``; ``tomli`` on Python 3.10).

    A path that is missing, a folder, not a regular file (a FIFO, a device), larger
    than :data:`linrnn.core.files.MAX_CONFIG_BYTES`, unreadable, not UTF-8 text or not
    TOML is one sentence (:class:`UsageError`), checked before the file is read.
    """
    from linrnn.core.files import MAX_CONFIG_BYTES, read_text_file

    tomllib = _toml()
    text = read_text_file(path, "the configuration file", MAX_CONFIG_BYTES)
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise UsageError(f"the configuration file {os.fspath(path)} is not valid TOML ({exc})") from None


# ------------------------------------------------------------------ helpers


def _clean(obj: Any) -> Any:
    """JSON-ready copy (:func:`linrnn.core.jsonclean.jsonable`)."""
    return jsonable(obj)


def run_experiments(names: Sequence[str], contexts: Mapping[str, Context]) -> dict[str, tuple[dict[str, Any], float]]:
    """Run the suite's experiments ``names`` in order, in this process: name -> (payload, seconds).

    The task function of ``linrnn report --workers K`` (a top-level function of picklable
    inputs, so a spawned process can run it).
    """
    exps = experiments()
    out: dict[str, tuple[dict[str, Any], float]] = {}
    for name in names:
        t0 = time.perf_counter()
        payload = _clean(exps[name](contexts[name]))
        out[name] = (payload, time.perf_counter() - t0)
    return out


@dataclass
class Context:
    """What every experiment receives: its configuration and the model, the backend name, seed and dtype."""

    config: Any
    backend: str
    seed: int
    dtype: str = "float64"
    model: Any = None


# ------------------------------------------------------------------ experiments


def experiment_derivation(ctx: Context) -> dict[str, Any]:
    """Formulas, the LaTeX appendix and the lambda_j-against-j figure, all from ``linrnn.derive``."""
    import numpy as np

    from linrnn.derive import derive_lag_weights, weights
    from linrnn.derive.latex import build_document, latex
    from linrnn.core.spec import PARAMS
    from linrnn.derive.numeric import regime_of, summarize
    from linrnn.families import model_of

    cfg = ctx.config
    spec = ctx.model
    der = derive_lag_weights(spec.param, spec.derivation_law())
    others = {p: derive_lag_weights(p, spec.derivation_law()) for p in PARAMS if p != spec.param}
    lags = int(cfg.figure_lags)
    series = []
    for q in cfg.figure_q:
        s = spec.replace(sigma_w2=float(q))
        w = np.asarray(weights(s, lags), dtype=np.float64)
        summary = summarize(s, eps=cfg.eps)
        series.append({"q": float(q), "regime": regime_of(float(q)), "weights": w,
                       "horizon": summary.horizon})
    spec_summary = summarize(spec, eps=cfg.eps)
    formulas = [
        {"label": "Lag weights", "latex": r"\lambda_j = " + latex(der.weight),
         "description": f"the weight of lag j in the scaled convolution that the wide RNN trains like "
                        f"({spec.param} parameterization)"},
        {"label": "NNGP of the initial impulse response", "latex": r"\operatorname{Var} L_j(0)[a,b] = " + latex(der.nngp),
         "description": "the variance of each entry of L_j = C W^j F at initialisation; different lags, "
                        "outputs and inputs are uncorrelated in the limit"},
        {"label": "Limit lag NTK",
         "latex": r"\Theta_\infty[(i,a,b),(j,a',b')] = \lambda_i\,\delta_{ij}\,\delta_{aa'}\,\delta_{bb'}",
         "description": "gradient descent acts on each lag independently, lag j at rate lambda_j"},
        *({"label": f"Lag weights in the {other_name} parameterization",
           "latex": r"\lambda_j = " + latex(other.weight),
           "description": "for comparison (the F-gradient contribution differs)"} for other_name, other in others.items()),
    ]
    notes = [
        f"Configuration of the derivation: q = sigma_W^2 = {spec.sigma_w2:g}, sigma_C^2 = {spec.sigma_c2:g}, "
        f"sigma_F^2 = {spec.sigma_f2:g}, n_x = {spec.n_in}, (eta_C, eta_F, eta_W) = "
        f"({spec.lr_c:g}, {spec.lr_f:g}, {spec.lr_w:g}); regime {spec_summary.regime}"
        + (f", peak at lag {spec_summary.peak_lag}, memory horizon j_eps = {spec_summary.horizon:.2f} "
           f"(eps = {cfg.eps:g})." if spec_summary.horizon is not None else "."),
    ]
    figure = {
        "kind": "lag_weights", "title": "Lag weights of the equivalent scaled convolution",
        "caption": "lambda_j against the lag j for several transition variances q = sigma_W^2 (log scale): "
                   "geometric decay for q < 1 (an implicit bias toward short memory), linear growth at q = 1, "
                   "geometric growth for q > 1; dotted verticals mark the memory horizon j_eps where "
                   "lambda_j falls to eps of its maximum.",
        "lags": list(range(lags)), "series": series, "eps": cfg.eps,
    }
    figures = {"lag_weights": figure}
    model = model_of(spec)
    collapse = (model.finite_width_figure(cfg.collapse_widths, cfg.collapse_lags, max(cfg.collapse_ntk_lags, 2))
                if cfg.collapse_lags > 1 and cfg.collapse_widths else None)
    if collapse is not None:
        x1 = "; ".join(f"n = {p['width']} (j = {p['lag']}): {p['deviation']:.4f}" for p in collapse["at_x1"]["nngp"])
        collapse["caption"] = (
            "Exact relative deviation E(n)/E(oo) - 1 of the NNGP variance and the lag-NTK diagonal (unit variances "
            "and rates) against x = j^2/n, one marker per width (linrnn.families.gaussian.finite_width). The leading "
            f"correction is c x^2 with c = {collapse['scaling_coefficient']['nngp']} (NNGP) and "
            f"{collapse['scaling_coefficient']['ntk_diag']} (NTK), the line: the points collapse onto it only as "
            "j grows, with corrections of relative order 1/j at fixed x (the j^3/n^2 and j^5/n^3 terms of the "
            f"closed forms); at x = 1 the NNGP deviation is {x1}."
        )
        figures["finite_width_collapse"] = collapse
    return {
        "derivation": {"param": spec.param, "formulas": formulas, "figures": figures,
                       "notes": notes, "tex": build_document(spec, eps=cfg.eps, sections=model.latex_sections())},
        "claims": [],
    }


def _claim_experiment(claim: Any) -> Callable[[Context], dict[str, Any]]:
    """The experiment of a registry claim: its ``run`` on the context's configuration, model, seed and backend."""

    from linrnn.families import claim_model  # a family's claim runs on its family's specification

    def run(ctx: Context) -> dict[str, Any]:
        res = claim.run(ctx.config, claim_model(claim, ctx.model), seed=ctx.seed, backend=ctx.backend,
                        dtype=ctx.dtype)
        return {"claims": [res.claim_dict()], "backend": res.backend, "experiment": claim.experiment}

    def check(ctx: Context) -> None:
        claim.check(ctx.config, claim_model(claim, ctx.model))

    def memory(ctx: Context) -> int:
        return int(claim.memory(ctx.config, claim_model(claim, ctx.model)))

    run.__name__ = f"experiment_{claim.name}"
    run.section = claim.section  # type: ignore[attr-defined]
    run.experiment = claim.experiment  # type: ignore[attr-defined]
    run.portable = True  # type: ignore[attr-defined]  # another process can rebuild it from experiments()
    run.check = check  # type: ignore[attr-defined]
    run.memory = memory  # type: ignore[attr-defined]
    return run


experiment_derivation.portable = True  # type: ignore[attr-defined]
experiment_derivation.memory = lambda ctx: derivation_memory(ctx.config)  # type: ignore[attr-defined]


def _run_experiments(exps: Mapping[str, Callable[[Context], dict[str, Any]]], contexts: Mapping[str, Context],
                     todo: Sequence[str], workers: int, finished: Callable[[str, dict[str, Any], float], None],
                     say: Callable[[str], None]) -> None:
    """Run the experiments ``todo``, calling ``finished(name, payload, seconds)`` as each one ends.

    Experiments of one computation (``experiment`` attribute: the three NTK claims)
    run as one task, so their shared sweep is computed once. With ``workers > 1`` the
    tasks of *portable* experiments (the derivation and the registry's claims, which
    a worker rebuilds from :func:`experiments`) go to a pool of that many spawned
    processes; any other experiment runs here. Each task is a pure function of its
    contexts, so the payloads do not depend on ``workers``.
    """
    from linrnn.parallel import group_by_experiment, process_pool

    groups = group_by_experiment(todo, {n: getattr(exps[n], "experiment", n) for n in todo})
    remote = [g for g in groups if workers > 1 and all(getattr(exps[n], "portable", False) for n in g)]
    local = [g for g in groups if g not in remote]
    if len(remote) < 2:  # one task gains nothing from another process
        local, remote = groups, []
    pool = None
    if remote:
        try:
            pool = process_pool(min(workers, len(remote)))
        except (OSError, NotImplementedError) as exc:  # no process support here (e.g. no semaphores)
            say(f"worker processes unavailable ({exc}); running the experiments in this process")
            local, remote = groups, []
    try:
        futures = {}
        if pool is not None:
            say(f"running {sum(map(len, remote))} experiments in {len(remote)} tasks on "
                f"{min(workers, len(remote))} worker processes")
            futures = {pool.submit(run_experiments, g, {n: contexts[n] for n in g}): g for g in remote}
        for g in local:
            for name in g:
                say(f"{name} ...")
                t0 = time.perf_counter()
                payload = _clean(exps[name](contexts[name]))
                finished(name, payload, time.perf_counter() - t0)
        if futures:
            from concurrent.futures import as_completed

            failure: BaseException | None = None
            for fut in as_completed(futures):
                try:
                    done = fut.result()
                except Exception as exc:  # the other tasks still finish and reach the cache first
                    failure = failure or exc
                    continue
                for name, (payload, seconds) in done.items():
                    finished(name, payload, seconds)
            if failure is not None:
                raise failure
    except BaseException as exc:
        if pool is not None:
            pool.shutdown(wait=False, cancel_futures=True)
            if isinstance(exc, KeyboardInterrupt):  # SIGTERM reaches this process alone: stop the workers too
                for proc in list((getattr(pool, "_processes", None) or {}).values()):
                    proc.terminate()
            pool = None
        raise
    finally:
        if pool is not None:
            pool.shutdown(wait=True)


def experiments() -> dict[str, Callable[[Context], dict[str, Any]]]:
    """The experiments of the suite, in report order: the derivation, then the registry's claims.

    An experiment is a function of a :class:`Context`. Its configuration is the section
    named by its ``section`` attribute (default: its name); an optional ``check``
    attribute validates its context before any experiment runs.
    """
    from linrnn.families import claims as all_claims

    REGISTRY = all_claims()

    out: dict[str, Callable[[Context], dict[str, Any]]] = {"derivation": experiment_derivation}
    for name, claim in REGISTRY.items():
        out[name] = _claim_experiment(claim)
    for name in chapters():
        out[name] = _chapter_experiment(name)
    return out


def default_experiments() -> list[str]:
    """What a profile without an ``experiments`` key runs: the derivation and every claim (no chapter)."""
    return [name for name in experiments() if name not in chapters()]


def _chapter_experiment(name: str) -> Callable[[Context], dict[str, Any]]:
    """The experiment of a report chapter: its function on the context's configuration section."""

    def run(ctx: Context) -> dict[str, Any]:
        return {"chapter": chapters()[name][1](ctx.config)}

    run.section = name  # type: ignore[attr-defined]
    run.memory = lambda ctx: chapters()[name][2](ctx.config)  # type: ignore[attr-defined]
    return run


# ------------------------------------------------------------------ cache


def code_hash() -> str:
    """Hash of the source of ``linrnn.core``, ``linrnn.derive``, ``linrnn.verify``, ``linrnn.families``
    (subpackages too) and this module."""
    h = hashlib.sha256(__version__.encode())
    import linrnn.core
    import linrnn.derive
    import linrnn.families
    import linrnn.verify

    for pkg in (linrnn.derive, linrnn.verify, linrnn.core, linrnn.families):
        root = Path(pkg.__file__).resolve().parent
        for path in sorted(root.rglob("*.py")):
            h.update(path.relative_to(root).as_posix().encode())
            h.update(path.read_bytes())
    h.update(Path(__file__).read_bytes())
    return h.hexdigest()


def cache_key(name: str, ctx: Context) -> str:
    blob = json.dumps({"experiment": name, "config": _clean(ctx.config), "model": _clean(ctx.model), "seed": ctx.seed,
                       "backend": ctx.backend, "dtype": ctx.dtype, "code": code_hash()}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:24]


def _cache_read(path: Path, key: str, name: str = "") -> dict[str, Any] | None:
    """The cache entry at ``path`` if it holds ``key`` and a payload that assembles into valid results, else None.

    Whatever cannot be used is a miss (the experiment is recomputed and the entry
    rewritten): a missing, truncated or garbage file, another key, and a malformed
    entry with the right key (``seconds`` not a number, a payload that is not an
    object or whose claims, controls, figures or derivation the results schema
    refuses, nesting too deep to read).
    """
    try:
        entry = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError):
        return None
    if not isinstance(entry, dict) or entry.get("key") != key or "payload" not in entry:
        return None
    seconds = entry.get("seconds")
    if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or not 0 <= seconds < math.inf:
        return None
    if not _payload_usable(name, entry["payload"]):
        return None
    return entry


def _payload_usable(name: str, payload: Any) -> bool:
    """Whether ``payload`` (one experiment's) assembles into results that the schema accepts on their own."""
    from linrnn.reports.schema import SCHEMA_VERSION, overall_verdict, validate

    try:
        if not isinstance(payload, dict):
            return False
        derivation, device, claims, controls = _assemble({name: payload}, {"param": "", "formulas": [],
                                                                           "figures": {}, "notes": [], "tex": None})
        if not isinstance(device, Mapping):
            return False
        results = {"schema_version": SCHEMA_VERSION, "tool": {"name": "linrnn-bias", "version": __version__},
                   "title": TITLE, "created": "", "profile": "", "config": {}, "provenance": {},
                   "derivation": derivation, "claims": claims, "controls": controls,
                   "verdict": overall_verdict(claims, controls)}
        chapter_list = _chapters_of({name: payload})
        if chapter_list:
            results["chapters"] = chapter_list
        validate(results)
    except (ValueError, TypeError, KeyError, AttributeError, IndexError, RecursionError):
        return False
    return True


def _assemble(payloads: Mapping[str, Mapping[str, Any]], derivation: dict[str, Any],
              device: Any = None) -> tuple[dict[str, Any], Any, list[dict[str, Any]], list[dict[str, Any]]]:
    """(derivation, device, claims, controls) of the results, from the experiments' payloads in report order
    (the chapters: :func:`_chapters_of`)."""
    claims: list[dict[str, Any]] = []
    controls: list[dict[str, Any]] = []
    device = {} if device is None else device
    for name, payload in payloads.items():
        if "derivation" in payload:
            derivation = payload["derivation"]
        if "backend" in payload:
            device = payload["backend"]
        for claim in payload.get("claims", []):
            c, ctrls = to_schema_claim(claim, payload.get("experiment", name))
            claims.append(c)
            controls.extend(ctrls)
    return derivation, device, claims, controls


def _chapters_of(payloads: Mapping[str, Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The report's chapters, from the experiments' payloads in report order."""
    return [_clean(payload["chapter"]) for payload in payloads.values() if "chapter" in payload]


def _cache_write(path: Path, entry: Mapping[str, Any]) -> None:
    from linrnn.core.files import write_text_atomic

    write_text_atomic(path, json.dumps(entry, allow_nan=False))


# ------------------------------------------------------------------ assembly


_CLAIM_KEYS = ("id", "title", "statement", "formula", "statistic", "threshold", "verdict", "figures", "config",
               "notes", "statistic_verdict", "error", "alpha", "design")


def to_schema_claim(claim: Mapping[str, Any], experiment: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Split a claim of docs/claims.md into the schema's claim and its controls (with ``claim`` set).

    The claim's figures are already in the kinds of :mod:`linrnn.reports.figures`;
    keys beyond the contract go to the claim's ``data``.
    """
    c = _clean(claim)
    missing = [k for k in ("id", "statement", "statistic", "threshold", "verdict") if k not in c]
    if missing:
        raise ValueError(f"experiment {experiment!r} returned a claim without {', '.join(missing)}")
    out = {k: c[k] for k in _CLAIM_KEYS if k in c}
    out.setdefault("title", c["id"].replace("_", " ").capitalize())
    out.setdefault("formula", "")
    out["figures"] = dict(c.get("figures") or {})
    out["experiment"] = experiment
    extra = {k: v for k, v in c.items() if k not in _CLAIM_KEYS and k != "controls"}
    if extra:
        out["data"] = extra
    controls = []
    for ctrl in c.get("controls") or []:
        item = {"claim": c["id"], "id": ctrl["id"], "statement": ctrl.get("statement", ctrl["id"]),
                "statistic": ctrl["statistic"], "threshold": ctrl["threshold"], "verdict": ctrl["verdict"]}
        if "formula" in ctrl:
            item["formula"] = ctrl["formula"]
        controls.append(item)
    return out, controls




@dataclass
class SuiteRun:
    """What :func:`run_report` produced: the results object, where it went, and the exit status."""

    results: dict[str, Any]
    output: Path
    exit_status: int


def run_report(
    output: str | os.PathLike[str] = "linrnn-report",
    *,
    profile: str = "quick",
    config: str | os.PathLike[str] | Mapping[str, Any] | None = None,
    backend: str | None = None,
    seed: int = 0,
    force: bool = False,
    use_cache: bool = True,
    log: Callable[[str], None] | None = None,
    argv: Sequence[str] | None = None,
    only: Sequence[str] | None = None,
    workers: int | None = None,
    max_memory: str | int = DEFAULT_MAX_MEMORY,
    claims: Sequence[str] | None = None,
) -> SuiteRun:
    """Run the claim suite and write the report directory ``output``.

    ``config``: a TOML path or a mapping of overrides (tables by section, as in a
    profile). ``backend``: numpy, cupy or auto (default: the profile's). ``only``: run a
    subset of the experiments, by name (``derivation`` and the registry's claims). ``claims``: run only
    these registry claims and the derivation (``linrnn report --claims``; an unknown id is refused).
    ``workers``: processes running the experiments (default :func:`linrnn.core.machine.default_workers`;
    1 runs them in this process); the results do not depend on it. Each claim's
    ``alpha`` is ``family_alpha`` split over the claims run (:func:`with_family_alpha`).
    ``max_memory``: the memory budget ("8GB", or bytes): before any work, the peak
    memory of the ``workers`` largest experiments together (each claim's
    ``memory(config, model)``) must fit it.
    Everything is checked before the first experiment: the configuration (types,
    ranges, memory), the backend, the output directory (:func:`linrnn.reports.output.check_target`:
    ``--force`` replaces only a report directory) and its lock (a second run on the
    same directory stops at once).
    Exit status (:mod:`linrnn.core.outcome`): 0 pass, 1 fail or error, 3 inconclusive
    (a failing claim is a finding: the report is still written).
    """
    from linrnn.core.machine import check_workers, default_workers

    from linrnn.core.validate import parse_memory
    from linrnn.reports.output import check_target, directory_lock

    say = log or (lambda _msg: None)
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise UsageError(f"the seed must be a non-negative integer, got {seed!r}")
    overrides = load_toml(config) if isinstance(config, (str, os.PathLike)) else (config or {})
    cfg = resolve_config(profile, overrides)
    backend_name = backend or cfg.backend
    if backend_name not in BACKEND_CHOICES:
        raise UsageError(f"unknown backend {backend_name!r}; choose one of auto, numpy, cupy")
    from linrnn.verify.backend import get_backend

    budget = parse_memory(max_memory)
    resolved = get_backend(backend_name, seed=seed)  # a missing GPU is a UsageError before any work
    check_target(output, force)
    workers = default_workers() if workers is None else check_workers(workers)
    exps = experiments()
    if claims is not None:
        from linrnn.families import claims as _all_claims

        known = list(_all_claims())
        unknown = [n for n in dict.fromkeys(claims) if n not in known]
        if unknown:
            raise UsageError(f"unknown claim{'s' if len(unknown) > 1 else ''} {', '.join(unknown)}; "
                             f"choose from {', '.join(known)}")
        only = ["derivation", *[n for n in claims if only is None or n in only]]
    chosen = only if only is not None else (cfg.experiments or default_experiments())
    unknown = sorted(set(chosen) - set(exps))
    if unknown:
        raise UsageError(f"unknown experiments {', '.join(unknown)}; known: {', '.join(exps)}")
    exps = {k: v for k, v in exps.items() if k in chosen}
    from linrnn.families import claims as _claims

    _REGISTRY = _claims()

    cfg = with_family_alpha(cfg, [name for name in exps if name in _REGISTRY])
    contexts = {name: Context(config=cfg.sections.get(getattr(fn, "section", name), {}), backend=resolved.name,
                              seed=seed, dtype="float64", model=cfg.model) for name, fn in exps.items()}
    # every experiment is sized first (the derivation and each claim: the registry requires a memory estimate),
    # then checked (a claim's check may evaluate its theory at its sizes), all before any work
    check_memory_budget({name: int(fn.memory(contexts[name])) for name, fn in exps.items()
                         if getattr(fn, "memory", None) is not None}, workers, budget)
    for name, fn in exps.items():
        check = getattr(fn, "check", None)
        if check is not None:
            check(contexts[name])
    with directory_lock(output) as out:
        return _run_locked(out, output, exps, contexts, cfg, resolved, seed=seed, force=force, use_cache=use_cache,
                           say=say, argv=argv, workers=workers, profile=profile)


def _run_locked(out: Path, output: str | os.PathLike[str], exps: Mapping[str, Any], contexts: Mapping[str, Context],
                cfg: SuiteConfig, resolved: Any, *, seed: int, force: bool, use_cache: bool,
                say: Callable[[str], None], argv: Sequence[str] | None, workers: int, profile: str) -> SuiteRun:
    """The body of :func:`run_report` once everything is checked and the directory's lock is held."""
    from linrnn.reports.output import CACHE_NAME, atomic_dir, check_target
    from linrnn.reports.render import record_files, write_report
    from linrnn.reports.schema import SCHEMA_VERSION, overall_verdict

    check_target(output, force)  # again, under the lock
    cache_dir = out / CACHE_NAME
    started = _dt.datetime.now(_dt.timezone.utc)
    t_start = time.perf_counter()
    payloads: dict[str, dict[str, Any]] = {}
    wall: dict[str, float] = {}
    cached: list[str] = []
    keys = {name: cache_key(name, contexts[name]) for name in exps}
    paths = {name: cache_dir / f"{name}-{keys[name]}.json" for name in exps}
    todo: list[str] = []
    for name in exps:
        entry = _cache_read(paths[name], keys[name], name) if use_cache else None
        if entry is not None:
            payloads[name], wall[name] = entry["payload"], float(entry["seconds"])
            cached.append(name)
            say(f"[{len(payloads)}/{len(exps)}] {name}: reused from {paths[name]} ({wall[name]:.1f} s when computed)")
        else:
            todo.append(name)

    def finished(name: str, payload: dict[str, Any], seconds: float) -> None:  # [k/N]: the k-th to finish
        payloads[name], wall[name] = payload, seconds
        say(f"[{len(payloads)}/{len(exps)}] {name}: {seconds:.1f} s")
        if use_cache:
            _cache_write(paths[name], {"key": keys[name], "experiment": name, "seconds": seconds, "payload": payload})

    _run_experiments(exps, contexts, todo, workers, finished, say)
    payloads = {name: payloads[name] for name in exps}  # report order, whatever order they finished in

    derivation, device, claims, controls = _assemble(
        payloads, {"param": cfg.model.param, "formulas": [], "figures": {}, "notes": [], "tex": None},
        resolved.describe())
    from linrnn.families import claims as all_claims

    REGISTRY = all_claims()

    not_run = [name for name in REGISTRY if name not in exps]
    provenance = {
        "command": " ".join(["linrnn", "report", *(argv or [])]),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "packages": package_versions(),
        "backend": device.get("backend", resolved.name),
        "device": device.get("device", "unknown"),
        "dtype": device.get("dtype", "float64"),
        "seed": seed,
        "workers": workers,
        "wall_time": {k: round(v, 3) for k, v in wall.items()},
        "cached": cached,
        "claims_not_run": not_run,
        "started": started.isoformat(timespec="seconds").replace("+00:00", "Z"),
        "total_seconds": None,
    }
    results: dict[str, Any] = {
        "schema_version": SCHEMA_VERSION,
        "tool": {"name": "linrnn-bias", "version": __version__},
        "title": TITLE,
        "created": provenance["started"],
        "profile": profile,
        "config": cfg.as_dict(),
        "provenance": provenance,
        "derivation": derivation,
        "claims": claims,
        "controls": controls,
        "verdict": overall_verdict(claims, controls),
    }
    chapter_list = _chapters_of(payloads)
    if chapter_list:
        results["chapters"] = chapter_list
    with atomic_dir(output, force=force, locked=True) as tmp:
        provenance["total_seconds"] = round(time.perf_counter() - t_start, 3)
        written = write_report(results, tmp, say)
        _maybe_pdf(tmp, cfg["derivation"], results, say)
        compiled = [p for p in (tmp / "derivation.pdf", tmp / "derivation.log") if p.is_file()]
        if compiled:  # report.json lists every file of the report, these too
            record_files(results, tmp, written + compiled)
    say(f"wrote {out}/report.html ({len(claims)} claims, {len(controls)} controls; verdict {results['verdict']})")
    return SuiteRun(results, out, exit_status(results["verdict"]))



def _maybe_pdf(tmp: Path, cfg: DerivationConfig, results: Mapping[str, Any], say: Callable[[str], None]) -> None:
    """Compile derivation.tex to PDF where a LaTeX engine is installed (a failure is reported, not fatal)."""
    from linrnn.core.errors import ExternalToolError

    tex = tmp / "derivation.tex"
    if not (cfg.pdf and tex.exists()):
        return
    from linrnn.derive.latex import compile_pdf, find_engine

    if find_engine() is None:
        say("no LaTeX engine installed: derivation.pdf skipped (derivation.tex written)")
        return
    try:
        compile_pdf(tex, tmp)
    except ExternalToolError as exc:
        say(f"derivation.pdf not written: {exc}")


def main_summary(results: Mapping[str, Any]) -> str:
    """Plain-text verdict table printed by the command: each claim's own test, its controls, its verdict."""
    from linrnn.reports.text import controls_outcome, format_alpha, stated_sentences, statistic_outcome

    def num(stat: Mapping[str, Any]) -> str:
        v = stat["value"]
        return "see below" if stat.get("in_words") else (f"{v:.4g}" if isinstance(v, float) else str(v))

    w = max([len("claim")] + [len(c["id"]) for c in results["claims"]])
    lines = [f"{'claim':<{w}} {'statistic':>11} {'alpha':>9}  {'own test':<9} {'controls':<18} verdict"]
    notes = []
    for c in results["claims"]:
        ctrls = [x for x in results["controls"] if x["claim"] == c["id"]]
        lines.append(f"{c['id']:<{w}} {num(c['statistic']):>11} {format_alpha(c):>9}  "
                     f"{statistic_outcome(c):<9} {controls_outcome(ctrls):<18} {c['verdict'].upper() if c['verdict'] != 'pass' else 'pass'}")
        notes += [f"  {c['id']}: {t}" for t in stated_sentences(c) if c["verdict"] != "pass"]
    lines += notes
    lines.append("")
    wc = max([len("claim")] + [len(x["claim"]) for x in results["controls"]])
    wx = max([len("negative control")] + [len(x["id"]) for x in results["controls"]])
    lines.append(f"{'claim':<{wc}}  {'negative control':<{wx}} {'statistic':>11}  outcome")
    words = []
    for x in results["controls"]:
        lines.append(f"{x['claim']:<{wc}}  {x['id']:<{wx}} {num(x['statistic']):>11}  {x['verdict'].replace('_', ' ')}")
        if x["statistic"].get("in_words"):
            words.append(f"  {x['claim']} {x['id']}: {x['statistic']['in_words']}")
    lines += words
    lines.append("")
    lines.append(f"verdict: {results['verdict'].upper()}")
    return "\n".join(lines)


if __name__ == "__main__":  # pragma: no cover
    sys.exit("use `linrnn report`")
