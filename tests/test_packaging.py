"""The wheel ships one import package, ``linrnn``, with its data files.

The wheel is built offline (``pip wheel --no-build-isolation``, with the setuptools
of the test environment) from a copy of the source tree, so stale ``build/`` or
``*.egg-info`` folders of the checkout can neither leak into it nor be touched.
"""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
IGNORE = shutil.ignore_patterns(".git", ".venv", "venv*", "build", "dist", "*.egg-info", "__pycache__", "*.pyc",
                                ".pytest_cache", ".hypothesis", "linrnn-report", ".whl")


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if importlib.util.find_spec("setuptools") is None:
        pytest.skip("setuptools is not installed (it is in the test extra)")
    tmp = tmp_path_factory.mktemp("wheel")
    src = tmp / "src"
    shutil.copytree(ROOT, src, ignore=IGNORE)
    out = tmp / "dist"
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index", "-q", "-w", str(out),
         str(src)],
        capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    (whl,) = out.glob("*.whl")
    return whl


def test_wheel_has_one_top_level_package(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as z:
        names = z.namelist()
    tops = {name.split("/", 1)[0] for name in names}
    dist_info = {t for t in tops if t.endswith(".dist-info")}
    assert len(dist_info) == 1, tops
    assert tops - dist_info == {"linrnn"}, tops


def test_wheel_carries_the_layers_and_data(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as z:
        names = set(z.namelist())
    assert "linrnn/verify/data/co2_weekly.csv" in names
    assert {"linrnn/profiles/quick.toml", "linrnn/profiles/full.toml"} <= names
    assert {"linrnn/testing/__init__.py", "linrnn/testing/plugin.py", "linrnn/testing/tiny.toml"} <= names
    (entry_points,) = [n for n in names if n.endswith(".dist-info/entry_points.txt")]
    with zipfile.ZipFile(wheel) as z:
        assert "[pytest11]\nlinrnn = linrnn.testing.plugin" in z.read(entry_points).decode()
    for module in ("linrnn/__init__.py", "linrnn/cli.py", "linrnn/core/__init__.py", "linrnn/derive/__init__.py",
                   "linrnn/verify/__init__.py", "linrnn/verify/claims/__init__.py", "linrnn/reports/__init__.py"):
        assert module in names, module
    assert not any(n.startswith("linrnn/tests/") or "/__pycache__/" in n for n in names)
