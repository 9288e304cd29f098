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
