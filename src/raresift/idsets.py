"""Sets of item ids kept as ascending int64 arrays: membership, insertion and removal by
binary search, so bookkeeping scales with the set, never with the whole pool.

>>> s = insert_ids(np.array([2, 9]), np.array([5]))
>>> s.tolist(), contains_ids(s, np.array([5, 6])).tolist()
([2, 5, 9], [True, False])
"""

from __future__ import annotations

import numpy as np


def is_run(values: np.ndarray) -> bool:
    """Whether ``values`` (1-d integers) are consecutive and ascending: ``a, a+1, ..., b``.

    >>> is_run(np.array([4, 5, 6])), is_run(np.array([4, 6])), is_run(np.array([], np.int64))
    (True, False, False)
    """
    n = values.size
    return bool(n and values[-1] - values[0] == n - 1 and np.all(np.diff(values) == 1))


def contains_ids(sorted_ids: np.ndarray, ids: np.ndarray) -> np.ndarray:
    """Boolean mask: which of ``ids`` are in the ascending array ``sorted_ids``."""
    if sorted_ids.size == 0:
        return np.zeros(np.shape(ids), dtype=bool)
    pos = np.minimum(np.searchsorted(sorted_ids, ids), sorted_ids.size - 1)
    return sorted_ids[pos] == ids


def insert_ids(sorted_ids: np.ndarray, ids: np.ndarray) -> np.ndarray:
    """``sorted_ids`` with ``ids`` (unique, none present yet) inserted in order."""
    ids = np.sort(ids)
    return np.insert(sorted_ids, np.searchsorted(sorted_ids, ids), ids)


def remove_ids(sorted_ids: np.ndarray, ids: np.ndarray) -> np.ndarray:
    """``sorted_ids`` without those of ``ids`` it contains."""
    ids = ids[contains_ids(sorted_ids, ids)]
    return np.delete(sorted_ids, np.searchsorted(sorted_ids, ids))
