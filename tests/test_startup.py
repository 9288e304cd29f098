"""No fixed start-up cost: with the derivation cached, the numeric paths never import SymPy.

Each case runs in a fresh interpreter (a subprocess) with its own cache directory:
a first run warms the cache (it may import SymPy to derive), a second run must not
import ``sympy`` at all, nor ``scipy.stats`` on the paths that only need the t and
normal quantiles. These are facts about ``sys.modules``, not timings; the times are
measured in ``benchmarks/bench_startup.py``. The cached formulas are also checked
against the SymPy derivation they were printed from (:func:`test_cached_formulas_match_the_derivation`).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
FIXTURE = ROOT / "tests" / "fixtures" / "report_results.json"

#: Runs ``linrnn.cli.main(argv)`` and prints the heavy modules it imported as JSON on the last line.
_PROBE = r"""
import json, sys
from linrnn.cli import main
status = main(sys.argv[1:])
print(json.dumps({"status": status, "sympy": "sympy" in sys.modules, "scipy.stats": "scipy.stats" in sys.modules}))
"""

#: Runs one claim of the registry (tiny sizes) in this process, as a worker would.
_CLAIM = r"""
import json, sys
from linrnn.families.gaussian import GaussianSpec
from linrnn.families import claims
from linrnn.core.configure import configure
name, overrides = sys.argv[1], json.loads(sys.argv[2])
claim = claims()[name]
cfg = configure(claim.config_type(), overrides, name)
res = claim.run(cfg, GaussianSpec(sigma_w2=0.8), seed=0, backend="numpy")
print(json.dumps({"status": res.verdict, "sympy": "sympy" in sys.modules, "scipy.stats": "scipy.stats" in sys.modules}))
"""


def _run(code: str, args: list[str], cache: Path, cwd: Path) -> dict:
    env = {**os.environ, "LINRNN_CACHE_DIR": str(cache)}
    env.pop("LINRNN_NO_CACHE", None)
    proc = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, env=env, cwd=cwd,
                          timeout=600)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def warm_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A cache directory warmed by one derivation of both parameterizations (formulas and consequences)."""
    cache = tmp_path_factory.mktemp("cache")
    warm = ("from linrnn.derive.formulas import lag_formulas, consequence_formulas\n"
            "for p in ('ntk', 'standard'):\n    lag_formulas(p); consequence_formulas(p)\n"
            "import json; print(json.dumps({}))")
    _run(warm, [], cache, ROOT)
    return cache


@pytest.mark.parametrize("argv", [
    # the default mean (auto: the exact finite-width mean, issue 12), its traces and entries cached as data
    ["verify", "ntk", "--width", "64", "--lags", "4", "--pilot", "0", "--replicas", "8"],
    ["verify", "ntk", "--width", "64", "--lags", "4", "--pilot", "0", "--replicas", "8", "--mean", "richardson"],
    ["derive", "weights", "--lags", "8", "--sigma-w2", "0.9"],
    ["derive", "weights", "--lags", "8", "--sigma-w2", "1.2", "--json"],
    ["derive", "weights", "--lags", "8", "--param", "standard", "--dps", "30"],
    ["verify", "train", "--width", "32", "--seq-len", "6", "--n-seq", "8", "--steps", "5", "--no-progress"],
])
def test_numeric_commands_do_not_import_sympy(warm_cache: Path, tmp_path: Path, argv: list[str]) -> None:
    _run(_PROBE, argv, warm_cache, tmp_path)  # warms what this command adds (the exact mean's traces and entries)
    out = _run(_PROBE, argv, warm_cache, tmp_path)
    # a completed run (verify ntk at 8 replicas without a pilot may be inconclusive, 3)
    assert out["status"] in ((0, 3) if argv[:2] == ["verify", "ntk"] else (0,))
    assert out["sympy"] is False
    if argv[0] == "verify" and argv[1] == "ntk":
        assert out["scipy.stats"] is False  # the t and normal quantiles come from scipy.special


def test_report_render_does_not_import_sympy(warm_cache: Path, tmp_path: Path) -> None:
    out = _run(_PROBE, ["report", "render", str(FIXTURE), "-o", str(tmp_path / "r")], warm_cache, tmp_path)
    assert out["sympy"] is False
    assert (tmp_path / "r" / "report.html").is_file()


@pytest.mark.parametrize("name, overrides", [
    ("ntk_limit", {"lags": 3, "widths": [32, 64], "replicas": 8, "pilot": 0, "mean": "richardson"}),
    ("ntk_limit", {"lags": 3, "widths": [32, 64], "replicas": 8, "pilot": 0}),
    ("finite_width", {"lags": 3, "widths": [4, 8], "pilot": 16, "min_replicas": 16, "max_replicas": 16}),
    ("dynamics_equivalence", {"widths": [16, 32], "seq_len": 4, "n_seq": 8, "steps": 5, "pilot": 3,
                              "min_replicas": 3, "max_replicas": 3}),
])
def test_claims_on_a_worker_do_not_import_sympy(warm_cache: Path, tmp_path: Path, name: str, overrides: dict) -> None:
    _run(_CLAIM, [name, json.dumps(overrides)], warm_cache, tmp_path)  # a first run warms what the claim adds
    out = _run(_CLAIM, [name, json.dumps(overrides)], warm_cache, tmp_path)
    assert out["sympy"] is False


def test_a_cold_cache_derives_and_then_stays_warm(tmp_path: Path) -> None:
    """The negative control of the tests above: with an empty cache the same command does import SymPy."""
    argv = ["derive", "weights", "--lags", "4", "--sigma-w2", "0.9"]
    cold = _run(_PROBE, argv, tmp_path / "cache", tmp_path)
    warm = _run(_PROBE, argv, tmp_path / "cache", tmp_path)
    assert (cold["sympy"], warm["sympy"]) == (True, False)
    assert sorted(p.name.split("-")[0] for p in (tmp_path / "cache").glob("*.json"))


def test_cached_formulas_match_the_derivation(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every cached formula, read back from its JSON, evaluates like ``lambdify`` of the SymPy expression."""
    import mpmath
    import sympy as sp

    from linrnn.families.gaussian import GaussianSpec
    from linrnn.derive import symbols as S
    from linrnn.derive.weight_consequences import consequences
    from linrnn.derive.formulas import consequence_formulas, lag_formulas
    from linrnn.derive.lag_weights import derive_lag_weights
    from linrnn.derive.model import substitutions
    from linrnn.derive.numeric import evaluate, exact_params

    monkeypatch.setenv("LINRNN_CACHE_DIR", str(tmp_path))
    monkeypatch.delenv("LINRNN_NO_CACHE", raising=False)
    lag_formulas.cache_clear()
    consequence_formulas.cache_clear()
    for param in ("ntk", "standard"):
        lag_formulas(param)
        consequence_formulas(param)
    lag_formulas.cache_clear()
    consequence_formulas.cache_clear()
    assert len(list(tmp_path.glob("*formulas*.json"))) == 4
    spec = GaussianSpec(sigma_w2=0.85, sigma_c2=1.3, sigma_f2=0.7, n_in=2, lr_c=0.5, lr_f=2.0, lr_w=1.5)
    js = np.arange(12.0)
    args = (S.j, *S.PARAMETERS)
    for param in ("ntk", "standard"):
        der, con = derive_lag_weights(param), consequences(param)
        lf, cf = lag_formulas(param), consequence_formulas(param)  # read back from the JSON files
        s = GaussianSpec(**{**spec.as_dict(), "param": param})
        pairs = [(lf.weight, der.weight), (lf.nngp, der.nngp)]
        pairs += [(lf.controls[k], e) for k, e in der.controls.items()]
        pairs += [(lf.nngp_controls[k], e) for k, e in der.nngp_controls.items()]
        for form, expr in pairs:
            assert form.text == str(expr)
            ref = sp.lambdify(args, expr, modules="numpy")(js, *[float(v) for v in (0.85, 1.3, 0.7, 2, 0.5, 2.0, 1.5)])
            np.testing.assert_array_equal(evaluate(form, s, 12), np.broadcast_to(ref, js.shape))
        subs = substitutions(s)
        ex = exact_params(s)
        for form, expr in [(lf.linear_form[0], der.linear_form[0]), (lf.linear_form[1], der.linear_form[1]),
                           (cf.total, con.total), (cf.peak_threshold, con.peak_threshold)]:
            value = form.exact_value(ex)
            assert sp.Rational(value.numerator, value.denominator) == sp.nsimplify(expr.subs(subs))
        with mpmath.workdps(30):
            h = sp.lambdify([S.eps, S.lam_max, *S.PARAMETERS], con.horizon, modules="mpmath")
            point = [mpmath.mpf("0.001"), mpmath.mpf(3), *[mpmath.mpf(subs[p].p) / subs[p].q for p in S.PARAMETERS]]
            assert cf.horizon.mpmath_fn()(*point) == h(*point)


def test_verify_takes_the_exact_engines_reach_from_the_family() -> None:
    from linrnn.core.spec import ModelSpec
    from linrnn.families.gaussian import GaussianSpec
    from linrnn.families.gaussian.finite_width_arrays import REACH
    from linrnn.verify.check_ntk import exact_reaches

    assert GaussianSpec.exact_reach == REACH
    assert exact_reaches(GaussianSpec(), REACH) and not exact_reaches(GaussianSpec(), REACH + 1)
    assert not exact_reaches(ModelSpec(), 4)  # the dense base has no exact means
