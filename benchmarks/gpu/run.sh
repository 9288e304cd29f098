#!/usr/bin/env bash
# The whole GPU check in one call (issue 11, item 5): install, GPU tests, the full report on CuPy, the NTK and
# training benchmarks on CuPy, and the effective memory bandwidth as a fraction of the device's peak.
#
#   benchmarks/gpu/run.sh             on a machine with an NVIDIA GPU (meant for one H100/H200: under 8 minutes)
#   benchmarks/gpu/run.sh --dry-run   anywhere: the same steps on the CPU (NumPy backend, tiny sizes)
#
# Every step runs under its own time guard (`timeout`; on the GPU the budgets add up to 7.25 minutes) and is recorded,
# with its exit status, seconds and the tail of its log, in benchmarks/results/gpu/summary.json (dry run:
# benchmarks/results/gpu/dry-run/summary.json); a step that fails or runs out of time does not stop the others.
# Installing: where CuPy already imports (the device image has cupy-cuda13x), the package is installed without
# its dependencies (`pip install --no-deps`), so nothing is fetched; wheels for what the image lacks
# (array-api-compat, jsonschema and its dependencies: benchmarks/gpu/fetch_wheels.sh downloads them here into
# .whl/, carried with the call) are installed first. Elsewhere `pip install '.[gpu]'`.
# Exit status: 0 when every step succeeded, 1 otherwise.
set -uo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"
DRY=0
[[ "${1:-}" == "--dry-run" ]] && DRY=1
PY="${PYTHON:-python3}"
if [[ $DRY == 1 ]]; then
  RES="$ROOT/benchmarks/results/gpu/dry-run"
  BACKEND=numpy
else
  RES="$ROOT/benchmarks/results/gpu"
  BACKEND=cupy
fi
WORK="$(mktemp -d "${TMPDIR:-/tmp}/linrnn-gpu.XXXXXX")"
mkdir -p "$RES"
: > "$WORK/steps.jsonl"
export PYTHONUNBUFFERED=1 LINRNN_CACHE_DIR="$WORK/cache"
START=$(date +%s.%N)

# step NAME BUDGET_SECONDS COMMAND...: run under `timeout`, log to $WORK/NAME.log, append a record;
# OK_CODES (default "0") lists the exit statuses that count as success
step() {
  local name=$1 budget=$2; shift 2
  local ok_codes="${OK_CODES:-0}"
  echo "== $name (budget ${budget} s): $*"
  local t0 t1 rc
  t0=$(date +%s.%N)
  timeout --kill-after=10 "$budget" "$@" > "$WORK/$name.log" 2>&1
  rc=$?
  t1=$(date +%s.%N)
  tail -n 5 "$WORK/$name.log"
  "$PY" - "$name" "$rc" "$t0" "$t1" "$budget" "$WORK/$name.log" "$*" "$ok_codes" >> "$WORK/steps.jsonl" <<'PYEOF'
import json, sys
name, rc, t0, t1, budget, log, cmd, ok_codes = sys.argv[1:]
rc = int(rc)
tail = open(log, encoding="utf-8", errors="replace").read()[-2000:]
print(json.dumps({"step": name, "command": cmd, "rc": rc, "seconds": float(t1) - float(t0), "budget_s": float(budget),
                  "timed_out": rc in (124, 137), "ok": rc in {int(c) for c in ok_codes.split()},
                  "ok_codes": ok_codes, "log_tail": tail}))
PYEOF
  echo "   -> rc $rc"
}

# 1. install
if [[ $DRY == 1 ]] && "$PY" -c "import linrnn" 2>/dev/null; then
  step install 60 "$PY" -c "import linrnn, sys; print('dry run: linrnn already installed at', linrnn.__file__)"
elif "$PY" -c "import cupy" 2>/dev/null; then
  cat > "$WORK/install.sh" <<'INSTALL'
set -e
PY="$1"
if compgen -G ".whl/*.whl" > /dev/null; then
  "$PY" -m pip install -q --no-index --no-deps --no-cache-dir .whl/*.whl
fi
"$PY" -m pip install -q --no-deps --no-build-isolation --no-cache-dir -e .
"$PY" - <<'CHECK'
import importlib.util, sys
missing = [m for m in ("numpy", "scipy", "sympy", "mpmath", "matplotlib", "tqdm", "array_api_compat", "jsonschema",
                       "cupy") if importlib.util.find_spec(m) is None]
if missing:
    sys.exit("missing on this machine: " + ", ".join(missing) + "; carry their wheels in .whl/ "
             "(benchmarks/gpu/fetch_wheels.sh downloads them)")
import linrnn.verify.backend as b
print(b.get_backend("cupy").describe())
CHECK
INSTALL
  step install 45 bash "$WORK/install.sh" "$PY"
else
  step install 60 "$PY" -m pip install -q ".[gpu]"
fi

# 2. the GPU tests (dry run: the CPU stand-in, the array-api-strict tests of the same code path)
if [[ $DRY == 1 ]]; then
  step pytest_gpu 90 "$PY" -m pytest -q -x -p no:cacheprovider tests/test_array_api.py
else
  step pytest_gpu 75 "$PY" -m pytest -q -p no:cacheprovider -m gpu tests/test_verify_gpu.py tests/test_train.py tests/test_scnn.py
fi

# 3. the full report on CuPy (dry run: the quick profile shrunk on NumPy)
if [[ $DRY == 1 ]]; then
  cat > "$WORK/tiny.toml" <<'TOML'
[derivation]
pdf = false
figure_lags = 20
figure_q = [0.9, 1.0]
[ntk]
lags = 4
widths = [32, 64]
replicas = 8
pilot = 8
max_replicas = 16
[dynamics_equivalence]
widths = [16, 32]
seq_len = 4
steps = 10
pilot = 3
min_replicas = 3
max_replicas = 3
[min_norm]
widths = [16, 32]
steps = 10
pilot = 3
min_replicas = 3
max_replicas = 3
[short_memory]
width = 32
seq_len = 4
pilot = 3
min_replicas = 3
max_replicas = 3
[co2]
width = 32
seq_len = 4
steps = 10
pilot = 3
min_replicas = 3
max_replicas = 3
TOML
  # tiny sizes: an INCONCLUSIVE verdict (exit 3) is expected and counts as a completed report
  OK_CODES="0 3" step report 150 "$PY" -m linrnn report --profile quick --config "$WORK/tiny.toml" --backend numpy -o "$WORK/report" --workers 2
else
  OK_CODES="0 3" step report 180 "$PY" -m linrnn report --profile full --backend cupy -o "$WORK/report"
fi
[[ -f "$WORK/report/report.json" ]] && cp "$WORK/report/report.json" "$RES/report.json"

# 4. the NTK and training benchmarks on the backend (the harness if it takes --backend, else the bench functions)
if [[ -f benchmarks/run.py ]] && "$PY" benchmarks/run.py --help 2>/dev/null | grep -q -- "--backend"; then
  if [[ $DRY == 1 ]]; then
    step benchmarks 120 "$PY" benchmarks/run.py --backend "$BACKEND" --quick -o "$RES/harness.json"
  else
    step benchmarks 105 "$PY" benchmarks/run.py --backend "$BACKEND" -o "$RES/harness.json"
  fi
else
  if [[ $DRY == 1 ]]; then
    step bench_ntk 60 "$PY" benchmarks/bench_ntk.py --backend numpy --n-jac 64 --lags-jac 8 --n-mc 256 --lags-mc 8 \
      --replicas 4 --repeats 2 --out "$RES/bench_ntk.json"
  else
    step bench_ntk 60 "$PY" benchmarks/bench_ntk.py --backend cupy --n-jac 512 --lags-jac 32 --n-mc 1024 4096 8192 \
      --lags-mc 16 --replicas 16 --repeats 3 --out "$RES/bench_ntk.json"
  fi
  step bench_train 45 "$PY" benchmarks/gpu/gpu_bench.py train --backend "$BACKEND" --quick --out "$RES/bench_train.json"
fi

# 5. the effective memory bandwidth against the device's peak (memoryClockRate x busWidth), and the summary
step bandwidth 30 "$PY" benchmarks/gpu/gpu_bench.py bandwidth --backend "$BACKEND" $([[ $DRY == 1 ]] && echo --quick) \
  --out "$RES/bandwidth.json"
"$PY" benchmarks/gpu/gpu_bench.py summary --steps "$WORK/steps.jsonl" --results "$RES" --start "$START" \
  --dry-run "$DRY" --out "$RES/summary.json"
rc=$?
if [[ -n "${OUT:-}" && -d "${OUT:-}" ]]; then  # on the device machine: bring the results back
  cp "$RES"/*.json "$OUT"/ 2>/dev/null || true
fi
rm -rf "$WORK"
exit $rc
