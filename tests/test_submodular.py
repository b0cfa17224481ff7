"""Properties of the twelve objectives and the optimizers, and the errors bad input raises."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from raresift.errors import BudgetError, ConfigError, RaresiftError, ValidationError
from raresift.kernels import similarity
from raresift.submodular import (
    OBJECTIVES,
    make_objective,
    objective_names,
    partition_budgets,
    select,
)

MONOTONE = {"fl", "flvmi", "flqmi", "flcg", "flcmi", "gcmi"}
SETTINGS = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _sets(seed, n, d=4, q=3, p=4):
    rng = np.random.default_rng(seed)
    return (
        rng.normal(size=(n, d)).astype(np.float32),
        rng.normal(size=(q, d)).astype(np.float32),
        rng.normal(size=(p, d)).astype(np.float32),
    )


def _objective(name, seed, n, eta=1.0, nu=1.0, lambda_=1.0, kernel="dense", metric="cosine"):
    X, Q, P = _sets(seed, n)
    return make_objective(
        name, X, query=Q, conditioning=P, eta=eta, nu=nu, lambda_=lambda_, kernel=kernel,
        metric=metric,
    )  # fmt: skip


@SETTINGS
@given(
    name=st.sampled_from(objective_names()),
    seed=st.integers(0, 10_000),
    n=st.integers(6, 18),
    eta=st.floats(0.0, 1.0),
    nu=st.floats(0.0, 1.0),
    lambda_=st.floats(0.5, 2.0),
    kernel=st.sampled_from(["dense", "features", "sparse"]),
)
# indefinite only once the first pick conditions on it (found by a CI-like run)
@example(name="logdetcmi", seed=0, n=6, eta=0.0, nu=1.0, lambda_=0.75, kernel="dense")
def test_every_greedy_gain_is_the_difference_of_values(name, seed, n, eta, nu, lambda_, kernel):
    fn = _objective(name, seed, n, eta, nu, lambda_, kernel if kernel != "sparse" else "dense")
    if kernel == "sparse" and OBJECTIVES[name].family != "logdet":
        X, Q, P = _sets(seed, n)
        fn = make_objective(name, X, query=Q, conditioning=P, eta=eta, nu=nu, lambda_=lambda_,
                            kernel="sparse", k=4)  # fmt: skip
    try:
        gains = fn.gains()
        if not np.any(gains):  # e.g. eta = 0: the objective is 0 everywhere
            with pytest.raises(ValidationError, match="every candidate gains 0"):
                select(fn, min(5, n), "naive")
            return
        sel = select(fn, min(5, n), "naive")
    except ValidationError as exc:
        # e.g. logdetcmi, eta = 0, nu = 1: an indefinite joint kernel, found by the first gains
        # or only once a pick conditions on it
        assert OBJECTIVES[name].family == "logdet" and "indefinite" in str(exc)
        return
    for step, (j, gain) in enumerate(zip(sel.indices, sel.gains, strict=True)):
        before = fn.evaluate(sel.indices[:step])
        after = fn.evaluate(sel.indices[: step + 1])
        assert gain == pytest.approx(after - before, rel=1e-4, abs=1e-5), (step, j)
    assert fn.evaluate([]) == 0.0
    assert sel.value == pytest.approx(fn.evaluate(sel.indices), rel=1e-4, abs=1e-5)


@SETTINGS
@given(
    name=st.sampled_from([n for n, s in OBJECTIVES.items() if s.submodular]),
    seed=st.integers(0, 10_000),
    data=st.data(),
)
def test_submodular_and_monotone_where_they_hold(name, seed, data):
    n = 12
    fn = _objective(name, seed, n, eta=0.8, nu=0.7)  # shifted cosine: non-negative kernel
    order = data.draw(st.permutations(range(n)))
    small, extra, j = order[:2], order[2:5], order[5]
    big = small + extra
    gain_small = fn.evaluate(small + [j]) - fn.evaluate(small)
    gain_big = fn.evaluate(big + [j]) - fn.evaluate(big)
    assert gain_small >= gain_big - 1e-6
    if name in MONOTONE:
        assert gain_big >= -1e-9


@SETTINGS
@given(
    name=st.sampled_from([n for n, s in OBJECTIVES.items() if s.submodular]),
    seed=st.integers(0, 10_000),
    n=st.integers(10, 30),
)
def test_lazy_heap_picks_what_naive_picks(name, seed, n):
    fn = _objective(name, seed, n)
    naive = select(fn, n // 2, "naive")
    fn.all_gains_cheap = False  # force the Minoux heap even where every gain is maintained
    lazy = select(fn, n // 2, "lazy")
    np.testing.assert_allclose(lazy.gains, naive.gains, rtol=1e-6, atol=1e-9)
    tied = np.isclose(naive.gains[:-1], naive.gains[1:], rtol=1e-6, atol=1e-9)
    first_tie = int(np.argmax(tied)) if tied.any() else naive.indices.size
    assert lazy.indices[:first_tie].tolist() == naive.indices[:first_tie].tolist()


@pytest.mark.parametrize("cheap", [True, False])
@pytest.mark.parametrize("name", ["fl", "logdet", "gccg", "flcmi"])
def test_lazier_than_lazy_picks_what_stochastic_picks(name, cheap):
    fn = _objective(name, 5, 200)
    fn.all_gains_cheap = cheap
    stochastic = select(fn, 12, "stochastic", seed=3)
    lazier = select(fn, 12, "lazier", seed=3)
    assert lazier.indices.tolist() == stochastic.indices.tolist()
    np.testing.assert_allclose(lazier.gains, stochastic.gains, rtol=1e-9)
    again = select(fn, 12, "stochastic", seed=3)
    assert again.indices.tolist() == stochastic.indices.tolist()
    other = select(fn, 12, "stochastic", seed=4)
    assert other.indices.tolist() != stochastic.indices.tolist()


def test_stochastic_is_close_to_greedy():
    fn = _objective("fl", 1, 300)
    greedy = select(fn, 10, "naive").value
    assert select(fn, 10, "stochastic", seed=0).value >= 0.9 * greedy


@SETTINGS
@given(
    sizes=st.lists(st.integers(1, 50), min_size=1, max_size=8),
    data=st.data(),
)
def test_partition_budgets_sum_exactly(sizes, data):
    budget = data.draw(st.integers(1, sum(sizes)))
    parts = partition_budgets(sizes, budget)
    assert parts.sum() == budget
    assert np.all(parts <= np.asarray(sizes)) and np.all(parts >= 0)
    assert np.all(np.abs(parts - budget * np.asarray(sizes) / sum(sizes)) < 1)


@pytest.mark.parametrize("name", ["fl", "gc", "logdetcmi", "flqmi"])
def test_partition_trick_selects_budget_from_each_part(name):
    fn = _objective(name, 2, 103)
    sel = select(fn, 20, "lazy", partitions=4, seed=7)
    assert sel.indices.size == 20 == np.unique(sel.indices).size
    again = select(fn, 20, "lazy", partitions=4, seed=7)
    assert again.indices.tolist() == sel.indices.tolist()
    # reproduce the parts: the same seeded permutation, split in four
    parts = np.array_split(np.random.default_rng(7).permutation(103), 4)
    budgets = partition_budgets([p.size for p in parts], 20)
    owner = np.empty(103, dtype=int)
    for k, part in enumerate(parts):
        owner[part] = k
    assert np.bincount(owner[sel.indices], minlength=4).tolist() == budgets.tolist()
    # inside a part, the picks are the greedy picks of the objective restricted to that part
    first = np.sort(parts[0])
    inner = select(fn.restrict(first), int(budgets[0]), "lazy")
    assert sel.indices[: budgets[0]].tolist() == first[inner.indices].tolist()


def test_stop_if_zero_gain_stops_at_saturation():
    X, Q, _ = _sets(0, 40)
    fn = make_objective("flvmi", X, query=Q[:1], metric="cosine_raw", eta=0.2)
    full = select(fn, 39, "naive")
    assert np.any(full.gains == 0)
    stopped = select(fn, 39, "naive", stop_if_zero_gain=True)
    assert 0 < len(stopped) < 39 and np.all(stopped.gains > 0)
    assert stopped.indices.tolist() == full.indices[: len(stopped)].tolist()


def test_stop_if_negative_gain_keeps_small_positive_gains():
    fn = _objective("gc", 0, 30, lambda_=0.6)
    full = select(fn, 29, "naive")
    assert full.gains.min() < 0
    first_negative = int(np.argmax(full.gains < 0))
    stopped = select(fn, 29, "naive", stop_if_negative_gain=True)
    assert stopped.indices.tolist() == full.indices[:first_negative].tolist()
    assert np.all(stopped.gains >= 0)


def test_faiss_flat_knn_index_gives_the_exact_sparse_picks():
    X, _, _ = _sets(8, 150)
    exact = select("fl", 10, data=X, kernel="sparse", k=7)
    flat = select("fl", 10, data=X, kernel="sparse", k=7, knn_index="Flat")
    assert flat.indices.tolist() == exact.indices.tolist()
    dense = select("fl", 10, data=X, kernel="dense")
    assert dense.value > exact.value  # the sparse kernel drops similarities, so it covers less


def test_embeddings_and_precomputed_kernels_give_the_same_picks():
    X, Q, P = _sets(11, 60)
    by_data = select("logdetcmi", 8, data=X, query=Q, conditioning=P, eta=0.5, nu=0.5)
    by_kernel = select(
        "logdetcmi", 8, data_kernel=similarity(X), query_kernel=similarity(X, Q),
        conditioning_kernel=similarity(X, P), query_query_kernel=similarity(Q),
        conditioning_conditioning_kernel=similarity(P), query_conditioning_kernel=similarity(Q, P),
        eta=0.5, nu=0.5,
    )  # fmt: skip
    assert by_data.indices.tolist() == by_kernel.indices.tolist()
    np.testing.assert_allclose(by_data.gains, by_kernel.gains, rtol=1e-5)


def test_scmi_specialises_to_smi_scg_and_plain():
    X, Q, P = _sets(4, 50)
    pick = {}
    for name in ("flcmi", "flvmi", "flcg", "fl"):
        # nu = 0 switches the conditioning off; a huge eta lifts the query cap above every m_A
        sel = select(name, 6, "naive", data=X, query=Q, conditioning=P, nu=0.0, eta=1e4)
        pick[name] = sel.indices.tolist()
    assert pick["flcmi"] == pick["flvmi"] == pick["flcg"] == pick["fl"]
    fl = make_objective("fl", X)
    assert make_objective("flcmi", X, query=Q, conditioning=P, nu=0.0, eta=1e4).evaluate(
        pick["fl"]
    ) == pytest.approx(fl.evaluate(pick["fl"]))


# -- bad input ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name,missing,instead",
    [
        ("flqmi", "query", "'fl'"),
        ("flvmi", "query", "'fl'"),
        ("gcmi", "query", "'gc'"),
        ("logdetmi", "query", "'logdet'"),
        ("flcg", "conditioning", "'fl'"),
        ("gccg", "conditioning", "'gc'"),
        ("logdetcg", "conditioning", "'logdet'"),
        ("flcmi", "conditioning", "'flvmi'"),
        ("flcmi", "query", "'flcg'"),
        ("logdetcmi", "conditioning", "'logdetmi'"),
    ],
)
def test_empty_query_or_conditioning_names_the_objective_to_use(name, missing, instead):
    X, Q, P = _sets(0, 20)
    sides = {"query": Q, "conditioning": P, missing: np.empty((0, X.shape[1]), np.float32)}
    with pytest.raises(ValidationError, match=f"non-empty {missing} set.*{instead}"):
        make_objective(name, X, **sides)
    sides[missing] = None
    with pytest.raises(ValidationError, match=instead):
        make_objective(name, X, **sides)


@pytest.mark.parametrize(
    "name,param", [("logdetmi", "eta"), ("logdetcg", "nu"), ("logdetcmi", "eta")]
)
def test_indefinite_log_det_kernel_raises_naming_the_parameter(name, param):
    X, _, _ = _sets(0, 30)
    side = X[:5]  # query / conditioning items that duplicate candidates
    kwargs = {"eta": 1.0, "nu": 1.0, param: 4.0}
    with pytest.raises(ValidationError, match=rf"{param}=4\.0.*indefinite"):
        select(name, 5, "naive", data=X, query=side, conditioning=side, **kwargs)


def test_bad_inputs_raise_clear_errors():
    X, Q, P = _sets(0, 20)
    bad = X.copy()
    bad[2, 0] = np.inf
    with pytest.raises(ValidationError, match="NaN or infinite"):
        make_objective("fl", bad)
    bad_q = Q.copy()
    bad_q[0, 0] = np.nan
    with pytest.raises(ValidationError, match="query contains NaN"):
        make_objective("flqmi", X, query=bad_q)
    with pytest.raises(ValidationError, match="NaN"):
        make_objective("fl", data_kernel=np.full((3, 3), np.nan))
    with pytest.raises(BudgetError, match="exceeds the 20 candidates"):
        select("fl", 21, data=X)
    with pytest.raises(BudgetError):
        select("fl", 0, data=X)
    with pytest.raises(ConfigError, match="unknown objective"):
        make_objective("facility", X)
    with pytest.raises(ConfigError, match="unknown optimizer"):
        select("fl", 3, "greedyish", data=X)
    with pytest.raises(ValidationError, match="lambda_ must be > 0"):
        make_objective("logdet", X, lambda_=0)
    with pytest.raises(ValidationError, match="eta must be finite and >= 0"):
        make_objective("flqmi", X, query=Q, eta=-1)
    with pytest.raises(ValidationError, match="query has 3 features"):
        make_objective("flqmi", X, query=Q[:, :3])
    with pytest.raises(ValidationError, match="epsilon"):
        select("fl", 3, "stochastic", data=X, epsilon=1.5)
    with pytest.raises(ValidationError, match="partitions"):
        select("fl", 3, data=X, partitions=50)
    with pytest.raises(ValidationError, match="already selected"):
        fn = make_objective("fl", X)
        fn.add(1)
        fn.add(1)
    with pytest.raises(ValidationError, match="not positive semi-definite.*features"):
        make_objective("logdetcg", X, conditioning=P, kernel="sparse", k=3)
    assert issubclass(ValidationError, RaresiftError)


# ------------------------------------------------------------------ what "submodular" decides
def test_submodular_says_whether_stale_gains_bound_the_fresh_ones():
    shifted = {name: _objective(name, 3, 20).submodular for name in objective_names()}
    assert shifted == {name: spec.submodular for name, spec in OBJECTIVES.items()}
    assert not _objective("gc", 3, 20, metric="cosine_raw").submodular  # negative similarities
    assert _objective("gc", 3, 20, metric="cosine_raw", lambda_=0.0).submodular  # modular
    assert _objective("fl", 3, 20, metric="cosine_raw").submodular  # FL clips at 0
    assert _objective("gcmi", 3, 20, metric="cosine_raw").submodular  # modular


def test_lazy_optimizers_run_their_exact_counterparts_where_the_objective_is_not_submodular(
    caplog,
):
    fn = _objective("gc", 0, 30, metric="cosine_raw", kernel="dense")
    fn.all_gains_cheap = False  # as a set function that does not keep its gains current
    naive, stochastic = select(fn, 10, "naive"), select(fn, 10, "stochastic", seed=1)
    with caplog.at_level("INFO", logger="raresift"):
        lazy, lazier = select(fn, 10, "lazy"), select(fn, 10, "lazier", seed=1)
    assert (lazy.optimizer, lazier.optimizer) == ("naive", "stochastic")
    assert lazy.indices.tolist() == naive.indices.tolist()
    assert lazier.indices.tolist() == stochastic.indices.tolist()
    assert "gc is not submodular on this kernel" in lazier.note
    assert "lazier greedy's stale bounds would not be exact" in caplog.text
    fn.submodular = True  # trusting stale bounds here picks other (worse) items
    assert select(fn, 10, "lazy").indices.tolist() != naive.indices.tolist()
    assert select(fn, 10, "lazier", seed=1).indices.tolist() != stochastic.indices.tolist()
    assert select(fn, 10, "lazy").value < naive.value


def test_lazy_names_the_naive_loop_it_runs_for_objectives_that_keep_every_gain():
    fn = _objective("fl", 0, 30)
    assert fn.all_gains_cheap and fn.submodular
    sel = select(fn, 5, "lazy")
    assert (sel.optimizer, sel.note) == ("naive", "")
    assert sel.indices.tolist() == select(fn, 5, "naive").indices.tolist()


@pytest.mark.parametrize("rows", [[], [3], [0, 2, 5], [1, 4, 0, 6, 2, 7, 3]])
def test_compiled_loops_match_numpy(rows):
    from raresift.submodular import loops

    rng = np.random.default_rng(len(rows))
    matrix = rng.normal(size=(8, 11)).astype(np.float32)
    lo = rng.normal(size=8).astype(np.float32)
    hi = (lo + rng.random(8)).astype(np.float32)
    hi[::3] = lo[::3]  # capped at the floor: adds nothing
    rows = np.array(rows, dtype=np.int64)
    total = np.arange(11, dtype=np.float64)
    loops.add_clipped_rows(matrix, rows, lo[rows], hi[rows], total, -1.0)
    terms = np.clip(matrix[rows], lo[rows, None], hi[rows, None]) - lo[rows, None]
    np.testing.assert_allclose(total, np.arange(11) - terms.sum(axis=0), rtol=1e-6, atol=1e-6)

    block, sums = matrix.copy(), np.zeros(11)
    loops.finish_and_sum(block, np.float32(1.0), np.float32(0.5), lo, hi, sums)
    np.testing.assert_array_equal(block, (matrix + np.float32(1.0)) * np.float32(0.5))
    terms = np.clip(block, lo[:, None], hi[:, None]) - lo[:, None]
    np.testing.assert_allclose(sums, terms.sum(axis=0), rtol=1e-6, atol=1e-6)
