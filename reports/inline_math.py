r"""Math written in plain ASCII inside the results' prose, typeset for the HTML page (MathML) and the LaTeX report.

The claims state their text in ASCII (``sigma_W^2``, ``t_{255}``, ``n^(-1/2)``,
``||L_c - L_scnn||^2``, ``n -> infinity``): readable on a console, raw in a report.
:func:`split` finds those spans in a sentence and leaves the rest as text; each span is
parsed once (:func:`parse`: atoms with subscripts ``_x``/``_{...}`` and superscripts
``^x``/``^(...)``/``^{...}``, norms ``||...||``, Greek letters by name) and printed as
MathML (:func:`to_mathml`, rendered natively by browsers) or LaTeX (:func:`to_latex`).

What counts as math: a single letter or a Greek name (``lambda``, ``sigma``, ...) with a
subscript or superscript; a Greek name standing alone; a norm; ``x -> infinity``. Code
identifiers stay text: a word of several letters before ``_`` (``finite_width``,
``max_replicas``) and any word with two underscores (``no_linear_term``, ``q_times_1.1``).
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass

#: Greek letters (and the sum sign) by the names the claims write.
GREEK = {
    "alpha": ("\u03b1", r"\alpha"), "beta": ("\u03b2", r"\beta"), "gamma": ("\u03b3", r"\gamma"),
    "delta": ("\u03b4", r"\delta"), "eps": ("\u03b5", r"\varepsilon"), "epsilon": ("\u03b5", r"\varepsilon"),
    "eta": ("\u03b7", r"\eta"), "theta": ("\u03b8", r"\theta"), "lambda": ("\u03bb", r"\lambda"),
    "mu": ("\u03bc", r"\mu"), "nu": ("\u03bd", r"\nu"), "rho": ("\u03c1", r"\rho"), "sigma": ("\u03c3", r"\sigma"),
    "phi": ("\u03c6", r"\phi"), "Theta": ("\u0398", r"\Theta"), "Lambda": ("\u039b", r"\Lambda"),
    "Sigma": ("\u03a3", r"\Sigma"), "sum": ("\u2211", r"\sum"), "infinity": ("\u221e", r"\infty"),
}
_NAMES = "|".join(sorted(GREEK, key=len, reverse=True))
_BASE = rf"(?:{_NAMES}|[A-Za-z])\*?"
_SUB = r"_(?:\{[^{}]*\}|[A-Za-z0-9]+(?:_[A-Za-z0-9.]+)+(?=\^)|[A-Za-z0-9]+(?![A-Za-z0-9_]))"  # d_no_linear_term^2
_SUP = r"\^(?:\{[^{}]*\}|\([^()]*\)|-?[A-Za-z0-9]+(?:\.\d+)?(?![A-Za-z0-9_])|\*)"
#: A span of ASCII math in prose (see the module docstring).
SPAN = re.compile(
    r"\|\|[^|]+\|\|(?:" + _SUB + "|" + _SUP + r")*"
    + r"|(?<![|\w])\|[A-Za-z]\|(?![|\w])"  # |z|, |t|
    + rf"|(?<![\w:.]){_BASE}(?:{_SUB}|{_SUP})+(?![\w])"
    + r"|(?<![\w:.])[A-Za-z] -> infinity\b"
    + rf"|(?<![\w:.])(?:{_NAMES})(?![\w])"
)


@dataclass(frozen=True)
class Node:
    """One parsed piece: ``kind`` is 'mi', 'mn', 'mo', 'row' (children), 'fenced' (open, children, close),
    'sub' / 'sup' / 'subsup' (base, script[, script])."""

    kind: str
    text: str = ""
    children: tuple[Node, ...] = ()


def split(text: str) -> list[tuple[bool, str]]:
    """``text`` as (is_math, piece) pieces in order."""
    out: list[tuple[bool, str]] = []
    pos = 0
    for m in SPAN.finditer(text):
        if m.start() > pos:
            out.append((False, text[pos:m.start()]))
        out.append((True, m.group(0)))
        pos = m.end()
    if pos < len(text):
        out.append((False, text[pos:]))
    return out


_TOKEN = re.compile(r"\s*(\|\||->|<=|>=|[A-Za-z]+\*?|\d+(?:\.\d+)?|.)")


def parse(expr: str) -> Node:
    """The ASCII expression ``expr`` as a :class:`Node` tree."""
    tokens = [t for t in _TOKEN.findall(expr) if t.strip()]
    node, _ = _seq(tokens, 0, None)
    return node


def _seq(tokens: list[str], i: int, close: str | None) -> tuple[Node, int]:
    items: list[Node] = []
    while i < len(tokens) and tokens[i] != close:
        atom, i = _atom(tokens, i)
        atom, i = _scripts(tokens, i, atom)
        items.append(atom)
    return Node("row", children=tuple(items)), i


def _atom(tokens: list[str], i: int) -> tuple[Node, int]:
    t = tokens[i]
    if t == "|" and i + 2 < len(tokens) and tokens[i + 2] == "|":  # |z|
        inner, _ = _atom(tokens, i + 1)
        return Node("fenced", "||", (inner,)), i + 3
    if t in ("(", "{", "||", "["):
        close = {"(": ")", "{": "}", "||": "||", "[": "]"}[t]
        inner, j = _seq(tokens, i + 1, close)
        j = min(j + 1, len(tokens))
        if t == "{":
            return inner, j
        return Node("fenced", "\u2016" if t == "||" else t + close, inner.children), j
    if t[0].isdigit():
        return Node("mn", t), i + 1
    if t[0].isalpha():
        return Node("mi", t), i + 1
    return Node("mo", t), i + 1


def _scripts(tokens: list[str], i: int, base: Node) -> tuple[Node, int]:
    sub = sup = None
    while i < len(tokens) and tokens[i] in ("_", "^"):
        which = tokens[i]
        i += 1
        if i >= len(tokens):
            break
        if tokens[i] == "-" and i + 1 < len(tokens):  # n^-2
            atom, i = _atom(tokens, i + 1)
            script = Node("row", children=(Node("mo", "-"), atom))
        else:
            script, i = _atom(tokens, i)
            while (which == "_" and script.kind in ("mi", "mn") and i + 1 < len(tokens) and tokens[i] == "_"
                   and tokens[i + 1][0].isalnum()):  # a label with underscores (L_no_linear_term): one subscript
                script = Node("mi", f"{script.text}_{tokens[i + 1]}")
                i += 2
            if script.kind == "fenced" and script.text == "()" and which == "^":  # n^(-1/2): parentheses group only
                script = Node("row", children=script.children)
        if which == "_":
            sub = script
        else:
            sup = script
    if sub is not None and sup is not None:
        return Node("subsup", children=(base, sub, sup)), i
    if sub is not None:
        return Node("sub", children=(base, sub)), i
    if sup is not None:
        return Node("sup", children=(base, sup)), i
    return base, i


#: A subscript of two index letters (``jj``, ``jk``): indices, italic; longer words are labels, upright.
_INDICES = re.compile(r"[a-z]{2}")
_MO = {"-": "\u2212", "->": "\u2192", "<=": "\u2264", ">=": "\u2265", "*": "\u2217"}


def _mathml(node: Node) -> str:
    k = node.kind
    if k == "mi":
        name = node.text.rstrip("*")
        glyph = GREEK[name][0] if name in GREEK else name
        italic = len(glyph) > 1 and _INDICES.fullmatch(glyph)  # Theta_jj: two indices, italic as one letter is
        mi = f'<mi mathvariant="italic">{glyph}</mi>' if italic else f"<mi>{html.escape(glyph)}</mi>"
        return f"<msup>{mi}<mo>\u2217</mo></msup>" if node.text.endswith("*") else mi
    if k == "mn":
        return f"<mn>{node.text}</mn>"
    if k == "mo":
        return f"<mo>{html.escape(_MO.get(node.text, node.text))}</mo>"
    if k == "row":
        return "<mrow>" + "".join(_mathml(c) for c in node.children) + "</mrow>"
    if k == "fenced":
        left, right = (node.text, node.text) if len(node.text) == 1 else (node.text[0], node.text[1])  # "||": |z|
        inner = "".join(_mathml(c) for c in node.children)
        return f"<mrow><mo>{html.escape(left)}</mo>{inner}<mo>{html.escape(right)}</mo></mrow>"
    tag = {"sub": "msub", "sup": "msup", "subsup": "msubsup"}[k]
    return f"<{tag}>" + "".join(_mathml(c) for c in node.children) + f"</{tag}>"


def to_mathml(expr: str) -> str:
    """``<math>`` element of the ASCII expression ``expr`` (its source kept as ``alttext``)."""
    return f'<math alttext="{html.escape(expr, quote=True)}">{_mathml(parse(expr))}</math>'


_TEX_MO = {"->": r"\to", "<=": r"\leq", ">=": r"\geq", "*": "^{*}", "%": r"\%", "&": r"\&", "#": r"\#",
           "$": r"\$", "~": r"\sim", "\\": r"\backslash"}


def _latex(node: Node) -> str:
    k = node.kind
    if k == "mi":
        name = node.text.rstrip("*")
        star = "^{*}" if node.text.endswith("*") else ""
        if name in GREEK:
            return GREEK[name][1] + " " + star
        if len(name) == 1 or _INDICES.fullmatch(name):
            return name + star
        return rf"\mathrm{{{name.replace('_', chr(92) + '_')}}}" + star
    if k == "mn":
        return node.text
    if k == "mo":
        return _TEX_MO.get(node.text, node.text)
    if k == "row":
        return " ".join(_latex(c) for c in node.children)
    if k == "fenced":
        inner = " ".join(_latex(c) for c in node.children)
        if node.text == "\u2016":
            return rf"\lVert {inner} \rVert"
        return {"()": f"({inner})", "[]": f"[{inner}]", "||": f"\\lvert {inner} \\rvert"}.get(node.text, inner)
    base = "{" + _latex(node.children[0]) + "}"
    if k == "sub":
        return f"{base}_{{{_latex(node.children[1])}}}"
    if k == "sup":
        return f"{base}^{{{_latex(node.children[1])}}}"
    return f"{base}_{{{_latex(node.children[1])}}}^{{{_latex(node.children[2])}}}"


def to_latex(expr: str) -> str:
    """Inline LaTeX (``$...$``) of the ASCII expression ``expr``."""
    return "$" + _latex(parse(expr)).strip() + "$"


def prose_html(text: str) -> str:
    """``text`` HTML-escaped, its ASCII math as MathML and ``->`` as an arrow."""
    return "".join(to_mathml(piece) if is_math else html.escape(piece, quote=True).replace(" -&gt; ", " \u2192 ")
                   for is_math, piece in split(str(text)))


def prose_latex(text: str, escape: object) -> str:
    """``text`` for LaTeX: the prose through ``escape`` (the report's text escaper), its ASCII math as ``$...$``."""
    return "".join(to_latex(piece) if is_math else escape(piece)  # type: ignore[operator]
                   for is_math, piece in split(str(text)))
