"""The Gaussian family's specification: :class:`linrnn.core.spec.ModelSpec` itself (its hooks are the engines' defaults).

Imports the standard library and the core only (the command-line flags read it).
"""

from __future__ import annotations

from linrnn.core.spec import ModelSpec

SPEC = ModelSpec

__all__ = ["SPEC"]
