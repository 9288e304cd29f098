"""A derivation is data: an ordered list of steps built from SymPy objects.

The LaTeX document (:mod:`linrnn.derive.latex`) and any other rendering print these steps;
nothing in a rendered derivation is typed by hand except the prose notes.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

import sympy as sp


@dataclass(frozen=True)
class Step:
    """One displayed relation ``lhs <relation> rhs`` with a prose note.

    ``relation`` is one of ``"="``, ``"->"`` (limit as n -> infinity), ``"~"``
    (asymptotic equality), ``":="`` (definition). ``section`` groups steps in
    the rendered document. ``note`` is prose that may contain inline ``$...$``
    mathematics; it never carries a result that the step's SymPy objects do not.
    """

    label: str
    lhs: sp.Basic
    rhs: sp.Basic
    note: str = ""
    relation: str = "="
    section: str = ""


@dataclass
class Derivation:
    """An ordered, labelled list of :class:`Step` objects."""

    title: str
    steps: list[Step] = field(default_factory=list)

    def add(
        self,
        label: str,
        lhs: sp.Basic,
        rhs: sp.Basic,
        note: str = "",
        *,
        relation: str = "=",
        section: str = "",
    ) -> sp.Basic:
        if any(step.label == label for step in self.steps):
            raise ValueError(f"duplicate step label {label!r}")
        self.steps.append(Step(label, lhs, rhs, note, relation, section))
        return rhs

    def __getitem__(self, label: str) -> Step:
        for step in self.steps:
            if step.label == label:
                return step
        raise KeyError(label)

    def __iter__(self) -> Iterator[Step]:
        return iter(self.steps)

    def __len__(self) -> int:
        return len(self.steps)

    def sections(self) -> list[str]:
        seen: list[str] = []
        for step in self.steps:
            if step.section not in seen:
                seen.append(step.section)
        return seen
