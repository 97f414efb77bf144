"""One colour per backend (or peer, or model mix) in every figure of a report.

The project's backends and the usual peers have fixed colours; any other name (a peer
added later, a mix such as ``torch+parallel_scan=numba_cpu``) gets the next colour of a
second list in sorted-name order, so one report never gives a name two colours.
"""

from __future__ import annotations

from plotly.colors import qualitative

FIXED = {
    "torch": "#d62728",
    "triton": "#9467bd",
    "numba_cuda": "#2ca02c",
    "numba_cpu": "#1f77b4",
    "torch_compile": "#ff7f0e",
    "torch_compile_model": "#bcbd22",
    "mingru": "#8c564b",
    "fla": "#e377c2",
    "accelerated_scan": "#17becf",
}
OTHERS = qualitative.Dark24 + qualitative.Light24
OP_COLOURS = qualitative.Set2 + qualitative.Pastel1
REST = "#bbbbbb"  # the part of a model step outside every op


class Palette:
    def __init__(self, names):
        others = sorted({str(n) for n in names} - set(FIXED))
        self.colours = dict(FIXED)
        self.colours.update({n: OTHERS[i % len(OTHERS)] for i, n in enumerate(others)})

    def __call__(self, name) -> str:
        return self.colours.get(str(name), "#7f7f7f")

    @staticmethod
    def order(names) -> list[str]:
        """The fixed names first, in their order, then the others sorted."""
        fixed = list(FIXED)
        return sorted({str(n) for n in names}, key=lambda n: (fixed.index(n) if n in fixed else len(fixed), n))


def op_colours(ops) -> dict[str, str]:
    ops = [o for o in ops if o != "rest"]
    colours = {o: OP_COLOURS[i % len(OP_COLOURS)] for i, o in enumerate(ops)}
    colours["rest"] = REST
    return colours
