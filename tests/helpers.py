"""Small adapters for tests written with keyword model parameters: they build the one ModelSpec."""

from __future__ import annotations

from typing import Any

import numpy as np

from linrnn.core.spec import ModelSpec
from linrnn.families.gaussian import GaussianSpec

MODEL_KEYS = ("param", "sigma_w2", "sigma_f2", "sigma_c2", "n_in", "n_out")


def spec_of(lr: Any = (1.0, 1.0, 1.0), lr_mult: Any = None, **kw: Any) -> ModelSpec:
    """A ModelSpec from keywords; ``lr``/``lr_mult`` are the multipliers (eta_C, eta_F, eta_W)."""
    mults = lr_mult if lr_mult is not None else lr
    return GaussianSpec(**kw, lr_c=mults[0], lr_f=mults[1], lr_w=mults[2])


def split_model(kw: dict[str, Any], *, lr_key: str = "lr") -> tuple[dict[str, Any], dict[str, Any]]:
    """(model keywords, the rest) of ``kw``."""
    model = {k: kw.pop(k) for k in list(kw) if k in MODEL_KEYS}
    if lr_key in kw:
        model["lr"] = kw.pop(lr_key)
    return model, kw


def draw_of(W: Any, F: Any, C: Any, **kw: Any) -> Any:
    """An RNNDraw of raw (W, F, C) with the spec given by keywords (n_in, n_out from the shapes)."""
    from linrnn.verify.sample import RNNDraw

    return RNNDraw(W, F, C, spec_of(**kw, n_in=np.shape(F)[-1], n_out=np.shape(C)[-2]))


def estimate(backend: Any, n: int, **kw: Any) -> Any:
    """estimate_width with keyword model parameters."""
    from linrnn.verify.montecarlo import estimate_width

    model, rest = split_model(dict(kw))
    return estimate_width(backend, spec_of(**model), n, **rest)


def _draw_kw(C: Any, F: Any, W: Any, kw: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
    model, rest = split_model(dict(kw), lr_key="lr_mult")
    return draw_of(W, F, C, **model), rest


def train(C: Any, F: Any, W: Any, x: Any, y: Any, **kw: Any) -> Any:
    """train_rnn from raw (C, F, W) with keyword model parameters (``lr_mult`` the multipliers, ``lr`` the step)."""
    from linrnn.verify.train import train_rnn

    draw, rest = _draw_kw(C, F, W, kw)
    return train_rnn(draw, x, y, **rest)


def impulse(C: Any, F: Any, W: Any, lags: int, **kw: Any) -> Any:
    from linrnn.verify.train import rnn_impulse

    draw, rest = _draw_kw(C, F, W, kw)
    return rnn_impulse(draw, lags, **rest)


def loss_and_grads(C: Any, F: Any, W: Any, corr: Any, **kw: Any) -> Any:
    from linrnn.verify.train import rnn_loss_and_grads

    draw, rest = _draw_kw(C, F, W, kw)
    return rnn_loss_and_grads(draw, corr, **rest)
