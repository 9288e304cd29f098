"""Provenance of a run: the versions of the libraries a result depends on."""

from __future__ import annotations

import importlib.metadata

from linrnn.core.version import __version__

#: The distributions whose versions a results file records.
DISTRIBUTIONS = ("linrnn-bias", "numpy", "sympy", "mpmath", "matplotlib", "cupy-cuda12x")


def package_versions() -> dict[str, str]:
    """name -> installed version of :data:`DISTRIBUTIONS` (missing ones left out; linrnn-bias from a source
    tree that is not installed is named as such)."""
    out = {}
    for dist in DISTRIBUTIONS:
        try:
            out[dist] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            if dist == "linrnn-bias":
                out[dist] = __version__ + " (source tree)"
    return out
