"""The README's set-up commands and CI stay in step."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _bash_blocks(text: str) -> list[str]:
    return [b.strip() for b in re.findall(r"```bash\n(.*?)```", text, flags=re.S)]


def test_ci_runs_the_readme_test_command_exactly() -> None:
    readme = (ROOT / "README.md").read_text()
    blocks = _bash_blocks(readme)
    test_cmds = [b for b in blocks if "pytest" in b]
    assert len(test_cmds) == 1, "the README must carry exactly one test command"
    ci_lines = (ROOT / ".ci" / "run").read_text().splitlines()
    assert test_cmds[0] in ci_lines


def test_readme_main_job_command_installs_and_runs_linrnn() -> None:
    blocks = _bash_blocks((ROOT / "README.md").read_text())
    main_cmds = [b for b in blocks if "pip install ." in b and "pytest" not in b]
    assert main_cmds and "linrnn " in main_cmds[0]


def _python_blocks(text: str) -> list[str]:
    """Every fenced ```python block of the README, dedented (blocks inside list items are indented)."""
    import textwrap

    return [textwrap.dedent(b) for b in re.findall(r"^[ \t]*```python\n(.*?)^[ \t]*```", text, flags=re.S | re.M)]


def test_the_readme_has_python_examples() -> None:
    """The extraction below finds the README's examples (so the next test cannot pass vacuously)."""
    assert len(_python_blocks((ROOT / "README.md").read_text())) >= 2


def test_every_python_block_of_the_readme_runs(tmp_path, monkeypatch) -> None:
    """Each ```python block runs as written, in a fresh namespace, in an empty folder."""
    monkeypatch.chdir(tmp_path)
    for i, block in enumerate(_python_blocks((ROOT / "README.md").read_text())):
        try:
            exec(compile(block, f"README.md python block {i + 1}", "exec"), {"__name__": "__readme__"})
        except Exception as exc:  # pragma: no cover - the message is the point
            raise AssertionError(f"README python block {i + 1} raised {type(exc).__name__}: {exc}\n{block}") from exc


def test_lazy_exports_are_not_shadowed_by_submodules() -> None:
    """A lazily exported name that is also a submodule's name turns into the module once that
    submodule is imported (``from linrnn.derive import consequences`` gave a module): no name may be both."""
    import importlib
    import pkgutil

    for pkg_name in ("linrnn.derive", "linrnn.verify", "linrnn.reports", "linrnn"):
        pkg = importlib.import_module(pkg_name)
        subs = {m.name for m in pkgutil.iter_modules(pkg.__path__)}
        exported = set(getattr(pkg, "__all__", ()))
        assert not exported & subs, f"{pkg_name} exports {sorted(exported & subs)}, which are also submodules"
