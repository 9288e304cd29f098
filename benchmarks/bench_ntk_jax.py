"""The structured lag NTK against JAX peers: vjp+jvp (vmapped) and neural-tangents' structured kernel.

Cases of the suite (``python benchmarks/run.py --only ntk_jax``), each on the same draw
(n = 512, ``ntk`` parameterization, q = 1, n_x = n_y = 1, float64, CPU), timed side by side
(the peers after JIT compilation, best of several calls; compilation time is in the detail),
with the agreement max |A - B| / max |B|:

* ``jax_vjp_jvp_L32`` (target >= 50x) and ``jax_vjp_jvp_L256``: Theta = J J^T column by
  column, J^T e_i by ``jax.vjp`` then J (J^T e_i) by ``jax.jvp``, ``jax.vmap`` over i, jitted
  (JAX 0.10, the project's environment; ``pip install '.[bench]'``);
* ``nt_structured_L32`` (target >= 300x) and ``nt_structured_L256``: neural-tangents 0.6.5
  ``empirical_ntk_fn`` with implementation 3 (structured derivatives). It imports only with
  JAX 0.4.23 (on current JAX ``from jax.core import Jaxpr`` fails), so it runs as a
  subprocess in an environment of its own: the Python given by ``LINRNN_NT_PYTHON``
  (default ``/work/venv-nt/bin/python``; make one with
  ``python -m venv /work/venv-nt && /work/venv-nt/bin/pip install 'numpy<2' jax==0.4.23 jaxlib==0.4.23 neural-tangents==0.6.5``).

A peer that is not installed gives a skipped case saying so.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE / "peers"))
import harness  # noqa: E402

NT_PYTHON = os.environ.get("LINRNN_NT_PYTHON", "/work/venv-nt/bin/python")
NT_TIMEOUT = 900


def _draw(n: int):
    from linrnn.core.spec import ModelSpec
    from linrnn.verify.backend import get_backend
    from linrnn.verify.sample import sample_rnn

    return sample_rnn(get_backend("numpy", seed=0), ModelSpec(), n)


def _ours(draw: Any, lags: int, repeats: int) -> tuple[float, np.ndarray]:
    from linrnn.verify.ntk import empirical_lag_ntk

    t, out = harness.best_time(lambda: empirical_lag_ntk(draw, lags), repeats)
    return t, np.asarray(out).reshape(lags, lags)


def _agreement(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.max(np.abs(a - b)) / np.max(np.abs(b)))


def case_jax(n: int, lags: int, target: float | None, repeats: int, command: str) -> dict[str, Any]:
    name = f"jax_vjp_jvp_n{n}_L{lags}"
    subject, baseline = "empirical_lag_ntk", "JAX vjp+jvp NTK, vmapped, jitted"
    try:
        import jax
    except ImportError:
        return harness.skipped(name, "JAX is not installed (pip install '.[bench]')", subject=subject,
                               baseline=baseline, target=target, command=command)
    jax.config.update("jax_enable_x64", True)
    import jax.numpy as jnp
    import jax_ntk

    draw = _draw(n)
    params = {k: jnp.asarray(getattr(draw, k)) for k in "CFW"}
    t0, ours = _ours(draw, lags, 4 * repeats)
    first, best, theirs = jax_ntk.time_it(jax_ntk.vjp_jvp_ntk(lags, n, 1.0), params, repeats)
    t1, _ = _ours(draw, lags, 4 * repeats)
    t = min(t0, t1)
    return harness.case(name, subject=subject, baseline=f"{baseline} (JAX {jax.__version__})",
                        seconds={"subject": t, "baseline": best, "baseline_first_call_with_compile": first},
                        target=target, command=command,
                        detail={"n": n, "lags": lags, "dtype": "float64", "agreement": _agreement(ours, theirs),
                                "jax": jax.__version__, "devices": [str(d) for d in jax.devices()]})


def case_nt(n: int, lags: int, target: float | None, repeats: int, command: str) -> dict[str, Any]:
    name = f"nt_structured_n{n}_L{lags}"
    subject, baseline = "empirical_lag_ntk", "neural-tangents empirical_ntk_fn, implementation 3 (structured)"
    if not Path(NT_PYTHON).exists():
        return harness.skipped(name, f"no neural-tangents environment at {NT_PYTHON} (set LINRNN_NT_PYTHON)",
                               subject=subject, baseline=baseline, target=target, command=command)
    draw = _draw(n)
    t0, ours = _ours(draw, lags, 4 * repeats)
    with tempfile.TemporaryDirectory() as tmp:
        np.savez(Path(tmp) / "draw.npz", W=draw.W, F=draw.F, C=draw.C)
        out = Path(tmp) / "nt.json"
        cmd = [NT_PYTHON, str(HERE / "peers" / "jax_ntk.py"), str(Path(tmp) / "draw.npz"), str(out),
               "--lags", str(lags), "--repeats", str(repeats), "--impl", "nt3", "--progress", str(Path(tmp) / "first.json")]
        env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "JAX_PLATFORMS": "cpu"}
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=NT_TIMEOUT, env=env)
        except subprocess.TimeoutExpired:
            first = Path(tmp) / "first.json"
            if repeats != 1 or not first.exists():
                return harness.skipped(name, f"neural-tangents did not finish within {NT_TIMEOUT} s", subject=subject,
                                       baseline=baseline, target=target, command=command)
            # the first call (compilation and one run) finished at f; the one timed call then did not finish
            # within NT_TIMEOUT - f: that call takes longer, so the ratio is at least (NT_TIMEOUT - f) / ours
            f = json.loads(first.read_text())["first_call_s"]
            bound = NT_TIMEOUT - f
            return harness.case(name, subject=subject, baseline=f"{baseline} (timed call unfinished)",
                                seconds={"subject": t0, "baseline_lower_bound": bound,
                                         "baseline_first_call_with_compile": f},
                                ratio=bound / t0, target=target, command=command,
                                detail={"n": n, "lags": lags, "dtype": "float64", "lower_bound": True,
                                        "why": (f"the first call (compilation and a run) took {f:.0f} s; the timed "
                                                f"call had not finished {bound:.0f} s later, when the "
                                                f"{NT_TIMEOUT} s limit stopped it: the ratio is a lower bound")})
        if proc.returncode != 0 or not out.exists():
            tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
            return harness.skipped(name, f"neural-tangents failed: {tail}", subject=subject, baseline=baseline,
                                   target=target, command=command)
        res = json.loads(out.read_text())
        theirs = np.load(str(out) + ".npy")
    t1, _ = _ours(draw, lags, 4 * repeats)
    v = res["versions"]
    return harness.case(name, subject=subject,
                        baseline=f"{baseline} (neural-tangents {v.get('neural_tangents')}, JAX {v.get('jax')})",
                        seconds={"subject": min(t0, t1), "baseline": res["best_s"],
                                 "baseline_first_call_with_compile": res["first_call_s"]},
                        target=target, command=command,
                        detail={"n": n, "lags": lags, "dtype": "float64", "agreement": _agreement(ours, theirs),
                                **{k: val for k, val in v.items()}})


def cases(quick: bool) -> list[dict[str, Any]]:
    cmd = "python benchmarks/run.py --only ntk_jax" + (" --quick" if quick else "")
    if quick:
        return [case_jax(128, 16, None, 2, cmd), case_nt(128, 16, None, 2, cmd)]
    return [case_jax(512, 32, 50.0, 5, cmd), case_jax(512, 256, None, 3, cmd),
            case_nt(512, 32, 300.0, 3, cmd), case_nt(512, 256, None, 1, cmd)]
