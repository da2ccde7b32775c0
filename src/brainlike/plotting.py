"""Matplotlib set-up shared by every figure of the package (headless Agg backend, one figure helper).

At the bottom of the package: analyses and the report both draw with :func:`fig_ax`; :func:`figure_png` renders
a figure once for both the PNG file and the HTML report.
"""
from __future__ import annotations

import io

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def fig_ax(ax=None, size: tuple[float, float] = (6, 4)):
    """``(figure, axes)``: a new figure of ``size`` inches at 110 dpi, or the figure of the given axes."""
    if ax is None:
        fig, ax = plt.subplots(figsize=size, dpi=110)
    else:
        fig = ax.figure
    return fig, ax


#: resolution of every PNG the package writes (files and the report's embedded images)
PNG_DPI = 110


def figure_png(fig, dpi: int = PNG_DPI) -> bytes:
    """The figure as PNG bytes (``bbox_inches="tight"``), rendered once per figure and dpi and kept on the figure.

    The run's PNG files and the HTML report embed the same bytes, so a figure is drawn once, not once per output.
    Draw nothing more on a figure after its first call (the stored bytes would not show it).
    """
    memo = fig.__dict__.setdefault("_brainlike_png", {})
    if dpi not in memo:
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight")
        memo[dpi] = buf.getvalue()
    return memo[dpi]
