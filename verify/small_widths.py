"""The small-width Monte Carlo check of a theory that is exact at every width, shared by the claims that use it.

A claim gives per-draw values (a dense RNN's lag NTK and impulse response, or a family's
own sampler), their exact expected values at each small width (its theory) and a wrong
theory (its control); :func:`run_small_widths` runs the group-sequential design
(:mod:`linrnn.verify.design`: pilot, main stage, a further stage where the control is left
undecided) and tests every entry at a Bonferroni threshold widened by the Cornish-Fisher
skewness term (the Gaussian family's ``finite_width`` claim,
:mod:`linrnn.families.gaussian.claim`, states the statistics in full). Its users: the
Gaussian family's exact finite-width means, the orthogonal family's exact NNGP, the
diagonal families' kernels (exact at every width).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, ClassVar

from linrnn.core.errors import UsageError
from linrnn.core.configure import set_fields
from linrnn.core.validate import check_size, check_widths
from linrnn.verify.claims.base import Progress


@dataclass(frozen=True)
class SmallWidthConfig:
    """The fields of every small-width check (:func:`run_small_widths`): widths, lags, the group-sequential
    design, alpha (set by the suite), max_memory; validated once here.

    A claim's configuration subclasses it, sets ``SECTION`` (its table, which the sentences name) and
    ``LAGS`` (least and most lags, and why the most), and may change the defaults or add fields.
    """

    SECTION: ClassVar[str] = "small_widths"
    LAGS: ClassVar[tuple[int, int, str]] = (1, 16, "")
    #: whether one width is enough (else at least two different ones)
    ONE_WIDTH: ClassVar[bool] = False

    widths: tuple[int, ...] = (4, 8, 16, 32)
    lags: int = 4
    pilot: int = 256
    min_replicas: int = 1024
    max_replicas: int = 131072
    max_skew: float | None = 0.05
    alpha: float = 1e-3
    max_memory: str | int = "1GB"

    def __post_init__(self) -> None:
        s, (lo, hi, why) = self.SECTION, self.LAGS
        set_fields(self, widths=tuple(sorted({check_size(f"{s}.widths", w) for w in self.widths}))
                   if self.ONE_WIDTH and self.widths else check_widths(self.widths))
        if not lo <= self.lags <= hi:
            raise UsageError(f"{s}.lags must be between {lo} and {hi}{why}, got {self.lags}")
        least = 16 if self.max_skew else 4  # the skewness bound needs skewness estimates; else sds only
        if self.pilot < least:
            raise UsageError(f"{s}.pilot must be at least {least} ({'skewness' if self.max_skew else 'sd'} "
                             f"estimates), got {self.pilot}")
        if not 2 <= self.min_replicas <= self.max_replicas:
            raise UsageError(f"{s} needs 2 <= min_replicas <= max_replicas, got "
                             f"{self.min_replicas} and {self.max_replicas}")
        if self.max_skew is not None and not 0 < self.max_skew < 1:
            raise UsageError(f"{s}.max_skew must lie in (0, 1), got {self.max_skew}")
        if not 0 < self.alpha < 1:
            raise UsageError(f"{s}.alpha must lie in (0, 1), got {self.alpha}")
        from linrnn.core.validate import parse_memory

        try:
            parse_memory(self.max_memory)
        except UsageError as exc:
            raise UsageError(f"{s}.max_memory: {exc}") from None


#: Float64 copies of the kept per-draw values (2 lags of them per draw) alive at once in :func:`_draw_moments`:
#: the chunks' rows, their concatenation, and the centred values with their squares and cubes.
KEPT_COPIES = 6


def _draw_moments(be: Any, spec: Any, n: int, lags: int, replicas: int, max_memory: int,
                  values: Any = None, draw: Any = None, bytes_per_draw: Any = None) -> dict[str, Any]:
    """Per tested value: mean, sd, skewness over ``replicas`` draws at width n.

    ``values(theta, L)`` maps a chunk's lag NTK (r, lags, n_y, n_x, lags, n_y, n_x) and
    impulse response (r, lags, n_y, n_x), as float64 host arrays, to the (r, k) values
    tested; default :func:`diagonal_values` (Theta_jj and L_j^2 of entry (0, 0)).
    The draws are the Monte Carlo's (:class:`linrnn.verify.draws.DrawMaker`): draw r of
    width n comes from streams of its own, seeded by (``be.seed``, n, r), so the values do
    not depend on the chunking. The moments are taken over all values at the end (two
    passes: mean, then the central second and third moments).

    ``draw(be, n, first, count)``, where given, replaces the dense draws: it returns the
    (count, k) host float64 values of draws ``first .. first + count - 1`` at width n
    (a family whose model is not a dense RNN supplies its own sampler), in chunks as above;
    ``bytes_per_draw(n)``, where given, is its draws' peak bytes, which size the chunks (else
    the dense engine's estimate, :func:`linrnn.verify.montecarlo.bytes_per_draw`).
    """
    import numpy as np

    from linrnn.verify.draws import DrawMaker
    from linrnn.verify.montecarlo import bytes_per_draw as dense_bytes
    from linrnn.verify.montecarlo import chunk_size
    from linrnn.verify.ntk import lag_ntk_and_impulse

    values = diagonal_values if values is None else values
    per_draw = (dense_bytes(n, spec.n_in, spec.n_out, lags, be.itemsize, 0) if bytes_per_draw is None
                else bytes_per_draw(n))
    chunk = chunk_size(per_draw, max_memory, replicas, be.name, n=n)
    rows = []
    done = 0
    if draw is not None:
        while done < replicas:
            r = min(chunk, replicas - done)
            rows.append(np.asarray(draw(be, n, done, r), dtype=np.float64))
            done += r
    else:
        with DrawMaker(be, spec, n, workers=1) as maker:
            while done < replicas:
                r = min(chunk, replicas - done)
                theta, L = lag_ntk_and_impulse(maker.finish(maker.start(done, r)), lags)
                rows.append(values(be.to_numpy(theta).astype(np.float64), be.to_numpy(L).astype(np.float64)))
                done += r
    x = np.concatenate(rows, axis=0)  # (replicas, k): small, kept on the host
    mean = x.mean(axis=0)
    d = x - mean
    m2 = (d**2).mean(axis=0)
    m3 = (d**3).mean(axis=0)
    sd = np.sqrt(m2 * replicas / (replicas - 1))
    with np.errstate(invalid="ignore", divide="ignore"):
        skew = np.where(m2 > 0, m3 / m2**1.5, 0.0)
    return {"mean": mean, "sd": sd, "skew": skew, "replicas": replicas}


def diagonal_values(theta: Any, L: Any) -> Any:
    """Per draw: the lag-NTK diagonal Theta[(j,0,0),(j,0,0)] and L_j(0)[0,0]^2, j < lags: shape (r, 2 lags)."""
    import numpy as np

    lags = L.shape[1]
    idx = np.arange(lags)
    return np.concatenate([theta[:, idx, 0, 0, idx, 0, 0], L[:, :, 0, 0] ** 2], axis=1)


def _threshold(crit: float, skew: Any, replicas: int) -> Any:
    """Bonferroni t critical value widened by the Cornish-Fisher skewness term of the studentized mean."""
    import numpy as np

    return crit + np.abs(skew) * (2 * crit**2 + 1) / (6 * math.sqrt(replicas))


@dataclass(frozen=True)
class SmallWidthTest:
    """What a small-width check compares, per width: Monte Carlo means of per-draw values, a theory, a control.

    ``values(theta, L)``: the per-draw values (see :func:`_draw_moments`), named by
    ``entries``; ``theory`` and ``control``: width -> their expected values (float64
    arrays of ``len(entries)``); ``control_id``, ``control_name``: the control's id and
    what it is (the sizing sentence names it); ``draw(be, n, first, count)``: where
    given, the per-draw values of a family's own sampler (``values`` is then unused;
    see :func:`_draw_moments`), else the dense RNN draws of the model; ``bytes_per_draw(n)``: where
    given, one such draw's peak bytes at width n (the chunks' size).
    """

    entries: tuple[str, ...]
    values: Any
    theory: dict[int, Any]
    control: dict[int, Any]
    control_id: str
    control_name: str
    draw: Any = None
    bytes_per_draw: Any = None


def run_small_widths(config: Any, model: Any, test: SmallWidthTest, *, seed: int = 0, backend: Any = "numpy",
                     dtype: str = "float64", progress: Progress | None = None) -> dict[str, Any]:
    """The small-width check of ``test`` under the claim's group-sequential design (module docstring).

    ``config`` has the fields of :class:`Config` (widths, lags, pilot, min_replicas,
    max_replicas, max_skew, alpha, max_memory). Returns the pieces of a claim's result:
    ``rows`` (per width of the last stage: width, replicas, mean, stderr, skew, theory,
    control, threshold), ``statistic``, ``threshold``, ``design``, ``control`` (the
    control's record), ``stat_verdict``, ``finite``, ``backend`` and ``decider_rows``.
    """
    import numpy as np

    from linrnn.verify import design as dsg
    from linrnn.verify.backend import Backend, get_backend
    from linrnn.verify.design import FURTHER_OFFSET, Design
    from linrnn.verify.montecarlo import parse_memory, stream_seed
    from linrnn.verify.stats import t_isf

    L, widths = config.lags, list(config.widths)
    be = backend if isinstance(backend, Backend) else get_backend(backend, seed=seed, dtype=dtype)
    memory = parse_memory(config.max_memory)
    design_ = Design(pilot=config.pilot, min_replicas=config.min_replicas, max_replicas=config.max_replicas)
    k_entries = len(test.entries)
    m = k_entries * len(widths)
    a_look = config.alpha * design_.alpha_share  # Bonferroni over the looks
    a_entry = a_look / (2 * m)
    theory, control_mean = test.theory, test.control
    cid = test.control_id

    def crit(r: float) -> float:
        return t_isf(a_entry, max(r - 1.0, 1.0))

    def control_need(n: int, sd: Any, dof: int, power: float) -> float:
        """Replicas at width n for ``power`` against the control, from per-entry sds (at their upper bound)."""
        effect = np.abs(control_mean[n] - theory[n])
        sd_up = [dsg.sd_upper(float(s), dof) for s in sd]
        return min((dsg.replicas_for_crit(float(e), float(s), crit, power) for e, s in zip(effect, sd_up)
                    if e > 0 and s > 0 and math.isfinite(s)), default=math.inf)

    # pilot: fresh draws per width size the main stage
    needs: dict[int, dict[str, float]] = {}
    for k, n in enumerate(widths):
        pbe = be.with_seed(None if be.seed is None else stream_seed(be.seed, n, 11))
        p = _draw_moments(pbe, model, n, L, config.pilot, memory, test.values, test.draw, test.bytes_per_draw)
        skew_up = np.abs(p["skew"]) * 1.5  # sample skewness of a skewed law runs low: a margin
        needs[n] = {"control": control_need(n, p["sd"], config.pilot - 1, design_.power),
                    "skewness": float(np.max((skew_up / config.max_skew) ** 2)) if config.max_skew else 0.0}
        if progress is not None:
            progress(0.2 * (k + 1) / len(widths), f"pilot n={n}")
    # the control is rejected when any entry at any width is: the easiest width decides its size, the same at every
    # width; each width draws at least that many, and as many as its skewness asks for (capped by max_replicas)
    ctrl_need = min(v["control"] for v in needs.values())

    def per_width(k: float) -> dict[int, int]:
        return {n: int(min(config.max_replicas, math.ceil(max(k, needs[n]["skewness"])))) for n in widths}

    main_k = int(min(config.max_replicas, math.ceil(
        max(config.min_replicas, ctrl_need if math.isfinite(ctrl_need) else config.max_replicas))))

    def draw(stage: int, k: int) -> dict[str, Any]:
        """Stage ``stage``'s fresh draws at every width (main stage: stream 12; stage s: 12 + s FURTHER_OFFSET)."""
        z, zc, thr, rows = [], [], [], []
        for i, (n, r) in enumerate(per_width(k).items()):
            sbe = be.with_seed(None if be.seed is None else stream_seed(be.seed, n, 12 + stage * FURTHER_OFFSET))
            mom = _draw_moments(sbe, model, n, L, r, memory, test.values, test.draw, test.bytes_per_draw)
            se = mom["sd"] / math.sqrt(r)
            t = _threshold(t_isf(a_entry, r - 1.0), mom["skew"], r)
            with np.errstate(invalid="ignore", divide="ignore"):
                z.append((mom["mean"] - theory[n]) / se)
                zc.append((mom["mean"] - control_mean[n]) / se)
            thr.append(t)
            rows.append({"width": n, "replicas": r, "mean": mom["mean"], "stderr": se, "skew": mom["skew"],
                         "theory": theory[n], "control": control_mean[n], "threshold": t})
            if progress is not None:
                progress(0.2 + 0.8 * (i + 1) / len(widths) if stage == 0 else 0.0, f"n={n}, stage {stage + 1}")
        z_all, zc_all, t_all = np.concatenate(z), np.concatenate(zc), np.concatenate(thr)
        finite = bool(np.all(np.isfinite(z_all)) and np.all(np.isfinite(t_all)))
        ratio = float(np.max(np.abs(z_all) / t_all)) if finite else math.nan
        ctrl_ratio = float(np.max(np.abs(zc_all) / t_all)) if finite else math.nan
        return {"rows": rows, "z": z_all, "t": t_all, "finite": finite, "ratio": ratio, "ctrl_ratio": ctrl_ratio,
                "own": "error" if not finite else ("pass" if ratio <= 1 else "fail"),
                "control": "error" if not finite else ("rejected" if ctrl_ratio > 1 else "not_rejected")}

    def look(sample: dict[str, Any], stage: int) -> dsg.Look:
        def need(name: str, power: float) -> float:  # from this stage's own sd, the easiest width
            if not sample["finite"]:
                return math.inf
            return min(control_need(row["width"], row["stderr"] * math.sqrt(row["replicas"]), row["replicas"] - 1,
                                    power) for row in sample["rows"])

        return dsg.Look(sample["own"], {cid: sample["control"] == "rejected"}, need)

    stages = dsg.sequential_stages(draw, look, main_k, design_, [cid])
    for rec, sample in zip(stages.record, stages.samples):
        rec["replicas_per_width"] = {str(row["width"]): row["replicas"] for row in sample["rows"]}
    last, decider = stages.last, stages.sample_for(cid)
    rows, z_all, t_all, finite, ratio = last["rows"], last["z"], last["t"], last["finite"], last["ratio"]
    stat_verdict, ctrl_verdict, ctrl_ratio = last["own"], decider["control"], decider["ctrl_ratio"]

    # power of the control at the deciding stage's sizes (normal approximation at the easiest entry)
    powers = []
    for row in decider["rows"]:
        sd = row["stderr"] * math.sqrt(row["replicas"])
        eff = np.abs(row["control"] - row["theory"])
        powers.extend(dsg.predicted_power(float(e), float(s), row["replicas"], float(t))
                      for e, s, t in zip(eff, sd, row["threshold"]) if s > 0 and math.isfinite(s))
    # rejected when any width rejects: the power is at least the best width's
    worst = int(np.argmax(np.abs(z_all) / t_all)) if finite else 0
    w_idx, e_idx = divmod(worst, k_entries)
    n_stages = len(stages.samples)
    statistic = {"name": "max over entries and widths of |z| / threshold (z = (mean - exact mean) / SE)",
                 "value": ratio, "worst_entry": {"width": widths[w_idx], "entry": test.entries[e_idx],
                                                 "z": float(z_all[worst])},
                 "entries_tested": m, "stage": n_stages}
    threshold = {"description": f"every |z| within t_{{1 - a/(2m)}}(R - 1) (Bonferroni over m = {m} entries, "
                                f"a = alpha / {design_.looks} = {a_look:.3g} per look, alpha = {config.alpha:.3g}) plus the "
                                "Cornish-Fisher skewness term; the statistic must be at most 1", "value": 1.0}
    main_sizes = stages.record[0]["replicas_per_width"]
    sizes = [rec["replicas_per_width"] for rec in stages.record]
    totals = {str(n): config.pilot + sum(s[str(n)] for s in sizes) for n in widths}
    design = {
        "method": "group-sequential", "pilot": config.pilot,
        "replicas": max(row["replicas"] for row in rows), "replicas_per_width": sizes[-1],
        "main_replicas": max(main_sizes.values()), "main_replicas_per_width": main_sizes,
        "looks": design_.looks, "alpha_share_per_look": design_.alpha_share, "alpha_per_look": a_look,
        "replicas_total": max(totals.values()), "replicas_total_per_width": totals,
        **stages.as_dict(),
        "power_target": dsg.POWER,
        "capped_by": "max_replicas" if any(v == config.max_replicas for v in main_sizes.values()) else None,
        "needed": {cid: _finite_int(ctrl_need)},
        "needed_control_per_width": {str(n): _finite_int(needs[n]["control"]) for n in widths},
        "needed_skewness": {str(n): _finite_int(needs[n]["skewness"]) for n in widths},
        "sizing": f"a pilot of {config.pilot} fresh draws per width sized each width's main stage for power "
                  f"{dsg.POWER:g} against {test.control_name}"
                  + (f" and for a skewness of every tested mean below {config.max_skew:g}" if config.max_skew else
                     " (not for the skewness of the tested means: no bound asked; the Cornish-Fisher term widens "
                     "each threshold by its entry's sample skewness)")
                  + f", at least {config.min_replicas}, at most {config.max_replicas}"
                  + (f"; the control left undecided got a further stage of fresh draws ("
                     + "; ".join(", ".join(f"n={n}: {v}" for n, v in s.items()) for s in sizes[1:])
                     + "), sized on the main stage's own sd and tested alone" if n_stages > 1 else "")
                  + f" (up to {design_.looks} looks, each at alpha / {design_.looks})",
        "allowance": "no bias allowance: the theory is the exact finite-width mean",
    }
    decide_with = look(last, n_stages - 1).need(cid, dsg.POWER) if ctrl_verdict == "not_rejected" else None
    control = {
        "statistic": {"name": f"max |z| / threshold against {test.control_name}", "value": ctrl_ratio,
                      "stage": stages.decided_at[cid] + 1,
                      "replicas": max(row["replicas"] for row in decider["rows"])},
        "threshold": {"description": "rejected when above 1 (the same thresholds, at alpha / looks per look)",
                      "value": 1.0},
        "verdict": ctrl_verdict, "power": max(powers) if powers else None,
        "needed": design["needed"][cid],
    }
    if ctrl_verdict == "not_rejected":
        control["decide_with"] = _finite_int(decide_with) if decide_with is not None else None
    return {"rows": rows, "statistic": statistic, "threshold": threshold, "design": design, "control": control,
            "stat_verdict": stat_verdict, "finite": finite, "backend": be.describe(), "m": m}


def _finite_int(v: float) -> int | None:
    return None if not math.isfinite(v) else int(math.ceil(v))


