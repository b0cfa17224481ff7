"""Labeling sessions: the store, rounds, answers, undo, import/export and the CLI around them."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from raresift.cli import main
from raresift.errors import RaresiftError, UnknownIdError, ValidationError
from raresift.session import (
    AnswerError,
    ConflictError,
    FingerprintError,
    Session,
    SessionCorruptError,
    SessionError,
)

N, DIM = 2000, 16


def _data(tmp_path: Path, n: int = N, dtype=np.float32):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(n, DIM)).astype(np.float32)
    y = (x[:, 0] > 1.9).astype(int)
    x[y == 1, 1:4] += 2.0
    path = tmp_path / "emb.npy"
    np.save(path, x.astype(dtype))
    seed = tmp_path / "seed.csv"
    pos = np.flatnonzero(y)[:3].tolist()
    rows = [(i, y[i]) for i in pos + list(range(30)) if i not in pos or True]
    with open(seed, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["id", "label"])
        w.writerows(dict(rows).items())
    return path, seed, y


@pytest.fixture
def session(tmp_path):
    emb, seed, y = _data(tmp_path)
    s = Session.create(
        tmp_path / "p", embeddings=emb, concept="rare", seed_labels=seed, progress=False
    )
    s.truth = y
    return s


def _env():
    env = dict(os.environ)
    src = str(Path(__file__).resolve().parents[1] / "src")
    env["PYTHONPATH"] = src + os.pathsep + env.get("PYTHONPATH", "")
    env.update(OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", MKL_NUM_THREADS="1")
    return env


def _cli(*args, check=True):
    proc = subprocess.run(
        [sys.executable, "-m", "raresift.cli", *map(str, args)],
        capture_output=True,
        text=True,
        env=_env(),
    )
    if check and proc.returncode != 0:
        raise AssertionError(proc.stderr)
    return proc


def _db_dump(project: Path) -> list[str]:
    """Every row of the session database (a checkpoint may move bytes, never rows)."""
    import sqlite3

    conn = sqlite3.connect(project / "session.db")
    try:
        return list(conn.iterdump())
    finally:
        conn.close()


# ------------------------------------------------------------------ creation and ids
def test_npy_embeddings_are_memory_mapped_in_place(session, tmp_path):
    assert session.config["embeddings"]["path"] == str(tmp_path / "emb.npy")
    assert not (session.root / "embeddings.npy").exists()
    assert isinstance(session.pool().embeddings, np.memmap)
    assert session.status(estimate=False)["labels_spent"] == len(
        dict.fromkeys(list(np.flatnonzero(session.truth)[:3]) + list(range(30)))
    )


def test_float16_npy_stays_float16(tmp_path):
    emb, _, _ = _data(tmp_path, dtype=np.float16)
    s = Session.create(tmp_path / "p", embeddings=emb, progress=False)
    assert s.pool().embeddings.dtype == np.float16
    assert len(s.next(budget=4)) == 4


def test_string_ids_from_a_table_with_a_vector_column(tmp_path):
    rows = [
        {"key": f"doc-{i:03d}", "embedding": [float(i % 7), float(i % 3), 1.0], "lang": "en"}
        for i in range(60)
    ]
    table = tmp_path / "items.jsonl"
    table.write_text("".join(json.dumps(r) + "\n" for r in rows))
    s = Session.create(tmp_path / "p", embeddings=table, ids_column="key", progress=False)
    assert s.config["ids"] == "str"
    rec = s.answer("doc-007", "yes")
    assert rec["id"] == "doc-007" and rec["answer"] == "1"
    assert s.item("doc-007")["meta"] == {"lang": "en"}
    with pytest.raises(UnknownIdError):
        s.answer("doc-999", "1")
    assert all(isinstance(b.id, str) for b in s.next(budget=5))


def test_parquet_and_csv_vector_columns(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    ids = np.arange(100, 150, dtype=np.int64)
    vecs = np.random.default_rng(1).normal(size=(50, 4)).astype(np.float32)
    pq.write_table(pa.table({"id": ids, "vector": vecs.tolist()}), tmp_path / "t.parquet")
    s = Session.create(tmp_path / "p", embeddings=tmp_path / "t.parquet", progress=False)
    assert s.config["ids"] == "int" and s.uid(0) == 100
    np.testing.assert_allclose(s.pool().embeddings_of([3]), vecs[3:4])
    with open(tmp_path / "t.csv", "w") as fh:
        fh.write(
            "id,embedding\n"
            + "".join(f'{i},"{" ".join(map(str, v))}"\n' for i, v in zip(ids, vecs, strict=True))
        )
    s2 = Session.create(tmp_path / "q", embeddings=tmp_path / "t.csv", progress=False)
    np.testing.assert_allclose(s2.pool().embeddings_of([3]), vecs[3:4], rtol=1e-6)


def test_npz_and_float64_are_converted_once(tmp_path):
    x = np.random.default_rng(2).normal(size=(40, 3))
    np.savez(tmp_path / "e.npz", embeddings=x)
    s = Session.create(tmp_path / "p", embeddings=tmp_path / "e.npz", progress=False)
    assert (s.root / "embeddings.npy").exists()
    np.testing.assert_allclose(s.pool().embeddings_of([5]), x[5:6].astype(np.float32))


def test_create_refuses_bad_inputs(tmp_path):
    bad = tmp_path / "nan.npy"
    x = np.ones((10, 3), np.float32)
    x[4, 1] = np.nan
    np.save(bad, x)
    with pytest.raises(ValidationError, match="row 4"):
        Session.create(tmp_path / "p", embeddings=bad, progress=False)
    np.save(tmp_path / "ok.npy", np.ones((10, 3), np.float32))
    with pytest.raises(ValidationError, match="reserved"):
        Session.create(tmp_path / "q", embeddings=tmp_path / "ok.npy", classes=["a", "skip"])
    Session.create(tmp_path / "r", embeddings=tmp_path / "ok.npy", progress=False)
    with pytest.raises(Exception, match="already holds a session"):
        Session.create(tmp_path / "r", embeddings=tmp_path / "ok.npy", progress=False)


# ------------------------------------------------------------------ rounds
def test_next_twice_returns_the_stored_batch(session):
    first = session.next(budget=10)
    again = Session.open(session.root).next()
    assert [b.id for b in first] == [b.id for b in again]
    assert session.pending() is not None
    session.answer(first[0].id, int(session.truth[first[0].id]))
    third = session.next(budget=10)
    assert third[0].round == first[0].round + 1
    assert first[0].id not in [b.id for b in third]


def test_same_seed_same_batches(tmp_path):
    emb, seed, y = _data(tmp_path)
    picks = []
    for name in ("a", "b"):
        s = Session.create(tmp_path / name, embeddings=emb, seed_labels=seed, progress=False)
        got = []
        for _ in range(3):
            batch = s.next(budget=7, strategy="entropy")
            got.append([b.id for b in batch])
            s.answer_many([(b.id, int(y[b.id])) for b in batch])
        picks.append(got)
    assert picks[0] == picks[1]


def test_cold_start_says_random_and_aims_with_like(tmp_path):
    emb, _, y = _data(tmp_path)
    s = Session.create(tmp_path / "p", embeddings=emb, progress=False)
    batch = s.next(budget=5)
    assert all(b.reason.startswith("random: no answers yet") for b in batch)
    s.answer_many([(b.id, 0) for b in batch])
    batch = s.next(budget=5)
    assert all("every answer so far is '0'" in b.reason for b in batch)
    positive = int(np.flatnonzero(y)[0])
    with pytest.raises(SessionError, match="still has 5 unanswered item.*--replace"):
        s.next(budget=5, like=[positive])  # would silently drop the pending batch
    assert [b.id for b in s.next()] == [b.id for b in batch]
    aimed = s.next(budget=5, like=[positive], replace=True)
    assert all(b.reason.startswith(f"closest to example {positive}") for b in aimed)
    assert positive not in {b.id for b in aimed}  # the example is not news to its giver
    assert np.mean(y[[b.id for b in aimed]]) > 0.5  # the positives cluster together


def test_random_picks_show_the_chance_of_being_drawn_not_a_ranking(tmp_path):
    emb, _, _ = _data(tmp_path)
    s = Session.create(tmp_path / "p", embeddings=emb, progress=False)
    batch = s.next(budget=8)
    assert [b.score for b in batch] == pytest.approx([8 / N] * 8)
    assert all(b.reason.endswith("score = chance of being drawn") for b in batch)


def test_special_answers_leave_the_candidates(session):
    batch = session.next(budget=10)
    session.answer(batch[0].id, "skip")
    session.answer(batch[1].id, "junk")
    session.answer(batch[2].id, "duplicate")
    later = session.next(budget=50)
    assert not {b.id for b in batch[:3]} & {b.id for b in later}


def test_scg_conditions_on_junk(session):
    batch = session.next(budget=5, strategy="flcg")
    assert "none yet" in session.round_info()["note"]
    session.answer(batch[0].id, "junk")
    batch = session.next(budget=5, strategy="flcg")
    assert all("nearest junk/duplicate" in b.reason for b in batch)


def test_reasons_name_the_strategy_evidence(session):
    ent = session.next(budget=5, strategy="entropy")
    assert all(
        b.reason.startswith("most uncertain (entropy") and "p(rare)=" in b.reason for b in ent
    )
    smi = session.next(budget=5, strategy="flqmi")
    assert all("closest positive" in b.reason and "of the candidates" in b.reason for b in smi)
    seals = session.next(budget=5, strategy="mlp", candidates="seals")
    assert all("SEALS: neighbour of" in b.reason for b in seals)
    assert (session.root / "index.faiss").exists()


# ------------------------------------------------------------------ answers
def test_relabel_and_undo_are_exact(session):
    item = 1500
    assert session.item(item)["answer"] is None
    a = session.answer(item, "1")
    b = session.answer(item, "0")
    assert (a["previous"], b["previous"]) == (None, "1") and b["seq"] > a["seq"]
    assert session.undo()[0]["answer"] == "0"
    assert session.item(item)["answer"] == "1"
    session.undo()
    assert session.item(item)["answer"] is None
    assert len(session.item(item)["history"]) == 2  # kept, marked undone


def test_expected_seq_detects_a_later_writer(session):
    seen = session.item(1234)["seq"]
    session.answer(1234, "1")
    with pytest.raises(ConflictError):
        session.answer(1234, "0", expected_seq=seen)
    assert session.item(1234)["answer"] == "1"


def test_bad_answers_refused_line_by_line(session, tmp_path):
    path = tmp_path / "a.csv"
    path.write_text("id,label\n1500,1\n999999,0\n1501,maybe\n1502,0\n1500,0\n")
    before = session.status(estimate=False)["labels_spent"]
    with pytest.raises(AnswerError) as err:
        session.import_file(path)
    assert [line for line, _ in err.value.problems] == [3, 4, 6]
    assert "\n" not in str(err.value)  # one clause per problem, on one line
    assert "; line 4: answer 'maybe'" in str(err.value)
    assert session.status(estimate=False)["labels_spent"] == before
    result = session.import_file(path, partial=True)
    assert result["written"] == 2 and session.item(1502)["answer"] == "0"


@pytest.mark.parametrize(
    "text, message",
    [
        ("", "empty"),
        ("label\n1\n", "no id column"),
        ("id,label\n", "no answers"),
        ("id,foo\n1,1\n", "no answer column"),
    ],
)
def test_answer_files_without_what_is_needed(session, tmp_path, text, message):
    path = tmp_path / "a.csv"
    path.write_text(text)
    with pytest.raises(AnswerError, match=message):
        session.import_file(path)


def test_label_studio_round_trip(session, tmp_path):
    batch = session.next(budget=4)
    tasks = json.loads(session.export("label-studio"))
    assert [t["data"]["raresift_id"] for t in tasks] == [b.id for b in batch]
    assert tasks[0]["predictions"][0]["model_version"].startswith("raresift-")
    for t, value in zip(tasks, ["1", "0", "skip", "1"], strict=True):
        t["annotations"] = [
            {
                "id": 1,
                "result": [
                    {
                        "type": "choices",
                        "from_name": "label",
                        "to_name": "item",
                        "value": {"choices": [value]},
                    }
                ],
            }
        ]
    tasks[3]["annotations"].append({"id": 2, "was_cancelled": True, "result": []})
    export = tmp_path / "ls.json"
    export.write_text(json.dumps(tasks))
    assert session.import_file(export)["written"] == 4
    assert [session.item(b.id)["answer"] for b in batch] == ["1", "0", "skip", "1"]
    assert session.item(batch[0].id)["history"][-1]["who"] == "label-studio"


def test_label_studio_export_then_import_keeps_every_answer(tmp_path):
    emb, seed, _ = _data(tmp_path)
    s = Session.create(tmp_path / "p", embeddings=emb, concept="rare", seed_labels=seed)
    batch = s.next(budget=6)
    for b, value in zip(batch[:4], ["1", "skip", "junk", "duplicate"], strict=True):
        s.answer(b.id, value)
    s.answer(batch[0].id, "0")  # relabeled: the answer in force goes out
    kept = {r["id"]: r["answer"] for r in s.answers()}

    tasks = json.loads(s.export("label-studio"))  # the pending batch, answered ones annotated
    assert [t["data"]["raresift_id"] for t in tasks] == [b.id for b in batch]
    assert "text" not in tasks[0]["data"] and "image" not in tasks[0]["data"]
    answered = {t["data"]["raresift_id"]: t["annotations"][0] for t in tasks if "annotations" in t}
    assert {k: a["result"][0]["value"]["choices"] for k, a in answered.items()} == {
        b.id: [v] for b, v in zip(batch[:4], ["0", "skip", "junk", "duplicate"], strict=True)
    }
    scores = [t["predictions"][0]["score"] for t in tasks]
    pending = [sc for t, sc in zip(tasks, scores, strict=True) if "annotations" not in t]
    assert pending == sorted(pending, reverse=True) and min(pending) > 1  # raresift's order
    assert tasks[-1]["data"]["raresift_reason"] == batch[-1].reason

    out = tmp_path / "all.json"
    s.export("label-studio", out, items="answered")
    assert len(json.loads(out.read_text())) == len(kept)
    again = Session.create(tmp_path / "q", embeddings=emb, concept="rare")
    assert again.import_file(out)["written"] == len(kept)
    assert {r["id"]: r["answer"] for r in again.answers()} == kept  # nothing lost or changed
    assert s.import_file(out)["written"] == 0  # into the same session: every answer unchanged

    for b in batch[4:]:
        s.answer(b.id, "0")
    with pytest.raises(ValidationError, match="fully answered.*raresift next"):
        s.export("label-studio")


def test_label_studio_image_urls_use_its_local_files_storage(tmp_path):
    from raresift.session.exchange import image_url, label_studio_config

    assert image_url(tmp_path / "photos" / "a b.png", tmp_path) == (
        "/data/local-files/?d=photos/a%20b.png"
    )
    with pytest.raises(ValidationError, match="not under the image root"):
        image_url("/elsewhere/x.png", tmp_path)
    emb, _, _ = _data(tmp_path)
    s = Session.create(tmp_path / "p", embeddings=emb, classes=["cat", "dog"])
    config = label_studio_config(s)
    assert '<Text name="item" value="$raresift_id"/>' in config
    assert all(f'<Choice value="{c}"' in config for c in ["cat", "dog", "skip", "duplicate"])


def test_export_csv_lists_every_answer(session, tmp_path):
    out = session.export("csv", tmp_path / "a.csv")
    rows = list(csv.DictReader(open(out)))
    assert len(rows) == session.status(estimate=False)["labels_spent"]
    assert {"id", "answer", "who", "at", "round", "previous"} <= set(rows[0])


# ------------------------------------------------------------------ status
def test_status_has_estimates_and_verdicts(session, tmp_path):
    for _ in range(4):
        batch = session.next(budget=40)
        session.answer_many([(b.id, int(session.truth[b.id])) for b in batch])
    status = session.status()
    json.dumps(status)
    assert status["positives_found"] == int(
        sum(session.truth[r["id"]] for r in session.answers() if r["answer"] == "1")
    )
    est = status["estimates"][0]
    assert est["low"] <= est["positives_left"] <= est["high"]
    assert {r["verdict"] for r in status["stop"]} <= {"stop", "continue", "cannot judge"}
    kappa = next(r for r in status["stop"] if r["rule"].startswith("stabilizing"))
    assert len(kappa["kappas"]) == 3 and kappa["heuristic"]
    png = session.status_plot(tmp_path / "curve.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_knee_rule_stops_on_a_flat_tail():
    from raresift.session.status import knee_rule

    gains = np.r_[np.ones(60), np.zeros(1000)].astype(int)
    assert knee_rule(gains)["verdict"] == "stop"
    assert knee_rule(np.tile([1, 0], 200))["verdict"] == "continue"


# ------------------------------------------------------------------ reliability
def test_changed_or_missing_embeddings_refused(session, tmp_path):
    root = session.root
    session.close()
    emb = tmp_path / "emb.npy"
    x = np.load(emb)
    x[7, 0] += 1
    np.save(emb, x)
    before = _db_dump(root)
    proc = _cli("status", root, check=False)
    assert proc.returncode == 2 and "changed since the session recorded it" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
    emb.unlink()
    with pytest.raises(FingerprintError, match="missing"):
        Session.open(root)
    assert _db_dump(root) == before


@pytest.mark.parametrize("damage", ["truncate", "garbage", "empty"])
def test_corrupted_database_refused_with_one_line(session, damage):
    root = session.root
    session.close()
    db = root / "session.db"
    data = db.read_bytes()
    for side in ("session.db-wal", "session.db-shm"):
        (root / side).unlink(missing_ok=True)
    if damage == "truncate":
        db.write_bytes(data[: len(data) // 2])
    elif damage == "garbage":
        db.write_bytes(data[:100] + b"\x13" * (len(data) - 100))
    else:
        db.write_bytes(b"")
    before = db.read_bytes()
    proc = _cli("next", root, check=False)
    assert proc.returncode == 2, proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and "Traceback" not in proc.stderr
    with pytest.raises(SessionCorruptError):
        Session.open(root)
    assert db.read_bytes() == before


def test_two_label_processes_lose_nothing(session):
    root = session.root
    script = (
        "import sys; from raresift.session import Session\n"
        "s = Session.open(sys.argv[1])\n"
        "for i in range(int(sys.argv[2]), int(sys.argv[3])):\n"
        "    s.answer(i, 'yes' if i % 2 else 'no', who=sys.argv[4])\n"
    )
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", script, str(root), str(lo), str(lo + 150), who], env=_env()
        )
        for lo, who in ((1000, "a"), (1100, "b"))
    ]
    assert [p.wait(timeout=120) for p in procs] == [0, 0]
    s = Session.open(root)
    with s.store.reading() as db:
        hist = [r for r in db.history() if r["iid"] >= 1000]
    assert len(hist) == 300  # 1100..1149 answered by both, every answer kept
    assert all(s.item(i)["answer"] == ("1" if i % 2 else "0") for i in range(1000, 1250))


def _answer_rows(project: Path) -> list[tuple]:
    import sqlite3

    conn = sqlite3.connect(project / "session.db")
    try:
        return conn.execute("SELECT * FROM answers ORDER BY seq").fetchall()
    finally:
        conn.close()


def _timed_run(args) -> float:
    start = time.perf_counter()
    command = [sys.executable, "-m", "raresift.cli", *map(str, args)]
    subprocess.run(command, env=_env(), check=True, capture_output=True)
    return time.perf_counter() - start


def _kill_after(args, delay: float) -> bool:
    """Run the CLI, SIGKILL it after ``delay`` seconds; whether it was still running."""
    command = [sys.executable, "-m", "raresift.cli", *map(str, args)]
    out = subprocess.DEVNULL
    proc = subprocess.Popen(command, env=_env(), stderr=out, stdout=out)
    time.sleep(delay)
    running = proc.poll() is None
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    return running


@pytest.mark.slow
def test_kill_9_during_import_and_next_loses_nothing(tmp_path):
    import shutil

    n = 60_000
    x = np.random.default_rng(3).normal(size=(n, 8)).astype(np.float32)
    np.save(tmp_path / "emb.npy", x)
    template = tmp_path / "template"
    s = Session.create(
        template,
        embeddings=tmp_path / "emb.npy",
        candidates="all",
        strategy="entropy",
        progress=False,
    )
    s.answer_many([(i, i % 2) for i in range(40)])
    s.close()
    before = _answer_rows(template)
    big = tmp_path / "many.csv"
    big.write_text("id,label\n" + "".join(f"{i},{i % 2}\n" for i in range(40, n)))
    shutil.copytree(template, tmp_path / "probe")
    full = _timed_run(["import", tmp_path / "probe", big])
    assert len(_answer_rows(tmp_path / "probe")) == n
    # kill at growing fractions of the probe's time; a run that finished before its kill (the
    # machine is shared, so a run's time varies) moves the next kill earlier, up to 8 tries
    hits, fraction = 0, 0.5
    for k in range(8):
        if hits >= 2 and k >= 4:
            break
        project = tmp_path / f"import-{k}"
        shutil.copytree(template, project)
        command = "import" if k % 2 else "label"  # both record a file in one transaction
        running = _kill_after([command, project, big], fraction * full)
        hits += running
        fraction = min(0.97, fraction * 1.25) if running else fraction * 0.6
        rows = _answer_rows(project)
        assert rows[: len(before)] == before  # stored answers untouched
        assert len(rows) in (len(before), n)  # the file entirely, or not at all
        assert Session.open(project).status(estimate=False)["labels_spent"] == len(rows)
    assert hits >= 2

    shutil.copytree(template, tmp_path / "probe-next")
    full = _timed_run(["next", tmp_path / "probe-next", "--budget", "60"])
    for k, fraction in enumerate((0.6, 0.9)):
        project = tmp_path / f"next-{k}"
        shutil.copytree(template, project)
        _kill_after(["next", project, "--budget", "60"], fraction * full)
        s = Session.open(project)
        assert len(s.batch()) in (0, 60)  # never half a batch
        assert _answer_rows(project) == before
        rerun = s.next(budget=60)  # a killed next is simply rerun
        assert len(rerun) == 60 and rerun == s.next()


def test_threads_sharing_one_session_lose_nothing(session):
    import threading

    errors = []

    def work(lo):
        try:
            for i in range(lo, lo + 60):
                session.answer(i, i % 2, who=f"thread-{lo}")
        except Exception as exc:  # the assertion below reports it
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(lo,)) for lo in (1000, 1060, 1120, 1180)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert all(session.item(i)["answer"] == str(i % 2) for i in range(1000, 1240))


# ------------------------------------------------------------------ CLI
def test_cli_workflow(tmp_path, capsys):
    emb, seed, y = _data(tmp_path)
    project = tmp_path / "proj"
    assert main(["init", str(project), "--embeddings", str(emb), "--labels", str(seed)]) == 0
    assert main(["next", str(project), "--budget", "6", "--format", "csv"]) == 0
    out = capsys.readouterr().out
    ids = [
        int(r["id"])
        for r in csv.DictReader(
            out.splitlines()[out.splitlines().index("position,id,score,answer,reason") :]
        )
    ]
    assert len(ids) == 6
    answers = tmp_path / "answers.csv"
    answers.write_text("id,label\n" + "".join(f"{i},{y[i]}\n" for i in ids))
    assert main(["label", str(project), str(answers)]) == 0
    assert main(["label", str(project), "--id", str(ids[0]), "--label", "junk"]) == 0
    assert main(["undo", str(project)]) == 0
    assert main(["label", str(project), "--id", "no-such", "--label", "1"]) == 2
    capsys.readouterr()
    assert main(["status", str(project), "--json"]) == 0
    status = json.loads(capsys.readouterr().out)
    seeded = {int(r[0]) for r in csv.reader(open(seed)) if r[0] != "id"}
    assert status["labels_spent"] == len(set(ids) | seeded)
    assert (
        main(["export", str(project), "--format", "jsonl", "--out", str(tmp_path / "a.jsonl")]) == 0
    )
    lines = (tmp_path / "a.jsonl").read_text().splitlines()
    assert len(lines) == Session.open(project).status(estimate=False)["labels_spent"]


# ------------------------------------------------------------------ images and texts
def test_image_folder_session_embeds_with_efficientnet(tmp_path):
    pytest.importorskip("efficientnet_lite_pytorch")
    from PIL import Image

    from raresift import embed_images as images

    folder = tmp_path / "imgs"
    (folder / "sub").mkdir(parents=True)
    rng = np.random.default_rng(0)
    for i in range(12):
        colour = (255, 0, 0) if i % 3 == 0 else (0, 0, 255)
        pixels = np.clip(np.array(colour) + rng.normal(0, 20, (40, 50, 3)), 0, 255)
        Image.fromarray(pixels.astype(np.uint8)).save(
            folder / ("sub" if i % 2 else "") / f"{i}.png"
        )
    s = Session.create(tmp_path / "p", images=folder, progress=False)  # 40 x 50: 64 px
    x = s.pool().embeddings
    assert x.shape == (12, images.DIM) and s.config["ids"] == "str"
    np.testing.assert_allclose(np.linalg.norm(x, axis=1), 1.0, rtol=1e-5)
    red = [s.iid(u) for u in ("0.png", "sub/3.png", "6.png", "sub/9.png")]
    sims = x @ x[red[0]]
    assert sims[red].min() > np.delete(sims, red).max()  # same colour, closer features
    assert s.item("sub/3.png")["image"].endswith("sub/3.png")
    s.next(budget=3)  # Label Studio tasks: image URLs its local-files storage serves, no text
    data = [t["data"] for t in json.loads(s.export("label-studio"))]
    assert all(d["image"] == f"/data/local-files/?d=imgs/{d['raresift_id']}" for d in data)
    assert not any("text" in d for d in data)
    assert s.config["embeddings"]["path"] == "embeddings.npy"  # linked from the user's cache
    assert s.config["source"]["image_size"] == 64


ANIMALS = [
    "a cat sleeps on the sofa",
    "the dog chased a ball in the park",
    "kittens play with yarn",
    "a puppy barks at the mailman",
    "the horse galloped across the field",
    "a parrot repeats words",
    "my cat purrs when I stroke her",
    "two dogs share a bone",
]
MONEY = [
    "the central bank raised interest rates",
    "stock prices fell sharply on monday",
    "the company reported quarterly earnings",
    "bond yields rose after the report",
    "investors sold shares of the bank",
    "inflation slowed last month",
    "the currency weakened against the dollar",
    "a merger lifted the share price",
    "the budget deficit widened",
    "oil futures dropped two percent",
    "mortgage rates hit a new high",
    "the firm issued new bonds",
]


def test_text_session_cold_start_from_a_query(tmp_path):
    texts = tmp_path / "texts.csv"
    with open(texts, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["doc", "body", "source"])
        w.writerows((f"d{i}", t, "news") for i, t in enumerate(MONEY + ANIMALS))
    project = tmp_path / "p"
    assert (
        main(
            [
                "init",
                str(project),
                "--texts",
                str(texts),
                "--text-column",
                "body",
                "--ids-column",
                "doc",
                "--concept",
                "animal",
            ]
        )
        == 0
    )
    s = Session.open(project)
    assert s.config["embedder"] == "all-MiniLM-L6-v2" and s.config["ids"] == "str"
    batch = s.next(budget=4, query="pets and animals")
    animal_ids = {f"d{i}" for i in range(len(MONEY), len(MONEY) + len(ANIMALS))}
    assert {b.id for b in batch} <= animal_ids
    assert batch[0].reason.startswith("closest to query 'pets and animals' (cosine")
    assert s.item(batch[0].id)["text"] in ANIMALS
    assert s.item("d0")["meta"] == {"source": "news"}


@pytest.mark.slow
def test_demo_ends_with_commands_that_continue_its_session(tmp_path):
    import shlex

    from raresift.demo import run_demo
    from raresift.errors import DatasetNotInstalledError

    try:
        result = run_demo(
            tmp_path / "demo",
            dataset="mnist5k",
            rounds=1,
            batch=20,
            study=False,
            show_progress=False,
        )
    except DatasetNotInstalledError as exc:
        pytest.skip(str(exc))
    project = tmp_path / "demo" / "session"
    s = Session.open(project)
    assert s.pending() is not None and s.round_info()["round"] == 3
    spent = s.status(estimate=False)["labels_spent"]
    for command in result.session_commands:
        argv = shlex.split(command.split("  #")[0])
        assert argv[0] == "raresift"
        _cli(*argv[1:])
    s = Session.open(project)
    assert (tmp_path / "demo" / "tasks.json").exists()
    assert (tmp_path / "demo" / "session-curve.png").exists()
    assert s.status(estimate=False)["labels_spent"] == spent + 50 - 1  # the batch, one undone


def test_label_studio_min_and_csv_exports_are_read_by_raresift_id(session, tmp_path):
    minimal = tmp_path / "min.json"
    minimal.write_text(
        json.dumps(
            [
                {"id": 1, "raresift_id": 1700, "label": "1"},
                {"id": 2, "raresift_id": 1701, "label": "0"},
            ]
        )
    )
    assert session.import_file(minimal)["written"] == 2
    ls_csv = tmp_path / "ls.csv"
    ls_csv.write_text("id,raresift_id,label\n1,1702,1\n2,1703,skip\n")
    session.import_file(ls_csv)
    got = [session.item(i)["answer"] for i in (1700, 1701, 1702, 1703)]
    assert got == ["1", "0", "1", "skip"]


def test_every_strategy_runs_in_a_session_or_is_refused_up_front(session):
    from raresift.errors import ConfigError
    from raresift.session.config import check_session_strategy
    from raresift.strategies import strategy_names

    refused = []
    for name in strategy_names():
        try:
            check_session_strategy(name)  # asks the strategy what it needs of the model
        except ConfigError:
            refused.append(name)
    assert {"bald", "fisher", "ibal"} <= set(refused) and "flqmi" not in refused
    for name in strategy_names():
        if name in refused:
            with pytest.raises(ConfigError, match="a neural network trained on the raw items"):
                session.next(budget=3, strategy=name)
            with pytest.raises(RaresiftError):  # the learner's own check: the list is not stale
                from raresift.session.rounds import build_learner, split_answers

                with session.store.reading() as db:
                    sets = split_answers(session, db.current())
                learner, _ = build_learner(session, sets, name, "all", 1)
                learner.query(3)
        else:
            assert len(session.next(budget=3, strategy=name)) == 3, name


def test_random_batch_gives_an_unbiased_estimate_of_positives_left(tmp_path):
    emb, _, y = _data(tmp_path)
    s = Session.create(tmp_path / "p", embeddings=emb, progress=False)
    batch = s.next(budget=400)  # no answers yet: a uniform random batch, and it says so
    s.answer_many([(b.id, int(y[b.id])) for b in batch])
    for _ in range(2):  # then active rounds deplete the positives
        batch = s.next(budget=50, strategy="mlp")
        s.answer_many([(b.id, int(y[b.id])) for b in batch])
    status = s.status()
    est = next(e for e in status["estimates"] if e["method"].startswith("random picks of round 1"))
    left = int(y.sum()) - status["positives_found"]
    assert est["low"] <= left <= est["high"], (est, left)
    assert est["high"] < 0.1 * (s.n_items - status["labels_spent"])  # bounded well below 10 %


def test_two_next_processes_at_once_store_one_batch(session):
    root = session.root
    session.close()
    command = [sys.executable, "-m", "raresift.cli", "next", str(root), "--format", "csv"]
    procs = [
        subprocess.Popen(command, env=_env(), stdout=subprocess.PIPE, text=True) for _ in range(2)
    ]
    outs = [p.communicate(timeout=120)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0]
    assert outs[0] == outs[1] and len(outs[0].splitlines()) == 101
    s = Session.open(root)
    assert s.round_info()["round"] == 1 and len(s.batch()) == 100
