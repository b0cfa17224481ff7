"""experiments/compare.py: a study table equals another in every cell but the timing columns."""

import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "experiments" / "compare.py"
HEADER = "study,strategy,seed,round,accuracy,n_epochs,seconds_training\n"


def compare(tmp_path, new_rows, old_rows):
    new, old = tmp_path / "new.csv", tmp_path / "old.csv"
    new.write_text(HEADER + new_rows)
    old.write_text(HEADER + old_rows)
    done = subprocess.run(
        [sys.executable, str(SCRIPT), str(new), str(old)], capture_output=True, text=True
    )
    return done.returncode, done.stdout


def test_timing_columns_and_float_noise_are_not_differences(tmp_path):
    rc, out = compare(
        tmp_path, "s,random,0,1,0.7,12,1.5\n", "s,random,0,1,0.7000000000001,12,9.0\n"
    )
    assert rc == 0 and out.startswith("0 of 6 cells differ")


def test_a_changed_epoch_count_is_reported_with_its_run_and_round(tmp_path):
    rc, out = compare(
        tmp_path,
        "s,random,0,0,0.6,10,1.0\ns,entropy,1,2,0.7,12,1.0\n",
        "s,random,0,0,0.6,10,1.0\ns,entropy,1,2,0.7,13,1.0\n",
    )
    assert rc == 1
    assert out.splitlines() == ["1 of 12 cells differ (2 rows)", "   entropy 1 2 n_epochs 12 13"]


def test_tables_of_different_shape_are_not_compared(tmp_path):
    rc, out = compare(tmp_path, "s,random,0,0,0.6,10,1.0\n", "")
    assert rc == 1 and out.startswith("not comparable: 1 vs 0 rows")
