"""Engines hand typed results to the claims and commands (issue 18, point 7).

``verify ntk``'s :class:`NTKCheck` is read by its fields (a renamed field fails where it is
read, at attribute access, not in a results file later), its results object is written
from the same typed objects, and ``verify train`` prints each result type by one method
of :class:`linrnn.train_cli.TablePrinter`, dispatched on the type's name.
"""

from __future__ import annotations

import dataclasses
from types import SimpleNamespace

import pytest

from linrnn.core.jsonclean import jsonable
from linrnn.families.gaussian import GaussianSpec
from linrnn.train_cli import TablePrinter
from linrnn.verify.check_ntk import NTKCheck, NTKDesign, check_lag_ntk
from linrnn.verify.claims import ntk_sweep
from linrnn.verify.claims.training import ControlLine, DesignLine, DistanceTable


@pytest.fixture(scope="module")
def run() -> NTKCheck:
    return check_lag_ntk(GaussianSpec(sigma_w2=0.9), [16, 32], lags=3, replicas=16, seed=1, backend="numpy",
                         pilot=0, mean="richardson", progress=False)


def test_the_results_object_is_written_from_the_typed_fields(run: NTKCheck) -> None:
    j = run.to_json()
    assert j["design"] == jsonable(run.design.as_dict())
    assert j["mean_theory"] == run.design.mean_theory == "richardson"
    assert "pilot_seconds" not in j["design"]  # no pilot: its fields are left out
    assert [c["name"] for c in j["checks"]] == list(run.check_results()) == ["ntk_entries", "nngp_entries", "rate"]
    for name, ctrl in run.control_results().items():
        assert j["controls"][name] == jsonable(ctrl.as_dict())
        assert j["controls"][name]["verdict"] == ctrl.verdict == run.control_outcome(name)
    ntk = run.kernel("ntk")
    assert j["corrected_mean"] == jsonable(ntk.corrected.tolist()) and j["shape"] == list(run.shape)
    with pytest.raises(ValueError, match="no kernel"):
        run.kernel("ntk_")


def test_a_claim_reads_fields_so_a_renamed_field_fails_at_access(run: NTKCheck) -> None:
    check = run.check_results()["ntk_entries"]
    ctrls = ntk_sweep.controls(run, "ntk", "ntk_entries")
    fields = ntk_sweep.claim_fields(run, check, ctrls)
    assert fields["design"]["allowance"] == run.design.allowance and fields["alpha"] == run.alpha_check
    # the same design with one field renamed: the claim fails where it reads it, naming the field
    names = [(("bias_allowance" if f.name == "allowance" else f.name), f.type, f) for f in dataclasses.fields(NTKDesign)]
    Renamed = dataclasses.make_dataclass("Renamed", [(n, t, dataclasses.field(default=f.default)) if
                                                     f.default is not dataclasses.MISSING else (n, t)
                                                     for n, t, f in names], frozen=True)
    values = {("bias_allowance" if k == "allowance" else k): getattr(run.design, k)
              for k in (f.name for f in dataclasses.fields(NTKDesign))}
    renamed = dataclasses.replace(run, design=Renamed(**values))
    with pytest.raises(AttributeError, match="allowance"):
        ntk_sweep.claim_fields(renamed, check, ctrls)


def _distance_table(cls: type = DistanceTable) -> DistanceTable:
    claim = SimpleNamespace(title="Dynamics equivalence", statement="d(n) falls like n^-1/2.", verdict="pass")
    return cls(claim, (16, 32), (0.4, 0.28), (0.01, 0.02), -0.5, (-0.6, -0.4), "slope test",
               DesignLine(pilot=4, replicas=8, stages=(8,), power_target=0.999, capped_by=None, looks=2),
               (ControlLine("rate:-1", "rejected", 0.99), ControlLine("lag_weights:x", "not_rejected", 0.5, 40)))


def test_the_printer_dispatches_on_the_type_and_refuses_an_unknown_one() -> None:
    text = TablePrinter().doprint(_distance_table())
    lines = text.splitlines()
    assert lines[0] == "# Dynamics equivalence: d(n) falls like n^-1/2."
    assert lines[2].split() == ["16", "0.4", "0.01"] and lines[3].split() == ["32", "0.28", "0.02"]
    assert "design: pilot 4 + 8 fresh replicas (stage) for power 0.999 per control; alpha / 2 per look" in lines
    assert lines[-2].endswith("NOT REJECTED (predicted power 0.5000); 40 replicas would decide it")
    assert lines[-1] == "verdict: PASS"

    class Subtable(DistanceTable):  # a subclass is printed by its parent's method (the MRO, as in SymPy)
        pass

    assert TablePrinter().doprint(_distance_table(Subtable)) == text
    with pytest.raises(TypeError, match="no table for a dict"):
        TablePrinter().doprint({"widths": [16, 32]})
