"""The set-function interface every objective implements, and the kernel helpers they share."""

from __future__ import annotations

from typing import Any

import numpy as np

from raresift.errors import ValidationError
from raresift.kernels import DenseKernel, FeatureKernel, SparseKernel

Kernel = DenseKernel | FeatureKernel | SparseKernel
BLOCK_ELEMENTS = 1 << 23  # float32 entries per block when evaluating many candidates at once


class SetFunction:
    """A normalised set function ``f`` over candidates ``0 .. n-1`` (``f(empty) = 0``) with memoised
    statistics of the current selection, so marginal gains are vectorised and cheap.

    Subclasses implement ``_gains(idx)``, ``_add(j)``, ``_reset()``, ``evaluate(A)`` and
    ``restrict(idx)``. ``submodular`` says whether this function, on its kernel, has
    diminishing returns, so that a stale marginal gain is an upper bound of the current one:
    the lazy optimizers ("lazy", "lazier") are exact only then, and
    :func:`~raresift.submodular.select` runs their exact counterparts ("naive", "stochastic")
    where it is False. A subclass that cannot promise it sets it False.
    """

    name = "set-function"
    submodular = True
    all_gains_cheap = False  # True when gains() of every candidate costs O(n) (memoised)

    def __init__(self, n: int):
        self.n = int(n)
        self.selected: list[int] = []
        self._chosen = np.zeros(self.n, dtype=bool)

    def gains(self, idx: Any = None) -> np.ndarray:
        """Marginal gains ``f(A + j) - f(A)`` (float64) of ``idx`` (default: every candidate);
        0 for items already selected."""
        idx = np.arange(self.n) if idx is None else np.asarray(idx, dtype=np.int64)
        chosen = self._chosen[idx]
        if not chosen.any():
            return self._gains(idx)
        out = np.zeros(idx.size, dtype=np.float64)
        out[~chosen] = self._gains(idx[~chosen])
        return out

    def add(self, j: int) -> None:
        """Add candidate ``j`` to the selection and update the memoised statistics."""
        j = int(j)
        if self._chosen[j]:
            raise ValidationError(f"candidate {j} is already selected")
        self._add(j)
        self.selected.append(j)
        self._chosen[j] = True

    def reset(self) -> None:
        """Forget the selection."""
        self.selected = []
        self._chosen[:] = False
        self._reset()

    def evaluate(self, A: Any) -> float:  # pragma: no cover - abstract
        raise NotImplementedError

    def restrict(self, idx: np.ndarray) -> SetFunction:  # pragma: no cover - abstract
        raise NotImplementedError

    def _gains(self, idx: np.ndarray) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError

    def _add(self, j: int) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def _reset(self) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, n={self.n})"


def as_index_set(A: Any, n: int) -> np.ndarray:
    """Validate a subset of ``0 .. n-1`` given as any iterable of ints; returns sorted unique
    int64."""
    arr = np.unique(np.fromiter((int(a) for a in A), dtype=np.int64))
    if arr.size and (arr[0] < 0 or arr[-1] >= n):
        raise ValidationError(f"set elements must lie in 0..{n - 1}, got {arr.tolist()[:5]}")
    return arr


def candidate_rows(kernel: Kernel | np.ndarray, idx: np.ndarray) -> np.ndarray:
    """Similarities of candidates ``idx`` to every represented item, as a dense float32 block."""
    if isinstance(kernel, np.ndarray):
        return kernel[idx]
    if isinstance(kernel, (SparseKernel, DenseKernel)):
        return kernel.columns(idx)
    return kernel.rows(idx)


def check_symmetric(kernel: Kernel, name: str) -> None:
    """Raise :class:`ValidationError` unless the data kernel is symmetric (graph cut and
    log-determinants are defined on symmetric similarities only)."""
    if not kernel.symmetric:
        raise ValidationError(
            f"{name} needs a symmetric data kernel (s_ij == s_ji), and this one is not; "
            "symmetrise it, e.g. (K + K.T) / 2, or use the default k-NN mode 'union'"
        )


def check_rectangular(matrix: Any, n: int, what: str) -> np.ndarray:
    """Validate an ``n x m`` float kernel (candidates x query or conditioning items)."""
    arr = np.asarray(matrix)
    if arr.ndim != 2 or arr.shape[0] != n:
        raise ValidationError(f"the {what} kernel must have shape ({n}, m), got {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise ValidationError(f"the {what} kernel contains NaN or infinite values")
    return np.ascontiguousarray(arr, dtype=np.float32)
