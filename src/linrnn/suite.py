"""The claim suite behind ``linrnn report``: run the experiments, assemble the results file.

:func:`run_report` is the plain function the command calls. It resolves the
configuration (a profile, :data:`PROFILES`, with overrides from a TOML file), runs
each experiment (or reuses its cached result), assembles one results object in the
schema of :mod:`linrnn.reports.schema`, and publishes the report directory atomically
through :mod:`linrnn.reports.render`. This module may import ``linrnn.derive`` and ``linrnn.verify``;
``linrnn.reports`` never does.

Experiments and the claims they produce:

* ``derivation`` (``linrnn.derive``): the formulas shown in the report, the LaTeX appendix
  (``derivation.tex``, and ``derivation.pdf`` where a LaTeX engine is installed) and
  the figure of lambda_j against j for several q = sigma_W^2.
* ``ntk`` (``linrnn.verify.check_lag_ntk`` over a width sweep): the claims ``ntk_limit``
  (the empirical lag NTK tends to lambda_i delta_ij delta_aa' delta_bb'), ``nngp``
  (the initial impulse response has the derived NNGP covariance) and ``width_rate``
  (the relative error falls like n^-1/2), with their negative controls.
* the training claims of ``linrnn.verify.claims_train`` (dynamics equivalence, min-norm
  bias, short-memory bias, CO2), registered only when that module exists.

Cache: each experiment's payload is stored in ``DIR/.cache/<name>-<key>.json``, the
key hashing the experiment's configuration, the seed, the resolved backend and
dtype, the package version and the source code of ``linrnn.derive``, ``linrnn.verify`` and this
module. The cache is written as soon as an experiment finishes, directly into
``DIR/.cache`` (the report itself is built in a temporary directory), so a run
interrupted after some experiments resumes from them; ``use_cache=False`` neither
reads nor writes it.
"""

from __future__ import annotations

import copy
import datetime as _dt
import hashlib
import importlib
import importlib.metadata
import json
import math
import os
import platform
import sys
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from linrnn import __version__
from linrnn.core.errors import UsageError

TITLE = "Implicit bias of wide linear RNNs: claims, checks and verdicts"

#: Experiment sizes per profile. ``quick`` runs on 2 CPU cores in well under five
#: minutes; ``full`` is the paper-scale run meant for a GPU.
PROFILES: dict[str, dict[str, Any]] = {
    "quick": {
        "backend": "numpy",
        "derivation": {
            "param": "ntk", "sigma_w2": 0.9, "sigma_c2": 1.0, "sigma_f2": 1.0, "n_in": 1,
            "lr_c": 1.0, "lr_f": 1.0, "lr_w": 1.0, "eps": 1e-3, "pdf": True,
            "figure_q": [0.7, 0.8, 0.9, 0.95, 1.0, 1.02, 1.05], "figure_lags": 100,
        },
        "ntk": {
            "param": "ntk", "sigma_w2": 0.9, "sigma_c2": 1.0, "sigma_f2": 1.0, "n_in": 1, "n_out": 1,
            "lr_c": 1.0, "lr_f": 1.0, "lr_w": 1.0, "lags": 16, "widths": [64, 128, 256, 512, 1024],
            "replicas": 256, "alpha": 1e-3, "max_memory": "2GB",
        },
    },
    "full": {
        "backend": "auto",
        "derivation": {
            "param": "ntk", "sigma_w2": 0.9, "sigma_c2": 1.0, "sigma_f2": 1.0, "n_in": 1,
            "lr_c": 1.0, "lr_f": 1.0, "lr_w": 1.0, "eps": 1e-3, "pdf": True,
            "figure_q": [0.7, 0.8, 0.9, 0.95, 1.0, 1.02, 1.05], "figure_lags": 100,
        },
        "ntk": {
            "param": "ntk", "sigma_w2": 0.9, "sigma_c2": 1.0, "sigma_f2": 1.0, "n_in": 1, "n_out": 1,
            "lr_c": 1.0, "lr_f": 1.0, "lr_w": 1.0, "lags": 32, "widths": [256, 512, 1024, 2048, 4096],
            "replicas": 1024, "alpha": 1e-3, "max_memory": "8GB",
        },
    },
}

#: Sizes of the training claims per profile, over the defaults of ``linrnn.verify.claims_train``
#: (``full`` uses those defaults). The quick sizes are those its own tests pass with.
TRAIN_PROFILES: dict[str, dict[str, dict[str, Any]]] = {
    "quick": {
        "dynamics_equivalence": {"widths": [64, 128, 256, 512], "seeds": 12, "seq_len": 12, "n_seq": 16,
                                 "steps": 100},
        "min_norm": {"widths": [64, 128, 256, 512], "seeds": 16},
        "short_memory": {"width": 512, "seeds": 6, "seq_len": 16, "n_test": 128, "sigma_w2s": [0.5, 0.9, 1.2]},
    },
    "full": {},
}

#: Training claims of ``linrnn.verify.claims_train``: (experiment name, function name).
TRAIN_CLAIMS = (
    ("dynamics_equivalence", "claim_dynamics_equivalence"),
    ("min_norm", "claim_min_norm"),
    ("short_memory", "claim_short_memory"),
    ("co2", "claim_co2"),
)


# ------------------------------------------------------------------ configuration


def _type_name(v: Any) -> str:
    return {bool: "a boolean", int: "an integer", float: "a number", str: "a string", list: "a list"}.get(
        type(v), type(v).__name__)


def _merge_section(base: dict[str, Any], over: Mapping[str, Any], section: str, *, check_types: bool = True) -> None:
    unknown = sorted(set(over) - set(base))
    if unknown:
        raise UsageError(f"unknown key{'s' if len(unknown) > 1 else ''} "
                         f"{', '.join(f'{section}.{k}' for k in unknown)} in the configuration; "
                         f"known keys of [{section}]: {', '.join(sorted(base))}")
    for k, v in over.items():
        if not check_types:
            base[k] = v
            continue
        old = base[k]
        ok = (isinstance(v, type(old)) and not (isinstance(v, bool) and not isinstance(old, bool))) or (
            isinstance(old, float) and isinstance(v, int) and not isinstance(v, bool))
        if isinstance(old, str) and k == "max_memory" and isinstance(v, int):
            ok = True
        if not ok:
            raise UsageError(f"{section}.{k} must be {_type_name(old)}, got {v!r}")
        base[k] = float(v) if isinstance(old, float) else v


def resolve_config(profile: str, overrides: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The profile's configuration with ``overrides`` (TOML tables by experiment) applied.

    Unknown experiments or keys, and values of the wrong type, are a :class:`UsageError`
    that names them.
    """
    if profile not in PROFILES:
        raise UsageError(f"unknown profile {profile!r}; choose one of {', '.join(PROFILES)}")
    cfg = copy.deepcopy(PROFILES[profile])
    for name in _available_train_claims():
        cfg[name] = _train_defaults(name)
        sizes = TRAIN_PROFILES.get(profile, {}).get(name, {})
        if cfg[name]:
            sizes = {k: v for k, v in sizes.items() if k in cfg[name]}  # follow the module's keys
        cfg[name].update(copy.deepcopy(sizes))
    for section, over in (overrides or {}).items():
        if section not in cfg:
            raise UsageError(f"unknown section [{section}] in the configuration; known sections: "
                             f"{', '.join(sorted(k for k in cfg if isinstance(cfg[k], dict)))} "
                             "(and the key backend)")
        if not isinstance(cfg[section], dict):
            _merge_section(cfg, {section: over}, "(top level)")
            continue
        if not isinstance(over, Mapping):
            raise UsageError(f"[{section}] must be a table of keys in the configuration")
        if section in dict(TRAIN_CLAIMS):  # keys checked here, values by verify.claims_train itself
            _merge_section(cfg[section], over, section, check_types=False)
        else:
            _merge_section(cfg[section], over, section)
    return cfg


def load_toml(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read a TOML configuration file (``tomllib``; ``tomli`` on Python 3.10)."""
    try:
        import tomllib  # Python >= 3.11
    except ModuleNotFoundError:  # pragma: no cover - Python 3.10
        try:
            import tomli as tomllib  # type: ignore[no-redef]
        except ModuleNotFoundError:
            raise UsageError("reading --config needs Python 3.11 or the tomli package") from None
    p = Path(path)
    try:
        with open(p, "rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError:
        raise UsageError(f"no configuration file at {str(p)!r}") from None
    except tomllib.TOMLDecodeError as exc:
        raise UsageError(f"the configuration file {str(p)!r} is not valid TOML ({exc})") from None


# ------------------------------------------------------------------ helpers


def _clean(obj: Any) -> Any:
    """JSON-ready copy: NumPy scalars and arrays to Python, non-finite floats to None."""
    if isinstance(obj, bool) or obj is None or isinstance(obj, str):
        return obj
    if isinstance(obj, int):
        return int(obj)
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, Mapping):
        return {str(k): _clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_clean(v) for v in obj]
    if hasattr(obj, "tolist"):
        return _clean(obj.tolist())
    if hasattr(obj, "item"):
        return _clean(obj.item())
    return str(obj)


def _spec(cfg: Mapping[str, Any]) -> Any:
    from linrnn.derive import ModelSpec

    return ModelSpec(param=cfg["param"], sigma_w2=cfg["sigma_w2"], sigma_c2=cfg["sigma_c2"],
                     sigma_f2=cfg["sigma_f2"], n_in=cfg["n_in"], lr_c=cfg["lr_c"], lr_f=cfg["lr_f"],
                     lr_w=cfg["lr_w"], n_out=cfg.get("n_out", 1))


@dataclass
class Context:
    """What every experiment receives: its configuration, the backend name, seed and dtype."""

    config: dict[str, Any]
    backend: str
    seed: int
    dtype: str = "float64"


# ------------------------------------------------------------------ experiments


def experiment_derivation(ctx: Context) -> dict[str, Any]:
    """Formulas, the LaTeX appendix and the lambda_j-against-j figure, all from ``linrnn.derive``."""
    import numpy as np

    from linrnn.derive import ModelSpec, derive_lag_weights, weights
    from linrnn.derive.latex import build_document, latex
    from linrnn.derive.numeric import regime_of, summarize

    cfg = ctx.config
    spec = _spec(cfg)
    der = derive_lag_weights(spec.param)
    other_name = "standard" if spec.param == "ntk" else "ntk"
    other = derive_lag_weights(other_name)
    lags = int(cfg["figure_lags"])
    series = []
    for q in cfg["figure_q"]:
        s = ModelSpec(param=spec.param, sigma_w2=float(q), sigma_c2=spec.sigma_c2, sigma_f2=spec.sigma_f2,
                      n_in=spec.n_in, lr_c=spec.lr_c, lr_f=spec.lr_f, lr_w=spec.lr_w)
        w = np.asarray(weights(s, lags), dtype=np.float64)
        summary = summarize(s, eps=cfg["eps"])
        series.append({"q": float(q), "regime": regime_of(float(q)), "weights": w,
                       "horizon": summary.horizon})
    spec_summary = summarize(spec, eps=cfg["eps"])
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
        {"label": f"Lag weights in the {other_name} parameterization",
         "latex": r"\lambda_j = " + latex(other.weight),
         "description": "for comparison (the F-gradient contribution differs)"},
    ]
    notes = [
        f"Configuration of the derivation: q = sigma_W^2 = {spec.sigma_w2:g}, sigma_C^2 = {spec.sigma_c2:g}, "
        f"sigma_F^2 = {spec.sigma_f2:g}, n_x = {spec.n_in}, (eta_C, eta_F, eta_W) = "
        f"({spec.lr_c:g}, {spec.lr_f:g}, {spec.lr_w:g}); regime {spec_summary.regime}"
        + (f", peak at lag {spec_summary.peak_lag}, memory horizon j_eps = {spec_summary.horizon:.2f} "
           f"(eps = {cfg['eps']:g})." if spec_summary.horizon is not None else "."),
    ]
    figure = {
        "kind": "lag_weights", "title": "Lag weights of the equivalent scaled convolution",
        "caption": "lambda_j against the lag j for several transition variances q = sigma_W^2 (log scale): "
                   "geometric decay for q < 1 (an implicit bias toward short memory), linear growth at q = 1, "
                   "geometric growth for q > 1; dotted verticals mark the memory horizon j_eps where "
                   "lambda_j falls to eps of its maximum.",
        "lags": list(range(lags)), "series": series, "eps": cfg["eps"],
    }
    return {
        "derivation": {"param": spec.param, "formulas": formulas, "figures": {"lag_weights": figure},
                       "notes": notes, "tex": build_document(spec, eps=cfg["eps"])},
        "claims": [],
    }


def _entry_stat(check: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    stat = {"name": "max |z| over the entries (bias-corrected estimate vs theory)", "value": check["value"],
            "entries_tested": check["entries_tested"], "entries_rejected_holm": check["entries_rejected_holm"]}
    thr = {"description": f"every |z| below Holm's thresholds, the first t_{{{check['dof']:g}}} critical value "
                          f"at family-wise alpha = {check['alpha']:.3g}",
           "value": check["threshold"]}
    return stat, thr


def _rate_stat(check: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    stat = {"name": "fitted log-log slope of the relative error against n", "value": check["value"],
            "stderr": check["stderr"], "ci": check["ci"]}
    thr = {"description": f"expected slope {check['expected']:g} inside the {100 * check['ci_level']:.4g}% interval",
           "value": check["ci"]}
    return stat, thr


def experiment_ntk(ctx: Context) -> dict[str, Any]:
    """The NTK limit, the NNGP and the width rate from one ``linrnn.verify.check_lag_ntk`` width sweep."""
    import numpy as np

    from linrnn.derive.latex import latex
    from linrnn.derive import derive_lag_weights
    from linrnn.verify.check_ntk import check_lag_ntk
    from linrnn.verify.montecarlo import parse_memory

    cfg = ctx.config
    spec = _spec(cfg)
    if len(set(cfg["widths"])) < 2:
        raise UsageError("ntk.widths needs at least two different widths (the rate is fitted over them)")
    r = check_lag_ntk(spec, cfg["widths"], lags=cfg["lags"], replicas=cfg["replicas"],
                      seed=ctx.seed, backend=ctx.backend, dtype=ctx.dtype,
                      max_memory=parse_memory(cfg["max_memory"]), alpha=cfg["alpha"], progress=False)
    j = r.to_json()
    checks = {c["name"]: c for c in j["checks"]}
    der = derive_lag_weights(spec.param)
    lam, var = latex(der.weight), latex(der.nngp)
    L, ny, nx = cfg["lags"], cfg["n_out"], spec.n_in
    M = L * ny * nx
    top, comp = j["width"], j["companion_width"]
    diag = [(k, 0, 0, k, 0, 0) for k in range(L)]

    def arr(key: str) -> np.ndarray:
        return np.asarray(j[key], dtype=np.float64)

    def per_lag(prefix: str, check: Mapping[str, Any], ylabel: str, what: str) -> dict[str, Any]:
        th, est, se, raw = (arr(prefix + k) for k in ("theory", "corrected_mean", "corrected_stderr", "mean"))
        t = check["threshold"]
        e = np.array([est[d] for d in diag])
        s = np.array([se[d] for d in diag])
        return {
            "kind": "per_lag", "title": f"{what}: Monte Carlo against theory per lag",
            "caption": f"Diagonal entries (lag j, output 0, input 0) at width n = {top} over {j['replicas']} draws. "
                       f"Circles: bias-corrected estimate (two-point fit at n = {top} and n = {comp}), with "
                       f"simultaneous intervals of +-{t:.2f} standard errors (the Holm/Bonferroni threshold of the "
                       f"test); open squares: the raw mean at n = {top}; line: the derived limit.",
            "lags": list(range(L)), "theory": [th[d] for d in diag], "estimate": e, "lower": e - t * s,
            "upper": e + t * s, "raw": [raw[d] for d in diag], "ylabel": ylabel,
            "theory_label": "derived limit", "estimate_label": "bias-corrected Monte Carlo",
            "interval_label": f"+-{t:.2f} SE, simultaneous", "raw_label": f"raw mean at n = {top}",
        }

    axis = "lag j" if M == L else "(lag, output, input), flattened"
    ntk_stat, ntk_thr = _entry_stat(checks["ntk_entries"])
    nngp_stat, nngp_thr = _entry_stat(checks["nngp_entries"])
    rate_stat, rate_thr = _rate_stat(checks["rate"])
    controls: dict[str, list[dict[str, Any]]] = {"ntk_limit": [], "nngp": [], "width_rate": []}
    descriptions = {
        "ntk:no_linear_term": "lag weights without the W-gradient term linear in j",
        "ntk:q_times_1.1": "lag weights with q replaced by 1.1 q",
        "nngp:q_times_1.1": "NNGP variance with q replaced by 1.1 q",
        "rate:minus_1": "the relative error falls like n^-1 (fluctuations of order 1/n)",
    }
    for name, ctrl in j["controls"].items():
        owner = {"ntk": "ntk_limit", "nngp": "nngp", "rate": "width_rate"}[name.split(":")[0]]
        first = ctrl["checks"][0]
        stat, thr = _rate_stat(first) if first["name"] == "rate" else _entry_stat(first)
        formula = ctrl.get("formula")
        controls[owner].append({
            "id": name, "statement": descriptions.get(name, f"wrong theory {name}"),
            "formula": formula, "statistic": stat, "threshold": thr, "verdict": first["verdict"],
        })
    mean = arr("mean").reshape(M, M)
    theory = arr("theory").reshape(M, M)
    design = j["design"]
    base_cfg = {k: cfg[k] for k in cfg}
    claims = [
        {
            "id": "ntk_limit", "title": "NTK limit of the lag weights",
            "statement": "As the width grows, the empirical lag NTK of a linear RNN at initialisation tends to the "
                         "diagonal kernel with the derived lag weights lambda_j.",
            "formula": r"\Theta_\infty[(i,a,b),(j,a',b')] = \lambda_i\,\delta_{ij}\,\delta_{aa'}\,\delta_{bb'},"
                       r"\quad \lambda_j = " + lam,
            "statistic": ntk_stat, "threshold": ntk_thr, "verdict": checks["ntk_entries"]["verdict"],
            "figures": {
                "heatmap": {
                    "kind": "heatmap", "title": "Empirical lag NTK against its limit",
                    "caption": f"Left: Monte Carlo mean of the empirical lag NTK at width n = {top} "
                               f"({j['replicas']} draws); right: the derived limit, diagonal with lambda_j. "
                               "Same colour scale.",
                    "panels": [{"title": f"Monte Carlo mean, n = {top}", "matrix": mean},
                               {"title": r"derived limit $\lambda_i\,\delta_{ij}$", "matrix": theory}],
                    "axis_label": axis.replace("lag j", "lag j'"), "axis_label_y": axis.replace("lag j", "lag i"),
                    "colorbar_label": r"$\Theta[i, j']$ (dimensionless)",
                },
                "per_lag": per_lag("", checks["ntk_entries"], r"NTK diagonal $\Theta[(j,0,0),(j,0,0)]$ (dimensionless)",
                                   "Lag NTK"),
            },
            "config": base_cfg, "notes": [design["correction"] + ".", design["allowance"] + "."],
            "controls": controls["ntk_limit"],
        },
        {
            "id": "nngp", "title": "NNGP of the initial impulse response",
            "statement": "At initialisation the impulse response L_j(0) = C W^j F of a wide linear RNN has independent "
                         "entries with the derived variance.",
            "formula": r"\mathrm{E}\left[L_i(0)[a,b]\,L_j(0)[a',b']\right] = \delta_{ij}\,\delta_{aa'}\,\delta_{bb'}\,"
                       + var,
            "statistic": nngp_stat, "threshold": nngp_thr, "verdict": checks["nngp_entries"]["verdict"],
            "figures": {"per_lag": per_lag("nngp_", checks["nngp_entries"],
                                           r"$\mathrm{Var}\,L_j(0)[0,0]$ (dimensionless)", "NNGP variance")},
            "config": base_cfg, "notes": [design["test"] + "."], "controls": controls["nngp"],
        },
        {
            "id": "width_rate", "title": "Convergence rate in the width",
            "statement": "The per-draw relative Frobenius error of the empirical lag NTK against its limit falls "
                         "like n^(-1/2).",
            "formula": r"e(n) = \frac{\|\Theta_r - \Theta_\infty\|_F}{\|\Theta_\infty\|_F} \propto n^{-1/2}",
            "statistic": rate_stat, "threshold": rate_thr, "verdict": checks["rate"]["verdict"],
            "figures": {"width_rate": {
                "kind": "width_rate", "title": "Relative error of the lag NTK against the width",
                "caption": f"Mean per-draw relative error e(n) over {j['replicas']} draws per width (bars: +-2 "
                           f"standard errors), log-log axes. Dashed: the fitted slope ({checks['rate']['model']}), "
                           "drawn through the largest width; dotted: the expected slope -1/2.",
                "widths": j["widths"], "rel_error": j["rel_error"], "rel_error_stderr": j["rel_error_stderr"],
                "slope": j["slope"], "slope_ci": j["slope_ci"], "expected_slope": j["expected_slope"],
                "ylabel": r"relative error $e(n)$ (dimensionless)",
            }},
            "config": base_cfg, "notes": [design["rate"] + "."], "controls": controls["width_rate"],
        },
    ]
    return {"claims": claims, "backend": j["backend"], "seconds_inner": j["seconds"]}


def _available_train_claims() -> list[str]:
    """The training claims whose functions exist in ``linrnn.verify.claims_train`` (none if the module is absent)."""
    import importlib.util

    try:
        if importlib.util.find_spec("linrnn.verify.claims_train") is None:
            return []
    except (ImportError, ValueError):
        return []
    return [name for name, fn in TRAIN_CLAIMS if _train_function(name) is not None]


def _train_module_names(name: str) -> tuple[str, ...]:
    return ("linrnn.verify.claims_train", "linrnn.verify.co2") if name == "co2" else ("linrnn.verify.claims_train",)


def _train_function(name: str) -> Callable[..., dict[str, Any]] | None:
    """The function of a training claim: in ``linrnn.verify.claims_train`` (``claim_co2`` also in ``linrnn.verify.co2``)."""
    for module in _train_module_names(name):
        try:
            mod = importlib.import_module(module)
        except ImportError:
            continue
        fn = getattr(mod, dict(TRAIN_CLAIMS)[name], None)
        if callable(fn):
            return fn
    return None


def _train_defaults(name: str) -> dict[str, Any]:
    """The sizes of a training claim: ``linrnn.verify.claims_train.DEFAULTS_<NAME>`` without its seed (set by --seed)."""
    attr = {"dynamics_equivalence": "DEFAULTS_DYNAMICS"}.get(name, f"DEFAULTS_{name.upper()}")
    defaults = None
    for module in _train_module_names(name):
        defaults = getattr(importlib.import_module(module), attr, None)
        if defaults is not None:
            break
    if not isinstance(defaults, Mapping):
        return {}
    return {k: copy.deepcopy(v) for k, v in defaults.items() if k != "seed"}


def _train_experiment(name: str) -> Callable[[Context], dict[str, Any]]:
    fn_name = dict(TRAIN_CLAIMS)[name]

    def run(ctx: Context) -> dict[str, Any]:
        from linrnn.verify.backend import get_backend

        fn = _train_function(name)
        assert fn is not None, fn_name
        backend = get_backend(ctx.backend, seed=ctx.seed, dtype=ctx.dtype)
        cfg = dict(ctx.config)
        cfg["seed"] = ctx.seed
        claim = fn(cfg, backend)
        return {"claims": [claim], "backend": backend.describe()}

    run.__name__ = f"experiment_{name}"
    return run


def experiments() -> dict[str, Callable[[Context], dict[str, Any]]]:
    """The experiments of the suite, in report order."""
    out: dict[str, Callable[[Context], dict[str, Any]]] = {"derivation": experiment_derivation,
                                                           "ntk": experiment_ntk}
    for name in _available_train_claims():
        out[name] = _train_experiment(name)
    return out


# ------------------------------------------------------------------ cache


def code_hash() -> str:
    """Hash of the source of ``linrnn.derive``, ``linrnn.verify`` and this module: any change invalidates the cache."""
    h = hashlib.sha256(__version__.encode())
    import linrnn.derive
    import linrnn.verify

    for pkg in (linrnn.derive, linrnn.verify):
        for path in sorted(Path(pkg.__file__).resolve().parent.glob("*.py")):
            h.update(path.name.encode())
            h.update(path.read_bytes())
    h.update(Path(__file__).read_bytes())
    return h.hexdigest()


def cache_key(name: str, ctx: Context) -> str:
    blob = json.dumps({"experiment": name, "config": ctx.config, "seed": ctx.seed, "backend": ctx.backend,
                       "dtype": ctx.dtype, "code": code_hash()}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:24]


def _cache_read(path: Path, key: str) -> dict[str, Any] | None:
    try:
        entry = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(entry, dict) or entry.get("key") != key or "payload" not in entry:
        return None
    return entry


def _cache_write(path: Path, entry: Mapping[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(entry, fh, allow_nan=False)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


# ------------------------------------------------------------------ assembly


_CLAIM_KEYS = ("id", "title", "statement", "formula", "statistic", "threshold", "verdict", "figures", "config",
               "notes")


def _errs(values: Sequence[Any] | None, factor: float = 2.0) -> list[Any] | None:
    return None if values is None else [None if v is None else factor * v for v in values]


def adapt_figure(name: str, fig: Any) -> dict[str, Any]:
    """A claim's figure data in a kind of :mod:`linrnn.reports.figures`.

    Figures that already name their ``kind`` pass unchanged. The training claims'
    figures (``distance_vs_width``, ``test_error_vs_q``) are mapped to the generic
    ``lines`` kind, keeping their data; anything else becomes kind ``data``
    (stored in the results, listed but not drawn).
    """
    if isinstance(fig, list):
        return _adapt_list_figure(name, fig)
    if not isinstance(fig, Mapping):
        return {"kind": "data", "value": fig}
    if isinstance(fig.get("kind"), str):
        return dict(fig)
    if name == "distance_vs_width" and {"widths", "distance_mean", "distance_se"} <= set(fig):
        series = [{"label": "derived lag weights (bars: +-2 SE)", "x": fig["widths"], "y": fig["distance_mean"],
                   "yerr": _errs(fig["distance_se"]), "style": "points"}]
        for k, v in (fig.get("controls") or {}).items():
            series.append({"label": f"control {k}", "x": fig["widths"], "y": v["mean"], "yerr": _errs(v.get("se")),
                           "style": "points"})
        slope = (fig.get("fit") or {}).get("slope")
        return {**fig, "kind": "lines", "title": "Distance to the theory against the width",
                "caption": "Mean relative distance between the trained RNN and the prediction of the theory over "
                           "the seeds, against the width, log-log axes; derived lag weights against the wrong "
                           "weights of the negative controls (bars: +-2 standard errors)"
                           + (f"; fitted slope {slope:.3f}." if isinstance(slope, float) else "."),
                "xlabel": "width n (hidden units)", "ylabel": "relative distance (dimensionless)",
                "xscale": "log", "yscale": "log", "series": series}
    if name == "test_error_vs_q" and {"sigma_w2", "theory", "bias_corrected", "bias_corrected_se"} <= set(fig):
        series = [{"label": "theory (SCNN + NNGP)", "x": fig["sigma_w2"], "y": fig["theory"], "style": "line"},
                  {"label": "trained RNNs, bias-corrected (bars: +-2 SE)", "x": fig["sigma_w2"],
                   "y": fig["bias_corrected"], "yerr": _errs(fig["bias_corrected_se"]), "style": "points"}]
        if "experiment_mean" in fig:
            series.append({"label": "trained RNNs, raw mean at width n (bars: +-2 SE)", "x": fig["sigma_w2"],
                           "y": fig["experiment_mean"], "yerr": _errs(fig.get("experiment_se")),
                           "style": "points"})
        for k, v in (fig.get("controls") or {}).items():
            series.append({"label": f"control {k}", "x": fig["sigma_w2"], "y": v, "style": "line"})
        return {**fig, "kind": "lines", "title": "Test error against the transition variance",
                "caption": "Relative test error after a fixed number of gradient steps against q = sigma_W^2: "
                           "the closed-form prediction of the scaled CNN averaged over the NNGP initialisation, "
                           "trained RNNs, and the predictions of wrong lag weights (negative controls).",
                "xlabel": r"transition variance $q = \sigma_W^2$", "ylabel": "relative test error (dimensionless)",
                "yscale": "log", "series": series}
    if name == "impulse_by_q" and isinstance(fig, Mapping) and fig:
        series = [{"label": f"q = {q}", "x": list(range(len(v))), "y": v, "style": "line"} for q, v in fig.items()]
        return {"kind": "lines", "impulse_by_q": dict(fig), "title": "Learned impulse responses",
                "caption": "Mean learned impulse response L_j of the trained RNNs for each q = sigma_W^2, against "
                           "the lag j; the dashed vertical marks j = 51, the difference 52 weeks back (the annual "
                           "cycle).",
                "xlabel": "lag j (weeks)", "ylabel": "impulse response $L_j$ (standardised units)",
                "vlines": [{"x": 51, "label": "j = 51 (52 weeks)"}], "series": series}
    return {**fig, "kind": "data"}


def _adapt_list_figure(name: str, rows: list[Any]) -> dict[str, Any]:
    if name == "comparison" and rows and all(isinstance(r, Mapping) and "test_r2" in r for r in rows):
        labels = [r.get("model", "?") + ("" if r.get("sigma_w2") is None else f" q={r['sigma_w2']:g}") for r in rows]
        return {"kind": "bars", "rows": rows, "title": "Test R^2 on the CO2 series",
                "caption": "Test R^2 of the next-week CO2 difference for the trained RNNs at each q and for "
                           "least-squares autoregressive fits (bars: +-2 standard errors over the replicas).",
                "labels": labels, "values": [r["test_r2"] for r in rows],
                "errors": _errs([r.get("test_r2_se") for r in rows]), "ylabel": "test $R^2$ (dimensionless)"}
    return {"kind": "data", "value": rows}


def to_schema_claim(claim: Mapping[str, Any], experiment: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Split a claim of docs/claims.md into the schema's claim and its controls (with ``claim`` set).

    Keys beyond the contract go to the claim's ``data``.
    """
    c = _clean(claim)
    missing = [k for k in ("id", "statement", "statistic", "threshold", "verdict") if k not in c]
    if missing:
        raise ValueError(f"experiment {experiment!r} returned a claim without {', '.join(missing)}")
    out = {k: c[k] for k in _CLAIM_KEYS if k in c}
    out.setdefault("title", c["id"].replace("_", " ").capitalize())
    out.setdefault("formula", "")
    out["figures"] = {name: adapt_figure(name, fig) for name, fig in (c.get("figures") or {}).items()}
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


def _versions() -> dict[str, str]:
    out = {}
    for dist in ("linrnn-bias", "numpy", "sympy", "mpmath", "matplotlib", "cupy-cuda12x"):
        try:
            out[dist] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            if dist == "linrnn-bias":
                out[dist] = __version__ + " (source tree)"
    return out


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
) -> SuiteRun:
    """Run the claim suite and write the report directory ``output``.

    ``config``: a TOML path or a mapping of overrides (tables by experiment).
    ``backend``: numpy, cupy or auto (default: the profile's). ``only``: run a subset of
    the experiments (for tests). Exit status 0 when every claim passes and every
    control is rejected, 1 otherwise (a failing claim is a finding: the report is
    still written).
    """
    from linrnn.reports.output import CACHE_NAME, atomic_dir, check_target
    from linrnn.reports.render import write_report
    from linrnn.reports.schema import SCHEMA_VERSION, overall_verdict

    say = log or (lambda _msg: None)
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise UsageError(f"the seed must be a non-negative integer, got {seed!r}")
    overrides = load_toml(config) if isinstance(config, (str, os.PathLike)) else (config or {})
    cfg = resolve_config(profile, overrides)
    backend_name = backend or cfg["backend"]
    if backend_name not in ("auto", "numpy", "cupy"):
        raise UsageError(f"unknown backend {backend_name!r}; choose one of auto, numpy, cupy")
    from linrnn.verify.backend import get_backend

    resolved = get_backend(backend_name, seed=seed)  # a missing GPU is a UsageError before any work
    out = Path(output)
    check_target(out, force)
    exps = experiments()
    if only is not None:
        unknown = sorted(set(only) - set(exps))
        if unknown:
            raise UsageError(f"unknown experiments {', '.join(unknown)}")
        exps = {k: v for k, v in exps.items() if k in only}
    cache_dir = out / CACHE_NAME
    started = _dt.datetime.now(_dt.timezone.utc)
    t_start = time.perf_counter()
    payloads: dict[str, dict[str, Any]] = {}
    wall: dict[str, float] = {}
    cached: list[str] = []
    for i, (name, fn) in enumerate(exps.items(), 1):
        ctx = Context(config=cfg.get(name, {}), backend=resolved.name, seed=seed, dtype="float64")
        key = cache_key(name, ctx)
        path = cache_dir / f"{name}-{key}.json"
        entry = _cache_read(path, key) if use_cache else None
        if entry is not None:
            payloads[name], wall[name] = entry["payload"], float(entry["seconds"])
            cached.append(name)
            say(f"[{i}/{len(exps)}] {name}: reused from {path} ({wall[name]:.1f} s when computed)")
            continue
        say(f"[{i}/{len(exps)}] {name} ...")
        t0 = time.perf_counter()
        payload = _clean(fn(ctx))
        wall[name] = time.perf_counter() - t0
        payloads[name] = payload
        say(f"[{i}/{len(exps)}] {name}: {wall[name]:.1f} s")
        if use_cache:
            _cache_write(path, {"key": key, "experiment": name, "seconds": wall[name], "payload": payload})

    claims: list[dict[str, Any]] = []
    controls: list[dict[str, Any]] = []
    derivation = {"param": cfg["derivation"]["param"], "formulas": [], "figures": {}, "notes": [], "tex": None}
    device = resolved.describe()
    for name, payload in payloads.items():
        if "derivation" in payload:
            derivation = payload["derivation"]
        if "backend" in payload:
            device = payload["backend"]
        for claim in payload.get("claims", []):
            c, ctrls = to_schema_claim(claim, name)
            claims.append(c)
            controls.extend(ctrls)
    notes_missing = [f"{name} ({fn} is not available in verify)" for name, fn in TRAIN_CLAIMS
                     if name not in exps and only is None]
    provenance = {
        "command": " ".join(["linrnn", "report", *(argv or [])]),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "packages": _versions(),
        "backend": device.get("backend", resolved.name),
        "device": device.get("device", "unknown"),
        "dtype": device.get("dtype", "float64"),
        "seed": seed,
        "wall_time": {k: round(v, 3) for k, v in wall.items()},
        "cached": cached,
        "claims_not_run": notes_missing,
        "started": started.isoformat(timespec="seconds").replace("+00:00", "Z"),
        "total_seconds": None,
    }
    results: dict[str, Any] = {
        "schema_version": SCHEMA_VERSION,
        "tool": {"name": "linrnn-bias", "version": __version__},
        "title": TITLE,
        "created": provenance["started"],
        "profile": profile,
        "config": _clean(cfg),
        "provenance": provenance,
        "derivation": derivation,
        "claims": claims,
        "controls": controls,
        "verdict": overall_verdict(claims, controls),
    }
    with atomic_dir(out, force=force) as tmp:
        provenance["total_seconds"] = round(time.perf_counter() - t_start, 3)
        write_report(results, tmp)
        _maybe_pdf(tmp, cfg["derivation"], results, say)
    say(f"wrote {out}/report.html ({len(claims)} claims, {len(controls)} controls; verdict {results['verdict']})")
    return SuiteRun(results, out, 0 if results["verdict"] == "pass" else 1)


def _maybe_pdf(tmp: Path, cfg: Mapping[str, Any], results: Mapping[str, Any], say: Callable[[str], None]) -> None:
    """Compile derivation.tex to PDF where a LaTeX engine is installed (a failure is reported, not fatal)."""
    from linrnn.core.errors import ExternalToolError

    tex = tmp / "derivation.tex"
    if not (cfg.get("pdf") and tex.exists()):
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
    """Plain-text verdict table printed by the command."""
    lines = [f"{'claim':<24} {'statistic':>12}  verdict"]
    for c in results["claims"]:
        v = c["statistic"]["value"]
        vs = f"{v:.4g}" if isinstance(v, float) else str(v)
        lines.append(f"{c['id']:<24} {vs:>12}  {c['verdict']}")
    lines.append("")
    lines.append(f"{'negative control':<24} {'statistic':>12}  outcome")
    for x in results["controls"]:
        v = x["statistic"]["value"]
        vs = f"{v:.4g}" if isinstance(v, float) else str(v)
        lines.append(f"{x['id']:<24} {vs:>12}  {'rejected' if x['verdict'] == 'fail' else 'NOT rejected'}")
    lines.append("")
    lines.append(f"verdict: {results['verdict'].upper()}")
    return "\n".join(lines)


if __name__ == "__main__":  # pragma: no cover
    sys.exit("use `linrnn report`")
