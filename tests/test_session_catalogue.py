"""Bad input to the labeling-session commands: each row exits 2 with a clear message on stderr,
no traceback, and leaves every stored answer as it was.

Note for issue 13 (tests/test_catalogue.py did not exist when this was written): these rows
have the same shape as a catalogue row (a name, the command line, the expected message); move
them into the shared catalogue when it lands, keeping the ``session`` fixture that builds the
project they run against.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import numpy as np
import pytest

from raresift.cli import main
from raresift.session import Session

N = 300


@pytest.fixture
def project(tmp_path) -> Path:
    rng = np.random.default_rng(0)
    np.save(tmp_path / "emb.npy", rng.normal(size=(N, 6)).astype(np.float32))
    classes = ["cat", "dog", "eel"]
    s = Session.create(
        tmp_path / "p", embeddings=tmp_path / "emb.npy", classes=classes, progress=False
    )
    s.answer_many([(i, ["cat", "dog", "eel"][i % 3]) for i in range(12)])
    s.close()
    files = {
        "unknown_id.csv": "id,label\n1,cat\n100000,dog\n",
        "unknown_class.csv": "id,label\n1,cat\n2,cow\n",
        "empty.csv": "",
        "header_only.csv": "id,label\n",
        "no_id_column.csv": "item,label\n1,cat\n",
        "no_answer_column.csv": "id,colour\n1,red\n",
        "conflict.csv": "id,label\n5,cat\n5,dog\n",
        "empty_id.csv": "id,label\n,cat\n",
        "not_json.json": "{not json",
        "ls_not_list.json": json.dumps({"id": 1}),
        "ls_unannotated.json": json.dumps([{"id": 1, "data": {"raresift_id": 3}}]),
        "bad_jsonl.jsonl": '{"id": 1, "label": "cat"}\n[1, 2]\n',
        "items.csv": "id,text\na,x\na,y\n",
        "vectors.csv": 'id,embedding\n1,"1 2 3"\n2,"1 2"\n',
        "texts.csv": "id,body\n1,hello\n2,\n",
        "two.npz": None,
        "flat.npy": None,
        "nan.npy": None,
    }
    for name, text in files.items():
        if text is not None:
            (tmp_path / name).write_text(text)
    np.savez(tmp_path / "two.npz", a=np.ones((3, 2)), b=np.ones((3, 2)))
    np.save(tmp_path / "flat.npy", np.ones(5, np.float32))
    bad = np.ones((4, 3), np.float32)
    bad[2, 1] = np.inf
    np.save(tmp_path / "nan.npy", bad)
    return tmp_path / "p"


# (name, command with {p} for the project and {d} for its parent folder, expected message)
CASES = [
    ("label an unknown id", "label {p} {d}/unknown_id.csv", "line 3: unknown id '100000'"),
    (
        "label an unknown class",
        "label {p} {d}/unknown_class.csv",
        "line 3: answer 'cow' is not one of cat, dog, eel, skip, junk, duplicate",
    ),
    ("label an empty file", "label {p} {d}/empty.csv", "the file is empty"),
    ("label a header without rows", "label {p} {d}/header_only.csv", "no answers below the header"),
    ("label a CSV without the id column", "label {p} {d}/no_id_column.csv", "no id column"),
    (
        "label a CSV without an answer column",
        "label {p} {d}/no_answer_column.csv",
        "no answer column",
    ),
    (
        "label one id twice differently",
        "label {p} {d}/conflict.csv",
        "line 3: id '5' is answered 'cat' on line 2, here 'dog'",
    ),
    ("label an empty id", "label {p} {d}/empty_id.csv", "line 2: the id is empty"),
    ("label one unknown id", "label {p} --id 999999 --label cat", "unknown id '999999'"),
    ("label an unknown class by id", "label {p} --id 3 --label cow", "'cow' is not one of"),
    ("label with neither file nor id", "label {p}", "give ANSWERS.csv, or both --id"),
    ("import a broken JSON file", "import {p} {d}/not_json.json", "is not JSON"),
    (
        "import JSON that is no task list",
        "import {p} {d}/ls_not_list.json",
        "a Label Studio export is a JSON list of tasks",
    ),
    (
        "import tasks without annotations",
        "import {p} {d}/ls_unannotated.json",
        "no task has an annotation",
    ),
    (
        "import a JSONL line that is no object",
        "import {p} {d}/bad_jsonl.jsonl",
        "line 2: the id is empty",
    ),
    ("import a missing file", "import {p} {d}/nope.csv", "does not exist"),
    ("next with budget 0", "next {p} --budget 0", "budget must be a positive integer"),
    ("next with a budget above the pool", "next {p} --budget 100000", "exceeds the 300 items"),
    ("next with an unknown strategy", "next {p} --strategy nope", "unknown strategy 'nope'"),
    (
        "next --query without text embeddings",
        "next {p} --query cats",
        "--query TEXT needs a session of texts",
    ),
    ("next --like an unknown id", "next {p} --like 123456", "unknown id '123456'"),
    ("undo zero answers", "undo {p} --last 0", "last must be a positive integer"),
    (
        "export Label Studio before any batch",
        "export {p} --format label-studio",
        "no batch yet; run raresift next first",
    ),
    ("status of a folder without a session", "status {d}/nowhere", "no session folder"),
    (
        "init over an existing session",
        "init {p} --embeddings {d}/emb.npy",
        "already holds a session",
    ),
    ("init from a missing file", "init {d}/q --embeddings {d}/missing.npy", "does not exist"),
    ("init from 1-d embeddings", "init {d}/q --embeddings {d}/flat.npy", "must be 2-d"),
    ("init from embeddings with inf", "init {d}/q --embeddings {d}/nan.npy", "(first at row 2)"),
    (
        "init from an npz with two arrays",
        "init {d}/q --embeddings {d}/two.npz",
        "name the embeddings with --npz-key",
    ),
    (
        "init with duplicate ids",
        "init {d}/q --embeddings {d}/two.npz --npz-key a --items {d}/items.csv",
        "has 2 rows but the embeddings have 3",
    ),
    (
        "init from ragged vectors",
        "init {d}/q --embeddings {d}/vectors.csv",
        "line 3: vector of length 2, the first row has 3",
    ),
    (
        "init texts without a text column",
        "init {d}/q --texts {d}/texts.csv",
        "texts= needs text_column=",
    ),
    (
        "init texts with an empty text",
        "init {d}/q --texts {d}/texts.csv --text-column body",
        "line 3: the text is empty",
    ),
    (
        "init with a reserved class name",
        "init {d}/q --embeddings {d}/emb.npy --classes a,junk",
        "are reserved answers",
    ),
    (
        "init with a rare class not among the classes",
        "init {d}/q --embeddings {d}/emb.npy --classes a,b --rare-classes c",
        "are not among",
    ),
]


def _answers(project: Path) -> list[tuple]:
    conn = sqlite3.connect(project / "session.db")
    try:
        return (
            conn.execute("SELECT * FROM answers ORDER BY seq").fetchall()
            + conn.execute("SELECT * FROM rounds").fetchall()
        )
    finally:
        conn.close()


@pytest.mark.parametrize("name, command, message", CASES, ids=[c[0] for c in CASES])
def test_bad_session_input(project, capsys, name, command, message):
    before = _answers(project)
    argv = command.format(p=project, d=project.parent).split()
    try:
        code = main(argv)
    except SystemExit as exc:  # argparse usage errors
        code = exc.code
    err = capsys.readouterr().err
    assert code == 2, err
    assert message in err, err
    assert "Traceback" not in err
    assert err.startswith("raresift: error:") or err.startswith("usage:")
    assert _answers(project) == before
    assert not (project.parent / "q" / "session.db").exists()


def test_duplicate_ids_in_an_item_table(project):
    from raresift.errors import ValidationError

    d = project.parent
    np.save(d / "two.npy", np.ones((2, 3), np.float32))
    with pytest.raises(ValidationError, match="id 'a' appears on lines 2 and 3"):
        Session.create(d / "q", embeddings=d / "two.npy", items=d / "items.csv", progress=False)
