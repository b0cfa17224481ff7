"""A study's progress bar counts rounds over all jobs, resumed rounds included."""

import re

import pytest

from raresift.simulate.joblog import log_path
from raresift.simulate.runner import rounds_logged, run_study

from .test_runner import tiny


def last_bar(err):
    return re.findall(r"tiny-rare-classes:\s+\d+%\|[^|]*\| (\d+)/(\d+) \[", err)[-1]


@pytest.mark.parametrize("jobs", [1, pytest.param(2, marks=pytest.mark.slow)])
def test_bar_counts_rounds_and_starts_from_the_logged_ones(tmp_path, capsys, jobs):
    config = tiny()  # 2 strategies x 2 seeds x (3 rounds + round 0) = 16 rounds
    run_study(config, tmp_path, jobs=jobs, progress=True)
    assert last_bar(capsys.readouterr().err) == ("16", "16")
    logs = [log_path(tmp_path, label, seed) for label in ("random", "entropy") for seed in (0, 1)]
    assert rounds_logged(logs, 4) == 16
    with open(logs[0], "rb+") as fh:  # one job lost its last two rounds, the last one torn
        lines = fh.read().split(b"\n")
        fh.seek(0)
        fh.write(b"\n".join(lines[:2]) + b"\n" + lines[2][:5])
        fh.truncate()
    assert rounds_logged(logs, 4) == 14
    run_study(config, tmp_path, jobs=jobs, progress=True)
    err = capsys.readouterr().err
    assert re.search(r"tiny-rare-classes:\s+88%\|[^|]*\| 14/16 \[", err)  # where it resumed
    assert last_bar(err) == ("16", "16") and "round" in err
