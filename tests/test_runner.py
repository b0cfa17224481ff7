import copy
import json

import numpy as np
import pytest

from raresift.errors import ConfigError
from raresift.simulate.config import StudyConfig, load_config
from raresift.simulate.joblog import read_log
from raresift.simulate.runner import run_study
from raresift.simulate.stats import read_table

SCENARIOS = {
    "standard": {"kind": "standard", "labeled_per_class": 3, "unlabeled_per_class": 40},
    "rare-classes": {
        "kind": "rare-classes", "labeled_per_class": 5, "labeled_per_rare_class": 1,
        "unlabeled_per_class": 60, "imbalance": 10, "query_per_rare_class": 2,
    },
    "redundancy": {
        "kind": "redundancy", "labeled": 30, "unique_unlabeled": 150, "duplicate_fraction": 0.2,
        "redundancy": 5,
    },
    "out-of-distribution": {
        "kind": "out-of-distribution", "n_in_distribution": 8, "labeled_per_class": 3,
        "validation_per_class": 2, "unlabeled_per_class": 10, "unlabeled_per_ood_class": 100,
    },
}  # fmt: skip


def tiny(kind="rare-classes", **changes):
    config = {
        "name": f"tiny-{kind}",
        "seeds": [0, 1],
        "rounds": 3,
        "budget": 8,
        "dataset": {"name": "digits", "test_per_class": 30},
        "scenario": copy.deepcopy(SCENARIOS[kind]),
        "model": {"kind": "logistic", "C": 1.0, "max_iter": 300},
        "strategies": ["random", "entropy"],
    }
    config.update(changes)
    return config


def _without_timing(rows):
    return [{k: v for k, v in r.items() if not k.startswith("seconds_")} for r in rows]


def test_config_validation_messages():
    with pytest.raises(ConfigError, match="unknown key.*colour"):
        StudyConfig.from_dict({**tiny(), "colour": "blue"})
    bad_scenario = tiny()
    bad_scenario["scenario"]["imbalanse"] = 3
    with pytest.raises(ConfigError, match="imbalanse"):
        StudyConfig.from_dict(bad_scenario)
    with pytest.raises(ConfigError, match="`budget` must be a positive integer"):
        StudyConfig.from_dict(tiny(budget=0))
    with pytest.raises(ConfigError, match="seeds"):
        StudyConfig.from_dict(tiny(seeds=[1, 1]))
    with pytest.raises(ConfigError, match="labels must be unique"):
        StudyConfig.from_dict(tiny(strategies=["random", "random"]))
    with pytest.raises(ConfigError, match="model\\] kind"):
        StudyConfig.from_dict(tiny(model={"kind": "svm"}))
    with pytest.raises(ConfigError, match="lacks `rounds`"):
        StudyConfig.from_dict({k: v for k, v in tiny().items() if k != "rounds"})


def test_a_strategy_that_cannot_run_stops_the_study_before_its_first_job(tmp_path):
    config = tiny(seeds=[0], strategies=["random", {"name": "fl", "params": {"nope": 1}}])
    with pytest.raises(ConfigError, match="strategy 'fl'.*nope"):
        run_study(config, tmp_path, jobs=1, progress=False)
    assert not list((tmp_path / "runs").glob("*.jsonl"))  # no job started


def test_a_job_failing_mid_study_is_reported_and_the_others_finish(tmp_path, monkeypatch):
    from raresift.strategies.uncertainty import EntropyStrategy

    calls = []
    original = EntropyStrategy.select

    def fails_in_round_two(self, state, candidates, budget):
        calls.append(state.round)
        if len(calls) == 3:  # the preflight batch, then rounds 1 and 2 of the job
            raise RuntimeError("boom in round 2")
        return original(self, state, candidates, budget)

    monkeypatch.setattr(EntropyStrategy, "select", fails_in_round_two)
    config = tiny(seeds=[0], strategies=["entropy", "random"])
    rows = read_table(run_study(config, tmp_path, jobs=1, progress=False))
    assert [r["strategy"] for r in rows] == ["entropy"] * 2 + ["random"] * 4
    failures = json.loads((tmp_path / "study.json").read_text())["failures"]
    assert failures == [
        {"strategy": "entropy", "seed": 0, "error": "RuntimeError: boom in round 2"}
    ]


def test_unknown_strategy_and_impossible_budget(tmp_path):
    with pytest.raises(ConfigError, match="unknown strategy 'nope'.*entropy.*random"):
        run_study(tiny(strategies=["nope"]), tmp_path, progress=False)
    with pytest.raises(ConfigError, match="only 330 unlabeled items"):
        run_study(tiny(rounds=50, budget=10), tmp_path, progress=False)
    with pytest.raises(ConfigError, match="unknown candidate pool 'knn'; choose one of: all"):
        run_study(tiny(strategies=[{"name": "entropy", "candidates": "knn"}]), tmp_path)
    with pytest.raises(ConfigError, match="unknown key.*fraction"):
        bad_pool = {"name": "entropy", "candidates": {"kind": "all", "fraction": 0.5}}
        run_study(tiny(strategies=[bad_pool]), tmp_path)
    with pytest.raises(ConfigError, match="class 0 has"):
        config = tiny()
        config["scenario"]["unlabeled_per_class"] = 400
        run_study(config, tmp_path, progress=False)


def test_load_config_from_toml(tmp_path):
    path = tmp_path / "study.toml"
    path.write_text(
        'name = "t"\nseeds = [0, 1]\nrounds = 2\nbudget = 5\n'
        '[dataset]\nname = "digits"\n'
        '[scenario]\nkind = "standard"\nlabeled_per_class = 2\n'
        '[model]\nkind = "logistic"\n'
        '[[strategies]]\nname = "entropy"\nlabel = "maxent"\n'
        '[[strategies]]\nname = "flcmi"\nfallback = "flvmi"\n'
    )
    config = load_config(path)
    assert [s.label for s in config.strategies] == ["maxent", "flcmi"]
    assert config.strategies[1].fallback == "flvmi"
    assert config.strategies[0].fallback is None
    assert config.scenario == {"kind": "standard", "labeled_per_class": 2}
    path.write_text("name = [")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(path)
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "nope.toml")


@pytest.mark.parametrize("kind", list(SCENARIOS))
def test_each_scenario_end_to_end(kind, tmp_path):
    config = tiny(kind)
    rows = read_table(run_study(config, tmp_path, jobs=1, progress=False))
    assert len(rows) == 2 * 2 * 4
    for row in rows:
        assert row["n_selected"] == 8 * row["round"]
        assert 0.0 <= row["accuracy"] <= 1.0
    first = [r for r in rows if r["round"] == 0]
    assert len({r["n_labeled"] for r in first if r["seed"] == 0}) == 1  # same start for all
    last = [r for r in rows if r["round"] == 3]
    if kind == "rare-classes":
        assert all(0 <= r["rare_accuracy"] <= 1 and r["n_rare_selected"] <= 24 for r in last)
        assert rows[0]["n_labeled"] == 5 * 5 + 5 * 1  # the query set is held out of training
    if kind == "redundancy":
        assert all(r["n_unique_selected"] <= 24 for r in last)
    if kind == "out-of-distribution":
        assert all(r["n_in_distribution_selected"] <= 24 for r in last)
    with pytest.raises(KeyError):
        _ = rows[0]["nonexistent"]


def test_ood_scmi_falls_back_until_conditioning_set_has_items(tmp_path):
    config = tiny("out-of-distribution", seeds=[0])
    config["strategies"] = [{"name": "flcmi", "params": {"representation": "embedding"}}]
    rows = read_table(run_study(config, tmp_path, jobs=1, progress=False))
    used = [r["selected_by"] for r in rows]
    # round 1: O is empty, so FLCMI selects as FLVMI; it picks OOD items (200 of 280 unlabeled
    # are OOD), they join O, and from round 2 on FLCMI itself picks
    assert used[1] == "flvmi" and set(used[2:]) == {"flcmi"}


@pytest.mark.parametrize("fallback", ["entropy", "", "logdetmi"])
def test_only_the_scmi_families_own_fallback_is_accepted(fallback):
    config = tiny("out-of-distribution", seeds=[0])
    config["strategies"] = [{"name": "flcmi", "fallback": fallback}]
    with pytest.raises(ConfigError, match="only SCMI strategies fall back"):
        StudyConfig.from_dict(config)
    config["strategies"] = [{"name": "margin", "fallback": "entropy"}]
    with pytest.raises(ConfigError, match="only SCMI strategies fall back"):
        StudyConfig.from_dict(config)


class Killed(BaseException):
    """Stands for a kill (SIGTERM, Ctrl-C): not an Exception, so the study does not go on."""


def test_killed_and_resumed_run_gives_the_same_table(tmp_path):
    config = tiny("out-of-distribution")  # grows Q and O: the replay must rebuild both
    whole = read_table(run_study(config, tmp_path / "whole", jobs=1, progress=False))

    seen = []

    def kill_after_six_rows(row):
        seen.append(row)
        if len(seen) == 6:  # job 1 finished (4 rows), job 2 killed after its round 1
            raise Killed

    with pytest.raises(Killed):
        run_study(config, tmp_path / "cut", jobs=1, progress=False,
                  round_callback=kill_after_six_rows)  # fmt: skip
    partial = read_table(tmp_path / "cut" / "results.csv")
    assert len(partial) == 6
    # a torn line from a kill in mid-write is dropped on resume
    log = tmp_path / "cut" / "runs" / "random__seed1.jsonl"
    with open(log, "a") as fh:
        fh.write('{"round": 2, "accur')
    recomputed = []
    resumed = read_table(run_study(config, tmp_path / "cut", jobs=1, progress=False,
                                   round_callback=recomputed.append))  # fmt: skip
    assert len(recomputed) == 16 - 6  # finished rounds were not redone
    assert _without_timing(resumed) == _without_timing(whole)
    batches_whole = read_log(tmp_path / "whole" / "runs" / "random__seed1.jsonl")
    batches_cut = read_log(log)
    assert [r["batch_ids"] for r in batches_whole] == [r["batch_ids"] for r in batches_cut]


def test_resume_refuses_a_changed_scenario_and_fresh_run_restarts(tmp_path):
    run_study(tiny(), tmp_path, jobs=1, progress=False)
    changed = tiny()
    changed["scenario"]["imbalance"] = 5
    with pytest.raises(ConfigError, match="different dataset, scenario"):
        run_study(changed, tmp_path, jobs=1, progress=False)
    recomputed = []
    run_study(changed, tmp_path, resume=False, jobs=1, progress=False,
              round_callback=recomputed.append)  # fmt: skip
    assert len(recomputed) == 16


def test_more_rounds_extend_a_finished_study(tmp_path):
    run_study(tiny(rounds=2), tmp_path, jobs=1, progress=False)
    recomputed = []
    rows = read_table(run_study(tiny(rounds=3), tmp_path, jobs=1, progress=False,
                                round_callback=recomputed.append))  # fmt: skip
    assert len(recomputed) == 4 and len(rows) == 16


@pytest.mark.slow
def test_process_pool_matches_in_process_run(tmp_path):
    config = tiny("redundancy")
    config["model"] = {"kind": "mlp", "hidden": [16], "epochs": 5, "batch_size": 32, "lr": 0.05}
    serial = read_table(run_study(config, tmp_path / "one", jobs=1, progress=False))
    parallel = read_table(run_study(config, tmp_path / "two", jobs=2, progress=False))
    assert _without_timing(serial) == _without_timing(parallel)
    assert all(np.isfinite(r["accuracy"]) for r in parallel)


def test_seals_candidate_pool_from_config(tmp_path):
    seals = {"name": "entropy", "label": "entropy-SEALS", "candidates": {"kind": "seals", "k": 5}}
    rows = read_table(run_study(tiny(seeds=[0], strategies=[seals]), tmp_path, jobs=1,
                                progress=False))  # fmt: skip
    assert len(rows) == 4 and rows[-1]["n_selected"] == 24
    assert json.loads((tmp_path / "study.json").read_text())["failures"] == []
