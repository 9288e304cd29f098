"""linrnn-bias: derive and verify the implicit bias of wide linear RNNs.

The command-line entry point is :func:`linrnn.cli.main`; the work lives in the
import packages :mod:`linrnn.derive` (exact SymPy derivations), :mod:`linrnn.verify` (Monte Carlo
checks on NumPy/CuPy) and :mod:`linrnn.reports` (rendering of results files).
"""

from typing import Any

from linrnn.core.version import __version__

__all__ = ["__version__", "family"]


def __getattr__(name: str) -> Any:
    """``linrnn.family`` (:func:`linrnn.families.family`) and the submodule ``linrnn.predict``, imported on first
    use so ``import linrnn`` stays light."""
    if name == "family":
        from linrnn.families import family

        return family
    if name == "predict":
        import linrnn.predict

        return linrnn.predict
    raise AttributeError(f"module 'linrnn' has no attribute {name!r}")
