"""Rare-concept studies on the runner and the binary strategies on real loops (small pools)."""

import dataclasses

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression

from raresift.candidates import AllCandidates, RandomCandidates, SEALSCandidates
from raresift.density import normalize_rows
from raresift.errors import ConfigError, ValidationError
from raresift.loop import ActiveLearner
from raresift.models import SklearnModel
from raresift.pool import Labels, Pool
from raresift.simulate.concepts import Method, label_tasks, summarize, synthetic_tasks
from raresift.simulate.joblog import log_path, read_log
from raresift.simulate.metrics import binary_average_precision
from raresift.simulate.runner import run_concept_study
from raresift.simulate.synthetic import make_synthetic_concepts
from raresift.strategies import SelectionState, make_strategy
from raresift.strategies.uncertainty import entropy_scores


@pytest.fixture(scope="module")
def tasks():
    data = make_synthetic_concepts(
        n=8_000, dim=16, n_concepts=3, prevalence=(0.004, 0.008), progress=False, seed=1
    )
    return synthetic_tasks(data, index_factory="Flat")


SETTINGS = dict(budget=150, batch_size=25, n_seed_positives=3, n_seed_negatives=22)


def test_records_per_round_and_pool_bookkeeping(tasks):
    methods = [Method("mlp", "seals", k=15), Method("mlp", "all"), Method("random", "random")]
    records = run_concept_study(tasks[:2], methods, seeds=(0,), progress=False, **SETTINGS)
    assert len(records) == 2 * 3 * 6
    for method in ("MLP-SEALS(k=15)", "MLP-All", "Random-RandPool(10%)"):
        mine = [r for r in records if r["method"] == method and r["concept"] == "concept-0"]
        assert [r["n_labeled"] for r in mine] == [25, 50, 75, 100, 125, 150]
        assert [r["round"] for r in mine] == list(range(6))
        recall = [r["recall"] for r in mine]
        assert recall == sorted(recall) and 0 < recall[0] <= 1
        assert all(0 <= r["average_precision"] <= 1 for r in mine)
        assert all(r["seconds_selection"] >= 0 and r["seconds_training"] >= 0 for r in mine[1:])
    all_pool = [r for r in records if r["method"] == "MLP-All"]
    assert all(r["pool_fraction"] == (8000 - r["n_labeled"]) / 8000 for r in all_pool)
    seals = [r for r in records if r["method"] == "MLP-SEALS(k=15)"]
    assert all(r["pool_fraction"] < 0.5 for r in seals)
    assert any(r["seconds_knn"] > 0 for r in seals)
    # active search finds far more positives than random labeling
    final = {r["method"]: r for r in summarize(records, final_only=True)}
    assert final["MLP-SEALS(k=15)"]["recall"] > 2 * final["Random-RandPool(10%)"]["recall"]
    assert final["MLP-SEALS(k=15)"]["rounds"] == 5 and final["MLP-SEALS(k=15)"]["runs"] == 2


def reference_run(task, method, candidates, seed, budget, batch, class_weight):
    """A concept run written out by hand on ActiveLearner: fit the seed, then one
    ``learner.run`` round at a time (the last buys what is left) until ``budget`` labels."""
    labels = task.scenario(seed, SETTINGS["n_seed_positives"], SETTINGS["n_seed_negatives"]).labels
    model = SklearnModel(LogisticRegression(class_weight=class_weight, max_iter=1000), 2)
    learner = ActiveLearner(task.pool, model, method.strategy, candidates, labels, seed=seed)
    learner.fit()
    rounds = [{"n_candidates": len(candidates), "batch_ids": []}]
    while len(learner.labels) < budget:
        size = min(batch, budget - len(learner.labels))
        (record,) = learner.run(task.oracle, 1, size)
        rounds.append({"n_candidates": record["n_candidates"], "batch_ids": record["batch_ids"]})
        rounds[-1]["n_labeled"] = len(learner.labels)
        rounds[-1]["found"] = int((learner.labels.values == 1).sum())
        rounds[-1]["ap"] = binary_average_precision(
            learner.model.predict_proba(task.test_x), task.test_y
        )
        rounds[-1]["pool_fraction"] = len(candidates) / len(task.pool)
    return rounds


@pytest.mark.parametrize("class_weight", ["balanced", None])
def test_concept_jobs_are_the_loop_they_replace(tasks, tmp_path, class_weight):
    """Each runner job picks, counts and scores exactly what the hand-written loop does, the
    last (smaller) round and a task with fixed seed ids (the demo's) included."""
    task = tasks[0]
    y = tasks[1].y
    seed_ids = np.concatenate([np.flatnonzero(y == 1)[:4], np.flatnonzero(y == 0)[:26]])
    fixed = dataclasses.replace(tasks[1], name="fixed-seed", seed_ids=seed_ids)
    methods = [Method("mlp", "seals", k=15), Method("entropy", "all"), Method("random", "random")]
    settings = dict(SETTINGS, budget=140, class_weight=class_weight)
    rows = run_concept_study([task, fixed], methods, seeds=(3,), out_dir=tmp_path,
                             progress=False, **settings)  # fmt: skip
    for t, sizes in ((task, [0, 25, 25, 25, 25, 15]), (fixed, [0, 25, 25, 25, 25, 10])):
        pools = {
            "MLP-SEALS(k=15)": SEALSCandidates(t.index, k=15),
            "MaxEnt-All": AllCandidates(),
            "Random-RandPool(10%)": RandomCandidates(0.1, seed=3),
        }
        for method in methods:
            expected = reference_run(t, method, pools[method.label], 3, 140, 25, class_weight)
            mine = [r for r in rows if r["method"] == method.label and r["concept"] == t.name]
            log = read_log(log_path(tmp_path, f"{method.label}__{t.name}", 3))
            assert [r["batch_ids"] for r in log] == [list(e["batch_ids"]) for e in expected]
            assert [len(r["batch_ids"]) for r in log] == sizes
            assert [r["n_candidates"] for r in mine] == [e["n_candidates"] for e in expected]
            for row, e in zip(mine[1:], expected[1:], strict=True):
                assert row["n_labeled"] == e["n_labeled"]
                assert row["positives_found"] == e["found"]
                assert row["recall"] == e["found"] / int(t.y.sum())
                assert row["average_precision"] == e["ap"]
                assert row["pool_fraction"] == e["pool_fraction"]
    first = [r for r in rows if r["concept"] == "fixed-seed" and r["round"] == 0][0]
    assert first["positives_found"] == 4 and first["n_labeled"] == 30


def test_concept_study_resumes_after_a_kill(tasks, tmp_path):
    methods = [Method("mlp", "seals", k=15), Method("entropy", "all")]
    whole = run_concept_study(tasks[:2], methods, progress=False, **SETTINGS)
    seen = []

    def kill(row):
        seen.append(row)
        if len(seen) == 9:  # mid-way through the second job
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_concept_study(tasks[:2], methods, out_dir=tmp_path, progress=False,
                          round_callback=kill, **SETTINGS)  # fmt: skip
    new = []
    resumed = run_concept_study(tasks[:2], methods, out_dir=tmp_path, progress=False,
                                round_callback=new.append, **SETTINGS)  # fmt: skip
    assert len(new) == len(whole) - 9  # the 9 logged rounds (saved, then killed) ran once
    untimed = lambda rows: [{k: v for k, v in r.items() if "seconds" not in k} for r in rows]  # noqa: E731
    assert untimed(resumed) == untimed(whole)
    with pytest.raises(ConfigError, match="other settings"):
        run_concept_study(tasks[:2], methods, out_dir=tmp_path, progress=False,
                          **dict(SETTINGS, batch_size=20))  # fmt: skip
    other = dataclasses.replace(tasks[1], y=tasks[2].y)  # same name and pool, other answers
    with pytest.raises(ConfigError, match="other data for concept-1"):
        run_concept_study([tasks[0], other], methods, out_dir=tmp_path, progress=False, **SETTINGS)
    again = run_concept_study(tasks[:1], methods[:1], out_dir=tmp_path, resume=False,
                              progress=False, **dict(SETTINGS, batch_size=20))  # fmt: skip
    assert [r["n_labeled"] for r in again] == [25, 45, 65, 85, 105, 125, 145, 150]


def test_same_seed_same_run(tasks):
    a = run_concept_study(tasks[:1], [Method("entropy", "seals", k=10)], progress=False, **SETTINGS)
    b = run_concept_study(tasks[:1], [Method("entropy", "seals", k=10)], progress=False, **SETTINGS)
    assert [r["average_precision"] for r in a] == [r["average_precision"] for r in b]
    assert [r["pool_fraction"] for r in a] == [r["pool_fraction"] for r in b]


def test_bad_methods_and_settings(tasks):
    with pytest.raises(ConfigError):
        run_concept_study(tasks[:1], [Method("mlp", "nearby")], progress=False, **SETTINGS)
    with pytest.raises(ConfigError):
        run_concept_study(tasks[:1], [Method("mlp")], progress=False, budget=10, batch_size=5)
    with pytest.raises(ValidationError, match="seed needs"):
        run_concept_study(
            tasks[:1], [Method("mlp")], progress=False, budget=500, n_seed_positives=400
        )
    with pytest.raises(ValidationError, match="y \\(per pool item\\).*out of range"):
        dataclasses.replace(tasks[0], y=2 * tasks[0].y)
    assert Method("information-density", "seals", expand="batch").label == "ID-SEALS(batch)"
    assert Method("mlp", "seals", k=50, expand="batch").label == "MLP-SEALS(k=50,batch)"
    assert Method("mlp", "seals", k=100).label == "MLP-SEALS"


def fitted_state(rng, only_positive=False):
    x = rng.standard_normal((300, 4)).astype(np.float32) + 0.3
    y = (x[:, 0] > 0.8).astype(int)
    labeled = np.flatnonzero(y == 1)[:5] if only_positive else np.arange(40)
    model = SklearnModel(LogisticRegression(), n_classes=2).fit(x[labeled], y[labeled])
    pool = Pool(x)
    labels = Labels(labeled, y[labeled])
    return SelectionState(pool, labels, model=model), x, model


def test_mlp_scores_are_positive_probabilities(rng):
    state, x, model = fitted_state(rng)
    ids = np.arange(100, 140)
    np.testing.assert_allclose(
        make_strategy("mlp").score(state, ids), model.predict_proba(x[ids])[:, 1]
    )
    # only positives labeled so far: the adapter's column 1 is class 1, probability 1
    state, _, _ = fitted_state(rng, only_positive=True)
    assert np.all(make_strategy("mlp").score(state, ids) == 1.0)
    batch = make_strategy("mlp").select(state, ids, 5)
    assert len(batch) == 5


def test_information_density_is_entropy_times_mean_similarity(rng):
    state, x, model = fitted_state(rng)
    cands = AllCandidates()
    cands.start(state.pool, state.labels)
    ids = cands.candidates()[:50]
    unit = normalize_rows(x)
    mean_sim = (unit[ids] @ unit[cands.candidates()].T).mean(axis=1)
    expected = entropy_scores(model.predict_proba(x[ids])) * np.clip(mean_sim, 0, None)
    view = cands.view()
    strategy = make_strategy("information-density")
    np.testing.assert_allclose(
        strategy.scores_among(state, ids, view), expected, rtol=1e-5, atol=1e-8
    )
    # the batch ranks by the same scores: the top ids of the whole pool by that formula
    everything = cands.candidates()
    full = entropy_scores(model.predict_proba(x[everything])) * np.clip(
        (unit[everything] @ unit[everything].T).mean(axis=1), 0, None
    )
    batch = strategy.select(state, view, 5)
    assert set(batch.ids.tolist()) == set(everything[np.argsort(-full)[:5]].tolist())
    # beta weighs density; no candidate view: the scored ids are the candidates
    squared = make_strategy("information-density", beta=2.0).scores_among(state, ids, view)
    np.testing.assert_allclose(squared, expected * np.clip(mean_sim, 0, None), rtol=1e-5, atol=1e-8)
    alone = (unit[ids] @ unit[ids].T).mean(axis=1)
    np.testing.assert_allclose(
        strategy.score(state, ids),
        entropy_scores(model.predict_proba(x[ids])) * np.clip(alone, 0, None),
        rtol=1e-5,
        atol=1e-8,
    )
    with pytest.raises(ConfigError, match="beta=-1 is invalid"):
        make_strategy("information-density", beta=-1)  # at construction, not at scoring


def test_label_tasks_share_one_pool_and_index_at_natural_prevalence(rng):
    x = normalize_rows(rng.standard_normal((200, 8)))
    y = rng.integers(0, 4, 200)
    tasks = label_tasks(x[:150], y[:150], x[150:], y[150:], [1, 3], ["one", "three"])
    assert [t.name for t in tasks] == ["one", "three"]
    assert tasks[0].pool is tasks[1].pool and tasks[0].index is tasks[1].index
    assert len(tasks[0].index) == 150
    np.testing.assert_array_equal(tasks[1].y, y[:150] == 3)
    np.testing.assert_array_equal(tasks[1].test_y, y[150:] == 3)
