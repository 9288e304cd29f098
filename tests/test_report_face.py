"""A report and a derivation that read cleanly (issue 20, point 4).

Each test guards one blemish a reader saw: formulas shown as raw LaTeX, ASCII math in the
page's prose, repeated values ("4.79 (4.795)", "allowance no bias allowance"), one thing
under two ids, labels that name the wrong method, an absurd number shown as if meaningful,
shrunk or overlong equations in the derivation, silent float64 underflow, and the
command-line messages.
"""

from __future__ import annotations

import ast
import copy
import html as htmlmod
import inspect
import json
import re
from pathlib import Path
from types import SimpleNamespace

import pytest

from linrnn.core.errors import NumericalRangeError
from linrnn.reports import inline_math
from linrnn.reports.figures import formula_png
from linrnn.reports.html import render_html
from linrnn.reports.latex_report import render_latex
from linrnn.reports.text import format_design, format_statistic, format_threshold

ROOT = Path(__file__).resolve().parents[1]
FIXTURE = Path(__file__).parent / "fixtures" / "report_results.json"


@pytest.fixture(scope="module")
def results() -> dict:
    return json.loads(FIXTURE.read_text(encoding="utf-8"))


def _text_cells(page: str) -> str:
    """The page's visible prose: without style, images, MathML and code (ids, configuration)."""
    for pattern in (r"<style>.*?</style>", r"<math\b.*?</math>", r"<code>.*?</code>", r"<img\b[^>]*>", r"<[^>]+>"):
        page = re.sub(pattern, " ", page, flags=re.S)
    return htmlmod.unescape(page)


# ------------------------------------------------------------------ formulas and prose in report.html


def _claim_formulas() -> list[str]:
    """The literal LaTeX of every claim's ``formula=`` (and module-level ``FORMULA``) in the registry's modules."""
    from linrnn.families import claims

    out = []
    for claim in claims().values():
        tree = ast.parse(inspect.getsource(inspect.getmodule(claim.run)))
        for node in ast.walk(tree):
            expr = None
            if isinstance(node, ast.keyword) and node.arg == "formula":
                expr = node.value
            elif isinstance(node, ast.Assign) and any(getattr(t, "id", "") == "FORMULA" for t in node.targets):
                expr = node.value
            if expr is not None:
                parts = [n.value for n in ast.walk(expr) if isinstance(n, ast.Constant) and isinstance(n.value, str)]
                if parts:
                    out.append("".join(parts))
    return out


def test_every_formula_of_the_registry_and_the_derivation_is_typeset(results: dict) -> None:
    formulas = _claim_formulas() + [f["latex"] for f in results["derivation"]["formulas"]]
    assert len(formulas) >= 10  # the scan found the registry's formulas (the test cannot pass on nothing)
    missing = [f for f in formulas if formula_png(f) is None]
    assert not missing, f"mathtext cannot typeset: {missing}"


def test_html_formulas_are_images_and_its_prose_has_no_raw_math(results: dict) -> None:
    page = render_html(results, {})
    assert 'class="latex"' not in page and 'class="formula latex"' not in page  # no raw-LaTeX duplicate or fallback
    formulas = re.findall(r'<div class="formula">(.*?)</div>', page, flags=re.S)
    assert len(formulas) == len(results["derivation"]["formulas"]) + len(results["claims"])
    assert all(f.startswith("<img ") for f in formulas)
    assert "<math " in page  # the prose's math is typeset
    text = _text_cells(page)
    assert "$" not in text and "\\frac" not in text and "\\" not in text
    left = [m.group(0) for m in inline_math.SPAN.finditer(text)]
    assert not left, f"ASCII math left in the prose: {left[:10]}"
    for raw in ("t_{", "^(-", "||", "lambda_j", "sigma_W^2", " -> "):
        assert raw not in text, raw


def test_the_prose_fixture_holds_ascii_math_to_typeset(results: dict) -> None:
    """The check above can fail: the fixture's prose is full of the ASCII math it must remove."""
    raw = json.dumps(results)
    assert all(s in raw for s in ("lambda_j", "t_{", "sigma_W^2", "|z|"))


@pytest.mark.parametrize(("text", "math"), [
    ("the first t_{255} critical value at family-wise alpha = 0.001",
     ["t_{255}", "alpha"]),
    ("falls like n^(-1/2); u = (d_c^2 - d^2)/||L_c - L_scnn||^2", ["n^(-1/2)", "d_c^2", "d^2", "||L_c - L_scnn||^2"]),
    ("q = sigma_W^2, n -> infinity, ||L*||, Theta_jj, max |z|", ["sigma_W^2", "n -> infinity", "||L*||", "Theta_jj",
                                                                "|z|"]),
    ("finite_width:wide_limit, no_linear_term, q_times_1.1, max_replicas, lr_factor, seq_len^2", []),
])
def test_inline_math_finds_math_and_leaves_identifiers(text: str, math: list[str]) -> None:
    assert [p for is_math, p in inline_math.split(text) if is_math] == math
    assert "".join(p for _, p in inline_math.split(text)) == text


def test_inline_math_prints_mathml_and_latex() -> None:
    assert inline_math.to_mathml("sigma_W^2") == (
        '<math alttext="sigma_W^2"><mrow><msubsup><mi>\u03c3</mi><mi>W</mi><mn>2</mn></msubsup></mrow></math>')
    assert inline_math.to_latex("n^(-1/2)") == "${n}^{- 1 / 2}$"
    assert inline_math.to_latex("||L_no_linear_term - L_scnn||^2") == (
        r"${\lVert {L}_{\mathrm{no\_linear\_term}} - {L}_{\mathrm{scnn}} \rVert}^{2}$")


def test_latex_report_prose_is_math_mode(results: dict) -> None:
    tex = render_latex(results, {})
    assert r"\textasciicircum{}" not in tex and "t\\_\\{" not in tex
    assert "$\\lambda" in tex or "{\\lambda }" in tex


# ------------------------------------------------------------------ fragments


def test_a_threshold_stated_in_its_description_is_not_repeated() -> None:
    assert format_threshold({"description": "|t| or t beyond 4.79", "value": 4.795}) == "|t| or t beyond 4.79"
    assert format_threshold({"description": "the statistic must be at most 1", "value": 1}).endswith("at most 1")
    assert format_threshold({"description": "Holm's first critical value", "value": 5.242}).endswith("(5.242)")


def test_design_lines_say_each_thing_once() -> None:
    line = format_design({"method": "group-sequential", "replicas_per_width": {64: 256, 128: 512},
                          "allowance": "no bias allowance: the theory is the exact mean"})
    assert "allowance no bias allowance" not in line and "no bias allowance: the theory" in line
    assert "replicas per width 64: 256, 128: 512" in line


def test_an_absurd_statistic_is_said_in_words(results: dict) -> None:
    from linrnn.suite import main_summary

    r = copy.deepcopy(results)
    x = r["controls"][0]
    x["statistic"].update(value=2.6e46, in_words="beyond the stability limit: the wrong weights diverge")
    assert format_statistic(x["statistic"]) == "beyond the stability limit: the wrong weights diverge"
    page = render_html(r, {})
    assert "2.6e+46" not in page and "beyond the stability limit" in page
    summary = main_summary(r)
    assert "2.6e+46" not in summary and "beyond the stability limit" in summary


# ------------------------------------------------------------------ one id per thing


def test_result_ids_are_the_registry_names() -> None:
    from linrnn.families import claims

    for name, claim in claims().items():
        source = inspect.getsource(inspect.getmodule(claim.run))
        ids = set(re.findall(r'\b(?:id|claim_id)="([a-z][a-z0-9_]*)"', source))
        assert ids <= {name}, (name, ids)


def test_control_ids_are_identifiers() -> None:
    sources = list((ROOT / "verify" / "claims").glob("*.py")) + list((ROOT / "src" / "linrnn" / "families").rglob("*.py"))
    ids = {m for p in sources for m in re.findall(r'"((?:rate|lag_weights|ntk|nngp|interpolant):[^"\s]*)"',
                                                   p.read_text(encoding="utf-8"))}
    ids = {i for i in ids if "{" not in i}  # f-string templates: their names are checked where they are filled in
    assert "rate:minus_1" in ids
    assert all(re.fullmatch(r"[a-z_]+(?::[A-Za-z_][\w.]*)+", i) for i in ids), ids


def test_the_console_control_table_names_each_controls_claim(results: dict) -> None:
    from linrnn.suite import main_summary

    lines = main_summary(results).splitlines()
    head = lines.index(next(line for line in lines if "negative control" in line))
    assert lines[head].split()[:3] == ["claim", "negative", "control"]
    for x, line in zip(results["controls"], lines[head + 1:]):
        assert line.split()[:2] == [x["claim"], x["id"]]


# ------------------------------------------------------------------ labels and sizing signals


def test_the_ntk_statistic_names_the_method_used() -> None:
    from linrnn.verify.claims.ntk_sweep import entry_stat

    check = SimpleNamespace(test=SimpleNamespace(max_abs_z=1.0, m=3, rejected=0, dof=10.0, alpha=1e-3, threshold=4.0))
    assert "exact finite-width mean" in entry_stat(check, True)[0]["name"]
    assert "bias-corrected" in entry_stat(check, False)[0]["name"]


def test_verify_help_lists_train_and_the_ntk_method(capsys: pytest.CaptureFixture[str]) -> None:
    from linrnn.cli import main

    with pytest.raises(SystemExit):
        main(["verify", "--help"])
    assert "{ntk,train}" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        main(["verify", "ntk", "--help"])
    out = " ".join(capsys.readouterr().out.split())
    assert "exact finite-width mean" in out


def test_report_claims_refuses_an_unknown_claim(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from linrnn.cli import main

    assert main(["report", "--claims", "nngp,nosuch", "-o", str(tmp_path / "r"), "-q"]) == 2
    err = capsys.readouterr().err
    assert "unknown claim nosuch" in err and "choose from" in err and not (tmp_path / "r").exists()


# ------------------------------------------------------------------ the derivation document


def test_the_derivation_breaks_long_equations_and_prints_sympy_cleanly() -> None:
    import sympy as sp

    from linrnn.derive import symbols as S
    from linrnn.derive.latex import PREAMBLE, render_step
    from linrnn.derive.lag_weights import derive_lag_weights
    from linrnn.derive.printer import latex
    from linrnn.derive.weight_consequences import consequences

    assert r"\usepackage{breqn}" in PREAMBLE and "resizebox" not in PREAMBLE  # broken across lines, never shrunk
    der = derive_lag_weights("ntk")
    step = render_step(der.steps["ntk-def"])
    assert step.startswith("\\begin{dmath}\\label{eq:ntk-def}") and "docs/conventions.md" not in step
    n = sp.Symbol("n", positive=True)
    assert latex(1 + sp.O(1 / n**3, (n, sp.oo))) == r"1 + O\left(\frac{1}{n^{3}}\right)"  # not O(1/n^3; n -> oo)
    long = sum(sp.Symbol(f"a_{k}") * S.j**k for k in range(40)) / (96 * n**2 * (S.eta_c + S.eta_w * S.j))
    assert latex(long).startswith(r"\frac{1}{96 n^{2}")  # 1/denominator times a sum that breqn can break
    assert latex(1 - S.q * S.z) == "1 - q z"
    gf = latex(consequences("ntk").generating_function)
    assert gf == (r"\frac{\sigma_{C}^{2} \sigma_{F}^{2} \left(\eta_{W} q z + \left(\eta_{C} + \eta_{F}\right) "
                  r"\left(1 - q z\right)\right)}{n_{x} \left(1 - q z\right)^{2}}")  # (33): A and B apart


def test_the_generating_function_is_unchanged_in_value() -> None:
    import sympy as sp

    from linrnn.derive import symbols as S
    from linrnn.derive.weight_consequences import consequences

    for param in ("ntk", "standard"):
        c = consequences(param)
        w = c.weight
        series = sp.series(c.generating_function, S.z, 0, 5).removeO()
        assert all(sp.simplify(series.coeff(S.z, k) - w.subs(S.j, k)) == 0 for k in range(5))
        assert sp.simplify(c.total - c.generating_function.subs(S.z, 1)) == 0


# ------------------------------------------------------------------ float64 range from Python


def test_weights_underflow_raises_like_overflow_and_names_the_python_argument() -> None:
    from linrnn.core.spec import ModelSpec
    from linrnn.derive import weights

    with pytest.raises(NumericalRangeError, match=r"underflowed.*dps=30") as info:
        weights(ModelSpec(sigma_w2=0.5), 2000)
    assert "--dps" not in str(info.value)
    assert "--dps 30" in info.value.cli_message({"dps"}) and "dps" not in info.value.cli_message(set())
    with pytest.raises(NumericalRangeError, match=r"overflowed.*dps=30"):
        weights(ModelSpec(sigma_w2=1.5), 20000)
    kept = weights(ModelSpec(sigma_w2=0.5), 2000, underflow="keep")
    assert kept[-1] == 0.0
    assert weights(ModelSpec(sigma_w2=0.5), 2000, dps=30)[-1] > 0
