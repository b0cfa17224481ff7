"""Replayed labeling sessions (raresift.simulate.replay): the harness drives the session's own
code, so the same seed gives the same picks through the CLI and through a replay."""

from __future__ import annotations

import csv
import io
import json

import numpy as np
import pytest

from raresift.cli import main
from raresift.errors import ConfigError
from raresift.simulate.replay import (
    ReplayConfig,
    make_pool,
    replay_session,
    run_replay_study,
    write_replay_report,
)
from raresift.simulate.reproduce import read_table

DIGITS = {"label": "digits", "source": "digits", "common": 60, "rare": {"3": 6, "8": 6}}


def _config(**over):
    raw = {
        "kind": "replay",
        "name": "tiny",
        "seeds": [0],
        "budget": 10,
        "labels": 30,
        "checkpoints": [10, 30],
        "seed_examples": [0, 2],
        "jobs": 1,
        "datasets": [DIGITS],
        "strategies": [{"label": "default"}, {"label": "random", "strategy": "random"}],
    }
    raw.update(over)
    return raw


def test_config_is_checked():
    ReplayConfig.from_dict(_config())
    with pytest.raises(ConfigError, match="multiple of `budget`"):
        ReplayConfig.from_dict(_config(labels=25))
    with pytest.raises(ConfigError, match="unknown key"):
        ReplayConfig.from_dict(_config(round=3))
    with pytest.raises(ConfigError, match="labels must be unique"):
        ReplayConfig.from_dict(_config(strategies=[{"label": "a"}, {"label": "a"}]))


def test_pool_cuts_the_rare_classes(tmp_path):
    pool = make_pool(DIGITS, 0, tmp_path)
    truth = np.asarray(pool.truth)
    assert pool.rare == ["3", "8"] and (truth == "3").sum() == 6 and (truth == "8").sum() == 6
    assert truth.size == 8 * 60 + 12
    again = make_pool(DIGITS, 0, tmp_path)  # read back, not drawn again
    assert again.truth == pool.truth
    seeds = pool.seed_rows(2, 0)
    assert sorted(c for _, c in seeds) == ["3", "3", "8", "8"]
    assert all(pool.truth[i] == c for i, c in seeds)


def test_same_seed_same_picks_through_the_cli_and_a_replay(tmp_path, capsys):
    pool = make_pool(DIGITS, 0, tmp_path / "pools")
    rows = replay_session(pool, tmp_path / "replay", seed=3, budget=10, rounds=3, seed_examples=2)
    assert [r["n_labels"] for r in rows] == [0, 10, 20, 30]
    seed_csv = tmp_path / "seed.csv"
    with open(seed_csv, "w", newline="") as fh:
        csv.writer(fh).writerows([("id", "label"), *pool.seed_rows(2, 3)])
    project = str(tmp_path / "cli")
    main(["init", project, "--embeddings", str(pool.embeddings), "--classes",
          ",".join(pool.classes), "--rare-classes", ",".join(pool.rare), "--labels",
          str(seed_csv), "--budget", "10", "--seed", "3"])  # fmt: skip
    capsys.readouterr()
    for row in rows[1:]:
        main(["next", project, "--format", "csv"])
        picked = [int(r["id"]) for r in csv.DictReader(io.StringIO(capsys.readouterr().out))]
        assert picked == row["batch_ids"]
        answers = tmp_path / f"answers{row['round']}.csv"
        with open(answers, "w", newline="") as fh:
            csv.writer(fh).writerows([("id", "label"), *((i, pool.truth[i]) for i in picked)])
        main(["label", project, str(answers)])
        capsys.readouterr()
    found = sum(pool.truth[i] in pool.rare for r in rows for i in r["batch_ids"])
    assert rows[-1]["n_rare"] == found


def test_study_logs_resumes_and_reports(tmp_path):
    out = tmp_path / "study"
    results = run_replay_study(_config(), out, progress=False)
    table = list(csv.DictReader(open(results)))
    assert len(table) == 2 * 2 * 4  # 2 seed conditions x 2 strategies x (round 0 + 3 rounds)
    log = out / "runs" / "digits__seeds2__default__seed0.jsonl"
    lines = log.read_text().splitlines()
    log.write_text("\n".join(lines[:2]) + "\n")  # killed after round 1
    run_replay_study(_config(), out, progress=False)

    def rows(text):
        return [{k: v for k, v in json.loads(x).items() if k != "seconds"} for x in text]

    # round 1 driven again (same picks), then the same rounds as the uninterrupted run
    assert rows(log.read_text().splitlines()) == rows(lines)
    report = write_replay_report(results).read_text()
    assert "## Acceptance (issue 22)" in report and "| digits | 2 |" in report
    assert json.loads((out / "study.json").read_text())["failures"] == []
    assert not (out / "sessions").exists() or not any((out / "sessions").iterdir())


def test_simulate_command_runs_a_replay_config(tmp_path, capsys):
    config = tmp_path / "replay.toml"
    config.write_text(
        'kind = "replay"\nname = "t"\nseeds = [1]\nbudget = 10\nlabels = 20\njobs = 1\n'
        '[[datasets]]\nlabel = "digits"\nsource = "digits"\ncommon = 40\nrare = { "5" = 5 }\n'
        '[[strategies]]\nlabel = "random"\nstrategy = "random"\n'
    )
    assert main(["simulate", str(config), "--out", str(tmp_path / "o"), "--no-progress"]) == 0
    assert (tmp_path / "o" / "report.md").exists()
    assert main(["report", str(tmp_path / "o" / "results.csv")]) == 0
    assert "rare items" in (tmp_path / "o" / "report.md").read_text().lower()


def test_two_workers_give_the_in_process_table(tmp_path):
    """Parallel replay jobs run through the runner's one worker pool (watchdog, cancellation)."""
    one = run_replay_study(_config(), tmp_path / "one", progress=False, jobs=1)
    two = run_replay_study(_config(), tmp_path / "two", progress=False, jobs=2)
    untimed = [[{k: v for k, v in r.items() if k != "seconds"} for r in read_table(t)]
               for t in (one, two)]  # fmt: skip
    assert untimed[0] == untimed[1] and len(untimed[0]) == 2 * 2 * 4
