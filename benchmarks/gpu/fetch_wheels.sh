#!/usr/bin/env bash
# Download, here, the wheels benchmarks/gpu/run.sh installs on the device machine, whose image lacks them
# (it has numpy, scipy, sympy, mpmath, matplotlib, tqdm, pytest, hypothesis, setuptools and CuPy, and no registry):
# array-api-compat (a core dependency) and jsonschema with its own dependencies (report figure validation).
# They land in .whl/ at the repository root, ignored by git (.git/info/exclude), to be carried to the device
# (`carry: [".whl"]`); run.sh installs them first when it finds them. Python 3.12, x86-64, as on the device.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"
EXCLUDE="$(git rev-parse --git-path info/exclude)"
grep -qx '/.whl/' "$EXCLUDE" 2>/dev/null || echo '/.whl/' >> "$EXCLUDE"
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
  -d .whl array-api-compat jsonschema jsonschema-specifications referencing rpds-py
ls -l .whl
