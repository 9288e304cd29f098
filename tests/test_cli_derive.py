"""The ``linrnn derive`` command line: JSON, tables, bad input, speed of --help."""

from __future__ import annotations

import decimal
import json
import subprocess
import sys
from pathlib import Path

import pytest

from linrnn.families.gaussian import GaussianSpec
from linrnn.derive.numeric import weights
from linrnn.cli import main
from linrnn.core import files

ROOT = Path(__file__).resolve().parents[1]


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_weights_json(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "derive", "weights", "--json", "--sigma-w2", "0.8", "--lags", "12",
                         "--param", "standard", "--n-in", "2", "--lr-f", "0.5")
    assert code == 0
    data = json.loads(out)
    spec = GaussianSpec(param="standard", sigma_w2=0.8, n_in=2, lr_f=0.5)
    assert data["weights"] == pytest.approx(list(weights(spec, 12)), rel=1e-15)
    assert len(data["nngp"]) == 12 and data["nngp"][0] == pytest.approx(0.5)
    assert data["regime"] == "decaying" and data["horizon"] > data["peak_lag"]
    assert data["expression"].startswith(r"\frac{q^{j - 1}")
    assert data["schema_version"] == 1


def test_weights_json_null_horizon_at_and_above_one(capsys: pytest.CaptureFixture[str]) -> None:
    for q in ("1", "1.2"):
        code, out, _ = run(capsys, "derive", "weights", "--json", "--sigma-w2", q, "--lags", "4")
        data = json.loads(out)
        assert code == 0 and data["horizon"] is None and data["total"] is None


def test_weights_mpmath_json_is_exact_and_finite(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "derive", "weights", "--json", "--lags", "20000", "--sigma-w2", "1.5",
                         "--dps", "25")
    assert code == 0
    data = json.loads(out, parse_float=decimal.Decimal)
    last = data["weights"][-1]
    assert isinstance(last, decimal.Decimal) and last.is_finite() and last > decimal.Decimal("1e3500")
    assert data["precision"] == "mpmath, 25 significant digits"


def test_float_overflow_suggests_dps(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "derive", "weights", "--lags", "20000", "--sigma-w2", "1.5")
    assert code == 1 and out == ""
    assert "overflow" in err and "--dps" in err and len(err.strip().splitlines()) == 1


def test_underflow_is_noted_on_stderr(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "derive", "weights", "--lags", "1500", "--sigma-w2", "0.5", "--json")
    assert code == 0 and json.loads(out)["weights"][-1] == 0.0
    assert "underflows" in err and "--dps" in err


def test_table_output(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "derive", "weights", "--sigma-w2", "0.9", "--lags", "5")
    assert code == 0
    assert "lambda_j/lambda_0" in out and "Var L_j(0)" in out and "memory horizon" in out
    assert len([line for line in out.splitlines() if not line.startswith(("#", "-", "     j"))]) == 5


@pytest.mark.parametrize("argv", [
    ["--sigma-w2", "-1"], ["--sigma-c2", "abc"], ["--sigma-f2", "0"], ["--lags", "0"], ["--lags", "x"],
    ["--param", "mup"], ["--eps", "1.5"], ["--eps", "0"], ["--n-in", "0"], ["--lr-w", "-2"],
    ["--lr-c", "0", "--lr-f", "0", "--lr-w", "0"], ["--dps", "0"],
])
def test_bad_input_exits_2_with_one_sentence(capsys: pytest.CaptureFixture[str], argv: list[str]) -> None:
    with pytest.raises(SystemExit) as exc_info:
        code = main(["derive", "weights", *argv])
        raise SystemExit(code)
    assert exc_info.value.code == 2
    _, err = capsys.readouterr()
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err


def test_latex_writes_document(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    target = tmp_path / "d.tex"
    code, out, _ = run(capsys, "derive", "latex", "-o", str(target), "--sigma-w2", "0.9")
    assert code == 0 and out.strip() == str(target)
    signature, text = target.read_text().split("\n", 1)  # the first line says linrnn wrote it
    assert signature.startswith("% written by linrnn-bias ") and files.written_by_linrnn(target)
    assert text.startswith(r"\documentclass") and text.rstrip().endswith(r"\end{document}")
    for section in ("Model and impulse response", "Gradients as outer products", "Wide-width expectations",
                    "Sums over the Krylov index", "The lag weights", "The initial function (NNGP)", "Consequences",
                    "Three regimes", "This configuration"):
        assert section in text
    assert not list(tmp_path.glob(".*tmp"))


def test_latex_missing_directory_is_bad_input(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "derive", "latex", "-o", str(tmp_path / "nope" / "d.tex"))
    assert code == 2 and "does not exist" in err


def test_latex_without_engine_says_so(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # no pdflatex, no latexmk
    code, _, err = run(capsys, "derive", "latex", "-o", str(tmp_path / "d.tex"), "--pdf")
    assert code == 2 and "no LaTeX engine" in err
    assert not (tmp_path / "d.tex").exists()


def test_help_does_not_import_heavy_libraries() -> None:
    # --help must answer in well under a second: it may not load SymPy, NumPy or matplotlib
    code = (
        "import sys\n"
        "from linrnn.cli import build_parser\n"
        "p = build_parser()\n"
        "for argv in (['--help'], ['derive', '--help'], ['derive', 'weights', '--help'], ['derive', 'latex', '--help'],"
        " ['verify', '--help'], ['report', '--help']):\n"
        "    try:\n"
        "        p.parse_args(argv)\n"
        "    except SystemExit:\n"
        "        pass\n"
        "heavy = sorted(m for m in ('sympy', 'numpy', 'matplotlib', 'mpmath') if m in sys.modules)\n"
        "print('HEAVY:' + ','.join(heavy))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert proc.stdout.strip().splitlines()[-1] == "HEAVY:"


# ---------------------------------------------------------------------------
# derive finite-width


def test_finite_width_json(capsys: pytest.CaptureFixture[str]) -> None:
    import sympy as sp

    from linrnn.families.gaussian import finite_width as fw
    from linrnn.derive import symbols as S
    from linrnn.derive.model import substitutions

    code, out, err = run(capsys, "derive", "finite-width", "--lags", "9", "--width", "32", "--json",
                         "--sigma-w2", "0.8", "--lr-w", "2")
    assert code == 0, err
    data = json.loads(out)
    for key in ("lags", "width", "nngp", "ntk_diag", "nngp_exact", "ntk_diag_exact", "limit_ratio", "width_needed"):
        assert key in data
    assert data["lags"] == 9 and data["width"] == 32 and len(data["nngp"]) == len(data["ntk_diag"]) == 9
    spec = GaussianSpec(sigma_w2=0.8, lr_w=2.0)
    subs = substitutions(spec)
    n = sp.Symbol("n")
    for j in (0, 4, 8):
        parsed = sp.sympify(data["ntk_diag_exact"][j])
        exact = fw.exact_lag_ntk("ntk", j, j).subs(subs).subs(S.n, n)
        assert sp.simplify(parsed - exact) == 0
        assert data["ntk_diag"][j] == pytest.approx(float(exact.subs(n, 32)), rel=1e-12)
        assert data["nngp"][j] == pytest.approx(float(sp.sympify(data["nngp_exact"][j]).subs(n, 32)), rel=1e-12)
    lam = weights(spec, 9)
    assert [r * lim for r, lim in zip(data["limit_ratio"]["ntk_diag"], lam)] == pytest.approx(data["ntk_diag"])
    needed = data["width_needed"]["ntk_diag"]
    assert needed["0.01"][0] == 1 and all(a >= b for a, b in zip(needed["0.01"], needed["0.1"]))
    assert needed["0.01"] == sorted(needed["0.01"])  # the deviation grows with the lag


def test_finite_width_table_and_bad_input(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "derive", "finite-width", "--lags", "4", "--width", "8")
    assert code == 0 and "E[Theta_jj]" in out and "E[L_3^2] = " in out
    for argv in (("--lags", "0"), ("--lags", "21"), ("--width", "0"), ("--width", "x"), ("--param", "mup")):
        with pytest.raises(SystemExit) as exc:
            main(["derive", "finite-width", *argv])
        assert exc.value.code == 2
        err = capsys.readouterr().err
        assert len(err.strip().splitlines()) == 1, err
