"""PNG figures of a study: learning curves with error bands, selection counts, penalty matrices.

Matplotlib runs on the Agg backend (no display needed).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from raresift.simulate.stats import strategies_in, summarize


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_curves(
    rows: list[dict[str, Any]], column: str, path: str | Path, ylabel: str, title: str = ""
) -> Path:
    """Mean of ``column`` over seeds against labels used, with a +-1 std band per strategy."""
    plt = _pyplot()
    summary = summarize(rows, column)
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    for strategy in strategies_in(rows):
        mine = [s for s in summary if s["strategy"] == strategy]
        x = np.array([s["n_labeled"] for s in mine])
        mean = np.array([s["mean"] for s in mine])
        std = np.array([s["std"] for s in mine])
        (line,) = ax.plot(x, mean, marker="o", markersize=3, label=strategy)
        ax.fill_between(x, mean - std, mean + std, color=line.get_color(), alpha=0.15, linewidth=0)
    ax.set_xlabel("labeled items")
    ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, ncol=2)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_penalty(labels: list[str], matrix: np.ndarray, path: str | Path, title: str = "") -> Path:
    """Heatmap of a penalty matrix: cell (i, j) = share of rounds where row i beats column j."""
    plt = _pyplot()
    k = len(labels)
    fig, ax = plt.subplots(figsize=(max(4.5, 1.8 + 0.6 * k), max(3.8, 1.4 + 0.55 * k)))
    image = ax.imshow(matrix, cmap="viridis", vmin=0.0, vmax=max(1.0, float(matrix.max())))
    ax.set_xticks(range(k), labels, rotation=45, ha="right", fontsize=8)
    ax.set_yticks(range(k), labels, fontsize=8)
    for i in range(k):
        for j in range(k):
            color = "black" if matrix[i, j] > 0.6 else "white"
            ax.text(j, i, f"{matrix[i, j]:.2f}", ha="center", va="center", fontsize=7, color=color)
    ax.set_xlabel("worse (column)")
    ax.set_ylabel("better (row)")
    if title:
        ax.set_title(title, fontsize=9)
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
