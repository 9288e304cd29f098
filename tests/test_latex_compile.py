"""The derivation compiles with a real LaTeX engine (CI installs TeX Live)."""

from __future__ import annotations

from pathlib import Path

import pytest

from linrnn.derive.latex import find_engine, write_document
from linrnn.families.gaussian import GaussianSpec

pytestmark = pytest.mark.latex


@pytest.mark.skipif(find_engine() is None, reason="no LaTeX engine (pdflatex/latexmk) is installed on this machine")
@pytest.mark.parametrize("param", ["ntk", "standard"])
def test_derivation_compiles_to_pdf(tmp_path: Path, param: str) -> None:
    paths = write_document(GaussianSpec(param=param, sigma_w2=0.9), tmp_path / "derivation.tex", pdf=True)
    pdf = paths[-1]
    assert pdf.suffix == ".pdf" and pdf.read_bytes()[:5] == b"%PDF-"
    assert pdf.stat().st_size > 10_000
    assert sorted(p.name for p in tmp_path.iterdir()) == ["derivation.pdf", "derivation.tex"]
