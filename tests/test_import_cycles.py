"""No import circles between the modules of the installed package ``linrnn``.

Every import counts, at any depth (inside functions too: a function-local import that
closes a circle only hides it until run time), read with the same walker as
``tests/test_layers.py``. An import of ``pkg.name`` counts as an import of the module
``pkg.name`` when it is one, else of ``pkg``; a module importing its own ancestor
package (``linrnn.verify.ntk`` -> ``linrnn.verify``) is the package's structure, not a
circle, and is left out. The strongly connected components of the graph with more than
one module are the circles (Tarjan's algorithm, iterative).
"""

from __future__ import annotations

from collections.abc import Mapping

from test_layers import imported_modules, installed_modules


def import_graph(sources: Mapping[str, tuple[str, bool]]) -> dict[str, set[str]]:
    """module -> the package's modules it imports, from ``name -> (source text, is_package)``."""
    graph: dict[str, set[str]] = {}
    for name, (source, is_package) in sources.items():
        targets = set()
        for _line, target in imported_modules(name, source, is_package):
            while target and target not in sources:
                target = target.rpartition(".")[0]
            if target and target != name and not name.startswith(target + "."):
                targets.add(target)
        graph[name] = targets
    return graph


def circles(graph: Mapping[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (or a module importing itself)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []
    counter = 0
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            v, it = work[-1]
            w = next(it, None)
            if w is not None:
                if w not in index:
                    index[w] = low[w] = counter
                    counter += 1
                    stack.append(w)
                    on_stack.add(w)
                    work.append((w, iter(sorted(graph.get(w, ())))))
                elif w in on_stack:
                    low[v] = min(low[v], index[w])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[v])
            if low[v] == index[v]:
                comp = []
                while True:
                    x = stack.pop()
                    on_stack.discard(x)
                    comp.append(x)
                    if x == v:
                        break
                if len(comp) > 1 or v in graph.get(v, ()):
                    out.append(sorted(comp))
    return out


def _package_sources() -> dict[str, tuple[str, bool]]:
    out = {}
    for name, (path, is_package) in installed_modules().items():
        with open(path, encoding="utf-8") as f:
            out[name] = (f.read(), is_package)
    return out


def test_no_import_circles() -> None:
    sources = _package_sources()
    assert len(sources) > 50 and "linrnn.suite" in sources and "linrnn.derive.formulas" in sources
    found = circles(import_graph(sources))
    assert not found, "import circles:\n" + "\n".join(" -> ".join(c + c[:1]) for c in found)


def test_a_planted_circle_is_found() -> None:
    """The checker sees a circle through a function-local import, and none in a chain or in package structure."""
    planted = {
        "linrnn.a": ("import linrnn.b\n", False),
        "linrnn.b": ("def f():\n    from linrnn.c import g\n", False),
        "linrnn.c": ("from linrnn import a\n", False),
        "linrnn.d": ("from linrnn.a import x\n", False),
    }
    assert circles(import_graph(planted)) == [["linrnn.a", "linrnn.b", "linrnn.c"]]
    chain = dict(planted, **{"linrnn.c": ("import os\n", False)})
    assert circles(import_graph(chain)) == []
    structure = {
        "linrnn.pkg": ("from linrnn.pkg.mod import f\n", True),
        "linrnn.pkg.mod": ("from linrnn.pkg import other\n", False),
        "linrnn.pkg.other": ("x = 1\n", False),
    }
    assert circles(import_graph(structure)) == []
