"""Numerics checked against submodlib 0.0.3 and against shifted copies of the data.

- the sparse k-NN kernel means what submodlib's ``mode="sparse"`` means (``s_ij`` kept when ``j``
  is among ``i``'s neighbours or ``i`` among ``j``'s), so FL values and greedy picks agree;
- the euclidean similarity keeps its digits far from the origin (offsets 300 and 3000), where
  ``|x|^2 + |y|^2 - 2 x.y`` in float32 used to lose them;
- CoreSet picks the same items for ``X`` and ``X + 1e4``.
"""

from __future__ import annotations

import numpy as np
import pytest

from raresift.kernels import FeatureKernel, knn_kernel, similarity
from raresift.pool import Labels, Pool
from raresift.strategies.base import SelectionState
from raresift.strategies.coreset import CoreSetStrategy
from raresift.submodular import make_objective, select

ISSUE_SET = [3, 17, 42, 99]


def _submodlib():
    return pytest.importorskip("submodlib", reason="submodlib-py 0.0.3 is not installed")


def _issue_data(offset: float = 0.0) -> np.ndarray:
    return np.random.default_rng(0).normal(size=(200, 5)) + offset


def _exact_euclidean(X: np.ndarray) -> np.ndarray:
    """exp(-|x - y| / d) from explicit differences in float64: no cancellation at all."""
    diff = X[:, None, :] - X[None, :, :]
    return np.exp(-np.sqrt((diff**2).sum(axis=2)) / X.shape[1])


@pytest.mark.parametrize(
    ("ours", "theirs", "offset"),
    [
        ("euclidean", "euclidean", 0.0),
        ("euclidean", "euclidean", 300.0),
        ("cosine_raw", "cosine", 0.0),
    ],
)
def test_sparse_fl_values_match_submodlib(ours, theirs, offset):
    s = _submodlib()
    X = _issue_data(offset)
    reference = s.FacilityLocationFunction(
        n=200, mode="sparse", data=X, metric=theirs, num_neighbors=10
    )
    fl = make_objective("fl", X, metric=ours, kernel="sparse", k=10)
    rng = np.random.default_rng(1)
    sets = [ISSUE_SET] + [rng.choice(200, 8, replace=False).tolist() for _ in range(5)]
    for A in sets:
        assert fl.evaluate(A) == pytest.approx(reference.evaluate(set(A)), rel=1e-5)
    if offset == 0.0 and ours == "euclidean":  # the issue's figures
        assert fl.evaluate(ISSUE_SET) == pytest.approx(40.6159, abs=1e-4)
        rows = make_objective("fl", X, metric=ours, kernel="sparse", k=10, knn_mode="rows")
        assert rows.evaluate(ISSUE_SET) == pytest.approx(28.1239, abs=1e-4)


@pytest.mark.parametrize(("ours", "theirs"), [("euclidean", "euclidean"), ("cosine_raw", "cosine")])
def test_sparse_fl_greedy_matches_submodlib(ours, theirs):
    s = _submodlib()
    X = _issue_data()
    reference = s.FacilityLocationFunction(
        n=200, mode="sparse", data=X, metric=theirs, num_neighbors=10
    )
    picks = reference.maximize(8, optimizer="NaiveGreedy", show_progress=False, verbose=False)
    sel = select("fl", 8, "naive", data=X, metric=ours, kernel="sparse", k=10)
    assert sel.indices.tolist() == [j for j, _ in picks]
    np.testing.assert_allclose(sel.gains, [g for _, g in picks], rtol=1e-5)


def test_union_kernel_is_symmetric_and_rows_kernel_keeps_k_per_row():
    X = _issue_data()
    union = knn_kernel(X, 10, "euclidean").matrix
    rows = knn_kernel(X, 10, "euclidean", mode="rows").matrix
    assert abs(union - union.T).max() == 0
    assert np.all(np.diff(rows.indptr) == 10)
    pattern = (rows + rows.T).astype(bool)  # j among i's neighbours or i among j's
    assert (union.astype(bool) != pattern).nnz == 0


@pytest.mark.parametrize("offset", [300.0, 3000.0])
def test_euclidean_similarity_far_from_the_origin_matches_submodlib(offset):
    s = _submodlib()
    from submodlib.helper import create_kernel

    X = np.random.default_rng(2).normal(size=(60, 4)) + offset
    expected = create_kernel(X, "euclidean", mode="dense")  # sklearn, float64
    np.testing.assert_allclose(expected, _exact_euclidean(X), atol=1e-6)  # the reference is exact
    np.testing.assert_allclose(similarity(X, metric="euclidean"), expected, atol=2e-6)
    rows = FeatureKernel(X, "euclidean").rows(np.arange(60))
    np.testing.assert_allclose(rows, expected, atol=2e-6)
    # submodlib's own C++ kernel (data=X) loses digits out here, so it gets the exact kernel
    reference = s.FacilityLocationFunction(n=60, mode="dense", sijs=expected, separate_rep=False)
    picks = reference.maximize(6, optimizer="NaiveGreedy", show_progress=False, verbose=False)
    sel = select("fl", 6, "naive", data=X, metric="euclidean", kernel="dense")
    assert sel.indices.tolist() == [j for j, _ in picks]
    np.testing.assert_allclose(sel.gains, [g for _, g in picks], rtol=1e-4)


@pytest.mark.parametrize("offset", [300.0, 3000.0])
def test_sparse_euclidean_far_from_the_origin_matches_submodlib(offset):
    s = _submodlib()
    X = _issue_data(offset)
    reference = s.FacilityLocationFunction(
        n=200, mode="sparse", data=X, metric="euclidean", num_neighbors=10
    )
    fl = make_objective("fl", X, metric="euclidean", kernel="sparse", k=10)
    assert fl.evaluate(ISSUE_SET) == pytest.approx(reference.evaluate(set(ISSUE_SET)), rel=1e-5)


@pytest.mark.parametrize("offset", [0.0, 300.0, 3000.0])
def test_issue_pair_far_from_the_origin(offset):
    pair = np.array([[0.1, -0.3], [0.35, -0.3]]) + offset  # distance 0.25 in 2-d
    assert similarity(pair, metric="euclidean")[0, 1] == pytest.approx(np.exp(-0.125), abs=1e-6)
    assert FeatureKernel(pair, "euclidean").rows(np.array([0]))[0, 1] == pytest.approx(
        np.exp(-0.125), abs=1e-6
    )


def test_close_points_of_far_apart_clusters_keep_their_distance():
    """Centring alone cannot save this (the clusters are 6000 apart); float64 does."""
    rng = np.random.default_rng(3)
    X = np.concatenate(
        [rng.normal(size=(20, 3)) * 0.01 - 3000, rng.normal(size=(20, 3)) * 0.01 + 3000]
    )
    np.testing.assert_allclose(similarity(X, metric="euclidean"), _exact_euclidean(X), atol=1e-6)


def _coreset_picks(X: np.ndarray) -> list[int]:
    state = SelectionState(Pool(X), Labels([0, 1, 2], [0, 1, 0]), rng=np.random.default_rng(0))
    strategy = CoreSetStrategy(representation="embedding")
    return strategy.select(state, np.arange(3, len(X)), 25).ids.tolist()


@pytest.mark.parametrize("shift", [1e4, -3e3])
def test_coreset_is_shift_invariant(shift):
    X = np.random.default_rng(0).normal(size=(400, 8)).astype(np.float32)
    picks = _coreset_picks(X)
    assert _coreset_picks(X + np.float32(shift)) == picks
    assert picks != list(range(3, 28))  # not the index-order picks of a collapsed distance


@pytest.mark.parametrize("mode", ["union", "rows"])
def test_duplicate_rows_keep_their_own_diagonal(mode):
    X = np.repeat(_issue_data()[:10], 6, axis=0)  # every row has 5 exact duplicates
    K = knn_kernel(X, 3, "euclidean", mode=mode).matrix
    np.testing.assert_array_equal(K.diagonal(), np.ones(60))
    if mode == "rows":
        assert np.all(np.diff(K.indptr) == 3)


def test_asymmetric_dense_kernel_follows_submodlib():
    """FL reads K[i, j] as how well candidate j represents item i, as submodlib does."""
    s = _submodlib()
    K = np.random.default_rng(4).random((30, 30))
    reference = s.FacilityLocationFunction(n=30, mode="dense", sijs=K, separate_rep=False)
    fl = make_objective("fl", data_kernel=K)
    for A in ([1, 5, 7], [0, 29], list(range(10))):
        assert fl.evaluate(A) == pytest.approx(reference.evaluate(set(A)), rel=1e-5)
    picks = reference.maximize(5, optimizer="NaiveGreedy", show_progress=False, verbose=False)
    assert select("fl", 5, "naive", data_kernel=K).indices.tolist() == [j for j, _ in picks]
