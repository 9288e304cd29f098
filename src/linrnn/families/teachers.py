r"""The implicit bias, demonstrated: min-norm recovery of three teachers from few samples, by family.

Given N < T input sequences and only their last outputs (loss ``last``), the impulse
response L (T lags) is underdetermined: y_s = sum_j L_j x^s_{T-1-j}, s < N, i.e. y = Z L
with Z (N x T), Z[s, j] = x^s_{T-1-j}. Gradient descent on a wide network from a function
that starts at zero converges to the interpolant of least norm in its lag kernel's RKHS,

    L_hat = Theta Z^T (Z Theta Z^T)^+ y        (:func:`linrnn.verify.kernel_gd.kernel_min_norm`),

so which teachers a family recovers from few samples is its implicit bias. The table
(:func:`teacher_recovery`) gives, per teacher and family, the relative error
||L_hat - L*|| / ||L*|| from the derived kernel (``model.kernel(T)["ntk"]``), the same
after the ``steps`` gradient steps the networks take (kernel gradient descent from zero,
the exact prediction for the trained networks), and the trained networks' own error.

The networks are *centred*: a network's function is f(theta) - f(theta_0) (Chizat et
al., NeurIPS 2019, "lazy training"; Hu et al., ICLR 2020), so it starts at zero whatever
its random initial impulse response L(theta_0). Training f - f_0 on the targets y is
training f on y + Z L(theta_0) (the same gradients), which is what is run; the learnt
impulse response is L(theta_K) - L(theta_0). Without centring the trained error would
carry the projection of L(theta_0) (an O(1) random function, the NNGP) onto the
unconstrained directions, noise unrelated to the bias.

The default setting is the long-range one the issue names: the LRU with r_min = 0.9,
r_max = 0.999, theta_max = pi / 10 against the dense Gaussian RNN at the same radius
(q = r_max^2); the teachers: a slow smooth filter (0.95^j), a fast oscillation
(0.95^j cos(2.5 j)) and a spike at lag 20 (:mod:`linrnn.verify.teachers`).

The trained columns hold where the networks stay lazy. A teacher far from the kernel's
leading eigenfunctions (the fast oscillation for the LRU, whose phases start below pi/10)
is fitted along directions of tiny curvature, and training long enough to follow them
moves the parameters far: with larger steps or many more of them (lr_factor 0.9, 1000
steps) a unit's theta_log, whose gradient carries exp(theta_log), runs away and the run
diverges even at n = 4096. Such runs are counted (``diverged``), not averaged; the
defaults (300 steps of 0.5 / mu_max) keep every run lazy at n = 1024.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from linrnn.core.errors import UsageError
from linrnn.core.validate import check_size


@dataclass(frozen=True)
class Teacher:
    """A teacher of :func:`linrnn.verify.teachers.teacher_impulse`: a label, its kind and its options."""

    label: str
    kind: str
    options: tuple[tuple[str, float], ...]

    def impulse(self, lags: int) -> np.ndarray:
        from linrnn.verify.teachers import teacher_impulse

        return teacher_impulse(self.kind, lags, **dict(self.options))


#: The three teachers of the demonstration.
TEACHERS = (
    Teacher("slow smooth filter", "decay", (("rho", 0.95),)),
    Teacher("fast oscillation", "oscillator", (("r", 0.95), ("omega", 2.5))),
    Teacher("spike at lag 20", "spike", (("delay", 20),)),
)

#: The long-range LRU setting of the demonstration (the dense Gaussian twin has q = r_max^2).
LONG_RANGE = {"r_min": 0.9, "r_max": 0.999, "theta_max": math.pi / 10}


def long_range_models() -> tuple[Any, Any]:
    """(the LRU at :data:`LONG_RANGE`, the dense Gaussian RNN at q = r_max^2)."""
    from linrnn.families import family

    return family("lru", **LONG_RANGE), family("gaussian", sigma_w2=LONG_RANGE["r_max"] ** 2)


@dataclass(frozen=True)
class RecoveryRow:
    """One teacher and family: relative errors ||L - L*|| / ||L*|| of the min-norm interpolant of the derived kernel
    (``rel_error_kernel``), of kernel gradient descent from zero after ``steps`` steps (``rel_error_kernel_steps``),
    and of the trained centred networks (mean over the ``seeds`` runs that did not diverge, its standard error; None
    without one); ``diverged``: the runs whose loss blew up (they left the lazy regime)."""

    teacher: str
    family: str
    rel_error_kernel: float
    rel_error_kernel_steps: float | None
    rel_error_trained: float | None
    rel_error_trained_se: float | None
    width: int | None
    seeds: int
    diverged: int
    steps: int
    lr: float | None


@dataclass(frozen=True)
class RecoveryTable:
    """The rows of :func:`teacher_recovery` and its setting (lags, samples, seed, the models' specifications)."""

    rows: tuple[RecoveryRow, ...]
    lags: int
    samples: int
    seed: int
    models: tuple[dict[str, Any], ...]

    def as_dicts(self) -> list[dict[str, Any]]:
        from dataclasses import asdict

        return [asdict(r) for r in self.rows]


def design(x: Any) -> np.ndarray:
    """Z (N x T), Z[s, j] = x^s_{T-1-j}, of scalar sequences x (N, T, 1): y_s(T-1) = (Z L)_s."""
    a = np.asarray(x, dtype=np.float64)
    return a[:, ::-1, 0]


def _relative(L: np.ndarray, teacher: np.ndarray) -> float:
    return float(np.linalg.norm(np.asarray(L).reshape(-1) - teacher.reshape(-1)) / np.linalg.norm(teacher))


def teacher_recovery(models: Sequence[Any] | None = None, *, teachers: Sequence[Teacher] = TEACHERS,
                     lags: int = 32, samples: int = 8, seed: int = 0, width: int = 1024, seeds: int = 2,
                     steps: int = 300, lr_factor: float = 0.5, backend: Any = "numpy") -> RecoveryTable:
    """The teacher-recovery table (module docstring): one data set per teacher (white inputs, ``samples``
    sequences of ``lags`` steps, loss ``last``, seeded by ``seed``), shared by every model.

    ``models``: model objects of any families (default :func:`long_range_models`), each with
    ``kernel``, ``init``, ``impulse`` and ``train``. ``seeds`` trained networks of width
    ``width`` per teacher and model (0: the kernel columns only), ``steps`` steps of
    ``lr_factor`` / mu_max (the derived kernel's curvature on the data).
    """
    from linrnn.verify.claims.training import reseeded, resolve_backend
    from linrnn.verify.kernel_gd import KernelCurvature, kernel_min_norm, kernel_trajectory
    from linrnn.verify.teachers import convolve, white_inputs
    from linrnn.verify.threads import blas_threads
    from linrnn.verify.train import lagged_correlations

    T, N = check_size("lags", lags), check_size("samples", samples)
    if N >= T:
        raise UsageError(f"teacher recovery needs fewer samples than lags (an underdetermined fit), got samples = "
                         f"{N} and lags = {T}")
    if isinstance(seeds, bool) or not isinstance(seeds, int) or seeds < 0:
        raise UsageError(f"seeds must be a non-negative integer, got {seeds!r}")
    if seeds:
        check_size("width", width)
    check_size("steps", steps)
    if not 0 < lr_factor < 2:
        raise UsageError(f"lr_factor must lie in (0, 2) (2 is the stability limit), got {lr_factor!r}")
    models = tuple(long_range_models() if models is None else models)
    for t in teachers:
        t.impulse(T)  # a teacher that does not fit the lags is one sentence before any work
    for m in models:
        if (m.spec.n_in, m.spec.n_out) != (1, 1):
            raise UsageError(f"teacher recovery uses scalar sequences; the {m.name} model has n_in = {m.spec.n_in}, "
                             f"n_out = {m.spec.n_out}")
    be = resolve_backend(backend, seed)
    kernels = [np.asarray(m.kernel(T)["ntk"], dtype=np.float64) for m in models]
    rows = []
    for ti, teacher in enumerate(teachers):
        L_star = teacher.impulse(T)
        x = white_inputs(N, T, 1, reseeded(be, seed, 3, ti))
        y = convolve(L_star, x, be)
        corr = lagged_correlations(x, y, None, "last", be)
        zero = np.zeros((T, 1, 1))
        for mi, (m, theta) in enumerate(zip(models, kernels)):
            lr = lr_factor / KernelCurvature.of(corr, theta).mu_max
            kernel = _relative(kernel_min_norm(zero, corr, theta), L_star)
            at_steps = _relative(kernel_trajectory(zero, corr, theta, lr=lr, steps=steps)[-1], L_star)
            errs, diverged = [], 0
            for r in range(seeds):
                params = m.init(width=width, backend=reseeded(be, seed, 4, ti, mi, r))
                L0 = m.impulse(params, T)
                # the centred network: f - f_0 trained on y is f trained on y + (f_0 on the same inputs)
                shifted = lagged_correlations(x, y + convolve(be.to_numpy(L0), x, be), None, "last", be)
                with blas_threads(1):
                    res = m.train(params, shifted, lr=lr, steps=steps)
                if res.diverged:  # left the lazy regime and blew up: counted, not averaged
                    diverged += 1
                    continue
                errs.append(_relative(res.impulse[-1] - res.impulse[0], L_star))
            e = np.asarray(errs)
            rows.append(RecoveryRow(
                teacher=teacher.label, family=m.name, rel_error_kernel=kernel, rel_error_kernel_steps=at_steps,
                rel_error_trained=float(e.mean()) if e.size else None,
                rel_error_trained_se=float(e.std(ddof=1) / math.sqrt(e.size)) if e.size > 1 else None,
                width=int(width) if seeds else None, seeds=seeds, diverged=diverged, steps=int(steps), lr=float(lr)))
    from linrnn.core.jsonclean import jsonable

    return RecoveryTable(rows=tuple(rows), lags=T, samples=N, seed=int(seed),
                         models=tuple({"family": m.name, **jsonable(m.spec)} for m in models))


__all__ = ["LONG_RANGE", "TEACHERS", "RecoveryRow", "RecoveryTable", "Teacher", "design", "long_range_models",
           "teacher_recovery"]
