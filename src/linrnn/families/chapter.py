"""The report's chapter "implicit bias across families": every family's derived lag kernel side by side.

Every registered family whose specification has a setting at a common spectral radius r
(:meth:`linrnn.core.spec.FamilySpec.at_radius`: the dense Gaussian family at q = r^2, the
orthogonal family on the circle of radius r, the diagonal families on the disc of radius r)
is evaluated there from its derived wide-limit lag NTK (``model.kernel``), and nothing here
names a family:

* ``heatmaps``: Theta_jk / max_j Theta_jj over the first ``lags`` lags, one panel per family;
* ``horizon``: the memory horizon (the lag holding 90% of trace Theta_jj over ``horizon_lags``
  lags, :func:`linrnn.families.consequences.horizon_fraction`) against the radius r;
* ``spectra``: the eigenvalues of the T x T kernel, divided by the largest, in decreasing
  order (how many directions of the impulse response gradient descent can move);
* ``tables``: per family at radius r, the consequences of :mod:`linrnn.families.consequences`
  (horizons, effective rank, participation ratio, neighbour correlation) and the
  normalised distance of its kernel from the first family's ("same spectrum, different bias");
  and the teacher-recovery table of :func:`linrnn.families.teachers.teacher_recovery` (the
  long-range LRU against the dense Gaussian RNN at the same radius: min-norm recovery from few
  samples by the derived kernels, confirmed by trained networks).

The chapter is data (JSON-ready figures of :mod:`linrnn.reports.figures` and one table);
the report renders it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from linrnn.core.errors import UsageError


#: The widest trained network of the teacher table (its draws and their gradients, a few MB per 10^5 units) and
#: the most seeds (a chapter, not a calibration: `linrnn calibrate` runs claims over many seeds).
MAX_TEACHER_WIDTH = 2**20
MAX_TEACHER_SEEDS = 64


@dataclass(frozen=True)
class ChapterConfig:
    """The chapter's sizes: the common radius, the lags of the heatmaps and spectra and of the horizons, the radii of
    the horizon figure."""

    radius: float = 0.9
    lags: int = 32
    horizon_lags: int = 256
    radii: tuple[float, ...] = (0.5, 0.7, 0.8, 0.9, 0.95, 0.99)
    teacher_width: int = 1024
    teacher_seeds: int = 2

    def __post_init__(self) -> None:
        from linrnn.core.configure import set_fields

        radii = tuple(float(r) for r in self.radii)
        set_fields(self, radii=radii)
        for name, r in (("radius", self.radius), *(("radii", r) for r in radii)):
            if not 0 < float(r) < 1:
                raise UsageError(f"families.{name} must lie in (0, 1) (a stable recurrence), got {r!r}")
        if not radii:
            raise UsageError("families.radii must name at least one radius")
        if not 2 <= self.lags <= self.horizon_lags <= 4096:
            raise UsageError(f"families needs 2 <= lags <= horizon_lags <= 4096, got {self.lags} and "
                             f"{self.horizon_lags}")
        for name, least, most in (("teacher_width", 1, MAX_TEACHER_WIDTH), ("teacher_seeds", 0, MAX_TEACHER_SEEDS)):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or not least <= v <= most:
                raise UsageError(f"families.{name} must be an integer in {least}..{most}, got {v!r}")


def memory(config: ChapterConfig) -> int:
    """Peak bytes: every family's kernels over ``horizon_lags`` lags (NTK and NNGP, float64, a few working copies)
    and a trained network of the teacher table (complex parameters and their powers over the teachers' 32 lags)."""
    from linrnn.families import FAMILIES

    kernels = len(FAMILIES) * 2 * 8 * config.horizon_lags**2 * 4
    teacher = 16 * config.teacher_width * 32 * 8 if config.teacher_seeds else 0
    return kernels + teacher


def models_at(radius: float) -> dict[str, Any]:
    """Every registered family's model at ``radius`` (families without such a setting are left out)."""
    from linrnn.families import FAMILIES, model_of, spec_class

    out = {}
    for name in FAMILIES:
        spec = spec_class(name)().at_radius(radius)
        if spec is not None:
            out[name] = model_of(spec)
    return out


def _setting(model: Any) -> str:
    """The specification's fields that ``at_radius`` set, as text (what differs from the family's defaults)."""
    default = type(model.spec)().as_dict()
    return ", ".join(f"{k} = {v:.4g}" if isinstance(v, float) else f"{k} = {v}"
                     for k, v in model.spec.as_dict().items() if v != default[k])


def _described(model: dict[str, Any]) -> str:
    """``family (the fields that differ from its defaults)`` of a specification written as a dict."""
    from linrnn.families import spec_class

    fields = {k: v for k, v in model.items() if k != "family"}
    default = spec_class(model["family"])().as_dict()
    changed = ", ".join(f"{k} = {v:.4g}" if isinstance(v, float) else f"{k} = {v}"
                        for k, v in fields.items() if default.get(k) != v)
    return f"{model['family']} ({changed})" if changed else model["family"]


def families_chapter(config: ChapterConfig = ChapterConfig(), progress: Any = None) -> dict[str, Any]:
    """The chapter's data (module docstring); ``progress(fraction, label)`` where given."""
    from linrnn.families.consequences import (
        consequences_of, eigenvalues, horizon_fraction, lag_kernel, normalised_distance,
    )

    def say(done: float, label: str) -> None:
        if progress is not None:
            progress(done, label)

    models = models_at(config.radius)
    names = list(models)
    T, H = config.lags, config.horizon_lags
    kernels = {}
    for k, name in enumerate(names):
        say(k / (2 * len(names)), f"kernel of {name}")
        kernels[name] = lag_kernel(models[name], H)[0]
    first = names[0]
    panels, spectra, rows = [], [], []
    for name in names:
        theta = kernels[name]
        small = theta[:T, :T]
        scale = float(np.max(np.diag(small)))
        panels.append({"title": f"{name}", "matrix": (small / scale).tolist()})
        ev = np.sort(eigenvalues(small))[::-1]
        ev = ev / ev[0]
        keep = ev > 1e-16
        spectra.append({"label": name, "x": list(range(1, int(keep.sum()) + 1)), "y": ev[keep].tolist(),
                        "style": "line"})
        c = consequences_of(theta)
        rows.append({"family": name, "setting": _setting(models[name]), "horizon_90": c.horizon_90,
                     "horizon_eps": c.horizon_eps, "effective_rank": c.effective_rank,
                     "participation_ratio": round(c.participation_ratio, 3),
                     "neighbour_correlation": None if c.neighbour_correlation is None
                     else round(c.neighbour_correlation, 3) + 0.0,  # + 0.0: no "-0" for a rounded tiny negative
                     f"distance_from_{first}": round(normalised_distance(theta, kernels[first]), 4)})
    horizon_series = []
    for k, name in enumerate(names):
        say(0.5 + k / (2 * len(names)), f"horizons of {name}")
        ys = [horizon_fraction(lag_kernel(models_at(r)[name], H)[0]) for r in config.radii]
        horizon_series.append({"label": name, "x": list(config.radii), "y": [float(y) for y in ys],
                               "style": "line"})
    r = config.radius
    figures = {
        "heatmaps": {
            "kind": "heatmap", "title": f"Derived lag NTK of each family at spectral radius {r:g}",
            "caption": f"Theta_jk divided by the largest diagonal entry, lags 0..{T - 1} (row j, column k). A kernel "
                       "diagonal in the lags moves each lag on its own; off-diagonal mass couples lags, so gradient "
                       "descent moves the impulse response smoothly. Mean correlation of neighbouring lags: "
                       + ", ".join(f"{row['family']} {row['neighbour_correlation']:.3g}" for row in rows
                                   if row["neighbour_correlation"] is not None) + ".",
            "panels": panels, "axis_label": "lag k", "axis_label_y": "lag j", "colorbar_label": "Theta_jk / max Theta_jj",
        },
        "horizon": {
            "kind": "lines", "title": "Memory horizon against the spectral radius",
            "caption": f"The lag holding 90% of trace Theta_jj over {H} lags, for each family at each radius r "
                       "(the setting of each family at r: see the table).",
            "xlabel": "spectral radius r", "ylabel": "horizon (lags)", "yscale": "log", "series": horizon_series,
        },
        "spectra": {
            "kind": "lines", "title": f"Eigenvalues of the {T} x {T} lag kernel",
            "caption": "Eigenvalues of Theta over the first lags, divided by the largest, in decreasing order: "
                       "the directions of the impulse response that gradient descent learns fast. A fast decay is "
                       "a strong implicit bias (low effective rank).",
            "xlabel": "index", "ylabel": "eigenvalue / largest", "yscale": "log", "series": spectra,
        },
    }
    columns = ["family", "setting", "horizon_90", "horizon_eps", "effective_rank", "participation_ratio",
               "neighbour_correlation", f"distance_from_{first}"]
    say(0.9, "teacher recovery")
    from linrnn.families.teachers import teacher_recovery

    rec = teacher_recovery(width=config.teacher_width, seeds=config.teacher_seeds)
    t_columns = ["teacher", "family", "rel_error_kernel", "rel_error_kernel_steps", "rel_error_trained",
                 "rel_error_trained_se", "diverged"]

    def rounded(v: Any) -> Any:
        return round(v, 4) if isinstance(v, float) else v

    teacher_table = {
        "columns": t_columns, "rows": [[rounded(row[c]) for c in t_columns] for row in rec.as_dicts()],
        "caption": f"Teacher recovery from {rec.samples} sequences of {rec.lags} steps: relative error ||L - L*|| / "
                   "||L*|| of the min-norm interpolant of the derived kernel (kernel), of kernel gradient descent "
                   f"after the networks' {rec.rows[0].steps} steps (kernel, steps), and of trained centred networks "
                   f"(width {config.teacher_width}, {config.teacher_seeds} seeds: mean and standard error; "
                   "diverged: runs whose loss blew up). Models: "
                   + "; ".join(_described(m) for m in rec.models) + ".",
    }
    say(1.0, "done")
    return {
        "id": "families", "title": "Implicit bias across families",
        "text": [f"Every family at spectral radius r = {r:g}: its derived wide-limit lag NTK (linrnn.families, "
                 f"model.kernel), evaluated from the SymPy derivation; horizons over {H} lags, spectra over {T}.",
                 f"Distance: ||A - B||_F / max(||A||_F, ||B||_F) of the trace-normalised kernels, against {first}: "
                 "families with the same eigenvalue law can still have different kernels (non-normal W)."],
        "figures": figures,
        "tables": [{"columns": columns, "rows": [[row[c] for c in columns] for row in rows],
                    "caption": f"Consequences of each family's lag kernel at r = {r:g} (horizons over {H} lags)."},
                   teacher_table],
        "config": {"radius": r, "lags": T, "horizon_lags": H, "radii": list(config.radii),
                   "teacher_width": config.teacher_width, "teacher_seeds": config.teacher_seeds},
    }


__all__ = ["ChapterConfig", "families_chapter", "memory", "models_at"]
