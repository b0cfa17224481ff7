"""Similarity kernels for the submodular engine: dense, rectangular, on-the-fly and sparse k-NN.

Metrics (``metric=``):

- ``"cosine"`` (the default): the *shifted* cosine ``(s + 1) / 2`` with ``s = x.y / (|x||y|)``,
  values in [0, 1]. This is what SIMILAR ran (DISTIL shifts every kernel before handing it to
  submodlib).
- ``"cosine_raw"``: the plain cosine in [-1, 1]; what submodlib's own ``metric="cosine"`` computes.
- ``"euclidean"``: ``exp(-|x - y|_2 / d)`` with ``d`` the number of features (distance, not
  squared).
- ``"dot"``: ``x.y``.

A cosine with a zero-norm vector is 0 (0.5 once shifted). Everything is computed in float32, in row
blocks, so building an ``n x m`` kernel never needs more than the output plus one block.

Three ways to hold the ``n x n`` similarity of the candidates, all with the same small interface
(``n``, ``rows(idx)``, ``diagonal()``, ``column_sums()``, ``restrict(idx)``):

- :class:`DenseKernel`: a precomputed float32 matrix (FL-type objectives with naive greedy want
  this);
- :class:`FeatureKernel`: computes the rows it is asked for from the embeddings, never stores
  ``n x n`` (graph cut and log-determinant only ever need the rows of the chosen items);
- :class:`SparseKernel`: each row keeps its ``k`` most similar items (exact blocked search or
  Faiss), every other similarity counts as **0**. Facility location starts its running maxima at 0,
  so a missing similarity never covers anything: FL on the sparse kernel is FL on the dense kernel
  with the non-neighbour entries set to 0 (graph cut likewise sums only the stored entries).

>>> import numpy as np
>>> X = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]], dtype=np.float32)
>>> [round(float(v), 3) for v in similarity(X, metric="cosine_raw")[0]]
[1.0, 0.0, 0.707]
>>> [round(float(v), 3) for v in similarity(X[:1], X, metric="cosine")[0]]
[1.0, 0.5, 0.854]
>>> knn_kernel(X, k=2, metric="cosine_raw").matrix.nnz
6
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import scipy.sparse as sp

from raresift.errors import ValidationError
from raresift.pool import check_finite, check_matrix

log = logging.getLogger("raresift")

METRICS = ("cosine", "cosine_raw", "euclidean", "dot")
DEFAULT_METRIC = "cosine"
_BLOCK_ELEMENTS = 1 << 24  # float32 entries per block (64 MB)


def check_metric(metric: str) -> str:
    """Return ``metric`` if known, else raise :class:`ValidationError` listing the choices."""
    if metric not in METRICS:
        raise ValidationError(f"unknown metric {metric!r}; choose one of: {', '.join(METRICS)}")
    return metric


def _prepare(X: np.ndarray, metric: str) -> tuple[np.ndarray, np.ndarray | None]:
    """Return float32 rows ready for a dot product, plus squared norms for euclidean."""
    X = np.ascontiguousarray(X, dtype=np.float32)
    if metric in ("cosine", "cosine_raw"):
        norms = np.linalg.norm(X, axis=1, keepdims=True)
        return X / np.where(norms > 0, norms, 1).astype(np.float32), None
    if metric == "euclidean":
        return X, np.einsum("ij,ij->i", X, X)
    return X, None


def _finish(dots: np.ndarray, metric: str, dim: int, sq_x=None, sq_y=None) -> np.ndarray:
    """Turn a block of dot products into similarities, in place."""
    if metric == "cosine":
        dots += 1.0
        dots *= 0.5
    elif metric == "cosine_raw":
        pass
    elif metric == "euclidean":
        dots *= -2.0
        dots += sq_x[:, None]
        dots += sq_y[None, :]
        np.maximum(dots, 0.0, out=dots)
        np.sqrt(dots, out=dots)
        dots *= -1.0 / dim
        np.exp(dots, out=dots)
    return dots


def similarity(
    X: Any,
    Y: Any = None,
    metric: str = DEFAULT_METRIC,
    out: np.ndarray | None = None,
) -> np.ndarray:
    """Dense float32 similarity matrix ``S[i, j] = s(X[i], Y[j])`` (``Y`` defaults to ``X``).

    Built in row blocks; pass ``out`` (e.g. a memmap) to fill an existing array.
    """
    check_metric(metric)
    X = check_matrix(X, "X", allow_empty=True)
    same = Y is None
    Y = X if same else check_matrix(Y, "Y", dim=X.shape[1], allow_empty=True)
    xs, sq_x = _prepare(X, metric)
    ys, sq_y = (xs, sq_x) if same else _prepare(Y, metric)
    n, m = xs.shape[0], ys.shape[0]
    if out is None:
        out = np.empty((n, m), dtype=np.float32)
    block = max(1, _BLOCK_ELEMENTS // max(m, 1))
    for start in range(0, n, block):
        stop = min(n, start + block)
        dots = np.matmul(xs[start:stop], ys.T, out=out[start:stop])
        _finish(dots, metric, X.shape[1], _sl(sq_x, start, stop), sq_y)
        if same and metric == "euclidean":  # exact 1 on the diagonal despite float32 cancellation
            rows = np.arange(start, stop)
            out[rows, rows] = 1.0
    return out


def _self_similarity(X: np.ndarray, metric: str) -> np.ndarray:
    """``s(x_i, x_i)`` for every row, float32."""
    if metric == "euclidean":
        return np.ones(X.shape[0], dtype=np.float32)
    sq = np.einsum("ij,ij->i", X, X, dtype=np.float64)
    if metric == "dot":
        return sq.astype(np.float32)
    raw = (sq > 0).astype(np.float32)
    return (raw + 1) / 2 if metric == "cosine" else raw


class DenseKernel:
    """A precomputed square similarity matrix over the candidates (float32, assumed symmetric)."""

    def __init__(self, matrix: Any, check: bool = True):
        matrix = np.asarray(matrix)
        if matrix.ndim != 2 or matrix.shape[0] != matrix.shape[1]:
            raise ValidationError(f"a data kernel must be square n x n, got shape {matrix.shape}")
        if check:
            check_finite(matrix, "the data kernel")
        self.matrix = np.ascontiguousarray(matrix, dtype=np.float32)

    @property
    def n(self) -> int:
        return self.matrix.shape[0]

    def rows(self, idx: np.ndarray) -> np.ndarray:
        return self.matrix[idx]

    def diagonal(self) -> np.ndarray:
        return np.diagonal(self.matrix).astype(np.float64)

    def column_sums(self) -> np.ndarray:
        return self.matrix.sum(axis=0, dtype=np.float64)

    def restrict(self, idx: np.ndarray) -> DenseKernel:
        return DenseKernel(self.matrix[np.ix_(idx, idx)], check=False)


class FeatureKernel:
    """The candidates' similarity computed from their embeddings on demand (no ``n x n`` storage).

    >>> import numpy as np
    >>> K = FeatureKernel(np.eye(3, dtype=np.float32), metric="dot")
    >>> K.rows(np.array([1])).tolist(), K.column_sums().tolist()
    ([[0.0, 1.0, 0.0]], [1.0, 1.0, 1.0])
    """

    def __init__(self, X: Any, metric: str = DEFAULT_METRIC):
        self.metric = check_metric(metric)
        self.X = check_matrix(X, "data")
        self._prepared, self._sq = _prepare(self.X, metric)

    @property
    def n(self) -> int:
        return self.X.shape[0]

    def rows(self, idx: np.ndarray) -> np.ndarray:
        idx = np.asarray(idx)
        # (n x d) @ (d x r) is a fast GEMM even for r = 1, unlike (1 x d) @ (d x n)
        dots = np.ascontiguousarray((self._prepared @ self._prepared[idx].T).T)
        sq_x = None if self._sq is None else self._sq[idx]
        out = _finish(dots, self.metric, self.X.shape[1], sq_x, self._sq)
        if self.metric == "euclidean":
            out[np.arange(idx.size), idx] = 1.0
        return out

    def diagonal(self) -> np.ndarray:
        return _self_similarity(self.X, self.metric).astype(np.float64)

    def column_sums(self) -> np.ndarray:
        if self.metric == "euclidean":  # no closed form: one blocked pass, nothing stored
            block = max(1, _BLOCK_ELEMENTS // self.n)
            sums = np.empty(self.n, dtype=np.float64)
            for start in range(0, self.n, block):
                rows = np.arange(start, min(self.n, start + block))
                sums[rows] = self.rows(rows).sum(axis=1, dtype=np.float64)
            return sums
        total = self._prepared.sum(axis=0, dtype=np.float64)
        dots = self._prepared.astype(np.float64) @ total
        return (self.n + dots) / 2 if self.metric == "cosine" else dots

    def restrict(self, idx: np.ndarray) -> FeatureKernel:
        return FeatureKernel(self.X[idx], self.metric)


class SparseKernel:
    """A k-nearest-neighbour similarity graph: ``matrix[i, j] = s_ij`` for ``j`` among ``i``'s ``k``
    most similar items, every other entry 0 (scipy CSR, float32)."""

    def __init__(self, matrix: Any):
        if not sp.issparse(matrix) or matrix.shape[0] != matrix.shape[1]:
            raise ValidationError("a sparse kernel must be a square scipy.sparse matrix")
        self.matrix = sp.csr_matrix(matrix, dtype=np.float32)
        if not np.all(np.isfinite(self.matrix.data)):
            raise ValidationError("the sparse kernel contains NaN or infinite values")
        self._transposed: sp.csr_matrix | None = None

    @property
    def n(self) -> int:
        return self.matrix.shape[0]

    @property
    def transposed(self) -> sp.csr_matrix:
        """CSR of the transpose: row ``j`` lists the items ``i`` that keep ``j`` as a neighbour."""
        if self._transposed is None:
            self._transposed = self.matrix.T.tocsr()
        return self._transposed

    def rows(self, idx: np.ndarray) -> np.ndarray:
        return self.matrix[idx].toarray()

    def columns(self, idx: np.ndarray) -> np.ndarray:
        return self.transposed[idx].toarray()

    def diagonal(self) -> np.ndarray:
        return self.matrix.diagonal().astype(np.float64)

    def column_sums(self) -> np.ndarray:
        return np.asarray(self.matrix.sum(axis=0, dtype=np.float64)).ravel()

    def restrict(self, idx: np.ndarray) -> SparseKernel:
        return SparseKernel(self.matrix[idx][:, idx])


def knn_kernel(
    X: Any, k: int, metric: str = DEFAULT_METRIC, backend: str = "faiss", index: str = "Flat"
) -> SparseKernel:
    """k-nearest-neighbour kernel: row ``i`` keeps its ``k`` largest similarities (itself included).

    ``backend="faiss"`` (default) with ``index="Flat"`` is exact: Faiss' blocked brute-force
    search writes straight into one preallocated (n, k) pair of arrays that becomes the CSR
    matrix without another copy. Other factory strings (``"HNSW32"``, ``"IVF1024,Flat"``) trade
    exactness for speed on very large pools. ``backend="torch"`` is the exact blocked
    ``matmul`` + ``topk`` path (memory ``n * k`` plus one block).
    """
    check_metric(metric)
    X = check_matrix(X, "data")
    n = X.shape[0]
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise ValidationError(f"k must be a positive integer, got {k!r}")
    k = int(min(k, n))
    if backend not in ("torch", "faiss"):
        raise ValidationError(f"unknown backend {backend!r}; choose 'torch' or 'faiss'")
    xs, sq = _prepare(X, metric)
    if backend == "faiss":
        values, nbrs = _faiss_search(xs, k, metric, index)
    else:
        values, nbrs = _torch_search(xs, sq, k, metric)
    if metric == "euclidean":  # the item itself is always its nearest neighbour
        values[nbrs == np.arange(n)[:, None]] = 1.0
    if (nbrs >= 0).all():  # exact search: k per row, the arrays are the CSR as they are
        indptr = np.arange(0, n * k + 1, k, dtype=np.int64)
        matrix = sp.csr_matrix((values.ravel(), nbrs.ravel(), indptr), shape=(n, n))
    else:  # approximate Faiss indexes may return fewer than k neighbours
        valid = nbrs >= 0
        indptr = np.concatenate([[0], np.cumsum(valid.sum(axis=1))])
        matrix = sp.csr_matrix((values[valid], nbrs[valid], indptr), shape=(n, n))
        matrix.sum_duplicates()
    log.debug("built %s k-NN kernel: n=%d k=%d (%s %s)", metric, n, k, backend, index)
    return SparseKernel(matrix)


def _torch_search(xs: np.ndarray, sq: np.ndarray | None, k: int, metric: str):
    import torch

    n = xs.shape[0]
    data = torch.from_numpy(xs)
    nbrs = np.empty((n, k), dtype=np.int64)
    values = np.empty((n, k), dtype=np.float32)
    block = max(1, _BLOCK_ELEMENTS // n)
    # Rank by a monotone stand-in and transform only the k kept values: the dot product for
    # the cosine and dot metrics, 2 x.y - |y|^2 (= |x|^2 - squared distance) for euclidean.
    half_sq = None if sq is None else torch.from_numpy(0.5 * sq)
    for start in range(0, n, block):
        stop = min(n, start + block)
        dots = data[start:stop] @ data.T
        if half_sq is not None:
            dots -= half_sq
        top = torch.topk(dots, k, dim=1, sorted=False)
        kept, nbrs[start:stop] = top.values.numpy(), top.indices.numpy()
        if half_sq is not None:
            kept += 0.5 * sq[nbrs[start:stop]]  # back to dot products
        values[start:stop] = _finish_neighbours(
            kept,
            metric,
            xs.shape[1],
            _sl(sq, start, stop),
            sq[nbrs[start:stop]] if sq is not None else None,
        )
    return values, nbrs


def _faiss_search(xs: np.ndarray, k: int, metric: str, index: str):
    """(values, neighbours), each (n, k): similarities of each row's k nearest rows of ``xs``."""
    import faiss

    euclidean = metric == "euclidean"
    n, dim = xs.shape
    if index == "Flat":  # exact, no index object, results written in place
        values = np.empty((n, k), dtype=np.float32)
        nbrs = np.empty((n, k), dtype=np.int64)
        search = faiss.knn_L2sqr if euclidean else faiss.knn_inner_product
        ptr = faiss.swig_ptr
        search(ptr(xs), ptr(xs), dim, n, n, k, ptr(values), ptr(nbrs))
    else:
        faiss_metric = faiss.METRIC_L2 if euclidean else faiss.METRIC_INNER_PRODUCT
        try:
            searcher = faiss.index_factory(dim, index, faiss_metric)
        except RuntimeError as exc:
            raise ValidationError(f"Faiss cannot build index {index!r}: {exc}") from None
        if not searcher.is_trained:
            searcher.train(xs)
        searcher.add(xs)
        values, nbrs = searcher.search(xs, k)
    if euclidean:
        np.maximum(values, 0, out=values)
        np.sqrt(values, out=values)
        values *= -1.0 / dim
        np.exp(values, out=values)
    elif metric == "cosine":
        values += 1
        values *= 0.5
    return values, nbrs


def _finish_neighbours(dots, metric, dim, sq_rows, sq_neighbours):
    """:func:`_finish` for (rows, k) dot products whose columns are each row's own neighbours."""
    if metric != "euclidean":
        return _finish(dots, metric, dim)
    squared = sq_rows[:, None] + sq_neighbours - 2.0 * dots
    return np.exp(-np.sqrt(np.maximum(squared, 0.0)) / dim).astype(np.float32)


def _sl(arr: np.ndarray | None, start: int, stop: int) -> np.ndarray | None:
    return None if arr is None else arr[start:stop]
