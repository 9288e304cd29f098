"""One array namespace for CPU and GPU: NumPy by default, CuPy on request.

Every array routine in :mod:`linrnn.verify` takes a :class:`Backend` and writes its code
once against ``backend.xp``. Random numbers come from the backend's own seeded
generator (``numpy.random.default_rng`` or ``cupy.random.default_rng``), so draws
differ between backends: compare them statistically, never bit for bit.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

import numpy as np

from linrnn.core.errors import UsageError

BACKENDS = ("auto", "numpy", "cupy")
DTYPES = ("float64", "float32")


def _cupy_or_reason() -> tuple[ModuleType | None, str]:
    try:
        import cupy  # type: ignore[import-not-found]
    except Exception as exc:  # ImportError, or a CUDA library failing to load
        return None, f"CuPy is not importable ({type(exc).__name__}); install the 'gpu' extra on a machine with CUDA"
    try:
        count = cupy.cuda.runtime.getDeviceCount()
    except Exception as exc:
        return None, f"CuPy found no usable GPU ({type(exc).__name__})"
    if count < 1:
        return None, "CuPy found no GPU on this machine"
    return cupy, ""


@dataclass
class Backend:
    """The array namespace ``xp``, its seeded generator and the working dtype."""

    name: str
    xp: ModuleType
    dtype: Any
    seed: int | None = None
    rng: Any = field(init=False)

    def __post_init__(self) -> None:
        self.rng = self.xp.random.default_rng(self.seed)

    @property
    def dtype_name(self) -> str:
        return np.dtype(self.dtype).name

    def to_numpy(self, a: Any) -> np.ndarray:
        """Copy an array of this backend to host NumPy (no-op for NumPy)."""
        if self.name == "cupy":
            return self.xp.asnumpy(a)
        return np.asarray(a)

    def asarray(self, a: Any) -> Any:
        return self.xp.asarray(a, dtype=self.dtype)

    def normal(self, shape: tuple[int, ...], scale: float = 1.0) -> Any:
        """Independent N(0, scale^2) entries in the working dtype."""
        out = self.rng.standard_normal(size=shape, dtype=self.dtype)
        if scale != 1.0:
            out *= scale
        return out

    def synchronize(self) -> None:
        if self.name == "cupy":
            self.xp.cuda.Stream.null.synchronize()

    def describe(self) -> dict[str, Any]:
        """Provenance for results files: backend, device and dtype."""
        info: dict[str, Any] = {"backend": self.name, "dtype": self.dtype_name}
        if self.name == "cupy":
            props = self.xp.cuda.runtime.getDeviceProperties(self.xp.cuda.Device().id)
            info["device"] = props["name"].decode() if isinstance(props["name"], bytes) else str(props["name"])
        else:
            import platform

            info["device"] = platform.processor() or platform.machine()
        return info


def get_backend(name: str = "auto", *, seed: int | None = 0, dtype: str = "float64") -> Backend:
    """Resolve ``name`` in {auto, numpy, cupy} to a :class:`Backend`.

    ``auto`` takes CuPy when it imports and sees a GPU, NumPy otherwise. Asking for
    ``cupy`` where it cannot run raises :class:`UsageError` (one sentence, exit 2).
    """
    if name not in BACKENDS:
        raise UsageError(f"unknown backend {name!r}; choose one of {', '.join(BACKENDS)}")
    if dtype not in DTYPES:
        raise UsageError(f"unknown dtype {dtype!r}; choose one of {', '.join(DTYPES)}")
    if name in ("auto", "cupy"):
        cupy, reason = _cupy_or_reason()
        if cupy is not None:
            return Backend("cupy", cupy, getattr(cupy, dtype), seed)
        if name == "cupy":
            raise UsageError(f"--backend cupy was requested but {reason}")
    return Backend("numpy", np, getattr(np, dtype), seed)
