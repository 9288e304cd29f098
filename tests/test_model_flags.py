"""One definition of the model flags for every command (issue 18): same names, defaults and checks."""

from __future__ import annotations

import argparse
import dataclasses

import pytest

from linrnn.cli import build_parser
from linrnn.core.spec import ModelSpec
from linrnn.families.gaussian import GaussianSpec
from linrnn.model_flags import flag_of, spec_from_args

#: command -> the specification fields it leaves out (training claims have one input and one output)
COMMANDS = {("derive", "weights"): (), ("derive", "kernel"): (), ("derive", "latex"): (),
            ("derive", "finite-width"): (), ("verify", "ntk"): (), ("verify", "train"): ("n_in", "n_out")}


def _subparser(parser: argparse.ArgumentParser, path: tuple[str, ...]) -> argparse.ArgumentParser:
    for name in path:
        action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
        parser = action.choices[name]
    return parser


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_every_command_has_the_specifications_flags_with_its_defaults(command: tuple[str, ...]) -> None:
    parser = _subparser(build_parser(), command)
    flags = {opt: a for a in parser._actions for opt in a.option_strings}
    base = GaussianSpec()
    for f in dataclasses.fields(ModelSpec):
        if f.name in COMMANDS[command]:
            assert flag_of(f.name) not in flags
            continue
        action = flags[flag_of(f.name)]
        assert action.default is None and action.dest == f.name  # not given: the specification's default
        default = getattr(base, f.name)
        text = f"(default {default if isinstance(default, str) else format(default, 'g')}"
        assert text + ")" in action.help or text + "; " in action.help  # "; FAMILIES only" where not every family


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_no_flags_give_the_default_specification_and_flags_override_it(command: tuple[str, ...]) -> None:
    parser = build_parser()
    args = parser.parse_args([*command])
    assert spec_from_args(args) == GaussianSpec()
    args = parser.parse_args([*command, "--sigma-w2", "0.7", "--lr-w", "0", "--param", "standard"])
    assert spec_from_args(args) == GaussianSpec(sigma_w2=0.7, lr_w=0.0, param="standard")


@pytest.mark.parametrize("command", sorted(COMMANDS))
@pytest.mark.parametrize("flag, value", [("--sigma-w2", "0"), ("--sigma-c2", "nan"), ("--lr-f", "-1"),
                                         ("--sigma-f2", "abc"), ("--param", "mup")])
def test_a_bad_model_value_is_the_same_sentence_in_every_command(command: tuple[str, ...], flag: str, value: str,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        build_parser().parse_args([*command, flag, value])
    err = capsys.readouterr().err.strip().splitlines()
    assert info.value.code == 2 and len(err) == 1 and err[0].startswith(f"linrnn: error: argument {flag}")
