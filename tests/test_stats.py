import numpy as np
import pytest
from scipy import stats as sps

from raresift.errors import ValidationError
from raresift.simulate import metrics
from raresift.simulate.stats import labels_to_target, penalty_matrix, read_table, summarize


def _rows(curves):
    """curves: {strategy: [[acc per round] per seed]} -> tidy rows, 10 labels per round."""
    return [
        {"strategy": s, "seed": k, "round": r, "n_labeled": 10 * (r + 1), "accuracy": a}
        for s, per_seed in curves.items()
        for k, values in enumerate(per_seed)
        for r, a in enumerate(values)
    ]


def test_penalty_matrix_hand_made_case():
    # 3 seeds, round 0 + 2 selection rounds.
    # round 1: A - B = (0.10, 0.12, 0.11) clearly > 0; A - C = (0.05, -0.05, 0.01) not significant
    # round 2: A - B = (0.02, -0.01, 0.00) not significant; C - A = (0.20, 0.21, 0.19) significant
    rows = _rows({
        "A": [[0.3, 0.60, 0.70], [0.3, 0.62, 0.71], [0.3, 0.61, 0.72]],
        "B": [[0.3, 0.50, 0.68], [0.3, 0.50, 0.72], [0.3, 0.50, 0.72]],
        "C": [[0.3, 0.55, 0.90], [0.3, 0.67, 0.92], [0.3, 0.60, 0.91]],
    })  # fmt: skip
    labels, matrix = penalty_matrix(rows, "accuracy")
    assert labels == ["A", "B", "C"]
    # A beats B in 1 of 2 rounds; C beats A in 1 of 2; C - B: round 1 (0.05, 0.17, 0.10) -> t =
    # 0.1067 / (0.0603 / sqrt 3) = 3.06 < 4.30 (not significant); round 2 (0.22, 0.20, 0.19): yes
    expected = np.array([[0.0, 0.5, 0.0], [0.0, 0.0, 0.0], [0.5, 0.5, 0.0]])
    assert np.allclose(matrix, expected)
    # the same decisions as scipy's paired two-tailed t-test
    a = np.array([[0.60, 0.62, 0.61], [0.70, 0.71, 0.72]])
    c = np.array([[0.55, 0.67, 0.60], [0.90, 0.92, 0.91]])
    pvalues = [sps.ttest_rel(c[r], a[r]).pvalue for r in range(2)]
    assert (np.array(pvalues) < 0.05).tolist() == [False, True]
    # significance threshold: with alpha = 0.5 the round-1 C - B difference counts too
    _, loose = penalty_matrix(rows, "accuracy", alpha=0.5)
    assert loose[2, 1] == 1.0


def test_penalty_matrix_zero_spread_and_requirements():
    rows = _rows({"A": [[0.5, 0.7]] * 3, "B": [[0.5, 0.6]] * 3})
    _, matrix = penalty_matrix(rows, "accuracy")
    assert matrix.tolist() == [[0.0, 1.0], [0.0, 0.0]]  # identical positive differences count
    for seeds in (1, 2):  # a t-test with 1 degree of freedom is no test
        with pytest.raises(ValidationError, match=f"too few seeds.*{seeds} shared.*at least 3"):
            penalty_matrix(
                _rows({"A": [[0.5, 0.7]] * seeds, "B": [[0.5, 0.6]] * seeds}), "accuracy"
            )


def test_one_seed_has_no_spread_and_round_zero_reaches_nothing():
    rows = _rows({"random": [[0.8, 0.6, 0.7]], "A": [[0.8, 0.65, 0.75]]})
    assert all(np.isnan(s["std"]) for s in summarize(rows, "accuracy"))
    # random ends (0.7) below its start (0.8): round 0 must not count as reaching 0.7
    reach = labels_to_target(rows, "accuracy", 0.7)
    assert reach["random"]["mean"] == 30.0 and reach["A"]["mean"] == 30.0
    assert labels_to_target(rows, "accuracy", 0.7, skip_first_round=False)["A"]["mean"] == 10.0


def test_summarize_mean_std_and_labels_to_target():
    rows = _rows({"A": [[0.2, 0.5, 0.9], [0.4, 0.7, 0.8]]})
    summary = summarize(rows, "accuracy")
    assert [s["n_labeled"] for s in summary] == [10, 20, 30]
    assert np.allclose([s["mean"] for s in summary], [0.3, 0.6, 0.85])
    assert np.allclose([s["std"] for s in summary], np.std([[0.2, 0.5, 0.9], [0.4, 0.7, 0.8]],
                                                            axis=0, ddof=1))  # fmt: skip
    reach = labels_to_target(rows, "accuracy", 0.6)
    assert reach["A"] == {"mean": 25.0, "reached": 2, "seeds": 2}  # seeds need 30 and 20
    assert np.isnan(labels_to_target(rows, "accuracy", 0.95)["A"]["mean"])


def test_curves_use_only_rounds_every_seed_finished():
    rows = _rows({"A": [[0.2, 0.5, 0.9], [0.4, 0.7]]})
    assert [s["round"] for s in summarize(rows, "accuracy")] == [0, 1]


def test_metrics_ignore_ood_column_and_average_rare_classes():
    proba = np.array([[0.1, 0.2, 0.7], [0.6, 0.3, 0.1], [0.2, 0.3, 0.5]])
    assert metrics.predictions(proba).tolist() == [2, 0, 2]
    assert metrics.predictions(proba, np.array([0, 1])).tolist() == [1, 0, 1]
    predicted = np.array([0, 0, 1, 1, 1, 2])
    y = np.array([0, 1, 1, 1, 2, 2])
    # class 1: 2 of 3 right, class 2: 1 of 2 right -> mean 0.5833 (not the pooled 3/5)
    assert metrics.mean_class_accuracy(predicted, y, [1, 2]) == pytest.approx((2 / 3 + 0.5) / 2)
    assert metrics.accuracy(predicted, y) == pytest.approx(4 / 6)
    counts = metrics.selection_counts(
        np.array([1, 2, 3, 4]), np.array([0, 3, 3, 8]), np.array([9, 9, 9, 5]), np.array([3]),
        np.array([0, 3]),
    )  # fmt: skip
    assert counts == {
        "n_selected": 4, "n_rare_selected": 2, "n_unique_selected": 2,
        "n_in_distribution_selected": 3,
    }  # fmt: skip
    ap = metrics.binary_average_precision(np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4]]),
                                          np.array([0, 1, 1]))  # fmt: skip
    assert ap == pytest.approx(1.0)
    assert metrics.positive_recall(3, 12) == 0.25


def test_read_table_round_trip(tmp_path):
    from raresift.simulate.joblog import write_table

    rows = [
        {"study": "s", "strategy": "A", "seed": 0, "round": 0, "n_labeled": 5, "accuracy": 0.5},
        {"study": "s", "strategy": "A", "seed": 0, "round": 1, "n_labeled": 10,
         "accuracy": float("nan")},
    ]  # fmt: skip
    back = read_table(write_table(rows, tmp_path / "r.csv"))
    assert back[0]["accuracy"] == 0.5 and np.isnan(back[1]["accuracy"])
    assert back[1]["round"] == 1 and back[0]["strategy"] == "A"
    with pytest.raises(ValidationError, match="does not exist"):
        read_table(tmp_path / "missing.csv")
