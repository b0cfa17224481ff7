"""Unit vectors and mean cosine similarity to a set of pool items ("density"); no Faiss.

Cosine similarity is a dot product of unit vectors, so the mean similarity of a unit vector ``z``
to a set ``P`` is ``z . s / |P|`` with ``s`` the sum of the unit vectors of ``P``
(:func:`unit_vector_sum`). Candidate pools keep ``s`` current as members join and leave, so
information density never needs a |P| x |P| similarity matrix.

>>> from raresift.pool import Pool
>>> pool = Pool(np.array([[1.0, 0.0], [0.0, 2.0], [1.0, 1.0]]))
>>> mean_cosine(pool, np.array([0, 1]), unit_vector_sum(pool, np.array([0, 1])), 2).tolist()
[0.5, 0.5]
"""

from __future__ import annotations

import numpy as np
from tqdm.auto import tqdm

from raresift.pool import Pool

ROW_BLOCK = 65_536  # pool rows read at a time by blockwise passes over embeddings


def normalize_rows(x: np.ndarray) -> np.ndarray:
    """Float32 copy of ``x`` with unit-length rows (all-zero rows stay zero).

    >>> normalize_rows(np.array([[3.0, 4.0]])).tolist()
    [[0.6000000238418579, 0.800000011920929]]
    """
    x = np.array(x, dtype=np.float32, copy=True)
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    np.divide(x, norms, out=x, where=norms > 0)
    return x


def unit_vector_sum(pool: Pool, ids: np.ndarray, progress: bool = False) -> np.ndarray:
    """Sum of the L2-normalised embeddings of pool items ``ids`` (float64, read in blocks).

    ``z . unit_vector_sum(pool, P) / len(P)`` is the mean cosine similarity of a unit vector z
    to the set P.
    """
    total = np.zeros(pool.dim, dtype=np.float64)
    for lo in tqdm(
        range(0, ids.size, ROW_BLOCK), desc="unit-vector sum", unit="block", disable=not progress
    ):
        rows = normalize_rows(pool.embeddings_of(ids[lo : lo + ROW_BLOCK]))
        total += rows.sum(axis=0, dtype=np.float64)
    return total


def mean_cosine(pool: Pool, ids: np.ndarray, total: np.ndarray, count: int) -> np.ndarray:
    """Mean cosine similarity of pool items ``ids`` to a set of ``count`` items whose unit
    vectors sum to ``total`` (rows read in blocks, so 10^8 ids never gather at once)."""
    mean = total / count
    out = np.empty(ids.size)
    for lo in range(0, ids.size, ROW_BLOCK):
        rows = normalize_rows(pool.embeddings_of(ids[lo : lo + ROW_BLOCK]))
        out[lo : lo + rows.shape[0]] = rows @ mean
    return out
