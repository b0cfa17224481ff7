"""A parallel study stops cleanly: SIGKILL of the main process leaves no worker behind, SIGINT
cancels the queued jobs, and resume then gives the table of an uninterrupted run."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from raresift.simulate.runner import run_study
from raresift.simulate.stats import read_table

STUDY = """
name = "signals"
seeds = [0, 1]
rounds = 25
budget = 5
[dataset]
name = "digits"
test_per_class = 30
[scenario]
kind = "standard"
labeled_per_class = 3
unlabeled_per_class = 40
[model]
kind = "logistic"
max_iter = 300
[[strategies]]
name = "random"
[[strategies]]
name = "entropy"
"""

pytestmark = pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs /proc")


def _alive(pid: int) -> bool:
    """Running (not a zombie nobody reaped: a container's init may never reap)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def _children(pid: int) -> list[int]:
    out = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except (FileNotFoundError, ProcessLookupError):
                continue
            if int(fields[1]) == pid:
                out.append(int(entry.name))
    return out


def _logged_rounds(out: Path) -> int:
    return sum(len(p.read_text().splitlines()) for p in (out / "runs").glob("*.jsonl"))


def _start(tmp_path: Path, out: Path) -> subprocess.Popen:
    config = tmp_path / "signals.toml"
    config.write_text(STUDY)
    command = [sys.executable, "-m", "raresift.cli", "simulate", str(config), "--out", str(out),
               "--jobs", "2", "--no-progress"]  # fmt: skip
    # A shell that starts us in the background (`cmd &` without job control) ignores SIGINT, and
    # children inherit that; the study under test gets the default disposition back, so Python
    # turns SIGINT into KeyboardInterrupt there whatever launched the tests.
    return subprocess.Popen(
        command,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )


def _wait_for_rounds(process: subprocess.Popen, out: Path, rounds: int) -> list[int]:
    """Wait until the workers have logged ``rounds`` rounds; returns the worker pids."""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        assert process.poll() is None, process.stderr.read()
        if (out / "runs").is_dir() and _logged_rounds(out) >= rounds:
            workers = [pid for pid in _children(process.pid) if _alive(pid)]
            assert len(workers) >= 2  # the two job workers (and multiprocessing's tracker)
            return workers
        time.sleep(0.05)
    raise AssertionError("the study logged no rounds in 120 s")


def _whole_table(tmp_path: Path) -> list[dict]:
    from raresift.simulate.config import load_config

    (tmp_path / "whole.toml").write_text(STUDY)
    rows = read_table(run_study(load_config(tmp_path / "whole.toml"), tmp_path / "whole",
                                jobs=1, progress=False))  # fmt: skip
    return _without_timing(rows)


def _without_timing(rows):
    return [{k: v for k, v in r.items() if not k.startswith("seconds_")} for r in rows]


def _resume(tmp_path: Path, out: Path) -> list[dict]:
    from raresift.simulate.config import load_config

    config = load_config(tmp_path / "signals.toml")
    return _without_timing(read_table(run_study(config, out, jobs=1, progress=False)))


@pytest.mark.slow
def test_sigkill_of_a_parallel_study_leaves_no_worker_and_resume_gives_the_same_table(tmp_path):
    out = tmp_path / "cut"
    process = _start(tmp_path, out)
    workers = _wait_for_rounds(process, out, 3)
    process.kill()  # SIGKILL: no handler, no cleanup in the main process
    process.wait()
    killed_at = time.monotonic()
    while any(_alive(pid) for pid in workers) and time.monotonic() - killed_at < 10:
        time.sleep(0.1)
    outlived = time.monotonic() - killed_at
    assert not any(_alive(pid) for pid in workers), f"workers still alive after {outlived:.1f} s"
    assert outlived < 5
    logged = _logged_rounds(out)
    time.sleep(1.0)
    assert _logged_rounds(out) == logged  # nobody writes rows any more
    assert logged < 4 * 26  # the kill came mid-study
    assert _resume(tmp_path, out) == _whole_table(tmp_path)


@pytest.mark.slow
def test_sigint_to_the_main_process_cancels_queued_jobs(tmp_path):
    out = tmp_path / "cut"
    process = _start(tmp_path, out)
    workers = _wait_for_rounds(process, out, 3)
    os.kill(process.pid, signal.SIGINT)  # the main process alone, not its process group
    start = time.monotonic()
    assert process.wait(timeout=30) == 130
    assert time.monotonic() - start < 10
    assert "raresift: interrupted" in process.stderr.read()
    exited = time.monotonic()  # multiprocessing's tracker notices the exit a moment later
    while any(_alive(pid) for pid in workers) and time.monotonic() - exited < 5:
        time.sleep(0.1)
    assert not any(_alive(pid) for pid in workers)
    jobs_started = len(list((out / "runs").glob("*.jsonl")))
    assert jobs_started <= 3 and _logged_rounds(out) < 4 * 26  # queued jobs never ran
    assert (out / "results.csv").exists()  # what finished is in the table
    assert _resume(tmp_path, out) == _whole_table(tmp_path)
