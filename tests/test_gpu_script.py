"""benchmarks/gpu/run.sh: a valid script whose measuring steps run on the CPU (the dry run's path)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "benchmarks" / "gpu" / "run.sh"
BENCH = ROOT / "benchmarks" / "gpu" / "gpu_bench.py"


@pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")
def test_script_parses_and_guards_every_step() -> None:
    subprocess.run(["bash", "-n", str(SCRIPT)], check=True)
    text = SCRIPT.read_text()
    assert "--dry-run" in text and "timeout --kill-after" in text
    for needed in ("pytest", "-m gpu", "report --profile full --backend cupy", "bench_ntk.py", "bandwidth"):
        assert needed in text


def test_bandwidth_and_summary_on_the_cpu(tmp_path: Path) -> None:
    out = tmp_path / "bandwidth.json"
    subprocess.run([sys.executable, str(BENCH), "bandwidth", "--backend", "numpy", "--quick", "--out", str(out)],
                   check=True, capture_output=True)
    bw = json.loads(out.read_text())
    assert bw["fraction_of_peak"] is None  # no peak is known for a CPU
    assert bw["effective_bandwidth_Bps"] > 0
    steps = tmp_path / "steps.jsonl"
    steps.write_text(json.dumps({"step": "a", "rc": 0, "ok": True}) + "\n" + json.dumps({"step": "b", "rc": 124, "ok": False}) + "\n")
    summary = tmp_path / "summary.json"
    proc = subprocess.run([sys.executable, str(BENCH), "summary", "--steps", str(steps), "--results", str(tmp_path),
                           "--start", "0", "--dry-run", "1", "--out", str(summary)], capture_output=True)
    assert proc.returncode == 1  # a failed (timed-out) step makes the run fail
    s = json.loads(summary.read_text())
    assert s["all_ok"] is False and s["results"]["bandwidth"]["effective_bandwidth_Bps"] > 0
