"""The facility-location family: FL, FLVMI, FLQMI, FLCG and FLCMI as one class.

Each represented item ``i`` keeps the running maximum ``m_i`` of its similarity to the selection
(starting at 0, so negative similarities never count) and contributes ``h_i(m_i)`` with

    h_i(m) = max(min(m, cap_i) - floor_i, 0)    (no cap: +inf; no floor: no clipping at all)

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

from raresift.kernels import DenseKernel, SparseKernel, similarity
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
    initial_gains : ndarray (n,), optional
        Every candidate's gain from the empty selection, when already known
        (:meth:`from_embeddings` sums them while it builds the kernel).
    """

    def __init__(
        self,
        cover: Kernel | np.ndarray,
        cap: np.ndarray | None = None,
        floor: np.ndarray | None = None,
        modular: np.ndarray | None = None,
        name: str = "fl",
        initial_gains: np.ndarray | None = None,
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
        self._initial = None if initial_gains is None else np.asarray(initial_gains, np.float64)
        self._reset()

    @classmethod
    def from_embeddings(
        cls,
        X: np.ndarray,
        metric: str,
        cap: np.ndarray | None = None,
        floor: np.ndarray | None = None,
        name: str = "fl",
    ) -> FacilityLocationFamily:
        """The objective over the dense kernel of ``X``'s rows, built in one pass: every row
        block of the kernel is finished and, while still in cache, adds its share of the
        initial gains (``sum_i clip(s_ij, lo_i, cap_i) - lo_i``), so the first gains cost no
        pass of their own."""
        from raresift.submodular import loops

        n = X.shape[0]
        cap = None if cap is None else np.asarray(cap, dtype=np.float32)
        floor = None if floor is None else np.asarray(floor, dtype=np.float32)
        lo = _clip(np.zeros(n, dtype=np.float32), floor, cap)
        hi = _upper(cap, n)
        gains = np.zeros(n, dtype=np.float64)

        def add_block(start: int, stop: int, rows: np.ndarray, shift, scale) -> None:
            loops.finish_and_sum(rows, shift, scale, lo[start:stop], hi[start:stop], gains)

        matrix = similarity(X, metric=metric, on_block=add_block)
        return cls(DenseKernel(matrix, check=False), cap, floor, name=name, initial_gains=gains)

    all_gains_cheap = True  # every gain is kept up to date incrementally

    def _h(self, m: np.ndarray, cap=None, floor=None) -> np.ndarray:
        """``h_i(m)`` in place on a float32 array (``cap``/``floor`` default to the full
        vectors)."""
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
        self._base = float(self._h(self.running_max.copy()).sum(dtype=np.float64))
        self._gain_cache: np.ndarray | None = None  # built on first use

    def _gains(self, idx: np.ndarray) -> np.ndarray:
        if self._gain_cache is None:
            if self._initial is None:
                self._initial = self._initial_gains()
            self._gain_cache = self._initial.copy()
        return self._gain_cache[idx]

    def _bounded(self, m: np.ndarray, items: np.ndarray | None = None) -> np.ndarray:
        """``clip(m_i, floor_i, cap_i)``: for ``m >= 0``, ``h_i(x) - h_i(m) = clip(x, ., cap_i)``
        differences, so every gain and gain change below is a single clip and a sum."""
        floor = self.floor if items is None or self.floor is None else self.floor[items]
        cap = self.cap if items is None or self.cap is None else self.cap[items]
        return _clip(m.copy(), floor, cap)

    def _initial_gains(self) -> np.ndarray:
        """Gains of every candidate for the current running maxima (one pass over the kernel):
        ``gain_j = sum_i clip(s_ij, lo_i, cap_i) - lo_i`` with ``lo = clip(m, floor, cap)``."""
        n = self.n
        lo = self._bounded(self.running_max)
        cap = np.inf if self.cap is None else self.cap
        if isinstance(self.cover, SparseKernel):  # non-neighbours (s = 0 <= lo) add nothing
            t = self.cover.transposed
            gains = np.empty(n, dtype=np.float64)
            step = max(1, BLOCK_ELEMENTS // max(1, t.nnz // max(n, 1)))
            for start in range(0, n, step):  # a block of candidates at a time: O(block) memory
                stop = min(n, start + step)
                first, last = t.indptr[start], t.indptr[stop]
                owner = np.repeat(np.arange(stop - start), np.diff(t.indptr[start : stop + 1]))
                items = t.indices[first:last]
                low = lo[items]
                after = np.clip(t.data[first:last], low, cap if self.cap is None else cap[items])
                after -= low
                gains[start:stop] = np.bincount(owner, weights=after, minlength=stop - start)
        elif isinstance(self.cover, DenseKernel):
            gains = self._clipped_row_sums(np.arange(n), lo, _upper(self.cap, n), 1.0)
        else:
            gains = np.empty(n, dtype=np.float64)
            block = max(1, BLOCK_ELEMENTS // max(self.n_represented, 1))
            for start in range(0, n, block):
                rows = candidate_rows(self.cover, np.arange(start, min(n, start + block)))
                np.clip(rows, lo, cap, out=rows)
                gains[start : start + block] = rows.sum(axis=1, dtype=np.float64)
            gains -= lo.sum(dtype=np.float64)
        if self.modular is not None:
            gains += self.modular
        return gains

    def _add(self, j: int) -> None:
        """Raise the running maxima that ``j`` beats and update every candidate's gain by the
        change on those represented items only: ``O(changed x n)`` dense, ``O(changed x k)``
        k-NN."""
        if isinstance(self.cover, SparseKernel):
            t = self.cover.transposed
            lo, hi = t.indptr[j], t.indptr[j + 1]
            items, values = t.indices[lo:hi], t.data[lo:hi]
            beats = values > self.running_max[items]
            changed, new = items[beats], values[beats]
        elif isinstance(self.cover, DenseKernel) and self.cover.symmetric:  # row j is column j
            row = self.cover.matrix[j]
            changed = np.flatnonzero(row > self.running_max)
            new = row[changed]
        else:
            row = candidate_rows(self.cover, np.array([j]))[0]
            changed = np.flatnonzero(row > self.running_max)
            new = row[changed]
        if self._gain_cache is not None and changed.size:
            self._update_gains(changed, self.running_max[changed], new)
        self.running_max[changed] = new

    def _update_gains(self, changed: np.ndarray, old: np.ndarray, new: np.ndarray) -> None:
        """Raising ``m_i`` from ``o`` to ``w`` lowers candidate ``j``'s gain by
        ``h_i(clip(s_ij, o, w)) - h_i(o) = clip(s_ij, lo, hi) - lo`` with ``lo, hi`` the clipped
        ``o, w``. Items whose ``h_i`` does not move (``lo == hi``: capped, or still under the
        floor) and candidates with ``s_ij <= lo`` (every k-NN gap) cost nothing."""
        lo, hi = self._bounded(old, changed), self._bounded(new, changed)
        moved = hi > lo
        changed, lo, hi = changed[moved], lo[moved], hi[moved]
        if not changed.size:
            return
        if isinstance(self.cover, SparseKernel):
            rows = self.cover.matrix[changed]  # represented item -> candidates keeping it
            owner = np.repeat(np.arange(changed.size), np.diff(rows.indptr))
            drop = np.clip(rows.data, lo[owner], hi[owner]) - lo[owner]
            self._gain_cache -= np.bincount(rows.indices, weights=drop, minlength=self.n)
            return
        if isinstance(self.cover, DenseKernel):
            self._clipped_row_sums(changed, lo, hi, -1.0, self._gain_cache)
            return
        block = max(1, BLOCK_ELEMENTS // self.n)
        for start in range(0, changed.size, block):
            part = slice(start, start + block)
            sims = self._represented_rows(changed[part])
            np.clip(sims, lo[part, None], hi[part, None], out=sims)
            self._gain_cache -= sims.sum(axis=0, dtype=np.float64)
            self._gain_cache += float(lo[part].sum(dtype=np.float64))

    def _clipped_row_sums(
        self,
        items: np.ndarray,
        lo: np.ndarray,
        hi: np.ndarray,
        sign: float,
        total: np.ndarray | None = None,
    ) -> np.ndarray:
        """``total + sign * sum_i clip(S[i, :], lo_i, hi_i) - lo_i`` over the dense kernel's
        rows ``items`` (``total`` float64 (n,), updated in place; zeros when None), by the
        compiled loop of :mod:`raresift.submodular.loops`: each row is read once."""
        from raresift.submodular import loops

        total = np.zeros(self.n) if total is None else total
        loops.add_clipped_rows(self.cover.matrix, items, lo, hi, total, sign)
        return total

    def _represented_rows(self, items: np.ndarray) -> np.ndarray:
        """Similarities of represented ``items`` to every candidate, (len(items), n) float32."""
        if isinstance(self.cover, np.ndarray):
            return np.ascontiguousarray(self.cover[:, items].T)
        return self.cover.rows(items)  # row i of a square kernel: s(i, j) for every candidate j

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


def _clip(m: np.ndarray, floor: np.ndarray | None, cap: np.ndarray | None) -> np.ndarray:
    """``clip(m, floor, cap)`` in place (a missing bound does not clip)."""
    if floor is not None:
        np.maximum(m, floor, out=m)
    if cap is not None:
        np.minimum(m, cap, out=m)
    return m


def _upper(cap: np.ndarray | None, n: int) -> np.ndarray:
    """The caps as float32 upper bounds (``+inf`` where there is none)."""
    return np.full(n, np.inf, dtype=np.float32) if cap is None else cap
