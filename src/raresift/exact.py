"""Exact nearest-neighbour search without an index object: the brute-force scan that SEALS'
calibration, the session's exact searches and the sparse k-NN kernels of :mod:`raresift.kernels`
run on. :mod:`raresift.index` (the :class:`~raresift.index.NeighborIndex`) re-exports these names;
import them from there.
"""

from __future__ import annotations

import faiss
import numpy as np
from tqdm.auto import tqdm

from raresift.density import ROW_BLOCK, normalize_rows

INDEX_METRICS = ("cosine", "dot", "euclidean")


def prepare_rows(x: np.ndarray, metric: str = "cosine") -> np.ndarray:
    """Rows as an index of ``metric`` holds and searches them: unit float32 rows for
    ``"cosine"``, the float32 rows as given for ``"dot"`` and ``"euclidean"``.

    >>> prepare_rows(np.array([[3.0, 4.0]]), "dot").tolist(), prepare_rows([[0.0, 2.0]]).tolist()
    ([[3.0, 4.0]], [[0.0, 1.0]])
    """
    if metric == "cosine":
        return normalize_rows(x)
    return np.ascontiguousarray(x, dtype=np.float32)


def _faiss_metric(metric: str) -> int:
    return faiss.METRIC_L2 if metric == "euclidean" else faiss.METRIC_INNER_PRODUCT


def flat_search(
    base: np.ndarray, queries: np.ndarray, k: int, metric: str = "cosine"
) -> tuple[np.ndarray, np.ndarray]:
    """Exact top-``k`` of each query row among the rows of ``base``: one blocked brute-force
    Faiss pass, no index object. Both arrays hold rows as ``metric`` searches them
    (:func:`prepare_rows`); ``k <= len(base)``.

    Returns ``(positions, scores)``, each (m, k), best first; scores are higher-is-closer:
    inner products (``"cosine"``, ``"dot"``) or negative squared L2 distances
    (``"euclidean"``).

    >>> x = np.array([[0.0], [1.0], [3.0]], dtype=np.float32)
    >>> pos, scores = flat_search(x, x[2:], 2, "euclidean")
    >>> pos.tolist(), scores.tolist()
    ([[2, 1]], [[-0.0, -4.0]])
    """
    scores, positions = faiss.knn(queries, base, int(k), _faiss_metric(metric))
    if metric == "euclidean":
        np.negative(scores, out=scores)
    return positions, scores


def exact_search(
    embeddings: np.ndarray,
    queries: np.ndarray,
    k: int,
    metric: str = "cosine",
    progress: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    """Exact top-``k`` of ``queries`` (m, d; rows as ``metric`` searches them, e.g. unit rows
    for cosine) over every row of ``embeddings``.

    Rows are read, prepared (:func:`prepare_rows`) and scanned by :func:`flat_search` in
    :data:`ROW_BLOCK` blocks (memmaps never load whole). Returns ``(positions, scores)``, each
    (m, k), best first.

    >>> x = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]], dtype=np.float32)
    >>> exact_search(x, normalize_rows(x[:1]), 2)[0].tolist()
    [[0, 2]]
    """
    k = int(min(k, embeddings.shape[0]))
    heap = faiss.ResultHeap(queries.shape[0], k, keep_max=True)
    queries = np.ascontiguousarray(queries, dtype=np.float32)
    for lo in tqdm(
        range(0, embeddings.shape[0], ROW_BLOCK),
        desc="exact search",
        unit="block",
        disable=not progress,
    ):
        block = prepare_rows(embeddings[lo : lo + ROW_BLOCK], metric)
        pos, scores = flat_search(block, queries, min(k, block.shape[0]), metric)
        heap.add_result(scores, pos + lo)
    heap.finalize()
    return heap.I, heap.D
