"""What the labeling commands say: one line per error, the words a person expects, and the
answers recorded as the flags say (issue 25, item 7)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from raresift.cli import main
from raresift.session import Session

N = 200
CLASSES = ["cat", "dog", "eel"]


@pytest.fixture
def project(tmp_path) -> Path:
    rng = np.random.default_rng(0)
    np.save(tmp_path / "emb.npy", rng.normal(size=(N, 6)).astype(np.float32))
    s = Session.create(
        tmp_path / "p", embeddings=tmp_path / "emb.npy", classes=CLASSES, progress=False
    )
    s.close()
    return tmp_path / "p"


def run(capsys, *args) -> tuple[int, str, str]:
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


def test_a_digit_answers_the_class_of_that_key_as_in_the_web_app(project, capsys):
    assert run(capsys, "label", project, "--id", 7, "--label", 2)[0] == 0
    assert run(capsys, "label", project, "--id", 8, "--label", "eel")[0] == 0
    code, _, err = run(capsys, "label", project, "--id", 9, "--label", 4)  # no fourth class
    assert code == 2 and "answer '4' is not one of cat, dog, eel" in err
    with Session.open(project) as s:
        assert (s.item(7)["answer"], s.item(8)["answer"], s.item(9)["answer"]) == (
            "dog",
            "eel",
            None,
        )


def test_an_answer_file_is_recorded_as_the_cli_unless_who_says_otherwise(project, tmp_path, capsys):
    answers = tmp_path / "a.csv"
    answers.write_text("id,label\n1,cat\n")
    assert run(capsys, "label", project, answers)[0] == 0
    answers.write_text("id,label\n2,dog\n")
    assert run(capsys, "label", project, answers, "--who", "ann")[0] == 0
    with Session.open(project) as s:
        assert s.item(1)["history"][-1]["who"] == "cli"
        assert s.item(2)["history"][-1]["who"] == "ann"


def test_errors_and_reports_read_as_sentences(project, tmp_path, capsys):
    code, out, _ = run(capsys, "status", project)
    assert code == 0 and "labels    0 spent\n" in out  # no dangling "spent: "

    bad = tmp_path / "bad.csv"
    bad.write_text("id,label\n1,cow\n999,cat\n")
    code, _, err = run(capsys, "label", project, bad)
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert "line 2: answer 'cow' is not one of cat, dog, eel, skip, junk, duplicate; line 3:" in err

    (tmp_path / "noid.csv").write_text("item,label\n1,cat\n")
    _, _, err = run(capsys, "label", project, tmp_path / "noid.csv")
    expected = err.split("expected one of ")[1].split(")")[0].split(", ")
    assert sorted(expected) == sorted(set(expected)) and "id" in expected


def test_an_aimed_batch_never_drops_a_pending_one_silently(project, capsys):
    assert run(capsys, "next", project, "--budget", 6)[0] == 0
    code, _, err = run(capsys, "next", project, "--like", "3,4")
    assert code == 2 and "still has 6 unanswered item(s) of 6" in err and "--replace" in err
    aimed = ["next", project, "--like", "3,4", "--replace", "--budget", 6, "--format", "csv"]
    code, out, _ = run(capsys, *aimed)
    assert code == 0
    picked = [line.split(",")[1] for line in out.strip().splitlines()[1:]]
    assert len(picked) == 6 and not {"3", "4"} & set(picked)
