"""Acceptance: a labeling session driven through the CLI only finds rare items as well as the
simulation harness does with the same strategy and seed (real MNIST digits)."""

from __future__ import annotations

import csv
import io
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from raresift.errors import DatasetNotInstalledError

CONFIG = """
name = "session-parity"
seeds = [0]
rounds = 6
budget = 25
jobs = 1

[dataset]
name = "mnist5k"
test_per_class = 100

[scenario]
kind = "rare-classes"
rare_classes = [6]
labeled_per_class = 10
labeled_per_rare_class = 2
unlabeled_per_class = 300
imbalance = 10
query_per_rare_class = 3

[model]
kind = "logistic"
max_iter = 1000

[[strategies]]
name = "{strategy}"
"""


def _run(*args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", MKL_NUM_THREADS="1")
    src = str(Path(__file__).resolve().parents[1] / "src")
    env["PYTHONPATH"] = src + os.pathsep + env.get("PYTHONPATH", "")
    proc = subprocess.run(
        [sys.executable, "-m", "raresift.cli", *args], capture_output=True, text=True, env=env
    )
    assert proc.returncode == 0, proc.stderr
    return proc


@pytest.mark.realdata
@pytest.mark.slow
def test_cli_session_finds_as_many_rare_items_as_simulate(tmp_path, strategy="entropy"):
    from raresift.simulate.build import build_scenario
    from raresift.simulate.config import load_config

    config_path = tmp_path / "study.toml"
    config_path.write_text(CONFIG.format(strategy=strategy))
    config = load_config(config_path)
    try:
        scenario = build_scenario(config, seed=0)
    except DatasetNotInstalledError as exc:
        pytest.skip(str(exc))

    # what a user would bring: embeddings, the answers they already have, class names
    np.save(tmp_path / "digits.npy", np.asarray(scenario.pool.embeddings, dtype=np.float32))
    names = [f"digit{c}" for c in range(scenario.n_classes)]
    held_out = set(scenario.validation_ids.tolist())  # known to the simulation, never trained on
    with open(tmp_path / "seed.csv", "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["id", "label"])
        for i in scenario.labels.ids.tolist():
            answer = "skip" if i in held_out else names[int(scenario.oracle([i])[0])]
            writer.writerow([i, answer])

    project = tmp_path / "project"
    _run(
        "init",
        str(project),
        "--embeddings",
        str(tmp_path / "digits.npy"),
        "--classes",
        ",".join(names),
        "--rare-classes",
        "digit6",
        "--labels",
        str(tmp_path / "seed.csv"),
        "--strategy",
        strategy,
        "--candidates",
        "all",
        "--budget",
        "25",
        "--seed",
        "0",
    )
    found, spent, picked = [], [], []
    for round_index in range(config.rounds):
        out = _run("next", str(project), "--format", "csv").stdout
        picks = [int(r["id"]) for r in csv.DictReader(io.StringIO(out))]
        assert len(picks) == 25
        truth = scenario.oracle(picks)
        answers = tmp_path / f"answers-{round_index}.csv"
        answers.write_text(
            "id,label\n" + "".join(f"{i},{names[t]}\n" for i, t in zip(picks, truth, strict=True))
        )
        _run("label", str(project), str(answers))
        found.append(int((truth == 6).sum()))
        picked.append(picks)
        spent.append(25 * (round_index + 1))

    _run("simulate", str(config_path), "--out", str(tmp_path / "sim"), "--no-progress")
    with open(tmp_path / "sim" / "results.csv") as fh:
        rows = [r for r in csv.DictReader(fh) if int(r["round"]) > 0]
    rows.sort(key=lambda r: int(r["round"]))
    simulated = [int(r["n_rare_selected"]) for r in rows]
    from raresift.simulate.joblog import log_path, read_log

    logged = read_log(log_path(tmp_path / "sim", strategy, 0))[1:]
    assert [row["batch_ids"] for row in logged] == picked  # the very same picks, round by round
    session_cumulative = np.cumsum(found).tolist()
    print(
        f"{strategy}: rare items found per 25 labels, session {session_cumulative}, "
        f"simulate {simulated}"
    )
    assert len(simulated) == config.rounds
    # same labels spent per round; at least as many rare items found at every round
    assert all(s >= m for s, m in zip(session_cumulative, simulated, strict=True)), (
        session_cumulative,
        simulated,
    )
    assert session_cumulative[-1] > 0
