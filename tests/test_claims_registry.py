"""The claims registry (linrnn.verify.claims), the TOML profiles, and claim runs as pure, picklable functions."""

from __future__ import annotations

import concurrent.futures
import dataclasses
import multiprocessing
import pickle
from pathlib import Path

import pytest

from linrnn import suite
from linrnn.core.errors import UsageError
from linrnn.core.spec import ModelSpec
from linrnn.families.gaussian import GaussianSpec
from linrnn.families import claims as all_claims
from linrnn.verify.claims import REGISTRY, Claim, ClaimResult

REPORT_ORDER = ["ntk_limit", "nngp", "width_rate", "dynamics_equivalence", "min_norm", "short_memory", "co2"]
#: The claims the model families bring (their packages' CLAIMS), after the engines' claims.
FAMILY_CLAIMS = [name for name in all_claims() if name not in REGISTRY]

#: A dynamics-equivalence run that takes a fraction of a second.
TINY_DYNAMICS = {"widths": [16, 32], "seq_len": 6, "n_seq": 4, "steps": 5, "pilot": 2, "min_replicas": 2, "alpha": 1.4e-4,
                 "max_replicas": 2}
TINY_NTK = {"lags": 4, "widths": [8, 16], "replicas": 8}


def test_registry_lists_the_engines_claims_in_report_order() -> None:
    assert list(REGISTRY) == REPORT_ORDER
    for name, claim in REGISTRY.items():
        assert isinstance(claim, Claim) and claim.name == name
        assert dataclasses.is_dataclass(claim.config_type) and claim.config_type.__dataclass_params__.frozen
        assert callable(claim.run) and callable(claim.check)
    assert {REGISTRY[n].section for n in ("ntk_limit", "nngp", "width_rate")} == {"ntk"}
    assert {REGISTRY[n].experiment for n in ("ntk_limit", "nngp", "width_rate")} == {"ntk"}
    # the report runs the engines' claims, then the families' own (linrnn.families.claims); the chapters come
    # last and run only where a profile names them
    assert list(suite.experiments()) == ["derivation", *REPORT_ORDER, *FAMILY_CLAIMS, *suite.chapters()]
    assert suite.default_experiments() == ["derivation", *REPORT_ORDER, *FAMILY_CLAIMS]


def test_importing_the_registry_loads_neither_numpy_nor_sympy() -> None:
    import subprocess
    import sys

    code = ("import sys, linrnn.verify.claims, linrnn.suite\n"
            "assert not {'numpy', 'sympy'} & set(sys.modules), sorted(sys.modules)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr


@pytest.mark.parametrize("profile", ["quick", "full", "families"])
def test_profiles_parse_with_one_model_table(profile: str) -> None:
    assert profile in suite.profile_names()
    tables = suite.load_profile(profile)
    assert set(tables["model"]) == {f.name for f in dataclasses.fields(ModelSpec)}
    cfg = suite.resolve_config(profile)
    assert cfg.model == GaussianSpec.from_mapping(tables["model"]) and cfg.model.q == 0.9  # q set once
    assert set(cfg.sections) == {"derivation", "ntk", "finite_width", "dynamics_equivalence", "min_norm", "short_memory",
                                 "co2", *(c.section for c in all_claims().values() if c.family is not None),
                                 *suite.chapters()}
    for name, claim in REGISTRY.items():
        assert isinstance(cfg[claim.section], claim.config_type), name
        claim.check(cfg[claim.section], cfg.model)
    d = cfg.as_dict()
    assert d["model"]["sigma_w2"] == 0.9 and "sigma_w2" not in d["ntk"] and "sigma_w2" not in d["dynamics_equivalence"]


def test_profile_tables_override_the_dataclass_defaults() -> None:
    quick, full = suite.resolve_config("quick"), suite.resolve_config("full")
    assert quick.backend == "numpy" and full.backend == "auto"
    assert quick["ntk"].widths == (64, 128, 256, 512, 1024) and quick["ntk"].replicas == 256
    assert full["ntk"] == REGISTRY["ntk_limit"].default_config()
    assert quick["short_memory"].sigma_w2s == (0.5, 0.9, 1.2)  # a grid over q stays claim configuration
    assert quick["co2"] == REGISTRY["co2"].default_config() and quick["co2"].sigma_w2_claim == 0.8


@pytest.mark.parametrize(
    ("overrides", "message"),
    [({"model": {"sigma_w3": 1.0}}, r"unknown key model\.sigma_w3"),
     ({"model": {"sigma_w2": "big"}}, r"model\.sigma_w2 must be a number"),
     ({"model": {"sigma_w2": -1.0}}, r"sigma_w2"),
     ({"ntk": {"sigma_w2": 0.8}}, r"unknown key ntk\.sigma_w2"),
     ({"min_norm": {"widths": [64, "x"]}}, r"min_norm\.widths must be a list of integers"),
     ({"short_memory": {"sigma_w2s": 0.9}}, r"short_memory\.sigma_w2s must be a list of numbers"),
     ({"co2": {"lr": [1]}}, r"co2\.lr must be a string or a number"),
     ({"derivation": {"pdf": 1}}, r"derivation\.pdf must be a boolean"),
     ({"backend": 3}, r"backend must be a string"),
     ({"dynamic_equivalence": {"seeds": 3}}, r"unknown section \[dynamic_equivalence\]")],
)
def test_bad_overrides_name_the_key(overrides: dict, message: str) -> None:
    with pytest.raises(UsageError, match=message):
        suite.resolve_config("quick", overrides)


def test_model_override_reaches_every_claim_and_the_derivation() -> None:
    cfg = suite.resolve_config("quick", {"model": {"sigma_w2": 0.8}, "ntk": {"widths": [32, 64]}})
    assert cfg.model.sigma_w2 == 0.8 and cfg["ntk"].widths == (32, 64) and cfg["ntk"].replicas == 256
    exps = suite.experiments()
    assert all(getattr(fn, "section", name) in cfg.sections for name, fn in exps.items())


def test_unknown_profile_is_a_usage_error() -> None:
    with pytest.raises(UsageError, match="unknown profile 'medium'"):
        suite.resolve_config("medium")


def test_a_model_the_training_claims_cannot_run_is_refused_before_any_work() -> None:
    cfg = suite.resolve_config("quick", {"model": {"n_in": 2}})
    REGISTRY["ntk_limit"].check(cfg["ntk"], cfg.model)  # the NTK claims take any n_in
    with pytest.raises(UsageError, match="n_in = 1"):
        REGISTRY["dynamics_equivalence"].check(cfg["dynamics_equivalence"], cfg.model)


def _run(name: str, values: dict, seed: int = 0) -> ClaimResult:
    claim = REGISTRY[name]
    return claim.run(claim.config(values), GaussianSpec(sigma_w2=0.8), seed=seed, backend="numpy")


def test_claim_inputs_and_result_survive_pickling_and_reruns_are_equal() -> None:
    claim = REGISTRY["dynamics_equivalence"]
    config, model = claim.config(TINY_DYNAMICS), GaussianSpec(sigma_w2=0.8)
    assert pickle.loads(pickle.dumps(config)) == config and pickle.loads(pickle.dumps(model)) == model
    assert pickle.loads(pickle.dumps(claim)) == claim
    a = claim.run(config, model, seed=0, backend="numpy")
    assert isinstance(a, ClaimResult) and a.id == "dynamics_equivalence"
    assert pickle.loads(pickle.dumps(a)) == a
    assert ClaimResult.from_dict(a.as_dict()) == a
    assert claim.run(config, model, seed=0, backend="numpy") == a
    assert claim.run(config, model, seed=1, backend="numpy") != a
    for fig in a.figures.values():
        assert isinstance(fig["kind"], str)


def test_ntk_claims_share_one_sweep_and_stay_pure() -> None:
    cfg = REGISTRY["ntk_limit"].config(TINY_NTK)
    model = GaussianSpec(sigma_w2=0.9)
    results = {n: REGISTRY[n].run(cfg, model, seed=3, backend="numpy") for n in ("ntk_limit", "nngp", "width_rate")}
    assert [r.id for r in results.values()] == ["ntk_limit", "nngp", "width_rate"]
    assert {c["id"] for c in results["width_rate"].controls} == {"rate:minus_1", "rate:ntk:no_linear_term",
                                                                 "rate:ntk:q_times_1.1"}
    for r in results.values():  # outcomes, alpha (the sweep's alpha over its three claims) and the design
        assert r.alpha == pytest.approx(cfg.alpha / 3) and r.design["method"] == "group-sequential"
        assert all(c["verdict"] in ("rejected", "not_rejected", "error") and "power" in c for c in r.controls)
    from linrnn.verify.claims import ntk_sweep

    ntk_sweep._sweep.cache_clear()  # recomputed from scratch: the same numbers
    again = REGISTRY["nngp"].run(cfg, model, seed=3, backend="numpy")
    assert again == results["nngp"] and pickle.loads(pickle.dumps(again)) == again


def _in_other_process(name: str, values: dict) -> ClaimResult:
    return _run(name, values)


def test_a_claim_runs_in_another_process() -> None:
    here = _run("dynamics_equivalence", TINY_DYNAMICS)
    with concurrent.futures.ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
        there = pool.submit(_in_other_process, "dynamics_equivalence", TINY_DYNAMICS).result(timeout=300)
    assert there == here


def test_a_figure_without_a_kind_is_refused() -> None:
    res = _run("dynamics_equivalence", TINY_DYNAMICS)
    with pytest.raises(ValueError, match="names no kind"):
        dataclasses.replace(res, figures={"raw": {"values": [1, 2]}})


def test_run_report_only_a_subset_with_a_model_override(tmp_path: Path) -> None:
    run = suite.run_report(tmp_path / "rep", config={"model": {"sigma_w2": 0.8}, "dynamics_equivalence": TINY_DYNAMICS},
                           only=["dynamics_equivalence"], use_cache=False)
    r = run.results
    assert [c["id"] for c in r["claims"]] == ["dynamics_equivalence"]
    assert r["config"]["model"]["sigma_w2"] == 0.8 and r["claims"][0]["config"]["sigma_w2"] == 0.8
    assert r["claims"][0]["experiment"] == "dynamics_equivalence"
    assert set(r["provenance"]["claims_not_run"]) == set(REPORT_ORDER + FAMILY_CLAIMS) - {"dynamics_equivalence"}
    expected = _run("dynamics_equivalence", TINY_DYNAMICS)
    assert r["claims"][0]["statistic"] == expected.statistic


def test_train_cli_defaults_are_the_dataclass_defaults() -> None:
    import argparse

    from linrnn import train_cli
    from linrnn.verify.claims import dynamics_equivalence, short_memory

    parser = argparse.ArgumentParser()
    train_cli.register(parser.add_subparsers())
    args = parser.parse_args(["train"])
    assert train_cli._config(args, dynamics_equivalence.Config()) == dynamics_equivalence.Config()
    assert train_cli._model(args) == GaussianSpec()  # the one default of every command
    args = parser.parse_args(["train", "--sigma-w2s", "0.5,0.9", "--replicas", "3", "--seq-len", "7"])
    cfg = train_cli._config(args, short_memory.Config())
    assert (cfg.sigma_w2s, cfg.seeds, cfg.seq_len, cfg.width) == ((0.5, 0.9), 3, 7, short_memory.Config().width)
