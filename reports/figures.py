"""Figures of a report, drawn from the data stored in the results file.

Every figure is a :class:`matplotlib.figure.Figure` on the Agg canvas (no pyplot
global state), saved as PNG and SVG with fixed metadata so that the same data gives
the same bytes. Series differ by marker and line style as well as colour, so the
figures read in greyscale. The figure kinds and the data each needs:

* ``lag_weights``: ``lags`` (list of j), ``series`` [{``q``, ``regime``
  ("decaying" / "critical" / "exploding"), ``weights`` (lambda_j or null),
  ``horizon`` (j_eps or null)}], ``eps``. lambda_j against j on a log axis.
* ``heatmap``: ``panels`` [{``title``, ``matrix`` (M x M)}], ``axis_label``,
  ``colorbar_label``. Panels share one colour scale.
* ``per_lag``: ``lags``, ``theory``, ``estimate``, ``lower``, ``upper`` (interval
  of the estimate), optional ``raw`` (uncorrected mean), ``ylabel``,
  ``theory_label``, ``estimate_label``, ``interval_label``, optional ``raw_label``.
* ``width_rate``: ``widths``, ``rel_error``, ``rel_error_stderr``, ``slope``,
  ``slope_ci``, ``expected_slope``, ``ylabel``. Log-log axes, the fitted slope and
  the expected one drawn through the largest width.
* ``lines``: a generic x-y plot: ``xlabel``, ``ylabel``, optional ``xscale`` /
  ``yscale``, ``series`` [{``label``, ``x``, ``y``, optional ``yerr``, optional
  ``style`` ("line" or "points")}], optional ``vlines`` [{``x``, ``label``}].
* ``panels``: ``panels`` [each a ``lines`` figure's data with a ``title``], optional
  ``sharey``: ``lines`` plots side by side.
* ``bars``: ``labels``, ``values``, optional ``errors``, ``xlabel``, ``ylabel``
  (bars told apart by hatching as well as colour).

Data that the schema allows is drawn whatever its values: a log axis with no
positive value falls back to a linear one, error bars are magnitudes, an array with
no finite value gets a unit colour scale, text that mathtext cannot typeset is shown
as written; data that still cannot be drawn (numbers so close to the float64 limit
that the axes overflow) is one sentence (:class:`FigureError`), never a traceback.
"""

from __future__ import annotations

import functools
import io
import math
import re
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import matplotlib
import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from linrnn.core.errors import UsageError

MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*")
LINESTYLES = ("-", "--", "-.", ":")
COLORS = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000", "#F0E442")
REGIME_LINES = {"decaying": "-", "critical": "--", "exploding": "-."}
RC = {
    "svg.hashsalt": "linrnn-bias",
    "svg.fonttype": "path",
    "font.size": 10,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "axes.spines.top": False,
    "axes.spines.right": False,
}


@dataclass(frozen=True)
class FigureFiles:
    """A drawn figure: its PNG and SVG bytes and the file stem they are saved under."""

    stem: str
    png: bytes
    svg: bytes
    title: str
    caption: str


class FigureError(UsageError):
    """A figure of a results file that cannot be drawn; the message names it and the reason."""


def _text(value: Any) -> str:
    """Text from a results file as matplotlib should show it: without control characters, and shown as written
    where it is not valid mathtext (``$...$`` that does not parse: its dollars escaped)."""
    text = "".join(ch for ch in str(value) if ch >= " " or ch == "\n")
    count = text.count("$") - text.count(r"\$")
    if count > 0 and count % 2 == 0:
        try:
            _math_parser().parse(text)
        except ValueError:
            return text.replace(r"\$", "$").replace("$", r"\$")
    return text


def _label(value: Any) -> str | None:
    """A legend label (None stays None: no entry); a leading underscore, which hides an entry, is kept visible."""
    if value is None:
        return None
    text = _text(value)
    return " " + text if text.startswith("_") else text


@functools.lru_cache(maxsize=1)
def _math_parser() -> Any:
    from matplotlib.mathtext import MathTextParser

    return MathTextParser("path")


def _scale(ax: Any, axis: str, scale: str, *values: np.ndarray) -> None:
    """Set ``axis`` ("x" or "y") to ``scale``, but linear where a log scale has no positive finite value to show."""
    if scale == "log" or scale == "logit":
        data = np.concatenate([np.ravel(v) for v in values]) if values else np.array([])
        ok = data[np.isfinite(data)]
        ok = ok[(ok > 0) & (ok < 1)] if scale == "logit" else ok[ok > 0]
        if not ok.size:
            scale = "linear"
    (ax.set_xscale if axis == "x" else ax.set_yscale)(scale)


def _errors(values: Any) -> np.ndarray:
    """Error bars as magnitudes (a negative entry is drawn as its size)."""
    return np.abs(_arr(values))


def _style(i: int) -> dict[str, Any]:
    return {"color": COLORS[i % len(COLORS)], "marker": MARKERS[i % len(MARKERS)],
            "linestyle": LINESTYLES[i % len(LINESTYLES)]}


def _arr(values: Any) -> np.ndarray:
    return np.array([np.nan if v is None else v for v in values], dtype=np.float64)


def draw_lag_weights(fig: Figure, data: Mapping[str, Any]) -> None:
    ax = fig.add_subplot()
    lags = _arr(data["lags"])
    names = {"decaying": "q < 1: decaying (solid)", "critical": "q = 1: critical (dashed)",
             "exploding": "q > 1: exploding (dash-dot)"}
    for i, s in enumerate(data["series"]):
        w = _arr(s["weights"])
        st = _style(i)
        every = max(1, len(lags) // 8)
        ax.plot(lags, w, color=st["color"], linestyle=REGIME_LINES.get(s["regime"], "-"), marker=st["marker"],
                markevery=every,
                markersize=5, label=f"q = {s['q']:g} ({s['regime']})")
        h = s.get("horizon")
        if h is not None and lags.size and h <= lags[-1]:
            ax.axvline(h, color=st["color"], linestyle=":", linewidth=0.8)
    _scale(ax, "y", "log", *(w[np.isfinite(lags) & np.isfinite(w)] for w in (_arr(s["weights"]) for s in data["series"])))
    ax.set_xlabel("lag j (time steps)")
    ax.set_ylabel(r"lag weight $\lambda_j$ (dimensionless)")
    text = "\n".join(names[r] for r in ("decaying", "critical", "exploding")
                     if any(s["regime"] == r for s in data["series"]))
    ax.text(1.03, 0.0, "regimes:\n" + text + f"\ndotted verticals: memory horizon $j_\\varepsilon$, "
            f"$\\varepsilon = {data.get('eps', 1e-3):g}$", transform=ax.transAxes, fontsize=8, va="bottom",
            bbox={"boxstyle": "round", "facecolor": "white", "edgecolor": "0.7", "alpha": 0.9})
    finite_w = np.concatenate([_arr(s["weights"]) for s in data["series"]])
    finite_w = finite_w[np.isfinite(finite_w) & (finite_w > 0)]
    if finite_w.size:
        low, top = max(finite_w.min(), finite_w.max() * 1e-12) / 2, finite_w.max() * 3
        low, top = (low if low > 0 else finite_w.min()), (top if math.isfinite(top) else finite_w.max())
        if top > low:
            ax.set_ylim(low, top)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), title="q = $\\sigma_W^2$")


def draw_heatmap(fig: Figure, data: Mapping[str, Any]) -> None:
    panels = data["panels"]
    mats = [_arr(np.ravel(p["matrix"])).reshape(len(p["matrix"]), -1) for p in panels]
    finite = np.concatenate([m[np.isfinite(m)] for m in mats])
    vmin, vmax = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
    axes = fig.subplots(1, len(panels), squeeze=False)[0]
    im = None
    for ax, p, m in zip(axes, panels, mats):
        im = ax.imshow(m, cmap="viridis", vmin=vmin, vmax=vmax, interpolation="nearest", origin="upper")
        ax.set_title(_text(p["title"]), fontsize=9)
        ax.set_xlabel(_text(data.get("axis_label", "index j'")))
        ax.set_ylabel(_text(data.get("axis_label_y", data.get("axis_label", "index i"))))
        ax.grid(False)
    assert im is not None
    cb = fig.colorbar(im, ax=list(axes), shrink=0.85)
    cb.set_label(_text(data.get("colorbar_label", "value")))


def draw_per_lag(fig: Figure, data: Mapping[str, Any]) -> None:
    ax = fig.add_subplot()
    lags = _arr(data["lags"])
    theory, est = _arr(data["theory"]), _arr(data["estimate"])
    lower, upper = _arr(data["lower"]), _arr(data["upper"])
    ax.plot(lags, theory, color="black", linestyle="-", linewidth=1.5,
            label=_label(data.get("theory_label", "theory")), zorder=3)
    below, above = np.maximum(est - lower, 0.0), np.maximum(upper - est, 0.0)  # an interval beside its estimate
    ax.errorbar(lags, est, yerr=[below, above], fmt="o", color=COLORS[0], markersize=5, capsize=3,
                label=_label(str(data.get("estimate_label", "Monte Carlo")) + " (bars: "
                             + str(data.get("interval_label", "CI")) + ")"), zorder=4)
    if data.get("raw") is not None:
        ax.plot(lags + 0.25, _arr(data["raw"]), linestyle="none", marker="s", markerfacecolor="none",
                color=COLORS[1], markersize=5, label=_label(data.get("raw_label", "uncorrected mean")), zorder=2)
    ax.set_xlabel("lag j (time steps)")
    ax.set_ylabel(_text(data.get("ylabel", "value")))
    ax.legend(fontsize=8)


def draw_width_rate(fig: Figure, data: Mapping[str, Any]) -> None:
    ax = fig.add_subplot()
    n = _arr(data["widths"])
    e = _arr(data["rel_error"])
    se = _arr(data["rel_error_stderr"])
    ax.errorbar(n, e, yerr=2 * np.abs(se), fmt="o", color=COLORS[0], markersize=6, capsize=3,
                label="Monte Carlo mean (bars: $\\pm 2$ SE)", zorder=3)
    grid = np.geomspace(n.min(), n.max(), 50)
    anchor_n, anchor_e = n[-1], e[-1]
    slope, (lo, hi) = data["slope"], data["slope_ci"]
    ax.plot(grid, anchor_e * (grid / anchor_n) ** slope, color=COLORS[1], linestyle="--",
            label=f"fitted slope $\\beta = {slope:.3f}$, CI [{lo:.3f}, {hi:.3f}]")
    exp = data["expected_slope"]
    ax.plot(grid, anchor_e * (grid / anchor_n) ** exp, color="black", linestyle=":",
            label=f"expected slope ${exp:g}$")
    ax.set_xscale("log", base=2)
    _scale(ax, "y", "log", e[np.isfinite(n)])
    ax.set_xlabel("width n (hidden units, log scale)")
    ax.set_ylabel(_text(data.get("ylabel", "relative error")))
    ax.legend(fontsize=8)


def draw_lines(fig: Figure, data: Mapping[str, Any]) -> None:
    _lines_on(fig.add_subplot(), data)


def draw_panels(fig: Figure, data: Mapping[str, Any]) -> None:
    """Side-by-side ``lines`` panels, each with its own ``title`` (and optional ``sharey``)."""
    panels = list(data["panels"])
    axes = fig.subplots(1, len(panels), sharey=bool(data.get("sharey")), squeeze=False)[0]
    for ax, panel in zip(axes, panels):
        _lines_on(ax, panel)
        if panel.get("title"):
            ax.set_title(_text(panel["title"]), fontsize=10)


def _lines_on(ax: Any, data: Mapping[str, Any]) -> None:
    logx = data.get("xscale") == "log"
    point_series = [i for i, s in enumerate(data["series"]) if s.get("style") == "points"]
    for i, s in enumerate(data["series"]):
        st = _style(i)
        x, y = _arr(s["x"]), _arr(s["y"])
        points = s.get("style") == "points"
        if points and len(point_series) > 1 and x.size:  # dodge overlapping point series sideways
            k = point_series.index(i) - (len(point_series) - 1) / 2
            fx = x[np.isfinite(x)]
            span = float(fx.max() - fx.min()) if fx.size > 1 else 1.0
            x = x * 1.03**k if logx else x + 0.008 * span * k
        ls = "none" if points else st["linestyle"]
        if s.get("yerr") is not None:
            ax.errorbar(x, y, yerr=_errors(s["yerr"]), color=st["color"], marker=st["marker"], linestyle=ls,
                        capsize=3, markersize=5, label=_label(s.get("label")))
        else:
            ax.plot(x, y, color=st["color"], marker=st["marker"], linestyle=ls, markersize=4,
                    markevery=max(1, len(x) // 12), label=_label(s.get("label")))
    vlines = data.get("vlines") or []
    for j, v in enumerate(vlines):
        ax.axvline(v["x"], color="0.3", linestyle=LINESTYLES[(j + 1) % len(LINESTYLES)], linewidth=1.0,
                   label=_label(v.get("label")))
    drawn = [(x, y) for x, y in ((_arr(s["x"]), _arr(s["y"])) for s in data["series"])]
    drawn = [(x[m], y[m]) for x, y in drawn if (m := np.isfinite(x) & np.isfinite(y)).any()]
    _scale(ax, "x", data.get("xscale", "linear"), *(x for x, _ in drawn), _arr([v["x"] for v in vlines]))
    _scale(ax, "y", data.get("yscale", "linear"), *(y for _, y in drawn))
    ax.set_xlabel(_text(data.get("xlabel", "x")))
    ax.set_ylabel(_text(data.get("ylabel", "y")))
    if any(s.get("label") for s in data["series"]) or any(v.get("label") for v in vlines):
        ax.legend(fontsize=8)


def draw_bars(fig: Figure, data: Mapping[str, Any]) -> None:
    ax = fig.add_subplot()
    labels = [_text(x) for x in data["labels"]]
    vals = _arr(data["values"])
    errs = _errors(data["errors"]) if data.get("errors") is not None else None
    hatches = ("", "//", "..", "xx", "\\\\", "--", "++", "oo")
    pos = np.arange(len(labels))
    bars = ax.bar(pos, vals, yerr=errs, capsize=3, color=[COLORS[i % len(COLORS)] for i in range(len(labels))],
                  edgecolor="black", linewidth=0.6)
    for i, b in enumerate(bars):
        b.set_hatch(hatches[i % len(hatches)])
    ax.set_xticks(pos, labels, rotation=20, ha="right", fontsize=8)
    ax.set_xlabel(_text(data.get("xlabel", "")))
    ax.set_ylabel(_text(data.get("ylabel", "value")))
    ax.axhline(0.0, color="black", linewidth=0.8)


DRAWERS: dict[str, tuple[Callable[[Figure, Mapping[str, Any]], None], tuple[float, float]]] = {
    "lag_weights": (draw_lag_weights, (8.6, 4.6)),
    "heatmap": (draw_heatmap, (8.0, 3.8)),
    "per_lag": (draw_per_lag, (7.0, 4.2)),
    "width_rate": (draw_width_rate, (6.4, 4.2)),
    "lines": (draw_lines, (7.0, 4.2)),
    "panels": (draw_panels, (10.0, 4.4)),
    "bars": (draw_bars, (7.0, 4.2)),
}


def can_draw(fig: Mapping[str, Any]) -> bool:
    return fig.get("kind") in DRAWERS


def _save(fig: Figure, fmt: str) -> bytes:
    buf = io.BytesIO()
    meta = {"Software": None} if fmt == "png" else {"Date": None, "Creator": None}
    fig.savefig(buf, format=fmt, dpi=110, metadata=meta)
    return buf.getvalue()


def draw(stem: str, data: Mapping[str, Any], where: str | None = None) -> FigureFiles:
    """Draw one figure of the results file (data that passed :func:`linrnn.reports.schema.check_figure`).

    Data that cannot be drawn even so (values so near the float64 limit that the
    axes or the computed lines overflow) is a :class:`FigureError` naming the figure
    (``where``, else ``stem``); nothing is printed on stderr. A glyph that the font
    lacks is drawn as a box without a warning.
    """
    drawer, size = DRAWERS[data["kind"]]
    try:
        with matplotlib.rc_context(RC), warnings.catch_warnings(), np.errstate(all="ignore"):
            warnings.simplefilter("error")
            for harmless in ("Glyph .* missing from", "constrained_layout not applied"):
                warnings.filterwarnings("ignore", message=harmless, category=UserWarning)
            fig = Figure(figsize=size, layout="constrained")
            FigureCanvasAgg(fig)
            drawer(fig, data)
            if data.get("title"):
                fig.suptitle(_text(data["title"]), fontsize=11)
            png, svg = _save(fig, "png"), _save(fig, "svg")
    except (ArithmeticError, ValueError, RuntimeWarning, UserWarning) as exc:
        reason = " ".join(str(exc).split()) or type(exc).__name__
        raise FigureError(f"the figure {where or stem} (kind {data['kind']}) cannot be drawn from its data "
                          f"({reason[:120]})") from None
    return FigureFiles(stem, png, svg, str(data.get("title", "")), str(data.get("caption", "")))


#: LaTeX that mathtext lacks, replaced for display only (the image's alt text keeps the exact source): a
#: regular expression and its replacement, applied in order.
MATHTEXT_SUBSTITUTIONS = (
    (r"\\lVert(?![A-Za-z])", r"\\|"), (r"\\rVert(?![A-Za-z])", r"\\|"), (r"\\tfrac(?![A-Za-z])", r"\\frac"),
    (r"\\frac\s*(\d)\s*(\d)", r"\\frac{\1}{\2}"),  # \frac12
    (r"\\mathbb\{E\}", r"\\mathrm{E}"), (r"\\top(?![A-Za-z])", r"T"), (r"\\ ", r"\\quad "),
    (r"\\ge(?![A-Za-z])", r"\\geq"), (r"\\le(?![A-Za-z])", r"\\leq"),
    (r"\\[Bb]ig{1,2}l?\s*([(\[])", r"\\left\1"), (r"\\[Bb]ig{1,2}r?\s*([)\]])", r"\\right\1"),  # \Big( .. \Big)
    (r"\\[Bb]ig{1,2}[lrm]?(?![A-Za-z])\s*", ""),  # any other size: the delimiter at its natural size
)


def mathtext_source(latex: str) -> str:
    """``latex`` with what mathtext lacks replaced (:data:`MATHTEXT_SUBSTITUTIONS`)."""
    for pattern, repl in MATHTEXT_SUBSTITUTIONS:
        latex = re.sub(pattern, repl, latex)
    return latex


def formula_png(latex: str, fontsize: float = 15.0) -> bytes | None:
    """The formula typeset by matplotlib's mathtext as a PNG, or None where mathtext cannot parse it."""
    png = _formula_png(latex, fontsize)
    if png is None:
        png = _formula_png(mathtext_source(latex), fontsize)
    return png


def _formula_png(latex: str, fontsize: float) -> bytes | None:
    try:
        with matplotlib.rc_context(RC), warnings.catch_warnings():
            warnings.simplefilter("error")  # a glyph the font lacks, say: no picture rather than a warning
            fig = Figure(figsize=(0.1, 0.1))
            FigureCanvasAgg(fig)
            fig.text(0, 0, f"${latex}$", fontsize=fontsize)
            buf = io.BytesIO()
            fig.savefig(buf, format="png", dpi=120, bbox_inches="tight", pad_inches=0.04,
                        metadata={"Software": None}, transparent=False, facecolor="white")
    except (ValueError, ArithmeticError, RuntimeError, Warning):
        return None
    return buf.getvalue()


def finite(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)
