"""raresift.stopping: exact bounds with known answers, buscarpy's test, simulated coverage."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import hypergeom

from raresift.errors import ValidationError
from raresift.stopping import (
    Stratum,
    bonferroni_upper,
    draw_audit,
    hypergeom_lower,
    hypergeom_upper,
    hypergeometric_p,
    plan_audit,
    positives_left,
    random_labels_to_certify,
    recall_lower_bound,
    strata_from_answers,
    stratified_interval,
    stratified_upper,
)


@pytest.mark.parametrize(("N", "n", "k"), [(1000, 50, 0), (500, 40, 3), (200, 200, 9), (90, 1, 1)])
def test_hypergeom_bounds_are_the_exact_inversion(N, n, k):
    a = 0.05
    up = hypergeom_upper(N, n, k, a)
    assert hypergeom.cdf(k, N, up, n) > a
    if up < N - (n - k):
        assert hypergeom.cdf(k, N, up + 1, n) <= a
    lo = hypergeom_lower(N, n, k, a)
    assert hypergeom.sf(k - 1, N, lo, n) > a
    if lo > k:
        assert hypergeom.sf(k - 1, N, lo - 1, n) <= a
    assert lo <= up


def test_census_gives_the_count_and_empty_sample_the_trivial_bounds():
    census = stratified_interval([Stratum(100, 100, 7)])
    assert (census.low, census.high, census.estimate) == (7, 7, 7.0)
    empty = stratified_interval([Stratum(100, 0)])
    assert (empty.low, empty.high) == (0, 100)


def test_stratified_upper_does_not_grow_with_the_number_of_strata():
    # no positive in 200 picks from 2,800 items: one stratum or five equal ones, about 40
    srs = hypergeom_upper(2800, 200, 0, 0.05)
    five = stratified_upper([Stratum(560, 40, 0)] * 5, 0.05)
    assert srs == 40 and srs <= five <= srs + 3
    assert bonferroni_upper([Stratum(560, 40, 0)] * 5, 0.05) > 5 * srs
    mixed = [Stratum(2000, 100, 0), Stratum(500, 40, 1), Stratum(100, 30, 8), Stratum(40, 30, 20)]
    assert sum(st.positive for st in mixed) < stratified_upper(mixed, 0.05)
    assert stratified_upper(mixed, 0.05) < bonferroni_upper(mixed, 0.05)
    assert stratified_upper(mixed, 0.01) > stratified_upper(mixed, 0.05)


def test_unknown_answers_widen_both_sides():
    answered = stratified_interval([Stratum(1000, 100, 5)])
    unknown = stratified_interval([Stratum(1000, 100, 5, unknown=10)])
    assert unknown.low <= answered.low and unknown.high > answered.high


def test_positives_left_and_recall_bound_carry_the_audit_over():
    strata = [Stratum(900, 30, 0), Stratum(100, 30, 15)]
    left = positives_left(strata, found_before=20, found_now=40)
    total = stratified_interval(strata)
    assert left.high == pytest.approx(20 + total.high - 40)
    assert left.low == max(0.0, 20 + total.low - 40)
    rlb = recall_lower_bound(strata, 20, 40)
    assert 0 < rlb < 40 / (20 + total.estimate)
    assert recall_lower_bound([Stratum(50, 50, 0)], 0, 12) == 1.0
    assert recall_lower_bound([Stratum(50, 50, 0)], 0, 0) == 1.0


def test_draw_audit_is_stratified_seeded_and_checked():
    rng = np.random.default_rng(3)
    ids = np.arange(10, 5010)
    scores = rng.beta(0.3, 5, ids.size)
    a = draw_audit(ids, scores, 200, seed=4)
    b = draw_audit(ids, scores, 200, seed=4)
    assert np.array_equal(a.ids, b.ids)
    assert a.ids.size == 200 and np.unique(a.ids).size == 200 and np.isin(a.ids, ids).all()
    assert sum(a.sizes) == ids.size and sum(a.drawn) == 200 and len(a.sizes) == 5
    # strata are contiguous score ranges, low to high, and picks carry n_h / N_h
    assert all(hi <= lo2 for hi, lo2 in zip(a.score_high, a.score_low[1:], strict=False))
    for h in range(5):
        sel = a.stratum == h
        assert sel.sum() == a.drawn[h]
        assert np.allclose(a.inclusion[sel], a.drawn[h] / a.sizes[h])
    # the thin high-score strata are sampled far more densely than the bulk
    assert a.drawn[-1] / a.sizes[-1] > 3 * a.drawn[0] / a.sizes[0]
    design = a.design()
    assert design["stratum_of"] == a.stratum.tolist()
    one = draw_audit(ids, None, 30, seed=1)
    assert one.sizes == [ids.size] and one.drawn == [30]
    with pytest.raises(ValidationError, match="exceeds the 5000 unlabeled"):
        draw_audit(ids, scores, 5001)
    with pytest.raises(ValidationError, match="finite"):
        draw_audit(ids, np.full(ids.size, np.nan), 10)


def test_strata_from_answers_counts_positives_and_unknowns():
    strata = strata_from_answers([10, 20], np.array([0, 0, 1, 1, 1]), np.array([1, -1, 0, 1, 1]))
    assert strata == [Stratum(10, 2, 1, 1), Stratum(20, 3, 2, 0)]
    with pytest.raises(ValidationError, match="stratum"):
        strata_from_answers([10], np.array([1]), np.array([0]))


def test_simulated_coverage_of_the_stratified_interval_and_recall_bound():
    """A pool of 3,000 with 60 positives, a score that ranks them imperfectly; audits of
    150: the 95 % interval and the recall bound must hold in at least 95 % of 50 audits (the
    bounds are exact and Bonferroni-combined, so they hold more often than that)."""
    rng = np.random.default_rng(0)
    N = 3000
    truth = np.zeros(N, dtype=np.int64)
    truth[rng.choice(N, 60, replace=False)] = 1
    scores = np.clip(0.05 + 0.5 * truth + rng.normal(0, 0.2, N), 0, 1)
    found_mask = (scores > 0.6) & (rng.random(N) < 0.7)  # labeled before the audit
    free = np.flatnonzero(~found_mask)
    found_before = int(truth[found_mask].sum())
    T = int(truth[free].sum())
    hold = below = 0
    for seed in range(50):
        a = draw_audit(free, scores[free], 150, seed=seed)
        strata = strata_from_answers(a.sizes, a.stratum, truth[a.ids])
        found_now = found_before + int(truth[a.ids].sum())
        left = positives_left(strata, found_before, found_now)
        true_left = found_before + T - found_now
        hold += left.low <= true_left <= left.high
        below += recall_lower_bound(strata, found_before, found_now) <= found_now / (
            found_before + T
        )
    assert hold >= 48 and below >= 48


def test_planner_asks_more_for_a_higher_target_and_none_when_impossible():
    sizes, rates = [5000, 500, 100], [0.0005, 0.01, 0.3]
    low = plan_audit(sizes, rates, found_before=400, found_now=400, target=0.8)
    high = plan_audit(sizes, rates, found_before=400, found_now=400, target=0.9)
    assert 0 < low < high <= sum(sizes)
    assert plan_audit([1000], [0.5], 10, 10) is None  # 500 left, 10 found: no audit certifies
    assert plan_audit([100], [0.0], 10, 10, target=0.5) < 100


def test_random_labels_to_certify_matches_the_issue():
    # 900 found, 0.9 target: about 2.9 thousand random labels over 10^5, 2.9 million over 10^8
    assert 2_800 < random_labels_to_certify(900, 10**5) < 3_000
    assert 2_800_000 < random_labels_to_certify(900, 10**8) < 3_000_000
    # the count agrees with the test itself: n random negatives reject H0, n - 1 do not
    n = random_labels_to_certify(90, 4000)
    labels = np.r_[np.ones(90, dtype=int), np.zeros(n, dtype=int)]
    assert hypergeometric_p(labels, 90 + 4000, 0.9) <= 0.05
    labels = np.r_[np.ones(90, dtype=int), np.zeros(n - 1, dtype=int)]
    assert hypergeometric_p(labels, 90 + 4000, 0.9) > 0.05


def test_hypergeometric_p_equals_buscarpy_calculate_h0():
    buscarpy = pytest.importorskip("buscarpy", reason="buscarpy==0.0.2 (dev extra)")
    checked = 0
    cases = [(2000, 0.05, 10), (3000, 0.01, 5), (800, 0.1, 3)]
    for seed, (N, prevalence, bias) in enumerate(cases):
        df = buscarpy.generate_dataset(N=N, prevalence=prevalence, bias=bias, random_seed=seed)
        labels = df["relevant"].to_numpy()
        for screened in (N // 10, N // 3, N // 2, N):
            for target in (0.8, 0.9, 0.95):
                ours = hypergeometric_p(labels[:screened], N, target)
                theirs = buscarpy.calculate_h0(labels[:screened], N, recall_target=target)
                if np.isnan(theirs):  # an urn where H0 is impossible: buscarpy's NaN, our 0
                    assert ours == 0.0
                else:
                    assert ours == pytest.approx(float(theirs), rel=1e-12, abs=1e-300)
                    checked += 1
    assert checked >= 20
