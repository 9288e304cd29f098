"""The model flags of every command, made once from the model specification.

``--param``, ``--sigma-w2``, ``--sigma-c2``, ``--sigma-f2``, ``--n-in``, ``--n-out``,
``--lr-c``, ``--lr-f``, ``--lr-w``, after ``--family``: one flag per field of
:class:`linrnn.core.spec.ModelSpec` (the name with dashes), its default the field's
default (the one default q, ``ModelSpec.sigma_w2``), its check the field's rule
(:data:`linrnn.core.spec.FIELD_RULES`) applied while parsing, so a bad value is one
sentence naming the flag, before any work. ``derive``, ``verify ntk`` and ``verify
train`` take them from here; standard library only at import (``--help`` stays fast).
"""

from __future__ import annotations

import argparse
import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

from linrnn.core.errors import UsageError
from linrnn.core.spec import FIELD_RULES, PARAMS, ModelSpec, check_field
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


def add_model_flags(parser: Any, *, omit: Sequence[str] = (), groups: Mapping[str, Any] | None = None) -> None:
    """Add one flag per :class:`ModelSpec` field (except ``omit``) to ``parser`` (or to ``groups[field]``).

    Every flag defaults to None (not given); :func:`spec_from_args` fills in the
    specification's defaults, which the help text shows.
    """
    base = ModelSpec()
    target = (groups or {}).get("family", parser)
    if "family" not in omit:
        target.add_argument("--family", choices=sorted(FAMILIES), default=None,
                            help=f"the model family, linrnn.families (default {base.family})")
    for f in dataclasses.fields(ModelSpec):
        if f.name in omit or not f.init:
            continue
        target = (groups or {}).get(f.name, parser)
        default = getattr(base, f.name)
        if f.name == "param":
            target.add_argument("--param", choices=PARAMS, default=None,
                                help=f"parameterization, docs/conventions.md (default {default})")
            continue
        rule, what, metavar = FIELD_RULES[f.name]
        target.add_argument(flag_of(f.name), type=_parse(rule, flag_of(f.name)), default=None, metavar=metavar,
                            help=f"{what} (default {default:g})")


def given_model_values(args: argparse.Namespace) -> dict[str, Any]:
    """The specification fields given on the command line (flags left out are absent)."""
    return {f.name: getattr(args, f.name) for f in dataclasses.fields(ModelSpec)
            if f.init and getattr(args, f.name, None) is not None}


def spec_from_args(args: argparse.Namespace, base: ModelSpec | None = None) -> ModelSpec:
    """``base`` (default ``ModelSpec()``) with the model flags given, in the family of ``--family`` where given
    (else ``base``'s); checked across fields by the spec."""
    from linrnn.families import as_family

    spec = base or ModelSpec()
    if getattr(args, "family", None) is not None:
        spec = as_family(spec, args.family)
    return spec.replace(**given_model_values(args))


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
