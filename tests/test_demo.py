"""`raresift demo` on a machine without the system data sets (RARESIFT_DATA_DIR hides them)."""

import csv
import json
import os
import subprocess
import sys

import pytest

pytest.importorskip("mlxtend")


def run_demo(tmp_path, *args):
    env = {**os.environ, "RARESIFT_DATA_DIR": str(tmp_path / "no-data")}
    (tmp_path / "no-data").mkdir(exist_ok=True)
    return subprocess.run(
        [sys.executable, "-m", "raresift.cli", "demo", "--out", str(tmp_path / "out"), *args],
        capture_output=True, text=True, timeout=600, env=env,
    )  # fmt: skip


@pytest.mark.slow
def test_demo_falls_back_to_mnist5k_when_fashion_mnist_is_absent(tmp_path):
    out = run_demo(tmp_path, "--rounds", "2", "--batch", "20")
    assert out.returncode == 0, out.stderr
    notes = [line for line in out.stdout.splitlines() if "not installed" in line]
    assert len(notes) == 1 and "MNIST 5k" in notes[0] and "RARESIFT_DATA_DIR" in notes[0]
    rows = list(csv.DictReader(open(tmp_path / "out" / "rounds.csv")))
    assert len(rows) == 2 * 3 and rows[0]["labels"] == "100"
    assert (tmp_path / "out" / "positives_found.png").stat().st_size > 10_000
    study = tmp_path / "out" / "rare-classes-mnist5k"
    assert json.loads((study / "study.json").read_text())["config"]["dataset"]["name"] == "mnist5k"
    assert "demo-rare-classes-mnist5k" in (study / "report.md").read_text()
    assert f"study report: {study / 'report.md'}" in out.stdout
    assert "demo-rare-classes-mnist5k: 100%" in out.stderr and "72/72 [" in out.stderr  # rounds


def test_demo_asked_for_absent_fashion_mnist_exits_2_and_says_where_it_looked(tmp_path):
    out = run_demo(tmp_path, "--dataset", "fashion-mnist", "--no-study")
    assert out.returncode == 2
    line = out.stderr.strip()
    assert len(line.splitlines()) == 1 and line.startswith("raresift: error: Fashion-MNIST")
    assert f"RARESIFT_DATA_DIR is set and {tmp_path / 'no-data' / 'fashion-mnist'}" in line
    assert not (tmp_path / "out").exists()
