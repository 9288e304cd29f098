"""The model object of a dense linear RNN family: ``init``, ``impulse``, ``empirical_ntk``, ``kernel``, ``derivation``.

Every family of dense linear RNNs (a full n x n transition matrix W, Gaussian C and F)
shares the forward map L_j = C_e W_e^j F_e, its gradients and the structured empirical
lag NTK (Krylov vectors, never a dense Jacobian: :mod:`linrnn.verify.ntk`); the families
differ in the law of W at initialisation and in what follows from it, which their
specification carries (:meth:`linrnn.core.spec.ModelSpec.transition`,
:meth:`~linrnn.core.spec.ModelSpec.derivation_law`). :class:`DenseRNN` is the object a
family's ``make`` returns (a family adds methods where it derives more, e.g. exact
finite-width moments).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from linrnn.core.errors import UsageError
from linrnn.core.spec import ModelSpec
from linrnn.core.validate import check_size


@dataclass(frozen=True)
class DenseRNN:
    """A dense linear RNN family's model: its specification ``spec`` and the methods of the neural-tangents triple.

    ``init`` draws parameters, ``impulse`` and ``empirical_ntk`` evaluate a draw,
    ``kernel`` (lag space), ``kernel_fn`` (on sequences) and ``derivation`` are the derived
    wide-limit objects.
    """

    spec: ModelSpec

    @property
    def name(self) -> str:
        """The family's name (``spec.family``)."""
        return self.spec.family

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

    def train(self, params: Any, corr: Any, *, lr: float, steps: int) -> Any:
        """Full-batch gradient descent from ``params`` on the loss of the correlations ``corr``
        (:func:`linrnn.verify.train.train_rnn`: its :class:`~linrnn.verify.train.TrainResult`)."""
        from linrnn.verify.train import train_rnn

        return train_rnn(self._draw(params), None, None, loss=corr.loss, lr=lr, steps=steps, corr=corr)

    def kernel(self, lags: int) -> dict[str, np.ndarray]:
        """The derived wide-limit kernels for lags 0 .. ``lags``-1, float64, in the layout of :meth:`empirical_ntk`.

        ``"ntk"``: Theta_inf (the lag weights on the diagonal); ``"nngp"``: the covariance
        of the initial impulse response, E[L_j(0)[a,b] L_k(0)[a',b']], both from this
        family's derivation (:meth:`derivation`).
        """
        from linrnn.derive.numeric import limit_lag_ntk, nngp_variance

        lags = check_size("lags", lags)
        nngp = np.asarray(nngp_variance(self.spec, lags), dtype=np.float64)
        eye_y, eye_x = np.eye(self.spec.n_out), np.eye(self.spec.n_in)
        return {"ntk": np.asarray(limit_lag_ntk(self.spec, lags), dtype=np.float64),
                "nngp": np.einsum("i,ij,ac,bd->iabjcd", nngp, np.eye(lags), eye_y, eye_x)}

    def kernel_fn(self, x1: Any, x2: Any = None, get: Any = ("nngp", "ntk")) -> Any:
        """The wide-limit NNGP and NTK of the outputs on batches of sequences x1 (B1, T, n_x), x2 (B2, T, n_x).

        Theta(x, x')[t, t'] = sum_{j,k} x_{t-j} Theta_jk x'_{t'-k} from :meth:`kernel`, shape
        (B1, B2, T1, T2, n_y, n_y), as neural-tangents' ``kernel_fn`` (:mod:`linrnn.families.kernels`).
        """
        from linrnn.families.kernels import kernel_fn

        return kernel_fn(self, x1, x2, get)

    def derivation(self) -> Any:
        """The derivation of the lag weights for this family and parameterization (SymPy steps and closed forms)."""
        from linrnn.derive.lag_weights import derive_lag_weights

        return derive_lag_weights(self.spec.param, self.spec.derivation_law())

    def latex_sections(self) -> list[str]:
        """LaTeX sections the family adds at the end of its derivation document (none here)."""
        return []

    def finite_width_figure(self, widths: Any, lags: int, ntk_lags: int) -> dict[str, Any] | None:
        """The report's figure of the family's exact finite-width corrections (None: not derived here)."""
        return None

    def _draw(self, params: Any) -> Any:
        from linrnn.verify.sample import RNNDraw

        if isinstance(params, RNNDraw):
            if params.spec != self.spec:
                raise UsageError(f"these parameters were drawn for {params.spec}, not for this model ({self.spec})")
            return params
        if isinstance(params, tuple) and len(params) == 3:
            return RNNDraw(*params, self.spec)  # (W, F, C) raw arrays; their shapes are checked there
        raise UsageError("params must be what init() returned, or a tuple (W, F, C) of raw parameters")
