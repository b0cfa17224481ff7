"""Kernels: exact values per metric, the three kernel holders agree, k-NN keeps the right
entries."""

from __future__ import annotations

import numpy as np
import pytest

from raresift.errors import ConfigError, ValidationError
from raresift.kernels import (
    METRICS,
    DenseKernel,
    FeatureKernel,
    SparseKernel,
    knn_kernel,
    similarity,
)
from raresift.submodular import make_objective


def _reference(X, Y, metric):
    """Pairwise similarity written out entry by entry."""
    out = np.empty((len(X), len(Y)))
    for i, x in enumerate(X.astype(np.float64)):
        for j, y in enumerate(Y.astype(np.float64)):
            if metric in ("cosine", "cosine_raw"):
                nx, ny = np.linalg.norm(x), np.linalg.norm(y)
                s = 0.0 if nx == 0 or ny == 0 else x @ y / (nx * ny)
                out[i, j] = (s + 1) / 2 if metric == "cosine" else s
            elif metric == "euclidean":
                out[i, j] = np.exp(-np.linalg.norm(x - y) / X.shape[1])
            else:
                out[i, j] = x @ y
    return out


@pytest.fixture
def points():
    rng = np.random.default_rng(3)
    X = rng.normal(size=(30, 5)).astype(np.float32)
    X[4] = 0  # a zero vector: cosine 0, shifted 0.5
    return X


@pytest.mark.parametrize("metric", METRICS)
def test_similarity_matches_definition(points, metric):
    Y = points[:7] * 2 + 1
    expected = _reference(points, points, metric)
    np.testing.assert_allclose(similarity(points, metric=metric), expected,
                               rtol=1e-4, atol=1e-5)  # fmt: skip
    np.testing.assert_allclose(similarity(points, Y, metric), _reference(points, Y, metric),
                               rtol=1e-4, atol=1e-5)  # fmt: skip


def test_shifted_cosine_is_the_default_and_zero_norm_is_half(points):
    S = similarity(points)
    assert S.dtype == np.float32
    assert S.min() >= 0 and S.max() <= 1 + 1e-6
    assert np.allclose(S[4], 0.5)


@pytest.mark.parametrize("metric", METRICS)
def test_feature_kernel_agrees_with_dense(points, metric):
    dense = DenseKernel(similarity(points, metric=metric))
    lazy = FeatureKernel(points, metric)
    idx = np.array([0, 4, 17])
    np.testing.assert_allclose(lazy.rows(idx), dense.rows(idx), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(lazy.diagonal(), dense.diagonal(), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(lazy.column_sums(), dense.column_sums(), rtol=1e-5, atol=1e-4)
    sub = np.array([2, 9, 11])
    np.testing.assert_allclose(lazy.restrict(sub).rows(np.arange(3)),
                               dense.restrict(sub).rows(np.arange(3)), atol=1e-5)  # fmt: skip


@pytest.mark.parametrize("metric", ["cosine", "euclidean", "dot"])
def test_knn_kernel_keeps_each_rows_k_largest(points, metric):
    k = 6
    S = similarity(points, metric=metric)
    K = knn_kernel(points, k, metric, mode="rows").matrix
    assert np.all(np.diff(K.indptr) == k)
    for i in range(len(points)):
        row = K.getrow(i)
        np.testing.assert_allclose(np.sort(row.data), np.sort(S[i])[-k:], rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(row.data, S[i, row.indices], rtol=1e-4, atol=1e-5)


def test_fl_on_sparse_kernel_treats_missing_similarities_as_zero(points):
    k = 5
    sparse = knn_kernel(points, k, "cosine_raw")
    M = sparse.matrix.toarray()  # M[i, j] = s_ij if j is among i's k nearest or i among j's
    fn = make_objective("fl", data_kernel=sparse)
    A = [1, 8, 20]
    expected = np.maximum(M[:, A].max(axis=1), 0).sum()
    assert fn.evaluate(A) == pytest.approx(expected, rel=1e-5)
    for j in A:
        fn.add(j)
    gains = fn.gains()
    cover = np.maximum(M[:, A].max(axis=1), 0)
    brute = np.maximum(M, cover[:, None]).sum(axis=0) - cover.sum()
    brute[A] = 0
    np.testing.assert_allclose(gains, brute, rtol=1e-5, atol=1e-5)


def test_bad_kernel_inputs(points):
    bad = points.copy()
    bad[3, 1] = np.nan
    with pytest.raises(ValidationError, match="NaN"):
        similarity(bad)
    with pytest.raises(ValidationError, match="unknown metric"):
        similarity(points, metric="manhattan")
    with pytest.raises(ValidationError, match="k must be a positive integer"):
        knn_kernel(points, 0)
    with pytest.raises(ValidationError, match="square"):
        DenseKernel(np.ones((3, 4)))
    with pytest.raises(ValidationError, match="NaN"):
        DenseKernel(np.full((2, 2), np.inf))
    with pytest.raises(ValidationError, match="square scipy.sparse"):
        SparseKernel(np.eye(3))
    with pytest.raises(ConfigError, match="Faiss cannot build"):
        knn_kernel(points, 3, factory="NoSuchIndex")
