"""The graph-cut family: GC, GCMI and GCCG as one class.

``f(A) = sum_{j in A} w_j - lambda sum_{i, j in A} s_ij`` with a per-candidate weight ``w``:

- GC:   ``w_j = sum_{i in V} s_ij``
- GCCG: ``w_j = sum_{i in V} s_ij - 2 lambda nu sum_{p in P} s_jp``
- GCMI: ``w_j = sum_{q in Q} s_jq`` and no pairwise term (it is modular).

The gain of ``j`` is ``w_j - lambda (t_j + s_jj)`` with the memoised ``t_j = sum_{a in A} (s_aj +
s_ja)``,
so every step costs one kernel row and ``O(n)`` for all candidates at once.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from raresift.kernels import SparseKernel
from raresift.submodular.base import Kernel, SetFunction, as_index_set, check_symmetric


class GraphCutFamily(SetFunction):
    """Graph cut ``sum_{j in A} w_j - lambda sum_{i,j in A} s_ij``.

    Parameters
    ----------
    kernel : DenseKernel, FeatureKernel or SparseKernel, optional
        Similarity among the candidates; ``None`` for the modular GCMI.
    extra_weight : ndarray (n,), optional
        Added to ``w``; the column sums of ``kernel`` are included when ``use_column_sums``.
    """

    all_gains_cheap = True  # every gain is maintained; lazy evaluation saves nothing

    def __init__(
        self,
        kernel: Kernel | None,
        lambda_: float = 1.0,
        extra_weight: np.ndarray | None = None,
        use_column_sums: bool = True,
        n: int | None = None,
        name: str = "gc",
    ):
        if kernel is not None:
            check_symmetric(kernel, name)
        self.kernel = kernel
        super().__init__(kernel.n if kernel is not None else n)
        self.lambda_ = float(lambda_)
        # the gain of j falls by 2 lambda s_aj when a joins: diminishing iff no s_aj < 0
        self.submodular = kernel is None or self.lambda_ == 0 or kernel.nonnegative()
        self.extra_weight = extra_weight
        self.use_column_sums = use_column_sums and kernel is not None
        self.name = name
        weight = np.zeros(self.n, dtype=np.float64)
        if self.use_column_sums:
            weight += kernel.column_sums()
        if extra_weight is not None:
            weight += np.asarray(extra_weight, dtype=np.float64)
        self.weight = weight
        self._self_term = np.zeros(self.n) if kernel is None else self.lambda_ * kernel.diagonal()
        self._reset()

    def _reset(self) -> None:
        self.pair_sums = np.zeros(self.n, dtype=np.float64)

    def _gains(self, idx: np.ndarray) -> np.ndarray:
        return self.weight[idx] - self.lambda_ * self.pair_sums[idx] - self._self_term[idx]

    def _add(self, j: int) -> None:
        if self.kernel is None:
            return
        row = self.kernel.rows(np.array([j]))[0].astype(np.float64)
        if isinstance(self.kernel, SparseKernel):  # k-NN graphs are not symmetric
            row += self.kernel.columns(np.array([j]))[0]
        else:
            row *= 2
        self.pair_sums += row

    def evaluate(self, A: Any) -> float:
        A = as_index_set(A, self.n)
        value = float(self.weight[A].sum())
        if self.kernel is not None and A.size:
            block = self.kernel.rows(A)[:, A]
            value -= self.lambda_ * float(block.sum(dtype=np.float64))
        return value

    def restrict(self, idx: np.ndarray) -> GraphCutFamily:
        idx = np.asarray(idx, dtype=np.int64)
        extra = None if self.extra_weight is None else np.asarray(self.extra_weight)[idx]
        kernel = None if self.kernel is None else self.kernel.restrict(idx)
        return GraphCutFamily(
            kernel, self.lambda_, extra, self.use_column_sums, idx.size, self.name
        )
