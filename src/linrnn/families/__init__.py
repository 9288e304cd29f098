"""Model families: one folder per model gives its specification, sampler, forward map, empirical and derived kernels.

The neural-tangents lesson (every layer is one definition giving ``init_fn, apply_fn,
kernel_fn``) applied to linear recurrences: a family is one folder here, registered in
:data:`FAMILIES`, and :func:`family` makes a model of it from keyword parameters::

    import linrnn
    model = linrnn.family("orthogonal", sigma_w2=0.9)
    params = model.init(width=256, seed=0)          # a draw of the raw parameters
    model.impulse(params, 8)                        # L_0 .. L_7 of that draw
    model.empirical_ntk(params, 8)                  # its exact lag NTK (structured, no Jacobian)
    model.kernel(8)["ntk"]                          # the derived wide-limit lag NTK
    model.derivation()                              # the SymPy derivation behind it

What a family folder holds (``linrnn.families.<name>``, a package):

* ``SPEC`` (in ``spec.py``, standard library and core only: the command-line flags read
  it): its specification, a frozen dataclass with :class:`linrnn.core.spec.FamilySpec`
  (its fields, their rules and defaults: the flags and the ``[model]`` table come from
  them). A dense family subclasses :class:`linrnn.core.spec.ModelSpec` and overrides the
  hooks the dense engines call: ``transition`` (the law of W at initialisation, from iid
  Gaussian entries), ``derivation_law`` (its wide-width rule,
  :class:`linrnn.derive.law.TransitionLaw`) and ``exact_finite_width``;
* ``make(**params)`` (in ``model.py``, loaded when a model is made): its model object
  (:class:`linrnn.families.dense.DenseRNN` or a subclass; any object with ``spec``,
  ``init``, ``impulse``, ``empirical_ntk``, ``kernel``, ``derivation``);
* ``CLAIMS`` (optional): claims of the report that belong to the family
  (:class:`linrnn.verify.claims.base.Claim` with ``family`` set), run on the family's
  own specification whatever the ``[model]`` family is.

The engines (Monte Carlo, design, statistics, training, claims, reports) receive a
specification and call its hooks: they never branch on a family's name and never import
this package (``tests/test_layers.py``). Importing this module loads the standard
library only (the command-line parsers read :data:`FAMILIES`).
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

from linrnn.core.errors import UsageError

#: family name -> the package that defines it (``SPEC``, ``make``, optionally ``CLAIMS``).
FAMILIES: dict[str, str] = {
    "gaussian": "linrnn.families.gaussian",
    "orthogonal": "linrnn.families.orthogonal",
    "shifted": "linrnn.families.shifted",
    "diagonal": "linrnn.families.diagonal",
    "lru": "linrnn.families.lru",
}


#: The family of a specification made without one (``ModelSpec.family``'s default; the command line's default).
DEFAULT = "gaussian"


def default_spec() -> Any:
    """The default family's specification with its defaults."""
    return spec_class(DEFAULT)()


def _module(name: str) -> Any:
    if not isinstance(name, str) or name not in FAMILIES:
        raise UsageError(f"unknown model family {name!r}; known families: {', '.join(sorted(FAMILIES))}")
    return importlib.import_module(FAMILIES[name])


def family(name: str, **params: Any) -> Any:
    """A model of the family ``name`` with the specification ``params`` (validated once, here).

    An unknown family or parameter is one sentence (:class:`linrnn.core.errors.UsageError`)
    naming the known ones.
    """
    return _module(name).make(**params)


def spec_class(name: str) -> type:
    """The specification class of the family ``name`` (a :class:`~linrnn.core.spec.ModelSpec` subclass)."""
    return _module(name).SPEC


def as_family(spec: Any, name: str) -> Any:
    """A specification of the family ``name`` with ``spec``'s values of the fields the two share (the family's
    defaults for the others); ``spec`` itself when it is one."""
    cls = spec_class(name)
    if type(spec) is cls:
        return spec
    own = set(cls.fields())
    return cls(**{k: v for k, v in spec.as_dict().items() if k in own})


def spec_classes() -> dict[str, type]:
    """Every family's specification class, in registry order (importing only the specifications)."""
    return {name: spec_class(name) for name in FAMILIES}


def model_of(spec: Any) -> Any:
    """The model object of a specification (its family's ``make``)."""
    return _module(spec.family).make(**spec.as_dict())


def claims() -> Mapping[str, Any]:
    """Every claim of the report in report order: the engines' claims, then each family's own ``CLAIMS``."""
    from linrnn.verify.claims import REGISTRY

    out = dict(REGISTRY)
    for name in FAMILIES:
        for claim in getattr(_module(name), "CLAIMS", ()):
            out[claim.name] = claim
    return MappingProxyType(out)


def claim_model(claim: Any, model: Any) -> Any:
    """The specification a claim runs on: its family's (same shared fields) for a family's claim, else ``model``."""
    family_name = getattr(claim, "family", None)
    return model if family_name is None else as_family(model, family_name)


__all__ = ["DEFAULT", "FAMILIES", "as_family", "claim_model", "claims", "default_spec", "family", "model_of", "spec_class", "spec_classes"]
