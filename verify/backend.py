"""Where arrays live and where random numbers come from: NumPy by default, CuPy on request.

Array code in :mod:`linrnn.verify` is written once against the Python Array API
standard (2023.12): a routine asks an input array for its namespace with
:func:`array_namespace` (``array_api_compat.array_namespace``, as scikit-learn and
SciPy do) and uses only that namespace's standard functions. The standard has no
random numbers and no notion of a default device, so a :class:`Backend` holds just
those: the seeded generator, the working dtype and the device, plus helpers to
create arrays there (:meth:`Backend.asarray`, :meth:`Backend.normal`) and to copy
results back to host NumPy (:meth:`Backend.to_numpy`, the explicit boundary to the
host-side statistics).

Random numbers come from ``numpy.random.default_rng`` (NumPy) or
``cupy.random.default_rng`` (CuPy), so draws differ between those two: compare
them statistically, never bit for bit. The ``array_api_strict`` kind (tests only,
not offered on the command line) runs the same code on the strict reference
namespace to catch anything outside the standard; it draws with NumPy's generator
and transfers, so its numbers equal the NumPy backend's for the same seed.

For Python callers (the families' ``init(backend=...)``; not offered on the command line)
the kinds ``torch`` (PyTorch on the CPU), ``torch:cuda`` (PyTorch on the current CUDA
device) and ``jax`` (JAX's default device) give arrays of those libraries, through
``array_api_compat``; like ``array_api_strict`` they draw with NumPy's generator and
transfer, so a draw equals the NumPy backend's of the same seed. JAX computes in float32
unless ``jax_enable_x64`` is set: asking for float64 without it is refused in one sentence.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

import numpy as np
from array_api_compat import array_namespace, device, is_array_api_obj

from linrnn.core.errors import UsageError

__all__ = ["BACKENDS", "DTYPES", "KINDS", "Backend", "array_namespace", "device", "get_backend"]

#: Backends offered on the command line.
BACKENDS = ("auto", "numpy", "cupy")
#: Kinds for Python callers (arrays of those libraries, drawn with NumPy's generator and transferred).
FRAMEWORKS = ("torch", "torch:cuda", "jax")
#: Every kind :func:`get_backend` resolves; ``array_api_strict`` is for the tests.
KINDS = BACKENDS + ("array_api_strict",) + FRAMEWORKS
#: The kinds whose numbers come from NumPy's generator on the host and are transferred to the namespace.
_TRANSFERRED = ("array_api_strict",) + FRAMEWORKS
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


def _namespace(name: str) -> Any:
    """The Array API namespace of backend ``name`` (the one :func:`array_namespace` gives its arrays)."""
    if name == "numpy":
        import array_api_compat.numpy as xp
    elif name == "cupy":
        import array_api_compat.cupy as xp  # type: ignore[no-redef]
    elif name == "array_api_strict":
        import array_api_strict as xp  # type: ignore[no-redef]
    elif name in ("torch", "torch:cuda"):
        import array_api_compat.torch as xp  # type: ignore[no-redef]
    elif name == "jax":
        import jax.numpy as xp  # type: ignore[no-redef]  # JAX arrays follow the standard themselves
    else:
        raise UsageError(f"unknown backend {name!r}; choose one of {', '.join(BACKENDS)}")
    return xp


@dataclass
class Backend:
    """The seeded generator, the working dtype and the device of one array library.

    ``name`` is ``numpy``, ``cupy`` or ``array_api_strict``; ``dtype_name`` is
    ``float64`` or ``float32``. ``dtype`` (the namespace's dtype object), ``device``
    and ``rng`` follow from them. Computations never ask the backend for a namespace:
    they take it from their input arrays (:func:`array_namespace`).
    """

    name: str
    dtype_name: str = "float64"
    seed: int | None = None
    dtype: Any = field(init=False, repr=False)
    device: Any = field(init=False, repr=False)
    rng: Any = field(init=False, repr=False)
    _xp: Any = field(init=False, repr=False)

    def __post_init__(self) -> None:
        if self.dtype_name not in DTYPES:
            raise UsageError(f"unknown dtype {self.dtype_name!r}; choose one of {', '.join(DTYPES)}")
        framework_device = _framework_device(self.name, self.dtype_name) if self.name in FRAMEWORKS else None
        self._xp = _namespace(self.name)
        self.dtype = getattr(self._xp, self.dtype_name)
        if self.name == "cupy":
            import cupy  # type: ignore[import-not-found]

            self.rng = cupy.random.default_rng(self.seed)
            self.device = cupy.cuda.Device()
        elif self.name in FRAMEWORKS:
            self.rng = np.random.default_rng(self.seed)
            self.device = framework_device
        else:
            self.rng = np.random.default_rng(self.seed)
            self.device = device(self._xp.empty((0,), dtype=self.dtype))

    def with_seed(self, seed: int | None) -> Backend:
        """A backend of the same kind, dtype and device with a fresh generator seeded by ``seed``."""
        return dataclasses.replace(self, seed=seed)

    @property
    def itemsize(self) -> int:
        """Bytes per element of the working dtype."""
        return np.dtype(self.dtype_name).itemsize

    def to_numpy(self, a: Any) -> np.ndarray:
        """Copy an array of this backend to host NumPy (no copy for NumPy): the host boundary."""
        if self.name == "cupy":
            import cupy  # type: ignore[import-not-found]

            return cupy.asnumpy(a)
        if self.name == "array_api_strict" and not isinstance(a, (np.ndarray, np.generic)):
            return np.from_dlpack(a).copy()
        if self.name.startswith("torch") and not isinstance(a, (np.ndarray, np.generic)):
            return a.detach().cpu().numpy()
        return np.asarray(a)

    def asarray(self, a: Any, dtype: str | None = None) -> Any:
        """``a`` (host data or an array of this backend) as an array of this backend.

        In the working dtype, or in ``dtype`` (a name such as ``"float64"``) if given.
        """
        xp = self._xp
        dt = self.dtype if dtype is None else getattr(xp, dtype)
        if self.name in _TRANSFERRED and not (is_array_api_obj(a) and array_namespace(a) is xp):
            a = np.asarray(a)  # host data: the strict namespace takes buffers, not sequences of arrays
        return xp.asarray(a, dtype=dt, device=self.device)

    def normal(self, shape: tuple[int, ...], scale: float = 1.0) -> Any:
        """Independent N(0, scale^2) entries in the working dtype, on the device."""
        host_dtype = np.dtype(self.dtype_name) if self.name != "cupy" else self.dtype
        out = self.rng.standard_normal(size=shape, dtype=host_dtype)
        if scale != 1.0:
            out *= scale
        if self.name in _TRANSFERRED:
            return self._xp.asarray(out, device=self.device)
        return out

    def uniform(self, shape: tuple[int, ...]) -> Any:
        """Independent U[0, 1) entries in the working dtype, on the device."""
        host_dtype = np.dtype(self.dtype_name) if self.name != "cupy" else self.dtype
        out = self.rng.random(size=shape, dtype=host_dtype)
        if self.name in _TRANSFERRED:
            return self._xp.asarray(out, device=self.device)
        return out

    def synchronize(self) -> None:
        if self.name == "cupy":
            import cupy  # type: ignore[import-not-found]

            cupy.cuda.Stream.null.synchronize()
        elif self.name == "torch:cuda":
            import torch  # type: ignore[import-not-found]

            torch.cuda.synchronize(self.device)

    def describe(self) -> dict[str, Any]:
        """Provenance for results files: backend, device and dtype."""
        info: dict[str, Any] = {"backend": self.name, "dtype": self.dtype_name}
        if self.name == "cupy":
            import cupy  # type: ignore[import-not-found]

            props = cupy.cuda.runtime.getDeviceProperties(cupy.cuda.Device().id)
            info["device"] = props["name"].decode() if isinstance(props["name"], bytes) else str(props["name"])
        elif self.name in ("torch:cuda", "jax"):
            info["device"] = str(self.device)
        else:
            import platform

            info["device"] = platform.processor() or platform.machine()
        return info


def _framework_device(name: str, dtype_name: str) -> Any:
    """The device of a framework kind (module docstring), or one sentence saying why it cannot run here."""
    if name.startswith("torch"):
        try:
            import torch  # type: ignore[import-not-found]
        except ImportError:
            raise UsageError(f"the {name} backend needs PyTorch (pip install torch)") from None
        if name == "torch":
            return torch.device("cpu")
        if not torch.cuda.is_available():
            raise UsageError("the torch:cuda backend was requested but PyTorch sees no CUDA device here")
        return torch.device("cuda", torch.cuda.current_device())
    try:
        import jax  # type: ignore[import-not-found]
    except ImportError:
        raise UsageError("the jax backend needs JAX (pip install jax)") from None
    if dtype_name == "float64" and not jax.config.read("jax_enable_x64"):
        raise UsageError("JAX computes in float32 unless x64 is enabled: call jax.config.update('jax_enable_x64', "
                         "True) first, or ask for dtype float32")
    return jax.devices()[0]


def get_backend(name: str = "auto", *, seed: int | None = 0, dtype: str = "float64") -> Backend:
    """Resolve ``name`` in {auto, numpy, cupy} (or ``array_api_strict``, for tests) to a :class:`Backend`.

    ``auto`` takes CuPy when it imports and sees a GPU, NumPy otherwise. Asking for
    ``cupy`` where it cannot run raises :class:`UsageError` (one sentence, exit 2).
    """
    if name not in KINDS:
        raise UsageError(f"unknown backend {name!r}; choose one of {', '.join(BACKENDS)}")
    if dtype not in DTYPES:
        raise UsageError(f"unknown dtype {dtype!r}; choose one of {', '.join(DTYPES)}")
    if name in ("auto", "cupy"):
        cupy, reason = _cupy_or_reason()
        if cupy is not None:
            return Backend("cupy", dtype, seed)
        if name == "cupy":
            raise UsageError(f"--backend cupy was requested but {reason}")
        name = "numpy"
    if name == "array_api_strict":
        try:
            import array_api_strict  # noqa: F401
        except ImportError:
            raise UsageError("the array_api_strict backend needs the array-api-strict package (the 'test' extra)") from None
    return Backend(name, dtype, seed)
