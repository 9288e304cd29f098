"""The results file of ``linrnn report`` (``report.json``): a versioned, validated schema.

One data model, written by :mod:`linrnn.suite` and read by every renderer in
:mod:`linrnn.reports`; the renderers need nothing but this file (``linrnn.reports`` never imports
``linrnn.verify``). Version 1 has these top-level keys:

* ``schema_version`` (int, :data:`SCHEMA_VERSION`), ``tool`` ({name, version}),
  ``title``, ``created`` (UTC, ISO 8601), ``profile`` ("quick", "full", ...);
* ``config``: the resolved configuration of every experiment (profile + TOML overrides);
* ``provenance``: python, platform, package versions, backend, device, dtype, seed,
  ``wall_time`` (seconds per experiment), ``cached`` (experiments reused from the
  cache), ``total_seconds``, ``command``;
* ``derivation``: ``param``, ``formulas`` (label, LaTeX, description), ``figures``,
  ``notes`` and ``tex`` (the LaTeX appendix as text, or null);
* ``claims``: one object per claim of ``docs/claims.md`` (``id``, ``title``,
  ``statement``, ``formula``, ``statistic`` {name, value: a number or null, optionally ``in_words``: a
  sentence shown instead of a value that would mislead as a number}, ``threshold``
  {description, value: a number, null, or numbers in arrays or objects such as an interval}, ``verdict``
  "pass"/"fail"/"inconclusive"/"error" (:mod:`linrnn.core.outcome`), ``figures``, ``config``,
  ``notes``, ``experiment``, ``data``, ``statistic_verdict`` (the claim's own test:
  pass/fail/error; required, at the top level or, from older writers, in ``data``: the
  claim's ``verdict`` must be the one :func:`linrnn.core.outcome.claim_outcome` gives from it
  and the claim's controls); optionally ``error`` (one sentence, or null), ``alpha`` (the
  stated false-failure rate) and ``design`` (the sizes used and needed)), without their
  controls, which are lifted into
* ``controls``: every negative control with the ``claim`` it belongs to (``id``,
  ``statement``, ``formula``, ``statistic``, ``threshold``, ``verdict``: "rejected"
  (wanted: the wrong theory was rejected), "not_rejected" or "error");
* ``verdict``: the run's outcome, combined from the claims' (fail > error > inconclusive > pass);
* optionally ``files``: every file the report wrote beside ``report.json``, as
  ``{"relative/posix/path": "<sha256 hex>"}`` (:func:`linrnn.reports.render.write_report`;
  :mod:`linrnn.reports.output` replaces a report directory only if it holds nothing else).
  Results files written before it existed have no ``files`` and still validate.

Version 2 (this one) replaced version 1's pass/fail by these outcomes.

A figure is ``{"kind": ..., "title": ..., "caption": ..., ...data}``; the kinds and
their data are documented in :mod:`linrnn.reports.figures` and checked against the
JSON Schema ``figures.schema.json`` (with the ``jsonschema`` library), plus its
``x-same-length`` groups (arrays that must have one length), by :func:`check_figure`.
"""

from __future__ import annotations

import functools
import importlib.resources
import json
import math
import os
import sys
from collections.abc import Mapping
from typing import Any

from linrnn.core.errors import UsageError
from linrnn.core.outcome import CONTROL_OUTCOMES, OUTCOMES, STATISTIC_OUTCOMES, UNTESTED, claim_outcome, combine, untested

SCHEMA_VERSION = 2
VERDICTS = OUTCOMES

_TOP = {
    "schema_version": int, "tool": dict, "title": str, "created": str, "profile": str, "config": dict,
    "provenance": dict, "derivation": dict, "claims": list, "controls": list, "verdict": str,
}
_TOP_OPTIONAL = {"files": dict, "chapters": list}
_CLAIM_REQUIRED = {
    "id": str, "title": str, "statement": str, "formula": str, "statistic": dict, "threshold": dict,
    "verdict": str, "figures": dict,
}
_CLAIM_OPTIONAL = {"config": dict, "notes": list, "experiment": str, "data": dict,
                   "statistic_verdict": str, "error": (str, type(None)), "alpha": (int, float, type(None)),
                   "design": dict}
#: Fields that hold a number or null (never a bool, a string or a container), by where they are.
_NUMBER_FIELDS = {"claim": ("alpha",), "provenance": ("seed", "cpu_count", "workers", "total_seconds")}
#: The deepest nesting of objects and arrays a results file may have (linrnn writes about 10 levels).
MAX_DEPTH = 64
#: The most digits of an integer literal: beyond any float64 (1.8e308) the number has no meaning here.
MAX_INT_DIGITS = 309
_CONTROL_REQUIRED = {"claim": str, "id": str, "statement": str, "statistic": dict, "threshold": dict, "verdict": str}
_CONTROL_OPTIONAL = {"formula": (str, type(None))}
_DERIVATION = {"param": str, "formulas": list, "figures": dict, "notes": list, "tex": (str, type(None))}
#: A chapter: data a reader compares (figures, tables), no verdict (e.g. the families chapter).
_CHAPTER = {"id": str, "title": str, "text": list, "figures": dict, "tables": list}
_CHAPTER_OPTIONAL = {"config": dict}
_TABLE = {"columns": list, "rows": list, "caption": str}


def _check_chapter(chapter: Any, where: str) -> None:
    if not isinstance(chapter, Mapping):
        raise SchemaError(f"{where} must be an object, got {_kind(chapter)}")
    _check_keys(chapter, _CHAPTER, _CHAPTER_OPTIONAL, where)
    for i, t in enumerate(chapter["text"]):
        if not isinstance(t, str):
            raise SchemaError(f"{where}.text[{i}] must be a string, got {_kind(t)}")
    _check_figures(chapter["figures"], where)
    for i, table in enumerate(chapter["tables"]):
        at = f"{where}.tables[{i}]"
        if not isinstance(table, Mapping):
            raise SchemaError(f"{at} must be an object, got {_kind(table)}")
        _check_keys(table, _TABLE, {}, at)
        if not all(isinstance(c, str) for c in table["columns"]):
            raise SchemaError(f"{at}.columns must be strings")
        for j, row in enumerate(table["rows"]):
            if not isinstance(row, list) or len(row) != len(table["columns"]):
                raise SchemaError(f"{at}.rows[{j}] must be a list of {len(table['columns'])} cells")
            for k, cell in enumerate(row):
                if not (cell is None or isinstance(cell, str) or is_number(cell)):
                    raise SchemaError(f"{at}.rows[{j}][{k}] must be a number, a string or null, got {_kind(cell)}")


class SchemaError(UsageError):
    """A results file that does not follow the schema; the message names the first problem."""


def _check_keys(obj: Mapping[str, Any], required: Mapping[str, Any], optional: Mapping[str, Any], where: str) -> None:
    if not isinstance(obj, Mapping):
        raise SchemaError(f"{where} must be an object, got {type(obj).__name__}")
    missing = [k for k in required if k not in obj]
    if missing:
        raise SchemaError(f"{where} lacks {', '.join(repr(k) for k in missing)}")
    unknown = sorted(set(obj) - set(required) - set(optional))
    if unknown:
        raise SchemaError(f"{where} has unknown keys {', '.join(repr(k) for k in unknown)}")
    for key, typ in {**required, **optional}.items():
        if key in obj and not isinstance(obj[key], typ):
            name = typ.__name__ if isinstance(typ, type) else " or ".join(t.__name__ for t in typ)
            raise SchemaError(f"{where}.{key} must be of type {name}, got {type(obj[key]).__name__}")


def _check_finite(obj: Any, where: str, depth: int = 0) -> None:
    """JSON-ready data: dicts with str keys, lists, finite floats, ints within float64's range, valid str, bool, None."""
    if depth > MAX_DEPTH:
        raise SchemaError(f"{where} is nested more than {MAX_DEPTH} levels deep")
    if isinstance(obj, float):
        if not math.isfinite(obj):
            raise SchemaError(f"{where} holds a non-finite number; write null instead")
    elif isinstance(obj, bool) or obj is None:
        pass
    elif isinstance(obj, int):
        if abs(obj) > sys.float_info.max:
            raise SchemaError(f"{where} holds an integer beyond the range of a float64")
    elif isinstance(obj, str):
        _check_text(obj, where)
    elif isinstance(obj, Mapping):
        for k, v in obj.items():
            if not isinstance(k, str):
                raise SchemaError(f"{where} has a non-string key {k!r}")
            _check_text(k, f"a key of {where}")
            _check_finite(v, f"{where}.{k}", depth + 1)
    elif isinstance(obj, (list, tuple)):
        for i, v in enumerate(obj):
            _check_finite(v, f"{where}[{i}]", depth + 1)
    else:
        raise SchemaError(f"{where} holds a {type(obj).__name__}, which is not JSON data")


def _check_text(text: str, where: str) -> None:
    """A string that can be written as UTF-8 (no lone surrogates such as the JSON escape \\ud800)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise SchemaError(f"{where} holds a string that is not valid Unicode (a lone surrogate escape)") from None


def is_number(x: Any) -> bool:
    """A JSON number: an int or a float, not a bool."""
    return isinstance(x, (int, float)) and not isinstance(x, bool)


def _number_list(x: Any) -> bool:
    return isinstance(x, list) and all(v is None or is_number(v) for v in x)


def _check_number(x: Any, where: str, *, grouped: bool = False) -> None:
    """``x`` is a number or null; with ``grouped`` also an array of them (an interval ``[lo, hi]``) or an object
    of them and of such arrays (``{"ci": [lo, hi], "t_crit": t}``)."""
    if x is None or is_number(x):
        return
    if grouped and (_number_list(x) or (isinstance(x, Mapping) and all(
            v is None or is_number(v) or _number_list(v) for v in x.values()))):
        return
    want = "a number or null, or numbers grouped in an array or an object" if grouped else "a number or null"
    raise SchemaError(f"{where} must be {want}, got {_kind(x)}")


def _kind(x: Any) -> str:
    if isinstance(x, bool):
        return f"the boolean {str(x).lower()}"
    if isinstance(x, str):
        return f"the string {_short(repr(x), 40)}"
    return {dict: "an object", list: "an array"}.get(type(x), type(x).__name__)


def _check_statistic(stat: Mapping[str, Any], where: str) -> None:
    if "name" not in stat or not isinstance(stat["name"], str):
        raise SchemaError(f"{where}.statistic needs a 'name' string")
    if "value" not in stat:
        raise SchemaError(f"{where}.statistic needs a 'value' (a number or null)")
    _check_number(stat["value"], f"{where}.statistic.value")
    if "in_words" in stat and not isinstance(stat["in_words"], str):
        raise SchemaError(f"{where}.statistic.in_words must be a string")


def _check_threshold(thr: Mapping[str, Any], where: str) -> None:
    if "description" not in thr or not isinstance(thr["description"], str):
        raise SchemaError(f"{where}.threshold needs a 'description' string")
    _check_number(thr.get("value"), f"{where}.threshold.value", grouped=True)


def _check_verdict(v: str, where: str, allowed: tuple[str, ...] = OUTCOMES) -> None:
    if v not in allowed:
        raise SchemaError(f"{where}.verdict must be one of {', '.join(allowed)}, got {v!r}")


@functools.lru_cache(maxsize=1)
def figure_validators() -> dict[str, Any]:
    """One ``jsonschema`` validator per figure kind, from ``figures.schema.json`` (shipped beside this module)."""
    import jsonschema

    doc = json.loads((importlib.resources.files("linrnn.reports") / "figures.schema.json").read_text(encoding="utf-8"))
    cls = jsonschema.validators.validator_for(doc)
    out = {}
    for kind, sub in doc["kinds"].items():
        schema = {"$schema": doc["$schema"], "$defs": doc["$defs"], **sub}
        cls.check_schema(schema)
        out[kind] = (cls(schema), schema)
    return out


def _lengths(obj: Any, path: str) -> list[int]:
    """Lengths of the arrays at ``path`` in ``obj`` ("key", "key[].sub", "key[]"); missing or null: none."""
    head, _, rest = path.partition(".")
    each = head.endswith("[]")
    key = head[:-2] if each else head
    if not isinstance(obj, Mapping) or obj.get(key) is None:
        return []
    value = obj[key]
    if not each:
        return [len(value)] if isinstance(value, list) else []
    if not isinstance(value, list):
        return []
    if not rest:
        return [len(v) for v in value if isinstance(v, list)]
    return [n for v in value for n in _lengths(v, rest)]


def _same_lengths(instance: Any, schema: Mapping[str, Any], figure: str, at: str = "") -> None:
    """The ``x-same-length`` groups of ``schema`` (and of its nested properties and items) hold for ``instance``."""
    for group in schema.get("x-same-length", ()):
        found = {p: _lengths(instance, p) for p in group}
        sizes = {n for ns in found.values() for n in ns}
        if len(sizes) > 1:
            shown = ", ".join(f"{p} has {'/'.join(str(n) for n in sorted(set(ns)))}" for p, ns in found.items() if ns)
            raise SchemaError(f"{figure} is malformed{' at ' + at if at else ''}: its arrays must have one length "
                              f"({shown} entries)")
    if isinstance(instance, Mapping):
        for key, sub in (schema.get("properties") or {}).items():
            if key in instance:
                _same_lengths(instance[key], sub, figure, f"{at}.{key}".lstrip("."))
    if isinstance(instance, list) and isinstance(schema.get("items"), Mapping):
        for i, item in enumerate(instance):
            _same_lengths(item, schema["items"], figure, f"{at}[{i}]")


def check_figure(fig: Any, where: str) -> None:
    """A figure of a known kind must carry the data of its kind (``figures.schema.json``); unknown kinds pass.

    Unknown kinds are kept and skipped by the renderers (a newer writer's figure);
    a known kind with missing keys, wrong types or arrays of unequal length is a
    :class:`SchemaError` naming the figure and the first problem.
    """
    if not isinstance(fig, Mapping) or not isinstance(fig.get("kind"), str):
        raise SchemaError(f"{where} must be an object with a 'kind' string")
    entry = figure_validators().get(fig["kind"])
    if entry is None:
        return
    validator, schema = entry
    import jsonschema

    error = jsonschema.exceptions.best_match(validator.iter_errors(fig))
    if error is not None:
        at = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in error.absolute_path)
        raise SchemaError(f"the figure {where} (kind {fig['kind']}) is malformed"
                          f"{' at ' + at.lstrip('.') if at else ''}: {_short(error.message)}")
    _same_lengths(fig, schema, f"the figure {where} (kind {fig['kind']})")


def _short(message: str, limit: int = 160) -> str:
    return message if len(message) <= limit else message[: limit - 3] + "..."


def _check_figures(figs: Mapping[str, Any], where: str) -> None:
    for name, fig in figs.items():
        check_figure(fig, f"{where}.figures.{name}")


def _check_files(listed: Mapping[str, Any]) -> None:
    """``files``: relative POSIX paths inside the report directory, each with a SHA-256 in hex."""
    for name, digest in listed.items():
        parts = name.split("/")
        if not name or name.startswith("/") or "\\" in name or any(p in ("", ".", "..") for p in parts):
            raise SchemaError(f"results.files lists {name!r}, which is not a path inside the report directory")
        if not (isinstance(digest, str) and len(digest) == 64 and all(c in "0123456789abcdef" for c in digest)):
            raise SchemaError(f"results.files[{name!r}] must be a SHA-256 in lower-case hex")


def overall_verdict(claims: list[Mapping[str, Any]], controls: list[Mapping[str, Any]]) -> str:
    """The run's outcome from its claims' (which already fold in their controls): fail > error > inconclusive > pass."""
    return combine(c["verdict"] for c in claims)


def validate(results: Mapping[str, Any]) -> dict[str, Any]:
    """Check ``results`` against schema version 1 and return it (as a plain dict).

    Raises :class:`SchemaError` (a :class:`linrnn.core.errors.UsageError`) naming the
    first problem: a missing or unknown key, a wrong type, a verdict other than
    pass/fail, duplicate claim ids, a control of an unknown claim, a non-finite
    number, or a stored overall verdict that disagrees with the claims.
    """
    _check_keys(results, _TOP, _TOP_OPTIONAL, "results")
    _check_finite(dict(results), "results")
    if results["schema_version"] != SCHEMA_VERSION:
        raise SchemaError(
            f"this results file has schema_version {results['schema_version']!r}; "
            f"this linrnn reads version {SCHEMA_VERSION}"
        )
    if "files" in results:
        _check_files(results["files"])
    for key in _NUMBER_FIELDS["provenance"]:
        _check_number(results["provenance"].get(key), f"provenance.{key}")
    wall = results["provenance"].get("wall_time") or {}
    if not isinstance(wall, Mapping):
        raise SchemaError(f"provenance.wall_time must be an object of seconds, got {_kind(wall)}")
    for key, v in wall.items():
        _check_number(v, f"provenance.wall_time.{key}")
    _check_keys(results["derivation"], _DERIVATION, {}, "derivation")
    for i, f in enumerate(results["derivation"]["formulas"]):
        _check_keys(f, {"label": str, "latex": str}, {"description": str}, f"derivation.formulas[{i}]")
    _check_figures(results["derivation"]["figures"], "derivation")
    chapter_ids: set[str] = set()
    for i, chapter in enumerate(results.get("chapters", [])):
        _check_chapter(chapter, f"chapters[{i}]")
        if chapter["id"] in chapter_ids:
            raise SchemaError(f"chapter id {chapter['id']!r} appears twice")
        chapter_ids.add(chapter["id"])
    ids: set[str] = set()
    claim_stats: dict[str, str | None] = {}
    for i, claim in enumerate(results["claims"]):
        where = f"claims[{i}]"
        _check_keys(claim, _CLAIM_REQUIRED, _CLAIM_OPTIONAL, where)
        if claim["id"] in ids:
            raise SchemaError(f"claim id {claim['id']!r} appears twice")
        ids.add(claim["id"])
        for key in _NUMBER_FIELDS["claim"]:
            _check_number(claim.get(key), f"{where}.{key}")
        _check_statistic(claim["statistic"], where)
        _check_threshold(claim["threshold"], where)
        _check_verdict(claim["verdict"], where)
        claim_stats[claim["id"]] = _statistic_verdict(claim, where)
        _check_figures(claim["figures"], where)
    for i, ctrl in enumerate(results["controls"]):
        where = f"controls[{i}]"
        _check_keys(ctrl, _CONTROL_REQUIRED, _CONTROL_OPTIONAL, where)
        if ctrl["claim"] not in ids:
            raise SchemaError(f"{where} belongs to an unknown claim {ctrl['claim']!r}")
        _check_statistic(ctrl["statistic"], where)
        _check_threshold(ctrl["threshold"], where)
        _check_verdict(ctrl["verdict"], where, CONTROL_OUTCOMES)
    for i, claim in enumerate(results["claims"]):  # every claim: the one rule of linrnn.core.outcome
        stat = claim_stats[claim["id"]]
        ctrls = [x["verdict"] for x in results["controls"] if x["claim"] == claim["id"]]
        want = claim_outcome(stat, ctrls)
        if claim["verdict"] != want:
            why = f" ({UNTESTED})" if untested(stat, ctrls) else ""
            raise SchemaError(f"claims[{i}].verdict is {claim['verdict']!r} but its statistic ({stat}) and "
                              f"controls give {want!r}{why}")
    expected = overall_verdict(results["claims"], results["controls"])
    if results["verdict"] != expected:
        raise SchemaError(f"the overall verdict is {results['verdict']!r} but the claims and controls give {expected!r}")
    return dict(results)


def _statistic_verdict(claim: Mapping[str, Any], where: str) -> str:
    """The claim's own outcome (top level, or in ``data`` from older writers); missing or unknown: a SchemaError.

    Without it a claim's verdict cannot be checked against its statistic and controls,
    and a results file that cannot be checked is not consistent.
    """
    if "statistic_verdict" in claim:
        stat, at = claim["statistic_verdict"], f"{where}.statistic_verdict"
    elif isinstance(claim.get("data"), Mapping) and "statistic_verdict" in claim["data"]:
        stat, at = claim["data"]["statistic_verdict"], f"{where}.data.statistic_verdict"
    else:
        raise SchemaError(f"{where} lacks 'statistic_verdict' (the outcome of its own test), so its verdict "
                          f"{claim['verdict']!r} cannot be checked against its statistic and controls")
    if stat not in STATISTIC_OUTCOMES:
        raise SchemaError(f"{at} must be one of {', '.join(STATISTIC_OUTCOMES)}, got {stat!r}")
    return stat


def dumps(results: Mapping[str, Any]) -> str:
    """Validated, deterministic JSON text (sorted keys, two-space indent, no NaN)."""
    return json.dumps(validate(results), indent=2, sort_keys=True, allow_nan=False, ensure_ascii=False) + "\n"


class _Refused(Exception):
    """A literal that the results file may not hold, met while parsing (the message is the sentence's tail)."""


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in pairs:
        if k in out:
            raise _Refused(f"the key {_short(repr(k), 40)} appears twice in one object")
        out[k] = v
    return out


def _int(text: str) -> int:
    digits = len(text.lstrip("-"))
    if digits > MAX_INT_DIGITS:
        raise _Refused(f"it holds an integer of {digits} digits, beyond the range of a float64")
    return int(text)


def _float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise _Refused(f"it holds the number {_short(text, 40)}, beyond the range of a float64; write null instead")
    return value


def _constant(text: str) -> Any:
    raise _Refused(f"it holds {text}, which JSON does not allow; write null instead")


def _depth_exceeds(data: Any, limit: int) -> bool:
    """Whether ``data`` nests objects and arrays more than ``limit`` deep (without recursion)."""
    stack = [(data, 0)]
    while stack:
        obj, depth = stack.pop()
        if isinstance(obj, (dict, list)):
            if depth >= limit:
                return True
            stack.extend((v, depth + 1) for v in (obj.values() if isinstance(obj, dict) else obj))
    return False


def loads(text: str) -> dict[str, Any]:
    """Parse and validate the text of a results file; anything the schema does not allow is a :class:`SchemaError`.

    Refused while parsing, in one sentence: text that is not JSON, NaN and Infinity
    (and numbers beyond float64 such as ``1e999``), integers of more than
    :data:`MAX_INT_DIGITS` digits, a key repeated within one object, and nesting
    deeper than :data:`MAX_DEPTH` levels; then :func:`validate`.
    """
    try:
        data = json.loads(text, object_pairs_hook=_no_duplicates, parse_int=_int, parse_float=_float,
                          parse_constant=_constant)
    except json.JSONDecodeError as exc:
        raise SchemaError(f"the results file is not JSON ({exc.msg} at line {exc.lineno})") from None
    except _Refused as exc:
        raise SchemaError(f"the results file is refused: {exc}") from None
    except RecursionError:
        raise SchemaError(f"the results file is refused: it nests arrays or objects more than {MAX_DEPTH} levels "
                          f"deep") from None
    if _depth_exceeds(data, MAX_DEPTH):
        raise SchemaError(f"the results file is refused: it nests arrays or objects more than {MAX_DEPTH} levels "
                          f"deep")
    return validate(data)


def load(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read and validate a results file; a missing or unreadable file, or one that is not a regular file of at
    most :data:`linrnn.core.files.MAX_RESULTS_BYTES`, is a :class:`UsageError` (checked before it is read)."""
    from linrnn.core.files import MAX_RESULTS_BYTES, read_text_file

    return loads(read_text_file(path, "the results file", MAX_RESULTS_BYTES))
