"""A real series: weekly Mauna Loa CO2 (1958-2001), next-week differences predicted by linear RNNs.

Data: ``verify/data/co2_weekly.csv`` (vendored; provenance in ``verify/data/README.md``),
weekly averages c_w in ppmv with 59 missing weeks, filled by linear interpolation in
time between the nearest observed weeks (:func:`load_co2`).

Task. The weekly differences d_w = c_{w+1} - c_w, standardised with the mean and
standard deviation of the training part. Sequence s covers weeks s .. s+T-1 as inputs
x_t = d_{s+t} and targets y_t = d_{s+t+1} (predict the next difference), and is
trained with loss ``last``: yhat = sum_j L_j d_{s+T-1-j}, so L_j weighs the difference
j + 1 weeks before the target and the annual cycle sits at j = 51. Split in time: the
first ``train_frac`` of the sequences (by target week) train, the later ones test.

Experiment. RNNs of width n over a grid of q = sigma_W^2, trained for a fixed number of
steps with the auto step (halved on divergence); test R^2 = 1 -
SSE / sum (y - mean y)^2 on the test targets, against least-squares AR fits with lags
1..8, 1..52 and 1..T (the loss minimiser the RNN approaches). Descriptive seasonal
statistic: z_52 = (|L_51| - m) / s with m, s the mean and standard deviation of |L_j|
over the neighbours j in 41..61 without 50..52. (No fit, not even least squares on 64
lags, puts a spike at the 52-week lag: the annual cycle of the differences is smooth
and is predicted from recent weeks.)

The claim built on this task (the kernel theory's expected test error against trained
RNNs across q) is :mod:`linrnn.verify.claims.co2`; this module holds the data, the
baselines and the statistics it uses. :func:`windows` gives windows of any length T
that end on the same target weeks as the 64-week windows of the AR(1..52) and AR(1..64)
baselines, so every model of the table predicts the same test weeks.
"""

from __future__ import annotations

import importlib.resources
import math

import numpy as np

from linrnn.core.errors import UsageError

SEASON_LAG = 51  # L_51 weighs the difference 52 weeks before the target
NEIGHBOURS = [j for j in range(41, 62) if j not in (50, 51, 52)]


def load_co2() -> tuple[np.ndarray, np.ndarray]:
    """(dates as YYYYMMDD integers, CO2 in ppmv) with missing weeks filled by linear interpolation."""
    path = importlib.resources.files("linrnn.verify") / "data" / "co2_weekly.csv"
    dates, values = [], []
    for line in path.read_text().splitlines()[1:]:
        if not line.strip():
            continue
        d, v = line.split(",")
        dates.append(int(d))
        values.append(float(v) if v.strip() else math.nan)
    c = np.asarray(values)
    idx = np.arange(c.size)
    ok = np.isfinite(c)
    c[~ok] = np.interp(idx[~ok], idx[ok], c[ok])
    return np.asarray(dates), c


def co2_dataset(seq_len: int, train_frac: float = 0.7, *, permute_seed: int | None = None) -> dict[str, np.ndarray]:
    """Train/test arrays (x, y) of shapes (N, T, 1) from the standardised weekly differences.

    With ``permute_seed`` the differences are randomly permuted in time first (the
    seasonal control). The split is chronological by target week.
    """
    if int(seq_len) != seq_len or seq_len < 1:
        raise UsageError(f"the sequence length must be a positive integer, got {seq_len!r}")
    if not 0 < train_frac < 1:
        raise UsageError(f"train_frac must lie in (0, 1), got {train_frac!r}")
    _, c = load_co2()
    d = np.diff(c)
    if permute_seed is not None:
        d = np.random.default_rng(permute_seed).permutation(d)
    n_seq = d.size - seq_len
    if n_seq < 4:
        raise UsageError(f"the series is too short for sequences of length {seq_len}")
    n_train = int(train_frac * n_seq)
    cut = n_train + seq_len  # differences used by the training targets
    mu, sd = d[:cut].mean(), d[:cut].std()
    z = (d - mu) / sd
    idx = np.arange(n_seq)[:, None] + np.arange(seq_len)[None, :]
    x = z[idx][:, :, None]
    y = z[idx + 1][:, :, None]
    return {"x_train": x[:n_train], "y_train": y[:n_train], "x_test": x[n_train:], "y_test": y[n_train:]}


def r2(yhat: np.ndarray, y: np.ndarray) -> float:
    """1 - sum (y - yhat)^2 / sum (y - mean y)^2."""
    return float(1.0 - np.sum((y - yhat) ** 2) / np.sum((y - y.mean()) ** 2))


def predict_last(L: np.ndarray, x: np.ndarray) -> np.ndarray:
    """yhat_{T-1} = sum_j L_j x_{T-1-j} for scalar L (T, 1, 1) and x (N, T, 1)."""
    T = x.shape[1]
    return x[:, ::-1, 0][:, : L.shape[0]] @ L[:T, 0, 0]


def ar_fit(x: np.ndarray, y: np.ndarray, lags: int) -> np.ndarray:
    """Least-squares AR weights on the last ``lags`` inputs, as an impulse response (T, 1, 1)."""
    T = x.shape[1]
    Z = x[:, ::-1, 0][:, :lags]
    w, *_ = np.linalg.lstsq(Z, y[:, -1, 0], rcond=None)
    L = np.zeros((T, 1, 1))
    L[:lags, 0, 0] = w
    return L


def seasonal_z(L: np.ndarray) -> float:
    """z_52 = (|L_51| - mean |L_nbr|) / sd |L_nbr| over the neighbour lags (module docstring)."""
    a = np.abs(np.asarray(L)[:, 0, 0])
    nb = a[NEIGHBOURS]
    return float((a[SEASON_LAG] - nb.mean()) / nb.std(ddof=1))


def windows(seq_len: int, train_frac: float = 0.7, *, history: int = 64,
            permute_seed: int | None = None) -> dict[str, np.ndarray]:
    """:func:`co2_dataset` windows of length ``seq_len`` ending on the target weeks of the ``history``-week windows.

    The last ``seq_len`` weeks of each ``max(seq_len, history)``-week window (same
    targets, same standardisation, same split), so models with different window
    lengths are trained and tested on the same target weeks.
    """
    full = co2_dataset(max(int(seq_len), int(history)), train_frac, permute_seed=permute_seed)
    return {k: np.ascontiguousarray(v[:, -int(seq_len):]) for k, v in full.items()}


def block_t(sq_err_ref: np.ndarray, sq_err_model: np.ndarray, block: int = 52) -> tuple[float, int]:
    """(mean of e_ref^2 - e_model^2) / block SE, and the number of blocks (leftover targets dropped)."""
    diff = np.asarray(sq_err_ref) - np.asarray(sq_err_model)
    k = diff.size // block
    if k < 2:
        raise UsageError(f"the test part is too short for two blocks of {block} weeks")
    means = diff[: k * block].reshape(k, block).mean(axis=1)
    se = means.std(ddof=1) / math.sqrt(k)
    return float(means.mean() / se) if se > 0 else math.inf, k
