"""Label Studio's ML backend contract (``raresift label-studio``) in-process: the documented
payloads of every endpoint replayed through Starlette's test client (status codes and shapes),
mistakes answered with a one-line JSON error and no traceback, and the priorities pushed only
where they changed. The run against a real Label Studio is tests/test_label_studio_e2e.py."""

from __future__ import annotations

import base64
import json
import logging

import numpy as np
import pytest

pytest.importorskip("starlette")

from starlette.testclient import TestClient  # noqa: E402

from raresift.app.ml_backend import create_backend  # noqa: E402
from raresift.cli import main  # noqa: E402
from raresift.session import Session  # noqa: E402
from raresift.session.exchange import label_studio_config  # noqa: E402
from raresift.session.labelstudio import Loop, pull_annotations, push_priorities  # noqa: E402

N = 60
LS_PROJECT = 3
PROJECT = f"{LS_PROJECT}.1764950400"  # Label Studio's "<id>.<created>"


@pytest.fixture
def project(tmp_path):
    """60 texts with an answer of each class and a pending batch of 4 chosen by a model."""
    rng = np.random.default_rng(0)
    np.save(tmp_path / "emb.npy", rng.normal(size=(N, 5)).astype(np.float32))
    (tmp_path / "items.csv").write_text(
        "id,text\n" + "".join(f"item{i},text number {i}\n" for i in range(N))
    )
    s = Session.create(tmp_path / "p", embeddings=tmp_path / "emb.npy",
                       items=tmp_path / "items.csv", concept="cat", budget=4,
                       progress=False)  # fmt: skip
    for i, answer in enumerate("1010"):
        s.answer(f"item{i}", answer)
    s.next()
    s.close()
    return tmp_path / "p"


@pytest.fixture
def client(project, caplog):
    app = create_backend(project, ls_project=LS_PROJECT)
    with TestClient(app, raise_server_exceptions=False) as c:
        c.session = app.state.session
        c.jobs = app.state.jobs
        yield c
    assert "Traceback" not in caplog.text


def _tasks(session, items="all"):
    return json.loads(session.export("label-studio", items=items))


def _event(action, annotation, task=None):
    payload = {"action": action, "annotation": annotation, "project": {"id": LS_PROJECT}}
    if task is not None:
        payload["task"] = task
    return payload


def _annotation(annotation_id, choice, **extra):
    result = [{"from_name": "label", "to_name": "item", "type": "choices",
               "value": {"choices": [choice]}}]  # fmt: skip
    return {"id": annotation_id, "result": result, "completed_by": 1, **extra}


def _task(uid, task_id=1):
    return {"id": task_id, "data": {"raresift_id": uid, "text": "..."}}


def test_health_and_root_say_up(client):
    for path in ("/", "/health"):
        reply = client.get(path)
        assert reply.status_code == 200
        assert reply.json()["status"] == "UP" and reply.json()["model_class"] == "raresift"


def test_setup_answers_a_model_version_and_refuses_a_config_without_choices(client):
    config = label_studio_config(client.session)
    reply = client.post("/setup", json={"project": PROJECT, "schema": config, "extra_params": {}})
    assert reply.status_code == 200 and reply.json()["model_version"].startswith("raresift-")
    reply = client.post("/setup", json={"project": PROJECT, "schema": "<View></View>"})
    assert reply.status_code == 400 and "<Choices" in reply.json()["error"]


def test_predict_scores_sort_the_pending_batch_first_in_raresift_order(client):
    session = client.session
    tasks = _tasks(session)
    config = label_studio_config(session).replace('name="label"', 'name="verdict"')
    reply = client.post(
        "/predict",
        json={"tasks": tasks, "project": PROJECT, "label_config": config, "params": {}},
    )
    assert reply.status_code == 200, reply.text
    results = reply.json()["results"]
    assert len(results) == len(tasks)
    order = sorted(range(len(tasks)), key=lambda k: -results[k]["score"])
    batch = [b.id for b in session.batch()]
    assert [tasks[k]["data"]["raresift_id"] for k in order[: len(batch)]] == batch
    for r in results:  # a model is fitted: each task gets its predicted choice
        (choice,) = r["result"]
        assert choice["from_name"] == "verdict" and choice["to_name"] == "item"
        assert choice["value"]["choices"][0] in ("1", "0")
        assert r["model_version"].startswith("raresift-")


@pytest.mark.parametrize(
    "body, status, words",
    [
        ({"tasks": [{"id": 1, "data": {"text": "x"}}]}, 400, "no data.raresift_id"),
        ({"tasks": [{"id": 1, "data": {"raresift_id": "nope"}}]}, 404, "unknown id"),
        ({"tasks": {"id": 1}}, 400, "must be a list"),
        ({"tasks": [], "project": "4.1764950400"}, 400, "serves Label Studio project 3"),
        ({"tasks": [], "label_config": "<View"}, 400, "not XML"),
    ],
)
def test_predict_refuses_bad_tasks_with_one_line(client, body, status, words):
    body = {"project": PROJECT, "label_config": label_studio_config(client.session)} | body
    reply = client.post("/predict", json=body)
    assert reply.status_code == status, reply.text
    assert words in reply.json()["error"] and "\n" not in reply.json()["error"]


def test_created_updated_deleted_annotations_answer_relabel_and_undo(client):
    session = client.session
    uid = session.batch()[0].id
    before = session.item(uid)["answer"]
    reply = client.post("/webhook", json=_event("ANNOTATION_CREATED", _annotation(11, "1"),
                                                _task(uid)))  # fmt: skip
    assert reply.status_code == 201, reply.text
    assert reply.json() == {"status": "ok", "result": {"id": uid, "answer": "1", "written": 1}}
    assert session.item(uid)["answer"] == "1"
    assert session.item(uid)["history"][-1]["source"] == "label-studio annotation 11"

    reply = client.post("/webhook", json=_event("ANNOTATION_UPDATED", _annotation(11, "0"),
                                                _task(uid)))  # fmt: skip
    assert reply.status_code == 201 and session.item(uid)["answer"] == "0"
    assert [h["answer"] if "answer" in h else h["value"] for h in session.item(uid)["history"]][
        -2:
    ] == ["1", "0"]

    reply = client.post(
        "/webhook",
        json={"action": "ANNOTATIONS_DELETED", "annotations": [{"id": 11}],
              "project": {"id": LS_PROJECT}},
    )  # fmt: skip
    assert reply.status_code == 201 and reply.json()["result"] == {"undone": [uid, uid]}
    assert session.item(uid)["answer"] == before  # both of the annotation's answers undone


def test_the_backends_delete_event_and_a_skipped_annotation(client):
    session = client.session
    uid = session.batch()[1].id
    skipped = _annotation(12, "1", was_cancelled=True)
    reply = client.post("/webhook", json=_event("ANNOTATION_CREATED", skipped, _task(uid)))
    assert reply.status_code == 201 and session.item(uid)["answer"] == "skip"
    reply = client.post("/webhook", json=_event("ANNOTATION_DELETED", {"id": 12}))
    assert reply.status_code == 201 and session.item(uid)["answer"] is None


def test_start_training_and_unknown_events(client):
    reply = client.post("/webhook", json={"action": "START_TRAINING", "project": {"id": 3}})
    assert reply.status_code == 201 and reply.json()["status"] == "ok"
    for action in ("PROJECT_UPDATED", "TASKS_CREATED", "LABEL_LINK_CREATED"):
        reply = client.post("/webhook", json={"action": action, "project": {"id": 3}})
        assert reply.status_code == 200 and reply.json() == {"status": "Unknown event"}


@pytest.mark.parametrize(
    "payload, words",
    [
        ({"annotation": {"id": 5, "result": []}}, "has no choice"),
        ({"annotation": {"result": []}}, "needs an annotation object with an id"),
        ({"annotation": {"id": 5, "result": []}, "task": {"id": 1}}, "with a data object"),
    ],
)
def test_webhook_refuses_annotations_it_cannot_read(client, payload, words):
    uid = client.session.batch()[0].id
    body = {"action": "ANNOTATION_CREATED", "task": _task(uid), "project": {"id": 3}} | payload
    reply = client.post("/webhook", json=body)
    assert reply.status_code == 400 and words in reply.json()["error"], reply.text
    assert client.session.item(uid)["answer"] is None


def test_answering_the_whole_batch_runs_the_next_round(client):
    session = client.session
    first = session.batch()
    for k, b in enumerate(first):
        event = _event("ANNOTATION_CREATED", _annotation(20 + k, "0"), _task(b.id))
        reply = client.post("/webhook", json=event)
        assert reply.status_code == 201
    assert client.jobs.wait(60)["state"] == "done"
    assert session.round_info()["round"] == first[0].round + 1
    assert not {b.id for b in session.batch()} & {b.id for b in first}
    metrics = client.get("/metrics").json()
    assert metrics["round"] == first[0].round + 1 and metrics["answers"] == 4 + len(first)
    assert metrics["next_round"]["result"] == {"pulled": None, "ran": True, "pushed": None}


@pytest.mark.parametrize(
    "raw, words",
    [(b"{not json", "not JSON"), (b"[1, 2]", "must be a JSON object"), (b"\xff\xfe", "UTF-8")],
)
def test_malformed_bodies_are_a_one_line_400(client, raw, words):
    for path in ("/setup", "/predict", "/webhook"):
        reply = client.post(path, content=raw, headers={"Content-Type": "application/json"})
        assert reply.status_code == 400, (path, reply.text)
        error = reply.json()["error"]
        assert words in error and "\n" not in error and "Traceback" not in reply.text


def test_basic_auth_refuses_a_wrong_password(project):
    app = create_backend(project, basic_auth=("ls", "secret"))
    with TestClient(app, raise_server_exceptions=False) as c:

        def auth(user, password):
            return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode())
                    .decode()}  # fmt: skip

        assert c.get("/health").status_code == 401
        assert c.get("/health", headers=auth("ls", "wrong")).status_code == 401
        reply = c.post("/webhook", json={"action": "X"}, headers=auth("ls", "wrong"))
        assert reply.status_code == 401 and "basic-auth" in reply.json()["error"]
        assert reply.headers["WWW-Authenticate"].startswith("Basic")
        assert c.get("/health", headers=auth("ls", "secret")).json()["status"] == "UP"


def test_metrics_answer_a_json_object(client):
    reply = client.get("/metrics")
    assert reply.status_code == 200 and reply.json()["answers"] == 4


class RecordingLabelStudio:
    """Label Studio's task list in memory: what :func:`push_priorities` reads and patches."""

    def __init__(self, tasks):
        self.stored = {t["id"]: t for t in tasks}
        self.patched = []

    def tasks(self, project, annotations=False):
        return [
            {
                k: v
                for k, v in json.loads(json.dumps(t)).items()
                if annotations or k != "annotations"
            }
            for t in self.stored.values()
        ]

    def set_data(self, task, data):
        self.patched.append(task["id"])
        self.stored[task["id"]]["data"] = data


def test_priorities_are_pushed_where_they_changed(project):
    session = Session.open(project)
    tasks = _tasks(session)
    for t in tasks:
        del t["data"]["raresift_priority"]
    tasks.append({"id": 999, "data": {"text": "not from raresift"}})
    studio = RecordingLabelStudio(tasks)
    assert push_priorities(session, studio, LS_PROJECT)["updated"] == N - 4  # 4 answered
    priority = {t["data"].get("raresift_id"): t["data"].get("raresift_priority")
                for t in studio.stored.values()}  # fmt: skip
    batch = session.batch()
    assert [priority[b.id] for b in batch] == [1, 2, 3, 4]
    assert set(priority.values()) == {1, 2, 3, 4, N + 1, None}
    studio.patched.clear()
    assert push_priorities(session, studio, LS_PROJECT)["updated"] == 0

    for b in batch:  # the batch answered: the loop runs the next round and pushes it
        session.answer(b.id, "0")
    result = Loop(session, studio, LS_PROJECT).advance()
    assert result["ran"] and result["pushed"]["updated"] == 4  # the answered batch keeps its
    assert result["pulled"] == {"tasks": N + 1, "recorded": 0}  # the exported answers: in force
    changed = {b.id for b in session.batch()}
    assert sorted(studio.patched) == sorted(
        t["id"] for t in tasks[:-1] if t["data"]["raresift_id"] in changed
    )
    session.close()


@pytest.mark.parametrize(
    "extra, words",
    [
        (["--url", "http://127.0.0.1:1"], "give --url, --token and --ls-project together"),
        (["--sync"], "--sync needs --url, --token and --ls-project"),
        (["--url", "localhost:8080", "--token", "t", "--ls-project", "1", "--sync"],
         "http(s)://"),
        (["--url", "http://127.0.0.1:1", "--token", "t", "--ls-project", "1", "--sync"],
         "cannot reach Label Studio at http://127.0.0.1:1"),
    ],
)  # fmt: skip
def test_cli_mistakes_are_one_line(project, capsys, monkeypatch, extra, words):
    monkeypatch.delenv("LABEL_STUDIO_API_KEY", raising=False)
    assert main(["label-studio", str(project), *extra]) == 2
    err = capsys.readouterr().err.strip()
    assert words in err and "\n" not in err


def test_no_traceback_is_logged_for_a_refused_request(client, caplog):
    with caplog.at_level(logging.DEBUG):
        client.post("/predict", json={"tasks": "x", "project": PROJECT})
    assert "Traceback" not in caplog.text


def test_annotations_missed_while_no_backend_ran_are_pulled_once(project):
    session = Session.open(project)
    tasks = {t["data"]["raresift_id"]: t for t in _tasks(session)}
    a, b, c, d = (b.id for b in session.batch())

    def annotate(uid, annotation):
        tasks[uid].setdefault("annotations", []).append(annotation)

    annotate(a, {**_annotation(31, "1"), "updated_at": "2026-12-05T10:00:00Z"})
    annotate(a, {**_annotation(32, "0"), "updated_at": "2026-12-05T11:00:00Z"})  # the latest
    annotate(b, _annotation(33, "1", was_cancelled=True))
    annotate(c, {"id": 34, "result": []})  # no choice: no answer
    annotate(d, _annotation(35, "1"))
    session.answer_many([(1, d, "1")], source="label-studio annotation 35")  # seen live
    session.answer(d, "0")  # then relabeled in raresift: stays in force
    studio = RecordingLabelStudio(list(tasks.values()))
    assert pull_annotations(session, studio, LS_PROJECT) == {"tasks": N, "recorded": 2}
    answers = {r["id"]: r for r in session.answers()}
    assert answers[a]["answer"] == "0" and answers[a]["source"] == "label-studio annotation 32"
    assert answers[b]["answer"] == "skip" and c not in answers and answers[d]["answer"] == "0"
    assert pull_annotations(session, studio, LS_PROJECT)["recorded"] == 0
    session.close()


@pytest.mark.parametrize(
    "path, body, words",
    [
        ("/setup", {"project": "abc.1", "schema": "<View/>"}, "not a Label Studio project"),
        ("/predict", {"tasks": [], "project": PROJECT, "label_config": ""}, "no labeling config"),
        ("/webhook", {"action": "ANNOTATIONS_DELETED", "annotations": [{"x": 1}]}, "with ids"),
    ],
)
def test_requests_it_cannot_read_are_a_400_that_says_why(client, path, body, words):
    reply = client.post(path, json=body)
    assert reply.status_code == 400 and words in reply.json()["error"], reply.text


def test_library_callers_get_raresift_errors(project, monkeypatch):
    from raresift.app.ml_backend import basic_auth_from_environment
    from raresift.errors import ValidationError
    from raresift.session.labelstudio import LabelStudio, record_event

    monkeypatch.setenv("BASIC_AUTH_USER", "ann")
    monkeypatch.delenv("BASIC_AUTH_PASS", raising=False)
    with pytest.raises(ValidationError, match="or neither"):
        basic_auth_from_environment()
    with pytest.raises(ValidationError, match="token is empty"):
        LabelStudio("http://127.0.0.1:1", "")
    with Session.open(project) as session:
        with pytest.raises(ValidationError, match="unknown event 'TASKS_CREATED'"):
            record_event(session, "TASKS_CREATED", {})
        assert len(session.answers()) == 4  # nothing recorded
