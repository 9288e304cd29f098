"""The model flags of every command, made once from the families' specifications.

``--family`` and one flag per field of every family's specification (``--param``,
``--sigma-w2``, ..., ``--lr-w`` of :class:`linrnn.core.spec.ModelSpec`, and the fields
another family adds), the name with dashes: its default the chosen family's default (the
one default q, ``ModelSpec.sigma_w2``), its check the field's rule
(:attr:`linrnn.core.spec.FamilySpec.FIELD_RULES`) applied while parsing, so a bad value
is one sentence naming the flag, before any work; a flag the chosen family does not take
is one sentence too. ``derive``, ``verify ntk``, ``verify train``, ``report`` and
``calibrate`` take them from here; the standard library and the families'
specifications only at import (``--help`` stays fast).
"""

from __future__ import annotations

import argparse
import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

from linrnn.core.errors import UsageError
from linrnn.core.spec import ModelSpec, check_field
from linrnn.families import FAMILIES


def flag_of(name: str) -> str:
    """The command-line flag of the specification field ``name``: ``sigma_w2`` -> ``--sigma-w2``."""
    return "--" + name.replace("_", "-")


def _parse(rule: str, flag: str) -> Any:
    def parse(text: str) -> Any:
        try:
            value: Any = int(text) if rule == "size" else float(text)
        except ValueError:
            kind = "an integer" if rule == "size" else "a number"
            raise argparse.ArgumentTypeError(f"{flag} must be {kind}, got {text!r}") from None
        try:
            return check_field(rule, flag, value)
        except UsageError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    return parse


def _fields() -> dict[str, tuple[Any, list[str]]]:
    """Every family's fields (but ``family``), in order of first appearance: field -> (first spec class, families)."""
    from linrnn.families import spec_classes

    out: dict[str, tuple[Any, list[str]]] = {}
    for name, cls in spec_classes().items():
        for f in dataclasses.fields(cls):
            if f.init:
                out.setdefault(f.name, (cls, []))[1].append(name)
    return out


def add_model_flags(parser: Any, *, omit: Sequence[str] = (), groups: Mapping[str, Any] | None = None) -> None:
    """Add ``--family`` and one flag per field of every family's specification (except ``omit``) to ``parser``
    (or to ``groups[field]``).

    Every flag defaults to None (not given); :func:`spec_from_args` fills in the chosen
    family's defaults, which the help text shows (with the families that take the flag
    where not all do).
    """
    base = ModelSpec()
    target = (groups or {}).get("family", parser)
    if "family" not in omit:
        target.add_argument("--family", choices=sorted(FAMILIES), default=None,
                            help=f"the model family, linrnn.families (default {base.family})")
    every = len(FAMILIES)
    for name, (cls, families) in _fields().items():
        if name in omit:
            continue
        target = (groups or {}).get(name, parser)
        default = cls.__dataclass_fields__[name].default
        who = "" if len(families) == every else f"; {', '.join(families)} only"
        if name in cls.CHOICES:
            target.add_argument(flag_of(name), choices=cls.CHOICES[name], default=None,
                                help=f"{'parameterization, docs/conventions.md' if name == 'param' else name} "
                                     f"(default {default}{who})")
            continue
        rule, what, metavar = cls.FIELD_RULES[name]
        target.add_argument(flag_of(name), type=_parse(rule, flag_of(name)), default=None, metavar=metavar,
                            help=f"{what} (default {default:g}{who})")


def given_model_values(args: argparse.Namespace) -> dict[str, Any]:
    """The specification fields given on the command line (flags left out are absent)."""
    return {name: getattr(args, name) for name in _fields() if getattr(args, name, None) is not None}


def spec_from_args(args: argparse.Namespace, base: ModelSpec | None = None) -> Any:
    """``base`` (default: the default family's specification) with the model flags given, in the family of ``--family`` where given
    (else ``base``'s); a flag the family does not take is one sentence; checked across fields by the spec."""
    from linrnn.families import as_family, default_spec

    spec = base or default_spec()
    if getattr(args, "family", None) is not None:
        spec = as_family(spec, args.family)
    given = given_model_values(args)
    foreign = [flag_of(k) for k in given if k not in spec.fields()]
    if foreign:
        raise UsageError(f"{', '.join(foreign)} {'is not a parameter' if len(foreign) == 1 else 'are not parameters'} "
                         f"of the {spec.family} family (its parameters: "
                         f"{', '.join(flag_of(k) for k in spec.fields())})")
    return spec.replace(**given)


def model_table(args: argparse.Namespace) -> dict[str, Any]:
    """The flags given as a ``[model]`` table (``family`` first where given): what ``report`` and ``calibrate``
    lay over the profile and ``--config``."""
    table = {"family": args.family} if getattr(args, "family", None) is not None else {}
    return {**table, **given_model_values(args)}


def with_model_flags(args: argparse.Namespace, config: Any) -> tuple[Any, list[str]]:
    """``config`` (a TOML path or None) with the model flags of ``args`` laid over its ``[model]`` table, and
    those flags as command-line words (for the provenance): the path itself where no model flag is given."""
    table = model_table(args)
    if not table:
        return config, []
    from linrnn.suite import load_toml

    overrides = dict(load_toml(config)) if config else {}
    model = overrides.get("model", {})
    overrides["model"] = {**(model if isinstance(model, Mapping) else {}), **table}
    words = [w for k, v in table.items() for w in (flag_of(k), str(v))]
    return overrides, words
