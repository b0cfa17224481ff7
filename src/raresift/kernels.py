"""Similarity kernels for the submodular engine: dense, rectangular, on-the-fly and sparse k-NN.

Metrics (``metric=``):

- ``"cosine"`` (the default): the *shifted* cosine ``(s + 1) / 2`` with ``s = x.y / (|x||y|)``,
  values in [0, 1]. This is what SIMILAR ran (DISTIL shifts every kernel before handing it to
  submodlib).
- ``"cosine_raw"``: the plain cosine in [-1, 1]; what submodlib's own ``metric="cosine"`` computes.
- ``"euclidean"``: ``exp(-|x - y|_2 / d)`` with ``d`` the number of features (distance, not
  squared).
- ``"dot"``: ``x.y``.

A cosine with a zero-norm vector is 0 (0.5 once shifted). Kernels are float32 and built in row
blocks, so building an ``n x m`` kernel never needs more than the output plus one block. Euclidean
distances are computed around the data's mean row (:func:`row_centre`), so shifting the data far
from the origin changes nothing; :func:`similarity` and :class:`FeatureKernel` also compute them in
float64 (close points far out would otherwise lose every digit), the k-NN search in float32.

Three ways to hold the ``n x n`` similarity of the candidates, all with the same small interface
(``n``, ``rows(idx)``, ``diagonal()``, ``column_sums()``, ``restrict(idx)``):

- :class:`DenseKernel`: a precomputed float32 matrix (FL-type objectives with naive greedy want
  this);
- :class:`FeatureKernel`: computes the rows it is asked for from the embeddings, never stores
  ``n x n`` (graph cut and log-determinant only ever need the rows of the chosen items);
- :class:`SparseKernel`: the ``k`` nearest neighbours of each item, found by
  :mod:`raresift.index` (exact by default). By default ``s_ij`` is kept when either item is
  among the other's ``k`` nearest, as in submodlib; every other similarity counts as **0**.
  Facility location starts its running maxima at 0, so a missing similarity never covers
  anything: FL on the sparse kernel is FL on the dense kernel with the non-neighbour entries
  set to 0 (graph cut likewise sums only the stored entries).

>>> import numpy as np
>>> X = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]], dtype=np.float32)
>>> [round(float(v), 3) for v in similarity(X, metric="cosine_raw")[0]]
[1.0, 0.0, 0.707]
>>> [round(float(v), 3) for v in similarity(X[:1], X, metric="cosine")[0]]
[1.0, 0.5, 0.854]
>>> knn_kernel(X, k=2, metric="cosine_raw").matrix.nnz  # 2 per row, plus the mirrored (2, 1)
7
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import numpy as np
import scipy.sparse as sp

from raresift.errors import ValidationError
from raresift.params import positive_int
from raresift.pool import check_finite, check_matrix

log = logging.getLogger("raresift")

METRICS = ("cosine", "cosine_raw", "euclidean", "dot")
DEFAULT_METRIC = "cosine"
_BLOCK_ELEMENTS = 1 << 24  # float32 entries per block (64 MB)
#: Metrics that finish a dot product ``v`` as ``(v + shift) * scale``: ``{metric: (shift, scale)}``.
AFFINE = {"cosine": (1.0, 0.5), "cosine_raw": (0.0, 1.0), "dot": (0.0, 1.0)}


def check_metric(metric: str) -> str:
    """Return ``metric`` if known, else raise :class:`ValidationError` listing the choices."""
    if metric not in METRICS:
        raise ValidationError(f"unknown metric {metric!r}; choose one of: {', '.join(METRICS)}")
    return metric


def _prepare(
    X: np.ndarray, metric: str, centre: np.ndarray | None = None, dtype=np.float32
) -> tuple[np.ndarray, np.ndarray | None]:
    """Return rows ready for a dot product, plus squared norms for euclidean.

    Euclidean rows are shifted by ``centre`` first (distances do not change): far from the
    origin, ``|x|^2 + |y|^2 - 2 x.y`` would otherwise cancel away every significant digit.
    """
    if metric == "euclidean":
        return centred_rows(X, np.zeros(X.shape[1]) if centre is None else centre, dtype)
    X = np.ascontiguousarray(X, dtype=np.float32)
    if metric in ("cosine", "cosine_raw"):
        norms = np.linalg.norm(X, axis=1, keepdims=True)
        return X / np.where(norms > 0, norms, 1).astype(np.float32), None
    return X, None


def row_centre(X: np.ndarray) -> np.ndarray:
    """The mean row of ``X`` in float64 (read in blocks), the shift that keeps Euclidean
    distances precise far from the origin.

    >>> row_centre(np.array([[1e4, 0.0], [1e4 + 2, 2.0]], dtype=np.float32)).tolist()
    [10001.0, 1.0]
    """
    total = np.zeros(X.shape[1], dtype=np.float64)
    block = max(1, _BLOCK_ELEMENTS // max(X.shape[1], 1))
    for start in range(0, X.shape[0], block):
        total += np.asarray(X[start : start + block]).sum(axis=0, dtype=np.float64)
    return total / max(X.shape[0], 1)


def centred_rows(X: Any, centre: np.ndarray, dtype=np.float32) -> tuple[np.ndarray, np.ndarray]:
    """``X - centre`` (subtracted in float64, returned as ``dtype``) and its squared row norms:
    the inputs of ``|x|^2 + |y|^2 - 2 x.y`` that stay precise however far the data lies from
    the origin (shift every array by the same ``centre``, e.g. :func:`row_centre` of the data).

    >>> rows, sq = centred_rows(np.array([[1e4, 1e4 + 3.0]], dtype=np.float32), np.full(2, 1e4))
    >>> rows.tolist(), sq.tolist()
    ([[0.0, 3.0]], [9.0])
    """
    rows = np.asarray(X, dtype=np.float64) - centre
    rows = np.ascontiguousarray(rows, dtype=dtype)
    return rows, np.einsum("ij,ij->i", rows, rows)


def squared_distances(X: Any, Y: Any, centre: np.ndarray, dtype=np.float64) -> np.ndarray:
    """``(n, m)`` squared Euclidean distances between the rows of ``X`` and ``Y``, computed around
    ``centre`` (e.g. :func:`row_centre` of the data), so a common shift of the data changes
    nothing; clipped at 0 against rounding.

    >>> X = np.array([[1e4, 1e4], [1e4 + 3, 1e4 + 4]], dtype=np.float32)
    >>> squared_distances(X, X[1:], row_centre(X)).ravel().tolist()
    [25.0, 0.0]
    """
    xs, sq_x = centred_rows(X, centre, dtype)
    ys, sq_y = centred_rows(Y, centre, dtype)
    d2 = xs @ ys.T
    d2 *= -2.0
    d2 += sq_x[:, None]
    d2 += sq_y[None, :]
    return np.maximum(d2, 0.0, out=d2)


def _finish(dots: np.ndarray, metric: str, dim: int, sq_x=None, sq_y=None) -> np.ndarray:
    """Turn a block of dot products into similarities, in place."""
    if metric in AFFINE:
        shift, scale = AFFINE[metric]
        if shift:
            dots += shift
        if scale != 1:
            dots *= scale
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
    on_block: Callable[[int, int, np.ndarray, float, float], None] | None = None,
) -> np.ndarray:
    """Dense float32 similarity matrix ``S[i, j] = s(X[i], Y[j])`` (``Y`` defaults to ``X``).

    Built in row blocks of about 64 MB (big enough that the sgemm of each block runs at full
    speed, small enough to stay in a large last-level cache); pass ``out`` (e.g. a memmap) to fill
    an existing array. With ``on_block``, the finishing of each block is handed to it, so that a
    reduction over the kernel is fused with it in one pass while the block is still in cache:
    ``on_block(start, stop, rows, shift, scale)`` gets ``S[start:stop]`` as raw dot products and
    must finish it in place, ``rows = (rows + shift) * scale`` (float32; ``AFFINE``); a euclidean
    block comes finished, with ``(0.0, 1.0)``.
    """
    check_metric(metric)
    X = check_matrix(X, "X", allow_empty=True)
    same = Y is None
    Y = X if same else check_matrix(Y, "Y", dim=X.shape[1], allow_empty=True)
    euclidean = metric == "euclidean"
    centre = row_centre(X) if euclidean else None
    dtype = np.float64 if euclidean else np.float32  # distances between close, far-out points
    xs, sq_x = _prepare(X, metric, centre, dtype)
    ys, sq_y = (xs, sq_x) if same else _prepare(Y, metric, centre, dtype)
    n, m = xs.shape[0], ys.shape[0]
    if out is None:
        out = np.empty((n, m), dtype=np.float32)
    block = max(1, _BLOCK_ELEMENTS // max(m, 1) // (2 if euclidean else 1))
    for start in range(0, n, block):
        stop = min(n, start + block)
        dots = np.matmul(xs[start:stop], ys.T, out=None if euclidean else out[start:stop])
        if on_block is not None and not euclidean:
            on_block(start, stop, dots, *(np.float32(v) for v in AFFINE[metric]))
            continue
        dots = _finish(dots, metric, X.shape[1], _sl(sq_x, start, stop), sq_y)
        if euclidean:  # float64 block; the other metrics were finished in place in ``out``
            out[start:stop] = dots
        if same and metric == "euclidean":  # exact 1 on the diagonal despite float32 cancellation
            rows = np.arange(start, stop)
            out[rows, rows] = 1.0
        if on_block is not None:
            on_block(start, stop, out[start:stop], np.float32(0.0), np.float32(1.0))
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


def is_symmetric(matrix: Any, tile: int = 2048) -> bool:
    """Whether a square dense or sparse matrix equals its transpose up to float32 rounding
    (dense: compared in tiles, nothing the size of the matrix is copied).

    >>> is_symmetric(np.array([[1.0, 2.0], [2.0, 1.0]])), is_symmetric(np.triu(np.ones((3, 3))))
    (True, False)
    """
    if sp.issparse(matrix):
        diff = abs(matrix - matrix.T)
        scale = abs(matrix).max() if matrix.nnz else 0.0
        return diff.nnz == 0 or diff.max() <= 1e-6 * max(1.0, scale)
    n = matrix.shape[0]
    for lo in range(0, n, tile):
        for lo2 in range(lo, n, tile):
            a = matrix[lo : lo + tile, lo2 : lo2 + tile]
            b = matrix[lo2 : lo2 + tile, lo : lo + tile]
            if not np.allclose(a, b.T, rtol=1e-5, atol=1e-6):
                return False
    return True


class DenseKernel:
    """A precomputed square similarity matrix over the candidates (float32).

    ``matrix[i, j]`` is how well candidate ``j`` represents item ``i`` (submodlib's convention;
    it matters only for an asymmetric matrix, which facility location accepts and graph cut and
    log-determinants refuse). ``check=False`` skips the finiteness and symmetry checks of a
    matrix known to be a symmetric similarity.
    """

    def __init__(self, matrix: Any, check: bool = True):
        matrix = np.asarray(matrix)
        if matrix.ndim != 2 or matrix.shape[0] != matrix.shape[1]:
            raise ValidationError(f"a data kernel must be square n x n, got shape {matrix.shape}")
        if check:
            check_finite(matrix, "the data kernel")
        self.matrix = np.ascontiguousarray(matrix, dtype=np.float32)
        self.symmetric = is_symmetric(self.matrix) if check else True
        if not self.symmetric:
            log.info("the data kernel is not symmetric; matrix[i, j] is read as s(i, j)")

    def columns(self, idx: np.ndarray) -> np.ndarray:
        """``matrix[:, idx].T``: how well each of candidates ``idx`` represents every item."""
        return self.matrix[idx] if self.symmetric else np.ascontiguousarray(self.matrix[:, idx].T)

    @property
    def n(self) -> int:
        return self.matrix.shape[0]

    def rows(self, idx: np.ndarray) -> np.ndarray:
        return self.matrix[idx]

    def diagonal(self) -> np.ndarray:
        return np.diagonal(self.matrix).astype(np.float64)

    def nonnegative(self) -> bool:
        """Whether no similarity is negative."""
        return bool(self.matrix.size == 0 or self.matrix.min() >= 0)

    def column_sums(self) -> np.ndarray:
        return self.matrix.sum(axis=0, dtype=np.float64)

    def restrict(self, idx: np.ndarray) -> DenseKernel:
        out = DenseKernel(self.matrix[np.ix_(idx, idx)], check=False)
        out.symmetric = self.symmetric
        return out


class FeatureKernel:
    """The candidates' similarity computed from their embeddings on demand (no ``n x n`` storage).
    Symmetric by construction.

    >>> import numpy as np
    >>> K = FeatureKernel(np.eye(3, dtype=np.float32), metric="dot")
    >>> K.rows(np.array([1])).tolist(), K.column_sums().tolist()
    ([[0.0, 1.0, 0.0]], [1.0, 1.0, 1.0])
    """

    symmetric = True

    def __init__(self, X: Any, metric: str = DEFAULT_METRIC):
        self.metric = check_metric(metric)
        self.X = check_matrix(X, "data")
        euclidean = metric == "euclidean"
        self._prepared, self._sq = _prepare(
            self.X,
            metric,
            row_centre(self.X) if euclidean else None,
            np.float64 if euclidean else np.float32,
        )

    @property
    def n(self) -> int:
        return self.X.shape[0]

    def rows(self, idx: np.ndarray) -> np.ndarray:
        idx = np.asarray(idx)
        # (n x d) @ (d x r) is a fast GEMM even for r = 1, unlike (1 x d) @ (d x n)
        dots = np.ascontiguousarray((self._prepared @ self._prepared[idx].T).T)
        sq_x = None if self._sq is None else self._sq[idx]
        out = _finish(dots, self.metric, self.X.shape[1], sq_x, self._sq).astype(
            np.float32, copy=False
        )
        if self.metric == "euclidean":
            out[np.arange(idx.size), idx] = 1.0
        return out

    def diagonal(self) -> np.ndarray:
        return _self_similarity(self.X, self.metric).astype(np.float64)

    def nonnegative(self) -> bool:
        """Whether no similarity can be negative: always for the shifted cosine and euclidean;
        for the raw cosine and dot when no feature is negative (a sufficient test, O(n d): the
        exact one would cost the n x n similarities this kernel never builds)."""
        return self.metric in ("cosine", "euclidean") or bool(np.all(self.X >= 0))

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
    """A k-nearest-neighbour similarity graph (scipy CSR, float32): ``matrix[i, j] = s_ij`` for the
    pairs :func:`knn_kernel` kept, every other entry 0."""

    def __init__(self, matrix: Any):
        if not sp.issparse(matrix) or matrix.shape[0] != matrix.shape[1]:
            raise ValidationError("a sparse kernel must be a square scipy.sparse matrix")
        self.matrix = sp.csr_matrix(matrix, dtype=np.float32)
        if not np.all(np.isfinite(self.matrix.data)):
            raise ValidationError("the sparse kernel contains NaN or infinite values")
        self._transposed: sp.csr_matrix | None = None
        self._symmetric: bool | None = None

    @property
    def symmetric(self) -> bool:
        """Whether ``s_ij == s_ji`` for every pair (the ``"union"`` k-NN mode guarantees it)."""
        if self._symmetric is None:
            self._symmetric = is_symmetric(self.matrix)
        return self._symmetric

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

    def nonnegative(self) -> bool:
        """Whether no stored similarity is negative (missing ones are 0)."""
        return bool(self.matrix.nnz == 0 or self.matrix.data.min() >= 0)

    def column_sums(self) -> np.ndarray:
        return np.asarray(self.matrix.sum(axis=0, dtype=np.float64)).ravel()

    def restrict(self, idx: np.ndarray) -> SparseKernel:
        return SparseKernel(self.matrix[idx][:, idx])


KNN_MODES = ("union", "rows")


def knn_kernel(
    X: Any,
    k: int,
    metric: str = DEFAULT_METRIC,
    factory: str = "Flat",
    mode: str = "union",
) -> SparseKernel:
    """k-nearest-neighbour kernel over the rows of ``X``; see :func:`neighbour_graph` for ``mode``.

    ``mode="union"`` (default) keeps ``s_ij`` when ``j`` is among ``i``'s ``k`` nearest items *or*
    ``i`` among ``j``'s: a symmetric kernel, what submodlib's ``mode="sparse"`` computes, so FL
    values match it. ``mode="rows"`` keeps exactly each row's ``k`` nearest (not symmetric).
    SIMILAR's experiments used dense kernels; the sparse kernel is raresift's route to large pools.
    Every row keeps its own similarity ``s_ii``, duplicates or not; ``k`` larger than the
    number of items raises.

    The search is raresift's one k-NN path, :mod:`raresift.index`, over the rows prepared as
    :func:`similarity` prepares them (unit rows for the cosines, rows centred on their mean for
    euclidean), so the kept values are the dense kernel's. ``factory="Flat"`` (default) is
    exact: :func:`raresift.index.flat_search`, one blocked brute-force pass, no index object.
    Other Faiss factory strings (``"HNSW32"``, ``"IVF1024,Flat"``) build a
    :class:`~raresift.index.NeighborIndex` over the rows and trade exactness for speed on very
    large pools.

    >>> X = np.array([[0.0], [1.0], [3.0], [7.0]], dtype=np.float32)
    >>> (knn_kernel(X, 2, "euclidean").matrix.toarray() > 0).sum(axis=1).tolist()
    [2, 3, 3, 2]
    >>> (knn_kernel(X, 2, "euclidean", mode="rows").matrix.toarray() > 0).sum(axis=1).tolist()
    [2, 2, 2, 2]
    """
    from raresift.index import NeighborIndex, flat_search  # Faiss loads with the first k-NN kernel

    check_metric(metric)
    X = check_matrix(X, "data")
    n = X.shape[0]
    k = positive_int(k, "k")
    if k > n:
        raise ValidationError(
            f"k = {k} neighbours per item, but there are only {n} items; use k <= {n} "
            "(k = n is the dense kernel)"
        )
    if mode not in KNN_MODES:
        raise ValidationError(f"unknown k-NN mode {mode!r}; choose one of: {', '.join(KNN_MODES)}")
    euclidean = metric == "euclidean"
    xs, _ = _prepare(X, metric, row_centre(X) if euclidean else None)
    searched = "euclidean" if euclidean else "dot"  # the prepared rows' own metric
    if factory == "Flat":
        nbrs, scores = flat_search(xs, xs, k, searched)
    else:
        index = NeighborIndex(
            factory, train_size=n, chunk_size=n, progress=False, metric=searched
        ).fit(xs)
        nbrs, scores = index.search(xs, k)
    values = _neighbour_similarities(scores, metric, X.shape[1])
    del xs, scores
    log.debug("built %s k-NN kernel: n=%d k=%d (%s)", metric, n, k, factory)
    kernel = SparseKernel(neighbour_graph(values, nbrs, _self_similarity(X, metric), mode))
    if mode == "union":  # mirrored entry for entry: its own transpose, exactly
        kernel._symmetric = True
        kernel._transposed = kernel.matrix
    return kernel


def _neighbour_similarities(scores: np.ndarray, metric: str, dim: int) -> np.ndarray:
    """Similarities from k-NN search scores (in place): inner products of the prepared rows
    (cosines, dot), or minus squared distances (euclidean)."""
    if metric == "euclidean":
        np.negative(scores, out=scores)  # squared distances
        np.maximum(scores, 0, out=scores)
        np.sqrt(scores, out=scores)
        scores *= -1.0 / dim
        np.exp(scores, out=scores)
    elif metric == "cosine":
        scores += 1
        scores *= 0.5
    return scores


def neighbour_graph(
    values: np.ndarray, nbrs: np.ndarray, self_similarity: np.ndarray, mode: str = "union"
) -> sp.csr_matrix:
    """The sparse ``n x n`` kernel of a k-NN search: ``nbrs[i]`` (ids, -1 for none found) and
    ``values[i]`` (their similarities to ``i``), both ``(n, k)``.

    Row ``i`` always holds ``s_ii = self_similarity[i]``: where the search returned ``k`` other
    items instead (duplicates of ``i``), ``i`` replaces its least similar neighbour. ``mode``:

    - ``"union"``: ``s_ij`` is kept when ``j`` is among ``i``'s neighbours or ``i`` among ``j``'s
      (symmetric; submodlib's ``mode="sparse"``);
    - ``"rows"``: row ``i`` holds exactly its own neighbours.

    >>> nbrs = np.array([[1, 2], [1, 0], [2, 1]])
    >>> values = np.array([[0.75, 0.5], [1.0, 0.75], [1.0, 0.25]], dtype=np.float32)
    >>> neighbour_graph(values, nbrs, np.ones(3), "rows").toarray().tolist()
    [[1.0, 0.75, 0.0], [0.75, 1.0, 0.0], [0.0, 0.25, 1.0]]
    >>> neighbour_graph(values, nbrs, np.ones(3)).toarray()[1].tolist()
    [0.75, 1.0, 0.25]
    """
    if mode not in KNN_MODES:
        raise ValidationError(f"unknown k-NN mode {mode!r}; choose one of: {', '.join(KNN_MODES)}")
    n = nbrs.shape[0]
    index = np.int32 if n * max(nbrs.shape[1], 1) * 2 < 2**31 else np.int64
    nbrs = nbrs.astype(index, copy=True)
    values = values.astype(np.float32, copy=True)
    rows = np.arange(n, dtype=index)
    is_self = nbrs == rows[:, None]
    lacking = ~is_self.any(axis=1)
    if lacking.any():  # put i where its weakest neighbour (or an empty slot) was
        ranked = np.where(nbrs[lacking] >= 0, values[lacking], -np.inf)
        slot = np.argmin(ranked, axis=1)
        nbrs[lacking, slot] = rows[lacking]
        is_self[lacking, slot] = True
    values[is_self] = np.broadcast_to(self_similarity[:, None], is_self.shape)[is_self]
    del is_self
    valid = nbrs >= 0  # approximate Faiss indexes may return fewer than k neighbours
    found = sp.csr_matrix(
        (values[valid], nbrs[valid], np.concatenate([[0], np.cumsum(valid.sum(axis=1))])),
        shape=(n, n),
    )
    del nbrs, values, valid
    if mode == "rows":
        found.sum_duplicates()
        return found
    return _union(found)


def _union(found: sp.csr_matrix) -> sp.csr_matrix:
    """The symmetric union of a k-NN graph (row ``i`` of ``found`` holds what ``i``'s search
    found): ``s_ij`` wherever ``i`` found ``j`` or ``j`` found ``i``, with one value per pair
    {i, j}, the lower row's if both found it.

    Built block by block of rows into arrays sized for the largest possible result (pages
    never written are never resident): each block merges its rows of ``found`` with those of
    its transpose, ``O(block)`` extra memory."""
    n = found.shape[0]
    mirror = found.T.tocsr()  # row i: the rows j that found i, with s_ji
    bound = found.nnz + mirror.nnz
    index = np.int32 if bound < 2**31 else np.int64
    indices = np.empty(bound, dtype=index)
    data = np.empty(bound, dtype=np.float32)
    indptr = np.zeros(n + 1, dtype=index)
    step = max(1, (1 << 20) // max(1, bound // max(n, 1)))
    filled = 0
    for start in range(0, n, step):
        stop = min(n, start + step)
        parts = []
        for matrix, lower_first in ((found, True), (mirror, False)):
            lo, hi = matrix.indptr[start], matrix.indptr[stop]
            row = np.repeat(np.arange(start, stop), np.diff(matrix.indptr[start : stop + 1]))
            col = matrix.indices[lo:hi].astype(np.int64)
            # 0 for the entry that holds the lower row's value: found's where i < j (row i found
            # j), the mirror's where i > j (row j found i)
            later = (row > col) if lower_first else (row < col)
            parts.append(((row - start) * n + col, later, matrix.data[lo:hi]))
        key = np.concatenate([2 * p[0] + p[1] for p in parts])
        value = np.concatenate([p[2] for p in parts])
        order = np.argsort(key, kind="stable")
        pair = key[order] >> 1
        first = np.ones(pair.size, dtype=bool)
        np.not_equal(pair[1:], pair[:-1], out=first[1:])
        pair, kept = pair[first], value[order[first]]
        count = pair.size
        indices[filled : filled + count] = pair % n
        data[filled : filled + count] = kept
        indptr[start + 1 : stop + 1] = filled + np.cumsum(
            np.bincount(pair // n, minlength=stop - start)
        )
        filled += count
    return sp.csr_matrix((data[:filled], indices[:filled], indptr), shape=(n, n), copy=False)


def _sl(arr: np.ndarray | None, start: int, stop: int) -> np.ndarray | None:
    return None if arr is None else arr[start:stop]
