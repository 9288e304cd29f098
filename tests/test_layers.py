"""Imports only go down the layers of the installed package ``linrnn``.

Layers, bottom to top:

0. ``linrnn.core``    (errors, validation, the model specification)
1. ``linrnn.derive``  (exact SymPy derivations)
2. ``linrnn.verify``  (Monte Carlo and training checks)
3. ``linrnn.families`` (model families: each gives its sampler, forward map and kernels,
   from the arrays of ``verify`` and the derivations of ``derive``)
4. ``linrnn.reports`` (rendering from results files alone)
5. the application: ``linrnn`` itself and every module directly in it
   (``linrnn.cli``, ``linrnn.report_cli``, ``linrnn.suite``, ``linrnn.__main__``, ...)

A module may import from its own layer or below, never from above; in addition
``linrnn.reports`` must never import ``linrnn.verify`` nor ``linrnn.families`` although it
sits above them (it renders from the results file alone).
Every module of the installed package is read from its spec's origin and parsed with
:mod:`ast`: imports at any depth (inside functions, ``if`` blocks, ``try``) count,
relative imports are resolved, and ``importlib.import_module("...")`` /
``__import__("...")`` with a constant name count as imports too. Nothing is imported
beyond what :func:`pkgutil.walk_packages` needs to find the subpackages.
"""

from __future__ import annotations

import ast
import importlib
import importlib.util
import pkgutil
from dataclasses import dataclass

import linrnn

LAYERS = ("linrnn.core", "linrnn.derive", "linrnn.verify", "linrnn.families", "linrnn.reports")
APP = len(LAYERS)
LAYER_NAMES = ("core", "derive", "verify", "families", "reports", "application")
#: (importer layer, imported layer) pairs forbidden even when the order allows them
FORBIDDEN = {(LAYERS.index("linrnn.reports"), LAYERS.index("linrnn.verify")),
             (LAYERS.index("linrnn.reports"), LAYERS.index("linrnn.families"))}


def layer(module: str) -> int | None:
    """The layer index of a ``linrnn`` module name, or None outside the package."""
    if module != "linrnn" and not module.startswith("linrnn."):
        return None
    for i, prefix in enumerate(LAYERS):
        if module == prefix or module.startswith(prefix + "."):
            return i
    return APP


@dataclass(frozen=True)
class Violation:
    module: str
    path: str
    line: int
    target: str

    def __str__(self) -> str:
        src, dst = LAYER_NAMES[layer(self.module)], LAYER_NAMES[layer(self.target)]  # type: ignore[index]
        return f"{self.path}:{self.line}: {self.module} ({src}) imports {self.target} ({dst})"


def _resolve(module: str, is_package: bool, level: int, name: str | None) -> str:
    """The absolute module named by ``from <level dots><name> import ...`` inside ``module``."""
    parts = module.split(".") if is_package else module.split(".")[:-1]
    if level > 1:
        parts = parts[: len(parts) - (level - 1)]
    base = ".".join(parts)
    return f"{base}.{name}" if name else base


def imported_modules(module: str, source: str, is_package: bool = False) -> list[tuple[int, str]]:
    """(line, absolute module name) of every import in ``source``, at any depth.

    ``from pkg import name`` yields ``pkg.name`` (the submodule it may be) and the
    layer of ``pkg.name`` is the layer of ``pkg`` unless ``pkg`` is ``linrnn`` itself,
    where ``from linrnn import verify`` must count as importing ``linrnn.verify``.
    """
    found: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.extend((node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = _resolve(module, is_package, node.level, node.module) if node.level else (node.module or "")
            found.append((node.lineno, base))
            found.extend((node.lineno, f"{base}.{alias.name}") for alias in node.names if alias.name != "*")
        elif isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant):
            func = node.func
            fname = func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else ""
            if fname in ("import_module", "__import__") and isinstance(node.args[0].value, str):
                name = node.args[0].value
                if name.startswith(".") and len(node.args) > 1 and isinstance(node.args[1], ast.Constant):
                    level = len(name) - len(name.lstrip("."))
                    name = _resolve(str(node.args[1].value) + ".x", False, level, name.lstrip(".") or None)
                found.append((node.lineno, name))
    return found


def check_source(module: str, source: str, path: str = "<string>", is_package: bool = False) -> list[Violation]:
    """The upward (or forbidden) imports of one module's source."""
    here = layer(module)
    assert here is not None, module
    out = []
    for line, target in imported_modules(module, source, is_package):
        there = layer(target)
        if there is None:
            continue
        if there > here or (here, there) in FORBIDDEN:
            out.append(Violation(module, path, line, target))
    return sorted(set(out), key=lambda v: (v.path, v.line, v.target))


def installed_modules() -> dict[str, tuple[str, bool]]:
    """name -> (source path, is_package) of every module of the installed ``linrnn``.

    Walks ``linrnn.__path__`` and, in addition, each layer package's own ``__path__``:
    an editable install maps ``linrnn.derive`` etc. onto other folders through an
    import hook, which a walk of ``linrnn.__path__`` alone would not see.
    """
    found: dict[str, tuple[str, bool]] = {}

    def add(name: str) -> None:
        spec = importlib.util.find_spec(name)
        assert spec is not None and spec.origin is not None, name
        found[name] = (spec.origin, spec.submodule_search_locations is not None)

    add("linrnn")
    roots = [("linrnn", list(linrnn.__path__))]
    for pkg in LAYERS:
        spec = importlib.util.find_spec(pkg)
        assert spec is not None and spec.submodule_search_locations is not None, f"{pkg} is not installed"
        add(pkg)
        roots.append((pkg, list(spec.submodule_search_locations)))
    def fail(name: str) -> None:
        raise AssertionError(f"cannot import the package {name} to walk it")

    for prefix, path in roots:
        for info in pkgutil.walk_packages(path, prefix + ".", onerror=fail):
            add(info.name)
    return found


def _violations() -> tuple[dict[str, tuple[str, bool]], list[Violation]]:
    modules = installed_modules()
    out: list[Violation] = []
    for name, (path, is_package) in sorted(modules.items()):
        with open(path, encoding="utf-8") as f:
            out.extend(check_source(name, f.read(), path, is_package))
    return modules, out


def test_no_upward_imports() -> None:
    modules, violations = _violations()
    seen = {layer(name) for name in modules}
    assert seen == set(range(APP + 1)), f"modules found only in layers {sorted(seen)}"
    for name in ("linrnn.cli", "linrnn.suite", "linrnn.core.errors", "linrnn.derive.lag_weights",
                 "linrnn.verify.stats", "linrnn.reports.render"):
        assert name in modules, name
    assert not violations, "upward imports:\n" + "\n".join(map(str, violations))


def test_checker_flags_upward_and_forbidden_imports() -> None:
    fake = (
        "import numpy\n"
        "from linrnn.core.errors import UsageError\n"
        "from linrnn.derive import weights\n"
        "def f():\n"
        "    from linrnn.suite import run_suite\n"
        "    from ..suite import CLAIMS\n"
        "    import linrnn.report_cli\n"
        "    importlib.import_module('linrnn.reports.render')\n"
    )
    got = [(v.line, v.target) for v in check_source("linrnn.verify.fake", fake)]
    assert (5, "linrnn.suite") in got and (6, "linrnn.suite") in got and (7, "linrnn.report_cli") in got
    assert (8, "linrnn.reports.render") in got
    assert all(line >= 5 for line, _ in got), got  # numpy, core and derive are allowed
    # reports sits above verify but must not import it; derive must import neither
    assert check_source("linrnn.reports.fake", "from linrnn.verify import stats\n")
    assert check_source("linrnn.reports.fake", "from linrnn import verify\n")
    assert check_source("linrnn.reports.fake", "from linrnn.families import family\n")
    assert check_source("linrnn.verify.fake", "from linrnn.families import gaussian\n")  # engines take a model
    assert not check_source("linrnn.families.fake", "from linrnn.verify.ntk import empirical_lag_ntk\n")
    assert check_source("linrnn.derive.fake", "from .. import reports\n")
    assert check_source("linrnn.core.fake", "from linrnn.derive.model import ModelSpec\n")
    assert check_source("linrnn.core.fake", "from linrnn import cli\n")
    # allowed: own layer, below, relative within the package, the application importing anything
    assert not check_source("linrnn.core.fake", "from . import errors\nfrom .validate import check_positive\n")
    assert not check_source("linrnn.reports.fake", "from linrnn.derive import lag_weights\nfrom .schema import load\n")
    assert not check_source("linrnn.suite", "from linrnn.verify import stats\nfrom linrnn import cli\n")
    assert not check_source("linrnn.verify.pkg", "from . import stats\n", is_package=True)
    assert check_source("linrnn.verify.pkg", "from ... import suite\n", is_package=True)
