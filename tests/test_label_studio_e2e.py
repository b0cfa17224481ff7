"""raresift as the ML backend of a real Label Studio (1.23.2, installed by ``make label-studio``
into ``.venv-label-studio``; ``RARESIFT_LABEL_STUDIO`` names another ``label-studio``
executable). Skipped, with the reason, where it is not installed.

Label Studio runs on 127.0.0.1 on a free port, over a copy of the migrated template data dir
that ``make label-studio`` prepared (SQLite; a first start migrates for a minute or more), with
a user created from the environment. ``raresift label-studio PROJECT --port 0 --url --token
--ls-project`` runs as a child process with a personal access token (Label Studio 1.23's
default kind; the test mints it with the legacy token it enabled for itself).

The test imports ``raresift export --format label-studio`` tasks, connects the backend through
Label Studio's ML API, annotates the batch through Label Studio's API and checks the answers in
the session's store, that the first unlabeled task in Label Studio's order by
``raresift_priority`` is raresift's top pick of the next round, and that a kill -9 of the
backend loses no annotation it acknowledged.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import numpy as np
import pytest

from raresift.session import Session
from raresift.session.labelstudio import LabelStudio

from .app_server import ServerProcess

ROOT = Path(__file__).resolve().parents[1]
VENV = ROOT / ".venv-label-studio"
USER, PASSWORD = "raresift@example.com", "raresift-e2e-password"
LEGACY_TOKEN = "raresift-e2e-legacy-token"
N, BUDGET = 80, 6

pytestmark = pytest.mark.label_studio


def _executable() -> Path:
    named = os.environ.get("RARESIFT_LABEL_STUDIO")
    path = Path(named) if named else VENV / "bin" / "label-studio"
    if not path.exists():
        pytest.skip(
            f"Label Studio is not installed ({path} is missing): run `make label-studio`"
            + ("" if named else " or set RARESIFT_LABEL_STUDIO to a label-studio executable")
        )
    return path


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LabelStudioAPI:
    """Label Studio's REST API with the legacy token (the test's own setup calls)."""

    def __init__(self, url: str, token: str):
        self.url, self.token = url, token

    def __call__(self, method: str, path: str, body=None):
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.url + path, data=data, method=method)
        request.add_header("Content-Type", "application/json")
        request.add_header("Authorization", f"Token {self.token}")
        try:
            with urllib.request.urlopen(request, timeout=60) as reply:
                text = reply.read().decode()
        except urllib.error.HTTPError as exc:
            raise AssertionError(f"{method} {path}: {exc.code} {exc.read()[:500]!r}") from None
        return json.loads(text) if text else None


@pytest.fixture(scope="module")
def label_studio(tmp_path_factory):
    """A running Label Studio: its URL and API; stopped by PID at the end."""
    executable = _executable()
    data = tmp_path_factory.mktemp("label-studio")
    template = executable.parents[1] / "template"
    if template.is_dir():  # migrated once by `make label-studio`
        shutil.copytree(template, data, dirs_exist_ok=True)
    port = _free_port()
    env = {
        **os.environ,
        "LABEL_STUDIO_BASE_DATA_DIR": str(data),
        "LABEL_STUDIO_USERNAME": USER,
        "LABEL_STUDIO_PASSWORD": PASSWORD,
        "LABEL_STUDIO_USER_TOKEN": LEGACY_TOKEN,
        "LABEL_STUDIO_ENABLE_LEGACY_API_TOKEN": "true",
        "ML_BLOCK_LOCAL_IP": "false",  # its ML calls and webhooks go to 127.0.0.1
        "SSRF_PROTECTION_ENABLED": "false",
        "LABEL_STUDIO_DISABLE_SIGNUP_WITHOUT_LINK": "true",
        "SENTRY_DSN": "",
        "FRONTEND_SENTRY_DSN": "",
    }
    log = open(data / "label-studio.log", "ab")
    command = [str(executable), "start", "--no-browser", "--internal-host", "127.0.0.1"]
    proc = subprocess.Popen([*command, "--port", str(port)], stdout=log, stderr=log, env=env)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 300  # a first start without the template migrates
        while True:
            assert proc.poll() is None, f"Label Studio exited; see {log.name}"
            try:
                with urllib.request.urlopen(url + "/health", timeout=5) as reply:
                    if reply.status == 200:
                        break
            except OSError:
                pass
            assert time.monotonic() < deadline, f"Label Studio did not answer; see {log.name}"
            time.sleep(0.5)
        yield url, LabelStudioAPI(url, LEGACY_TOKEN)
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.kill(proc.pid, signal.SIGKILL)
                proc.wait(timeout=20)
        log.close()


@pytest.fixture
def project(tmp_path):
    """80 short texts with two answers of each kind and a first batch of 6 pending."""
    rng = np.random.default_rng(0)
    np.save(tmp_path / "emb.npy", rng.normal(size=(N, 8)).astype(np.float32))
    (tmp_path / "items.csv").write_text(
        "id,text\n" + "".join(f"t{i:03d},news item number {i}\n" for i in range(N))
    )
    s = Session.create(tmp_path / "p", embeddings=tmp_path / "emb.npy",
                       items=tmp_path / "items.csv", concept="grain", budget=BUDGET,
                       progress=False)  # fmt: skip
    for i, answer in enumerate("1010"):
        s.answer(f"t{i:03d}", answer)
    s.next()
    s.close()
    return tmp_path / "p"


def _cli(*args: str, **env: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "raresift.cli", *args],
        capture_output=True, text=True, timeout=300, env={**_child_env(), **env},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return done.stdout


def _child_env() -> dict[str, str]:
    src = str(ROOT / "src")
    return {**os.environ, "PYTHONPATH": src + os.pathsep + os.environ.get("PYTHONPATH", "")}


def _ordered(api, ls_project: int, by: str = "tasks:data.raresift_priority") -> list[dict]:
    """The project's tasks as Label Studio's Data Manager sorts them (by raresift_priority,
    ascending, unless ``by`` names another column)."""
    query = urllib.parse.quote(json.dumps({"ordering": [by]}))
    reply = api("GET", f"/api/tasks/?project={ls_project}&page_size=1000&query={query}")
    return reply["tasks"]


def _annotate(api, task: dict, choice: str) -> dict:
    result = [{"from_name": "label", "to_name": "item", "type": "choices",
               "value": {"choices": [choice]}}]  # fmt: skip
    return api("POST", f"/api/tasks/{task['id']}/annotations/", {"result": result})


def _wait(predicate, seconds: float, what: str):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.5)
    raise AssertionError(f"timed out after {seconds} s waiting for {what}")


def test_label_studio_loop_with_raresift_as_its_ml_backend(label_studio, project, tmp_path):
    url, api = label_studio
    tasks_file = tmp_path / "tasks.json"
    _cli("export", str(project), "--format", "label-studio", "--items", "all",
         "--out", str(tasks_file))  # fmt: skip
    config = tasks_file.with_suffix(".label-config.xml").read_text()
    ls_project = api("POST", "/api/projects/", {"title": "raresift e2e", "label_config": config})
    pid = ls_project["id"]
    tasks = json.loads(tasks_file.read_text())
    api("POST", f"/api/projects/{pid}/import", tasks)
    token = api("POST", "/api/token/")["token"]  # a personal access token (a JWT)
    assert token.count(".") == 2
    # raresift's client takes either kind of token, and refreshes an access token refused
    assert LabelStudio(url, LEGACY_TOKEN).project(pid)["id"] == pid
    personal = LabelStudio(url, token)
    personal._access = "an.expired.token"
    assert personal.project(pid)["id"] == pid and personal._access != "an.expired.token"

    backend = ServerProcess(project, tmp_path / "backend.log", "--url", url, "--token", token,
                            "--ls-project", str(pid), command="label-studio")  # fmt: skip
    try:
        api("POST", "/api/ml/", {"url": backend.url, "project": pid, "title": "raresift"})
        hooks = api("GET", f"/api/webhooks/?project={pid}")
        assert [h["url"] for h in hooks] == [backend.url + "/webhook"]

        # the first batch, in raresift's order, leads Label Studio's order by raresift_priority
        session = Session.open(project)
        first = [b.id for b in session.batch()]
        ordered = _ordered(api, pid)
        assert [t["data"]["raresift_id"] for t in ordered[:BUDGET]] == first

        # Label Studio asks the backend for predictions: descending score = raresift's order
        done = api("POST", f"/api/dm/actions?id=retrieve_tasks_predictions&project={pid}",
                   {"selectedItems": {"all": True, "excluded": []}})  # fmt: skip
        assert done["processed_items"] == N, done
        by_score = _ordered(api, pid, "-tasks:predictions_score")
        assert [t["data"]["raresift_id"] for t in by_score[:BUDGET]] == first

        # annotate the batch through Label Studio: each annotation is an answer in the store
        by_id = {t["data"]["raresift_id"]: t for t in ordered}
        choices = ["1", "0", "0", "1", "0", "0"]
        for uid, choice in zip(first, choices, strict=True):
            _annotate(api, by_id[uid], choice)
        answers = {r["id"]: r for r in session.answers()}
        assert [answers[uid]["answer"] for uid in first] == choices
        assert all(answers[uid]["source"].startswith("label-studio annotation") for uid in first)

        # the batch answered: the next round ran and its top pick leads Label Studio's order
        def next_round_pushed():
            """The backend's job (round then push) done after the batch was answered."""
            job = _job(backend)
            return session.round_info()["round"] == 2 and job["state"] != "running" and job

        job = _wait(next_round_pushed, 120, "the next round and its push")
        assert job["state"] == "done" and job["result"]["ran"], job
        assert job["result"]["pushed"]["updated"] == BUDGET  # the new batch's (labeled: kept)
        batch = session.batch()
        unlabeled = [t for t in _ordered(api, pid) if not t["is_labeled"]]
        assert unlabeled[0]["data"]["raresift_id"] == batch[0].id  # raresift's top pick first
        assert [t["data"]["raresift_id"] for t in unlabeled[:BUDGET]] == [b.id for b in batch]
        assert [t["data"]["raresift_priority"] for t in unlabeled[:BUDGET]] == list(
            range(1, BUDGET + 1)
        )
        # ... and Label Studio's own next task, in a Data Manager tab sorted by raresift_priority
        # (a column its Order by menu offers)
        columns = api("GET", f"/api/dm/columns/?project={pid}")["columns"]
        assert {"id": "raresift_priority", "parent": "data"}.items() <= next(
            c for c in columns if c["id"] == "raresift_priority"
        ).items()
        tab = {"project": pid, "data": {"ordering": ["tasks:data.raresift_priority"]}}
        view = api("POST", "/api/dm/views/", tab)
        assert (
            api("GET", f"/api/projects/{pid}/next/?view={view['id']}")["data"]["raresift_id"]
            == batch[0].id
        )

        # an update relabels, a delete undoes
        second = batch[0].id
        annotation = _annotate(api, by_id[second], "1")
        api("PATCH", f"/api/annotations/{annotation['id']}/",
            {"result": [{"from_name": "label", "to_name": "item", "type": "choices",
                         "value": {"choices": ["0"]}}]})  # fmt: skip
        assert session.item(second)["answer"] == "0"
        api("DELETE", f"/api/annotations/{annotation['id']}/")
        assert session.item(second)["answer"] is None

        # kill -9 of the backend loses no acknowledged annotation
        rest = [b.id for b in batch[1:]]
        for uid in rest[:2]:  # Label Studio's webhooks are synchronous: answered = acknowledged
            _annotate(api, by_id[uid], "0")
        acknowledged = rest[:2] + _post_while_killed(backend, by_id, pid, rest[2:])
        session.close()
        after = {r["id"]: r["answer"] for r in Session.open(project).answers()}
        assert len(acknowledged) >= 3 and all(after.get(uid) == "0" for uid in acknowledged)

        # an annotation made while the backend is down reaches the store when it restarts
        missed = next(uid for uid in rest if uid not in after)
        _annotate(api, by_id[missed], "1")  # Label Studio's webhook fails and is never resent
        backend = ServerProcess(project, tmp_path / "backend.log", "--url", url, "--token", token,
                                "--ls-project", str(pid), command="label-studio")  # fmt: skip
        pulled = _wait(lambda: _job(backend)["state"] == "done" and _job(backend), 60, "the pull")
        assert pulled["result"]["pulled"]["recorded"] == 1, pulled
        assert Session.open(project).item(missed)["answer"] == "1"
        backend.kill()

        # --sync: one push (nothing moved since the backend's own), with the token from the
        # environment
        synced = _cli("label-studio", str(project), "--url", url, "--ls-project", str(pid),
                      "--sync", LABEL_STUDIO_API_KEY=token)  # fmt: skip
        assert f"to 0 of {N} tasks of Label Studio project {pid}" in synced, synced
    finally:
        backend.kill()


def _job(backend) -> dict:
    """The backend's background job (pull, round, push) as its /metrics say."""
    with urllib.request.urlopen(backend.url + "/metrics", timeout=10) as reply:
        return json.loads(reply.read())["next_round"]


def _post_while_killed(backend, by_id, pid, uids) -> list:
    """Send ANNOTATION_CREATED webhooks for ``uids`` straight to the backend, one after the
    other, while another thread kills it with SIGKILL once the first came back; returns the ids
    whose webhook the backend acknowledged (201) before it died."""
    acknowledged, first_back = [], threading.Event()
    killer = threading.Thread(target=lambda: first_back.wait(60) and backend.kill())
    killer.start()
    for k, uid in enumerate(uids):
        task = by_id[uid]
        result = [{"from_name": "label", "to_name": "item", "type": "choices",
                   "value": {"choices": ["0"]}}]  # fmt: skip
        body = {
            "action": "ANNOTATION_CREATED",
            "annotation": {"id": 10_000 + k, "completed_by": 1, "result": result},
            "task": {"id": task["id"], "data": task["data"]},
            "project": {"id": pid},
        }
        request = urllib.request.Request(
            backend.url + "/webhook",
            data=json.dumps(body).encode(),
            method="POST",
            headers={"Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=10) as reply:
                if reply.status == 201:
                    acknowledged.append(uid)
        except OSError:
            break  # the backend is gone
        first_back.set()
    first_back.set()
    killer.join()
    return acknowledged
