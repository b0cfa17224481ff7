"""The web app's HTTP API in-process (Starlette's test client): every mistake a 4xx with a JSON
error and no traceback, a body limit, and one answer one transaction."""

from __future__ import annotations

import asyncio
import json
import logging

import numpy as np
import pytest

pytest.importorskip("starlette")
pytest.importorskip("jinja2")

from starlette.testclient import TestClient  # noqa: E402

from raresift.app.guard import Guard, HostPolicy  # noqa: E402
from raresift.app.server import create_app  # noqa: E402
from raresift.session import Session  # noqa: E402

TOKEN = "test-token"
N = 60


@pytest.fixture
def project(tmp_path):
    rng = np.random.default_rng(0)
    np.save(tmp_path / "emb.npy", rng.normal(size=(N, 5)).astype(np.float32))
    (tmp_path / "items.csv").write_text(
        "id,text\n" + "".join(f"item{i},text number {i}\n" for i in range(N))
    )
    s = Session.create(tmp_path / "p", embeddings=tmp_path / "emb.npy",
                       items=tmp_path / "items.csv", progress=False)  # fmt: skip
    s.close()
    return tmp_path / "p"


@pytest.fixture
def client(project, caplog):
    app = create_app(project, host="127.0.0.1", port=8765, who="tester", token=TOKEN)
    with TestClient(app, base_url="http://127.0.0.1:8765", raise_server_exceptions=False) as c:
        c.headers["X-CSRF-Token"] = TOKEN
        c.session = app.app.state.session
        yield c
    assert "Traceback" not in caplog.text


def _transactions(session, fn):
    """``fn()`` and the number of transactions (BEGIN statements) it ran on the session."""
    statements = []
    session.store.conn.set_trace_callback(statements.append)
    try:
        result = fn()
    finally:
        session.store.conn.set_trace_callback(None)
    return result, sum(s.startswith("BEGIN") for s in statements)


def test_pages_and_reads_answer(client):
    for path in ("/label", "/progress", "/api/status", "/api/batch", "/export?format=csv"):
        assert client.get(path).status_code == 200, path
    assert client.get("/item?id=item3").status_code == 200


def test_one_answer_is_one_transaction(client):
    response, count = _transactions(
        client.session,
        lambda: client.post("/api/answer", json={"id": "item3", "answer": "1", "version": None}),
    )
    assert response.status_code == 200, response.text
    assert response.json()["replaced"] is None and response.json()["answer"] == "1"
    assert count == 1


def test_an_answer_over_another_writer_says_what_it_replaced_in_one_transaction(client):
    other = Session.open(client.session.root)
    first = other.answer("item4", "0", who="other tab")
    other.close()
    response, count = _transactions(
        client.session,
        lambda: client.post("/api/answer", json={"id": "item4", "answer": "1", "version": None}),
    )
    assert count == 1
    body = response.json()
    assert body["replaced"] == {"answer": "0", "who": "other tab", "version": first["seq"]}
    assert client.session.item("item4")["answer"] == "1"  # the later answer won


@pytest.mark.parametrize(
    "path, body, status, words",
    [
        ("/api/answer", "[" * 100_000 + "]" * 100_000, 400, "nested too deeply"),
        ("/api/answer", "{not json", 400, "not JSON"),
        ("/api/answer", '{"id": "item1", "id": "item2", "answer": "1"}', 400, "appears twice"),
        ("/api/answer", b"\xff\xfe{", 400, "not UTF-8"),
        ("/api/answer", "[1, 2]", 400, "must be a JSON object"),
        ("/api/answer", '{"id": "item1"}', 400, "needs 'id' and 'answer'"),
        ("/api/answer", '{"id": "item1", "label": "1", "answer": "0"}', 400, "not both"),
        ("/api/answer", '{"id": "nope", "answer": "1"}', 404, "unknown id"),
        ("/api/answer", '{"id": "item1", "answer": "maybe"}', 400, "is not one of"),
        ("/api/answer", '{"id": "item1", "answer": "1", "version": "x"}', 400, "version"),
        ("/api/answer", '{"id": ["item1"], "answer": "1"}', 404, "unknown id"),
        ("/api/answer", '{"id": "item1", "answer": NaN}', 400, "is not one of"),
        ("/api/answer", '{"id": "item1", "answer": ["1"]}', 400, "is not one of"),
        ("/api/undo", json.dumps({"last": 2**70}), 400, "nothing to undo"),
        ("/api/undo", '{"last": 1.5}', 400, "positive integer"),
        ("/api/undo", '{"last": "all"}', 400, "positive integer"),
        ("/api/undo", '{"last": -1}', 400, "positive integer"),
    ],
)
def test_mistakes_get_a_json_4xx(client, path, body, status, words):
    before = client.session.answers()
    response = client.post(path, content=body, headers={"Content-Type": "application/json"})
    assert response.status_code == status, response.text
    assert words in response.json()["error"]
    assert client.session.answers() == before


def test_undo_of_more_than_recorded_is_refused(client):
    client.post("/api/answer", json={"id": "item1", "answer": "1"})
    response = client.post("/api/undo", json={"last": 2**70})
    assert response.status_code == 400 and "more than the 1 answers" in response.json()["error"]
    assert len(client.session.answers()) == 1


def test_a_long_id_is_not_echoed_back(client):
    response = client.post("/api/answer", json={"id": "x" * 100_000, "answer": "1"})
    assert response.status_code == 404
    assert len(response.text) < 1000


def test_a_body_over_the_limit_is_refused_unread(client):
    response = client.post("/api/answer", content=b'{"id": "' + b"x" * (2 << 20) + b'"}')
    assert response.status_code == 413
    assert "over the limit" in response.json()["error"] and "xxxx" not in response.text


def _call(guard: Guard, headers: dict[str, str], chunks: list[bytes] | None):
    """Run ``guard`` on one POST; ``chunks=None``: a client that never sends its body."""
    sent = []

    async def receive():
        if chunks is None:
            await asyncio.sleep(3600)  # would hold the connection for an hour
        body = chunks.pop(0)
        return {"type": "http.request", "body": body, "more_body": bool(chunks)}

    async def send(message):
        sent.append(message)

    async def app(scope, receive, send):  # the application behind the guard
        raise AssertionError("a refused request reached the application")

    scope = {
        "type": "http",
        "method": "POST",
        "path": "/api/answer",
        "headers": [(k.lower().encode(), v.encode()) for k, v in headers.items()],
    }
    asyncio.run(asyncio.wait_for(guard(scope, receive, send), timeout=5))
    return sent[0]["status"], json.loads(sent[1]["body"])


@pytest.fixture
def guard():
    return Guard(None, HostPolicy("127.0.0.1", 8765), TOKEN, max_body=1000)


def test_a_declared_huge_length_with_no_body_is_answered_at_once(guard):
    headers = {"Host": "127.0.0.1:8765", "X-CSRF-Token": TOKEN, "Content-Length": str(10**12)}
    status, body = _call(guard, headers, None)
    assert status == 413 and "1000000000000 bytes" in body["error"]


def test_a_body_without_a_length_is_cut_at_the_limit(guard):
    headers = {"Host": "127.0.0.1:8765", "X-CSRF-Token": TOKEN}
    status, body = _call(guard, headers, [b"x" * 600, b"x" * 600, b"x" * 600])
    assert status == 413 and "over the limit of 1000 bytes" in body["error"]


def test_a_declared_length_whose_body_never_comes_is_answered_in_time():
    guard = Guard(None, HostPolicy("127.0.0.1", 8765), TOKEN, body_seconds=0.2)
    headers = {"Host": "127.0.0.1:8765", "X-CSRF-Token": TOKEN, "Content-Length": "200"}
    status, body = _call(guard, headers, None)
    assert status == 408 and "did not arrive" in body["error"]


def test_a_content_length_that_is_no_number(guard):
    headers = {"Host": "127.0.0.1:8765", "X-CSRF-Token": TOKEN, "Content-Length": "１２"}
    assert _call(guard, headers, [b""])[0] == 400


def test_no_request_reaches_a_server_error(client, caplog):
    caplog.set_level(logging.WARNING)
    for path in ("/thumb?id=item1", "/image?id=nope", "/item?id=", "/export?format=xml"):
        assert client.get(path).status_code < 500, path


def test_a_disk_that_refuses_is_a_503_with_a_json_error(client, monkeypatch):
    import errno

    from raresift.session import session as session_module

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device", "status.png")

    monkeypatch.setattr(session_module.Session, "status_plot", full)
    response = client.get("/progress.png")
    assert response.status_code == 503 and "the disk is full" in response.json()["error"]


def test_routes_are_module_level_handlers_over_the_app_state(client, project, tmp_path):
    """Every route is a plain function of raresift.app.server (no closure over one session),
    so two apps in one process each serve their own project."""
    from starlette.routing import Route

    from raresift.app import server

    routes = [r for r in client.app.app.routes if isinstance(r, Route)]
    assert len(routes) == len(server.ROUTES)
    for route in routes:
        assert getattr(server, route.endpoint.__name__) is route.endpoint, route.path
        assert route.endpoint.__qualname__ == route.endpoint.__name__, route.path

    import shutil

    shutil.copytree(project, tmp_path / "copy")
    other = create_app(tmp_path / "copy", who="other", token=TOKEN)
    with TestClient(other, base_url="http://127.0.0.1:8765") as c:
        c.headers["X-CSRF-Token"] = TOKEN
        assert c.post("/api/answer", json={"id": "item2", "answer": "1"}).status_code == 200
    assert client.session.item("item2")["answer"] is None
    assert client.get("/api/batch").status_code == 200


def test_one_vocabulary_at_the_http_edge(client):
    """``id`` (a string), ``answer`` and ``version`` in every reply; no ``label`` or ``value``."""
    saved = client.post("/api/answer", json={"id": "item5", "answer": "1"}).json()
    assert saved == {"saved": True, "id": "item5", "answer": "1", "version": saved["version"],
                     "replaced": None}  # fmt: skip
    client.post("/api/answer", json={"id": "item5", "answer": "0", "version": saved["version"]})
    undone = client.post("/api/undo", json={}).json()["items"]
    assert undone == [{"id": "item5", "undone": "0", "answer": "1", "version": saved["version"]}]
    client.post("/api/next", json={})
    client.app.app.state.jobs.wait(60)
    items = client.get("/api/batch").json()["items"]
    assert items and all(set(i) == {"id", "answer", "version"} for i in items)
    assert all(isinstance(i["id"], str) for i in items)
    page = client.get("/item?id=item5").text
    assert 'data-answer="1"' in page and "data-label" not in page


def test_a_request_in_the_earlier_vocabulary_is_still_stored(client):
    """Scripts written for the API's earlier name of the answer (``label``) keep working."""
    saved = client.post("/api/answer", json={"id": "item6", "label": "1"}).json()
    assert saved["saved"] and saved["answer"] == "1" and "label" not in saved
    assert client.get("/api/batch").status_code == 200
    assert client.app.app.state.session.item("item6")["answer"] == "1"
