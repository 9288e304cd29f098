"""The Gaussian family's model object (:class:`GaussianRNN`) and ``make``; the package docstring says what it is."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from linrnn.families.dense import DenseRNN
from linrnn.families.gaussian.spec import GaussianSpec


@dataclass(frozen=True)
class GaussianRNN(DenseRNN):
    """A dense linear RNN with Gaussian C, F, W at initialisation (see the module docstring)."""

    def finite_width(self, lags: int, width: int) -> dict[str, Any]:
        """The exact finite-width means at ``width`` (loop equations): ``ntk`` E[Theta[(i,0,0),(j,0,0)]] and
        ``nngp`` E[L_i L_j], lags x lags each."""
        from linrnn.core.validate import check_size

        theta, nngp = self.spec.exact_means(check_size("lags", lags), check_size("width", width))
        return {"ntk": theta, "nngp": nngp}

    def latex_sections(self) -> list[str]:
        """The derivation document's exact finite-width section: the closed forms (steps) and, for this
        configuration, the ratio to the wide limit at n = 256 and the least widths within 1% and 10%."""
        from linrnn.derive.latex import render_derivation
        from linrnn.families.gaussian.corrections import finite_width_steps
        from linrnn.families.gaussian.finite_width_report import finite_width_report

        spec = self.spec
        body = render_derivation(finite_width_steps(spec.param))
        fw = finite_width_report(spec, 13, 256)
        rows = "\n".join(
            rf"{jj} & {fw.limit_ratio['nngp'][jj]:.5f} & {fw.width_needed['nngp']['0.01'][jj]} & "
            rf"{fw.width_needed['nngp']['0.1'][jj]} & {fw.limit_ratio['ntk_diag'][jj]:.5f} & "
            rf"{fw.width_needed['ntk_diag']['0.01'][jj]} & {fw.width_needed['ntk_diag']['0.1'][jj]} \\"
            for jj in range(0, fw.lags, 2)
        )
        table = (
            r"For this configuration, the ratio of the exact value at $n = 256$ to the wide limit and the least width "
            r"from which the relative deviation stays within 1\% and 10\%:" "\n"
            r"\begin{center}\begin{tabular}{rrrrrrr}" "\n"
            r"$j$ & $\mathbb{E}[L_j^2]$ ratio & $n_{1\%}$ & $n_{10\%}$ & $\mathbb{E}[\Theta_{jj}]$ ratio & "
            r"$n_{1\%}$ & $n_{10\%}$ \\ \hline" "\n" + rows + "\n" r"\end{tabular}\end{center}"
        )
        return [body + "\n\n" + table]

    def finite_width_figure(self, widths: Any, lags: int, ntk_lags: int) -> dict[str, Any]:
        """The report's collapse figure of the exact relative corrections against x = j^2 / n
        (:func:`linrnn.families.gaussian.corrections.collapse_figure`, unit variances and rates)."""
        from linrnn.families.gaussian.corrections import collapse_figure

        return collapse_figure(self.spec.param, widths, lags, ntk_lags)


def make(**params: Any) -> GaussianRNN:
    """A Gaussian RNN with the :class:`~linrnn.core.spec.ModelSpec` fields ``params`` (unknown keys named)."""
    return GaussianRNN(GaussianSpec.from_mapping(params, where="the gaussian family's parameters"))
