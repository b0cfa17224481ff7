"""Compiled loops of the facility-location family on a dense kernel (numba, imported on first
use so that ``import raresift`` stays light; compiled once per machine, then cached).

Every gain and every change of a gain is a sum over kernel rows ``i`` of

    clip(S[i, j], lo_i, hi_i) - lo_i        (lo = clip(m, floor, cap) before, hi after a move)

added into a float64 vector over the candidates ``j``, four rows at a time, so each kernel
entry is read once, the additions vectorise over ``j`` and the sums are read and written once
per four rows.
"""

from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True, nogil=True, inline="always")
def _term(row, j, low, high):  # pragma: no cover - compiled
    return np.float64(min(max(row[j], low), high)) - np.float64(low)


@njit(cache=True, nogil=True)
def add_clipped_rows(matrix, rows, lo, hi, total, sign):  # pragma: no cover - compiled
    """``total += sign * sum_k clip(matrix[rows[k]], lo[k], hi[k]) - lo[k]`` (float64)."""
    count, k = rows.shape[0], 0
    while k + 4 <= count:
        r0, r1, r2, r3 = (
            matrix[rows[k]],
            matrix[rows[k + 1]],
            matrix[rows[k + 2]],
            matrix[rows[k + 3]],
        )
        l0, l1, l2, l3 = lo[k], lo[k + 1], lo[k + 2], lo[k + 3]
        h0, h1, h2, h3 = hi[k], hi[k + 1], hi[k + 2], hi[k + 3]
        for j in range(total.shape[0]):
            first = _term(r0, j, l0, h0) + _term(r1, j, l1, h1)
            second = _term(r2, j, l2, h2) + _term(r3, j, l3, h3)
            total[j] += sign * (first + second)
        k += 4
    for rest in range(k, count):
        row, low, high = matrix[rows[rest]], lo[rest], hi[rest]
        for j in range(total.shape[0]):
            total[j] += sign * _term(row, j, low, high)


@njit(cache=True, nogil=True, inline="always")
def _finish(row, j, shift, scale):  # pragma: no cover - compiled
    value = (row[j] + shift) * scale
    row[j] = value
    return value


@njit(cache=True, nogil=True)
def finish_and_sum(block, shift, scale, lo, hi, total):  # pragma: no cover - compiled
    """Finish a block of raw dot products in place (``(v + shift) * scale``, float32) and add
    its rows' ``clip(v, lo[r], hi[r]) - lo[r]`` to ``total``: one pass, four rows at a time,
    each entry finished and summed while in a register. Rows with ``lo == hi`` (capped at
    their floor) add nothing and are only finished."""
    live = np.flatnonzero(lo < hi)
    if shift == 0 and scale == 1:
        add_clipped_rows(block, live, lo[live], hi[live], total, 1.0)
        return
    for r in np.flatnonzero(lo >= hi):
        row = block[r]
        for j in range(row.shape[0]):
            _finish(row, j, shift, scale)
    count, k = live.shape[0], 0
    while k + 4 <= count:
        r0, r1, r2, r3 = block[live[k]], block[live[k + 1]], block[live[k + 2]], block[live[k + 3]]
        l0, l1, l2, l3 = lo[live[k]], lo[live[k + 1]], lo[live[k + 2]], lo[live[k + 3]]
        h0, h1, h2, h3 = hi[live[k]], hi[live[k + 1]], hi[live[k + 2]], hi[live[k + 3]]
        for j in range(total.shape[0]):
            a = np.float64(min(max(_finish(r0, j, shift, scale), l0), h0)) - np.float64(l0)
            b = np.float64(min(max(_finish(r1, j, shift, scale), l1), h1)) - np.float64(l1)
            c = np.float64(min(max(_finish(r2, j, shift, scale), l2), h2)) - np.float64(l2)
            d = np.float64(min(max(_finish(r3, j, shift, scale), l3), h3)) - np.float64(l3)
            total[j] += (a + b) + (c + d)
        k += 4
    rest = live[k:]
    for r in rest:
        row = block[r]
        for j in range(row.shape[0]):
            _finish(row, j, shift, scale)
    add_clipped_rows(block, rest, lo[rest], hi[rest], total, 1.0)
