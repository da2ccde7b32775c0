"""Matplotlib set-up shared by every figure of the package (headless Agg backend, one figure helper).

At the bottom of the package: analyses and the report both draw with :func:`fig_ax`.
"""
from __future__ import annotations

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
