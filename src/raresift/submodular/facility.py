"""The facility-location family: FL, FLVMI, FLQMI, FLCG and FLCMI as one class.

Each represented item ``i`` keeps the running maximum ``m_i`` of its similarity to the selection
(starting at 0, so negative similarities never count) and contributes ``h_i(m_i)`` with

    h_i(m) = max(min(m, cap_i) - floor_i, 0)        (a missing cap is +inf, a missing floor is "no clip")

plus an optional modular term. The five objectives only differ in what is represented, the caps and
the floors (``m_Q``/``m_P`` are each candidate's best query/conditioning similarity):

============  ====================  =================  ===================  =================
objective     represented items     cap_i              floor_i              modular_j
============  ====================  =================  ===================  =================
FL            candidates V          --                 --                   --
FLVMI         candidates V          eta m_Q(i)         --                   --
FLCG          candidates V          --                 (nu m_P(i))+         --
FLCMI         candidates V          (eta m_Q(i))+      (nu m_P(i))+         --
FLQMI         query items Q         --                 --                   eta max_q s_jq
============  ====================  =================  ===================  =================

So FLCMI with no conditioning is FLVMI, with no query it is FLCG, with neither it is FL.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from raresift.kernels import SparseKernel
from raresift.submodular.base import (
    BLOCK_ELEMENTS,
    Kernel,
    SetFunction,
    as_index_set,
    candidate_rows,
)


class FacilityLocationFamily(SetFunction):
    """Facility location with per-item caps and floors and an optional modular term.

    Parameters
    ----------
    cover : DenseKernel, FeatureKernel, SparseKernel or ndarray (n, r)
        Similarity of each candidate to each represented item. A square kernel over the candidates
        (represented = candidates) or an ``n x r`` array (FLQMI: represented = query items).
    cap, floor : ndarray (r,), optional
        Per represented item, see the module docstring.
    modular : ndarray (n,), optional
        Added to the gain of each candidate.
    """

    def __init__(
        self,
        cover: Kernel | np.ndarray,
        cap: np.ndarray | None = None,
        floor: np.ndarray | None = None,
        modular: np.ndarray | None = None,
        name: str = "fl",
    ):
        self.cover = cover
        n = cover.shape[0] if isinstance(cover, np.ndarray) else cover.n
        super().__init__(n)
        self.represents_candidates = not isinstance(cover, np.ndarray)
        self.n_represented = cover.shape[1] if isinstance(cover, np.ndarray) else cover.n
        self.cap = None if cap is None else np.asarray(cap, dtype=np.float32)
        self.floor = None if floor is None else np.asarray(floor, dtype=np.float32)
        self.modular = None if modular is None else np.asarray(modular, dtype=np.float64)
        self.name = name
        self._reset()

    def _h(self, m: np.ndarray, cap=None, floor=None) -> np.ndarray:
        """``h_i(m)`` in place on a float32 array (``cap``/``floor`` default to the full vectors)."""
        cap = self.cap if cap is None else cap
        floor = self.floor if floor is None else floor
        if cap is not None:
            np.minimum(m, cap, out=m)
        if floor is not None:
            m -= floor
            np.maximum(m, 0.0, out=m)
        return m

    def _reset(self) -> None:
        self.running_max = np.zeros(self.n_represented, dtype=np.float32)
        self._covered = float(self._h(self.running_max.copy()).sum(dtype=np.float64))
        self._base = self._covered

    def _gains(self, idx: np.ndarray) -> np.ndarray:
        if isinstance(self.cover, SparseKernel):
            out = self._sparse_gains(idx)
        else:
            out = np.empty(idx.size, dtype=np.float64)
            block = max(1, BLOCK_ELEMENTS // max(self.n_represented, 1))
            for start in range(0, idx.size, block):
                rows = candidate_rows(self.cover, idx[start : start + block])
                np.maximum(rows, self.running_max, out=rows)
                out[start : start + block] = self._h(rows).sum(axis=1, dtype=np.float64)
            out -= self._covered
        if self.modular is not None:
            out += self.modular[idx]
        return out

    def _sparse_gains(self, idx: np.ndarray) -> np.ndarray:
        """Gains on a k-NN kernel: only the stored (neighbour) entries can raise a running max."""
        transposed = self.cover.transposed
        sub = transposed if idx.size == self.n and np.all(idx == np.arange(self.n)) else None
        sub = transposed[idx] if sub is None else sub
        owner = np.repeat(np.arange(idx.size), np.diff(sub.indptr))
        items = sub.indices
        m = self.running_max[items]
        cap = None if self.cap is None else self.cap[items]
        floor = None if self.floor is None else self.floor[items]
        after = self._h(np.maximum(sub.data, m), cap, floor)
        after -= self._h(m.copy(), cap, floor)
        return np.bincount(owner, weights=after, minlength=idx.size)

    def _add(self, j: int) -> None:
        if isinstance(self.cover, SparseKernel):
            t = self.cover.transposed
            lo, hi = t.indptr[j], t.indptr[j + 1]
            items = t.indices[lo:hi]
            self.running_max[items] = np.maximum(self.running_max[items], t.data[lo:hi])
        else:
            row = candidate_rows(self.cover, np.array([j]))[0]
            np.maximum(self.running_max, row, out=self.running_max)
        self._covered = float(self._h(self.running_max.copy()).sum(dtype=np.float64))

    def evaluate(self, A: Any) -> float:
        """``f(A)`` from scratch (normalised so that ``f(empty) = 0``)."""
        A = as_index_set(A, self.n)
        m = np.zeros(self.n_represented, dtype=np.float32)
        if A.size:
            np.maximum(m, candidate_rows(self.cover, A).max(axis=0), out=m)
        value = float(self._h(m).sum(dtype=np.float64)) - self._base
        if self.modular is not None:
            value += float(self.modular[A].sum())
        return value

    def restrict(self, idx: np.ndarray) -> FacilityLocationFamily:
        """The same objective with the candidates cut down to ``idx``."""
        idx = np.asarray(idx, dtype=np.int64)
        modular = None if self.modular is None else self.modular[idx]
        if not self.represents_candidates:
            return FacilityLocationFamily(self.cover[idx], self.cap, self.floor, modular, self.name)
        cap = None if self.cap is None else self.cap[idx]
        floor = None if self.floor is None else self.floor[idx]
        return FacilityLocationFamily(self.cover.restrict(idx), cap, floor, modular, self.name)
