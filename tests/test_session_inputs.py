"""What a session reads from a user's files, read as written: ids, encodings, long fields; a
project folder that moves and copies; the disk's refusals named as such."""

from __future__ import annotations

import errno
import shutil
import sqlite3
from pathlib import Path

import numpy as np
import pytest

from raresift.cli import main
from raresift.errors import StorageError
from raresift.session import Session

N = 40


@pytest.fixture
def emb(tmp_path) -> Path:
    np.save(tmp_path / "emb.npy", np.random.default_rng(0).normal(size=(N, 4)).astype("f4"))
    return tmp_path / "emb.npy"


def _items(tmp_path: Path, ids: list[str], name="items.csv") -> Path:
    path = tmp_path / name
    path.write_text("id,note\n" + "".join(f"{i},n{k}\n" for k, i in enumerate(ids)))
    return path


def test_ids_that_look_like_numbers_stay_strings(tmp_path, emb):
    ids = ["1_0", "\uff13"] + [str(i) for i in range(2, N)]
    s = Session.create(tmp_path / "p", embeddings=emb, items=_items(tmp_path, ids), progress=False)
    assert s.config["ids"] == "str"
    assert s.answer("1_0", "1")["id"] == "1_0"
    assert s.iids(["10", "1_0", "3", "\uff13"]) == [10, 0, 3, 1]  # each its own item
    assert s.item("\uff13")["meta"] == {"note": "n1"}


def test_int_ids_are_plain_ascii_digits(tmp_path, emb):
    ids = [str(10 * i) for i in range(N)]
    s = Session.create(tmp_path / "p", embeddings=emb, items=_items(tmp_path, ids), progress=False)
    assert s.config["ids"] == "int"
    assert s.iids(["10", " 10 ", 10, "1_0", "\uff11\uff10", "+10", True]) == [1, 1, 1] + [-1] * 4


def test_ids_with_surrounding_spaces_can_be_answered(tmp_path, emb):
    ids = [f" a{i} " for i in range(N)]
    s = Session.create(tmp_path / "p", embeddings=emb, items=_items(tmp_path, ids), progress=False)
    assert s.uid(0) == "a0"  # stored as looked up: stripped on both sides
    (tmp_path / "answers.csv").write_text("id,label\n a3 ,1\na4,0\n")
    assert s.import_file(tmp_path / "answers.csv")["written"] == 2
    assert {r["id"]: r["answer"] for r in s.answers()} == {"a3": "1", "a4": "0"}


def test_row_ids_refuse_underscores_and_full_width_digits(tmp_path, emb):
    s = Session.create(tmp_path / "p", embeddings=emb, progress=False)
    assert s.iids(["10", "1_0", "\uff13", " 3 ", "3.0", 3.0]) == [10, -1, -1, 3, -1, 3]


@pytest.mark.parametrize(
    "encoding, declared",
    [("utf-8-sig", None), ("utf-16", None), ("utf-32", None), ("latin-1", "latin-1")],
)
def test_answer_files_in_other_encodings(tmp_path, emb, encoding, declared):
    s = Session.create(tmp_path / "p", embeddings=emb, classes=["chat", "élan"], progress=False)
    path = tmp_path / "answers.csv"
    path.write_bytes("id,label\n1,élan\n2,chat\n".encode(encoding))
    assert s.import_file(path, encoding=declared)["written"] == 2
    assert [r["answer"] for r in s.answers()] == ["élan", "chat"]


def test_a_utf8_bom_jsonl_and_label_studio_file(tmp_path, emb):
    s = Session.create(tmp_path / "p", embeddings=emb, progress=False)
    (tmp_path / "a.jsonl").write_bytes(b'\xef\xbb\xbf{"id": 1, "label": "1"}\n')
    (tmp_path / "ls.json").write_bytes(
        '[{"data": {"raresift_id": 2}, "annotations": [{"result": [{"type": "choices", '
        '"value": {"choices": ["0"]}}]}]}]'.encode("utf-16")
    )
    assert s.import_file(tmp_path / "a.jsonl")["written"] == 1
    assert s.import_file(tmp_path / "ls.json")["written"] == 1
    assert {r["id"]: r["answer"] for r in s.answers()} == {1: "1", 2: "0"}


def test_fields_longer_than_csv_s_default_limit(tmp_path, emb):
    long = "word " * 60_000  # 300 kB, above the csv module's 128 KiB default
    rows = "".join(f'{i},"{long if i == 5 else "short"}"\n' for i in range(N))
    (tmp_path / "items.csv").write_text("id,body\n" + rows)
    s = Session.create(tmp_path / "p", embeddings=emb, items=tmp_path / "items.csv")
    assert s.item(5)["meta"]["body"] == long
    (tmp_path / "answers.csv").write_text(f'id,label,comment\n5,1,"{long}"\n')
    assert s.import_file(tmp_path / "answers.csv")["written"] == 1


def test_duplicate_keys_in_a_jsonl_answer_are_refused(tmp_path, emb):
    from raresift.errors import ValidationError

    s = Session.create(tmp_path / "p", embeddings=emb, progress=False)
    (tmp_path / "a.jsonl").write_text('{"id": 1, "label": "1", "label": "0"}\n')
    with pytest.raises(ValidationError, match="key 'label' appears twice"):
        s.import_file(tmp_path / "a.jsonl")


def _run(capsys, *argv) -> str:
    code = main([str(a) for a in argv])
    out = capsys.readouterr()
    assert code == 0, out.err
    return out.out


@pytest.mark.parametrize("how", ["moved", "renamed", "copied"])
def test_a_project_moves_renames_and_copies_with_its_own_files(tmp_path, capsys, how):
    """Embeddings converted into the project (here from an .npz) live inside it; the moved,
    renamed or copied folder reads its own copy, never the original's path."""
    x = np.random.default_rng(1).normal(size=(N, 4))
    np.savez(tmp_path / "emb.npz", embeddings=x)
    first = tmp_path / "a" / "proj"
    _run(capsys, "init", first, "--embeddings", tmp_path / "emb.npz", "--budget", "5")
    with sqlite3.connect(first / "session.db") as conn:
        assert conn.execute("SELECT path FROM files").fetchall() == [("embeddings.npy",)]
    target = {
        "moved": tmp_path / "b" / "proj",
        "renamed": tmp_path / "a" / "proj2",
        "copied": tmp_path / "c",
    }[how]
    target.parent.mkdir(exist_ok=True)
    if how == "copied":
        shutil.copytree(first, target)
        # the original's embeddings changed: a copy that still read them would fail its check
        np.save(first / "embeddings.npy", np.zeros((N, 4), np.float32))
    else:
        first.rename(target)
    batch = _run(capsys, "next", target, "--format", "csv").splitlines()
    item = batch[1].split(",")[0]
    assert "1 [" in _run(capsys, "label", target, "--id", item, "--label", "1")
    assert "labels    1" in _run(capsys, "status", target).replace("labels spent", "labels")


def test_a_failed_seed_import_leaves_no_project(tmp_path, emb):
    from raresift.session import AnswerError

    (tmp_path / "seed.csv").write_text("id,label\n1,1\n999,0\n")
    with pytest.raises(AnswerError, match="unknown id '999'"):
        Session.create(tmp_path / "p", embeddings=emb, seed_labels=tmp_path / "seed.csv")
    assert not (tmp_path / "p").exists()


def test_sqlite_refusals_of_the_disk_are_not_called_corruption(tmp_path):
    from raresift.session.store import storage_problem

    path = tmp_path / "session.db"
    for words, expected in [
        ("database or disk is full", "the disk is full"),
        ("attempt to write a readonly database", "read-only"),
        ("unable to open database file", "cannot be opened"),
    ]:
        problem = storage_problem(sqlite3.OperationalError(words), path, "write to")
        assert isinstance(problem, StorageError) and expected in str(problem)
        assert "corrupt" not in str(problem) and "intact" in str(problem)
    assert storage_problem(sqlite3.DatabaseError("file is not a database"), path, "open") is None


def test_a_full_disk_during_a_write_is_reported_and_changes_nothing(tmp_path, emb, monkeypatch):
    s = Session.create(tmp_path / "p", embeddings=emb, progress=False)
    s.answer(1, "1")
    real = s.store.conn

    class FullDisk:
        in_transaction = False

        def execute(self, sql, *args):
            if sql.startswith("INSERT INTO answers"):
                raise sqlite3.OperationalError("database or disk is full")
            result = real.execute(sql, *args)
            self.in_transaction = real.in_transaction
            return result

        def __getattr__(self, name):
            return getattr(real, name)

    monkeypatch.setattr(s.store, "conn", FullDisk())
    with pytest.raises(StorageError, match="the disk is full"):
        s.answer(2, "0")
    monkeypatch.undo()
    assert [r["id"] for r in s.answers()] == [1]


def test_the_cli_names_an_os_refusal_in_one_line(tmp_path, emb, capsys, monkeypatch):
    from raresift.session import session as session_module

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device", str(tmp_path / "p"))

    monkeypatch.setattr(session_module.Session, "open", full)
    assert main(["status", str(tmp_path / "p")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("raresift: error:") and "the disk is full" in err
    assert len(err.splitlines()) == 1


def test_a_users_index_string_gets_search_parameters_calibrated_for_it(tmp_path):
    """IVF64 over 3,000 items: the default's nprobe is not applied to the user's string; the
    built index is calibrated (recall@10 >= 0.95) and the number of lists read from it."""
    x = np.random.default_rng(0).normal(size=(3000, 8)).astype(np.float32)
    np.save(tmp_path / "emb.npy", x)
    s = Session.create(tmp_path / "p", embeddings=tmp_path / "emb.npy", candidates="seals",
                       index="IVF64,Flat", progress=False)  # fmt: skip
    spec = s.config["index"]
    assert spec["nlist"] == 64 and spec["search_params"].startswith("nprobe=")
    assert int(spec["search_params"].split("=")[1]) > 1
    assert s.index().recall_ >= 0.95
    assert Session.open(tmp_path / "p").config["index"]["search_params"] == spec["search_params"]


def test_the_default_budget_shrinks_to_the_items_left(tmp_path):
    from raresift.errors import ValidationError

    np.save(tmp_path / "e.npy", np.random.default_rng(0).normal(size=(30, 4)).astype("f4"))
    s = Session.create(tmp_path / "p", embeddings=tmp_path / "e.npy", budget=100, progress=False)
    s.answer_many([(i, str(i % 2)) for i in range(25)])
    assert len(s.next()) == 5
    s.answer_many([(b.id, "0") for b in s.next()])
    with pytest.raises(ValidationError, match="every item is answered"):
        s.next(strategy="entropy")


def test_a_label_studio_choice_written_bare(tmp_path, emb):
    s = Session.create(tmp_path / "p", embeddings=emb, classes=["cat", "dog"], progress=False)
    (tmp_path / "ls.json").write_text(
        '[{"data": {"raresift_id": 1}, "annotations": [{"result": [{"type": "choices", '
        '"value": {"choices": "dog"}}]}]}]'
    )
    assert s.import_file(tmp_path / "ls.json")["written"] == 1
    assert s.answers()[0]["answer"] == "dog"


def test_a_project_written_with_absolute_paths_still_moves(tmp_path, capsys):
    """Projects made before the files table held relative paths kept the absolute one."""
    np.savez(tmp_path / "emb.npz", embeddings=np.random.default_rng(2).normal(size=(N, 4)))
    old = tmp_path / "old"
    _run(capsys, "init", old, "--embeddings", tmp_path / "emb.npz", "--candidates", "seals")
    with sqlite3.connect(old / "session.db") as conn:
        conn.execute("UPDATE files SET path = ? || '/' || path", (str(old),))
    old.rename(tmp_path / "new")
    assert "labels    0" in _run(capsys, "status", tmp_path / "new").replace(
        "labels spent", "labels"
    )
    assert _run(capsys, "next", tmp_path / "new", "--format", "csv").count("\n") == 41


def test_neighbors_are_the_exact_nearest_by_cosine(tmp_path, emb):
    x = np.load(emb)
    unit = x / np.linalg.norm(x, axis=1, keepdims=True)
    s = Session.create(tmp_path / "p", embeddings=emb, progress=False)
    s.answer_many([(i, str(i % 2)) for i in range(0, N, 3)])
    answered = np.arange(0, N, 3)
    for labeled_only, ref in ((True, answered[answered != 7]), (False, np.delete(np.arange(N), 7))):
        got = s.neighbors(7, k=4, labeled_only=labeled_only)
        sims = unit[ref] @ unit[7]
        assert [g["id"] for g in got] == ref[np.argsort(-sims)[:4]].tolist()
        assert np.allclose([g["similarity"] for g in got], np.sort(sims)[::-1][:4], atol=1e-5)


def test_an_index_faiss_cannot_write_is_a_storage_error(tmp_path, monkeypatch):
    import faiss

    from raresift.index import NeighborIndex
    from raresift.pool import Pool

    def refuse(index, path):
        raise RuntimeError("Error in faiss::FileIOWriter: No space left on device")

    monkeypatch.setattr(faiss, "write_index", refuse)
    index = NeighborIndex("Flat", progress=False).fit(Pool(np.eye(4, dtype=np.float32)))
    with pytest.raises(StorageError, match="No space left on device"):
        index.save(tmp_path / "x.faiss")


def test_answer_columns_named_in_another_case(tmp_path, emb):
    s = Session.create(tmp_path / "p", embeddings=emb, progress=False)
    (tmp_path / "a.csv").write_text("ID,Label\n1,1\n2,0\n")
    assert s.import_file(tmp_path / "a.csv")["written"] == 2


def test_images_inside_the_project_move_with_it(tmp_path):
    pytest.importorskip("efficientnet_lite_pytorch")
    from PIL import Image

    folder = tmp_path / "proj" / "imgs"
    folder.mkdir(parents=True)
    for i in range(4):
        Image.new("RGB", (40, 40), (60 * i, 20, 200 - 40 * i)).save(folder / f"{i}.png")
    s = Session.create(tmp_path / "proj", images=folder, image_size=32, progress=False)
    s.close()
    (tmp_path / "proj").rename(tmp_path / "moved")
    with Session.open(tmp_path / "moved") as s:
        assert s.item("2.png")["image"] == str(tmp_path / "moved" / "imgs" / "2.png")
