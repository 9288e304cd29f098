r"""The Gaussian linear RNN (Emami et al., ICML 2021): the first model family.

Model (``docs/conventions.md``): h_t = W_e h_{t-1} + F_e x_t, y_t = C_e h_t with raw
C, F, W and effective P_e = alpha_P P; ``ntk`` (raw entries N(0, 1), alpha_C =
sigma_C / sqrt(n), alpha_F = sigma_F / sqrt(n_x), alpha_W = sigma_W / sqrt(n)) or
``standard`` (raw entries are the effective ones, drawn with those variances). The
specification is :class:`linrnn.core.spec.ModelSpec` (q = ``sigma_w2``, the
learning-rate multipliers ``lr_c``, ``lr_f``, ``lr_w``).

Derived in the wide limit (:func:`linrnn.derive.lag_weights.derive_lag_weights`):
Theta_inf[(j,a,b),(k,a',b')] = lambda_j delta_jk delta_aa' delta_bb' and the NNGP
Var L_j(0)[a,b] delta_jk, uncorrelated across lags.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from linrnn.core.errors import UsageError
from linrnn.core.spec import ModelSpec
from linrnn.core.validate import check_size


@dataclass(frozen=True)
class GaussianRNN:
    """A dense linear RNN with Gaussian C, F, W at initialisation, as one object (see the module docstring).

    ``spec`` carries every parameter; the methods are the family's ``init``,
    ``impulse``, ``empirical_ntk`` (per draw) and ``kernel``, ``derivation`` (derived).
    """

    spec: ModelSpec
    name: ClassVar[str] = "gaussian"

    def init(self, *, width: int, seed: int | None = 0, backend: Any = "numpy", batch: int | None = None) -> Any:
        """Raw parameters (W, F, C) of one draw at width ``width`` (or ``batch`` draws along a leading axis).

        ``backend``: a name (``"numpy"``, ``"cupy"``, ``"auto"``) seeded with ``seed``, or a
        :class:`linrnn.verify.backend.Backend` (which carries its own generator; ``seed`` is then ignored).
        """
        from linrnn.verify.backend import Backend, get_backend
        from linrnn.verify.sample import sample_rnn

        be = backend if isinstance(backend, Backend) else get_backend(backend, seed=seed)
        return sample_rnn(be, self.spec, width, batch=batch)

    def impulse(self, params: Any, lags: int) -> Any:
        """The impulse response L_j = C_e W_e^j F_e of ``params``, j < ``lags``: shape (..., lags, n_y, n_x)."""
        from linrnn.verify.sample import impulse_response

        return impulse_response(self._draw(params), lags)

    def empirical_ntk(self, params: Any, lags: int) -> Any:
        """The exact lag NTK of ``params`` from its Krylov vectors: shape (..., lags, n_y, n_x, lags, n_y, n_x)."""
        from linrnn.verify.ntk import empirical_lag_ntk

        return empirical_lag_ntk(self._draw(params), lags)

    def kernel(self, lags: int) -> dict[str, np.ndarray]:
        """The derived wide-limit kernels for lags 0 .. ``lags``-1, float64, in the layout of :meth:`empirical_ntk`.

        ``"ntk"``: Theta_inf (the lag weights on the diagonal); ``"nngp"``: the covariance
        of the initial impulse response, E[L_j(0)[a,b] L_k(0)[a',b']].
        """
        from linrnn.derive.numeric import limit_lag_ntk, nngp_variance

        lags = check_size("lags", lags)
        nngp = np.asarray(nngp_variance(self.spec, lags), dtype=np.float64)
        eye_y, eye_x = np.eye(self.spec.n_out), np.eye(self.spec.n_in)
        return {"ntk": np.asarray(limit_lag_ntk(self.spec, lags), dtype=np.float64),
                "nngp": np.einsum("i,ij,ac,bd->iabjcd", nngp, np.eye(lags), eye_y, eye_x)}

    def derivation(self) -> Any:
        """The derivation of the lag weights for this parameterization, as data (SymPy steps and closed forms)."""
        from linrnn.derive.lag_weights import derive_lag_weights

        return derive_lag_weights(self.spec.param)

    def _draw(self, params: Any) -> Any:
        from linrnn.verify.sample import RNNDraw

        if isinstance(params, RNNDraw):
            if params.spec != self.spec:
                raise UsageError(f"these parameters were drawn for {params.spec}, not for this model ({self.spec})")
            return params
        if isinstance(params, tuple) and len(params) == 3:
            return RNNDraw(*params, self.spec)  # (W, F, C) raw arrays; their shapes are checked there
        raise UsageError("params must be what init() returned, or a tuple (W, F, C) of raw parameters")


def make(**params: Any) -> GaussianRNN:
    """A Gaussian RNN with the :class:`~linrnn.core.spec.ModelSpec` fields ``params`` (unknown keys named)."""
    return GaussianRNN(ModelSpec.from_mapping(params, where="the gaussian family's parameters"))
