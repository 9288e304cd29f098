"""Shared test configuration.

* The derivation cache (:mod:`linrnn.derive.cache`) points at a fresh directory per test
  session, so the tests exercise the SymPy derivation itself, never a cache left
  by an earlier run.
* Hypothesis: a CI profile without deadlines (the machine is shared and slow).
* Statistical tests use fixed seeds; the suite-wide false-failure budget is stated
  in ``verify/stats.py`` and every Monte Carlo test derives its tolerance from it.
"""

from __future__ import annotations

import os
import tempfile

from hypothesis import HealthCheck, settings

_CACHE = tempfile.mkdtemp(prefix="linrnn-test-cache-")
os.environ["LINRNN_CACHE_DIR"] = _CACHE

settings.register_profile(
    "default", deadline=None, max_examples=40, suppress_health_check=[HealthCheck.too_slow]
)
settings.load_profile("default")
