"""``derive latex --family NAME`` prints each family's own derivation (issue 19, point 2).

The dense families keep their full document, with the steps their model's ``derivation()``
gives (the orthogonal family's exact finite-width NNGP under the Haar law among them); the
diagonal families get the document of their derivation's steps and a table of their derived
kernels' diagonals at the given parameters.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import numpy as np
import pytest

import linrnn
from linrnn.cli import main
from linrnn.core import files
from linrnn.derive.steps import Derivation
from linrnn.families import FAMILIES


def _write(tmp_path: Path, capsys: pytest.CaptureFixture[str], family: str, *flags: str) -> tuple[Path, str]:
    target = tmp_path / f"{family}.tex"
    code = main(["derive", "latex", "--family", family, "-o", str(target), *flags])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert str(target) in out.split()
    signature, text = target.read_text().split("\n", 1)
    assert signature.startswith("% written by linrnn-bias ") and files.written_by_linrnn(target)
    assert text.startswith(r"\documentclass") and text.rstrip().endswith(r"\end{document}")
    return target, text


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_every_family_prints_its_own_derivation(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                family: str) -> None:
    _, text = _write(tmp_path, capsys, family)
    der = linrnn.family(family).derivation()
    steps = der if isinstance(der, Derivation) else der.steps  # a dense family's LagWeightsDerivation holds them
    labels = [step.label for step in steps]
    assert labels and all(rf"\label{{eq:{label}}}" in text for label in labels), family
    for section in steps.sections():
        assert section in text


def test_the_orthogonal_document_has_its_haar_steps_and_no_gaussian_finite_width(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _, text = _write(tmp_path, capsys, "orthogonal")
    for label in ("fw-haar", "fw-nngp", "fw-limit"):  # the exact NNGP its model's derivation() appends
        assert rf"\label{{eq:{label}}}" in text
    _, gaussian = _write(tmp_path, capsys, "gaussian")
    assert "fw-haar" not in gaussian
    assert "least width" in gaussian and "least width" not in text  # the Gaussian loop equations' section


def test_the_gaussian_document_is_the_one_it_was(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from linrnn.derive.latex import build_document

    _, text = _write(tmp_path, capsys, "gaussian", "--sigma-w2", "0.9")
    model = linrnn.family("gaussian", sigma_w2=0.9)
    assert text == build_document(model.spec, sections=model.latex_sections())


@pytest.mark.parametrize("family", ["diagonal", "lru"])
def test_a_diagonal_family_document_has_its_conventions_and_kernel_table(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], family: str) -> None:
    _, text = _write(tmp_path, capsys, family, "--r-max", "0.95", "--theta-max", "0.5")
    assert r"\section*{Conventions}" in text and "CN(0, 1)" in text and "``" not in text
    assert r"\texttt{r\_max} $= 0.95$" in text
    table = text[text.index(r"\begin{tabular}{rrr}"):text.index(r"\end{tabular}")]
    rows = re.findall(r"^(\d+) & (\S+) & (\S+) \\\\$", table, flags=re.M)
    assert [int(r[0]) for r in rows] == list(range(8))
    k = linrnn.family(family, r_max=0.95, theta_max=0.5).kernel(8)
    ntk, nngp = (k[name][:, 0, 0, :, 0, 0] for name in ("ntk", "nngp"))
    assert np.allclose([float(r[1]) for r in rows], np.diag(ntk), rtol=1e-7, atol=0)
    assert np.allclose([float(r[2]) for r in rows], np.diag(nngp), rtol=1e-7, atol=0)


def test_the_other_derive_commands_still_refuse_a_diagonal_family(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["derive", "weights", "--family", "diagonal"]) == 2
    assert "dense RNN families only" in capsys.readouterr().err


@pytest.mark.skipif(not (shutil.which("latexmk") or shutil.which("pdflatex")),
                    reason="no LaTeX engine (pdflatex, latexmk) installed")
def test_a_diagonal_document_compiles(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    target, _ = _write(tmp_path, capsys, "diagonal", "--pdf")
    pdf = target.with_suffix(".pdf")
    assert pdf.exists() and pdf.read_bytes().startswith(b"%PDF")
