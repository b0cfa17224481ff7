"""Label Studio's ML backend contract over a raresift session (``raresift label-studio``).

The routes and payloads are those of label-studio-ml-backend (``label_studio_ml/api.py``):

- ``GET /health`` and ``GET /`` -> ``{"status": "UP", "model_class": "raresift", ...}``;
- ``POST /setup`` ``{"project": "<id>.<created>", "schema": "<labeling config>",
  "extra_params"?}`` -> ``{"model_version"}``;
- ``POST /predict`` ``{"tasks": [...], "project", "label_config", "params"?}`` ->
  ``{"results": [{"result": [choices], "score", "model_version"}, ...]}``, one per task in
  order; ``score`` sorted *descending* shows raresift's next batch first;
- ``POST /webhook`` ``{"action", ...}``: ``ANNOTATION_CREATED`` / ``ANNOTATION_UPDATED`` record
  the annotation's answer, ``ANNOTATION_DELETED`` / ``ANNOTATIONS_DELETED`` undo it,
  ``START_TRAINING`` starts the next round if the batch is answered; each answers 201
  ``{"status": "ok", "result"}`` *after* its transaction committed. Any other action answers
  200 ``{"status": "Unknown event"}``;
- ``GET /metrics`` -> ``{"answers", "round", "next_round"}``.

When an answer completes the latest batch, the next round runs in a background thread and, when
the backend knows Label Studio's ``--url``, ``--token`` and ``--ls-project``, its priorities are
pushed into the tasks' ``raresift_priority`` (:mod:`raresift.session.labelstudio`).

A mistake answers a 4xx with ``{"error": message}`` (404: an unknown item id), never a
traceback. With ``BASIC_AUTH_USER`` and ``BASIC_AUTH_PASS`` set (as for Label Studio's own
backends), every request needs those credentials (401 otherwise).
"""

from __future__ import annotations

import base64
import binascii
import hmac
import logging
import os
from functools import partial
from pathlib import Path
from typing import Any

import raresift
from raresift.app.jobs import JobRunner
from raresift.app.server import (
    _require_app_extra,
    as_json,
    bind,
    body_of,
    in_thread,
    short,
    url_of,
    user_error,
)
from raresift.errors import RaresiftError, ValidationError
from raresift.session import labelstudio

log = logging.getLogger("raresift")

MODEL_CLASS = "raresift"


def advance(loop: labelstudio.Loop) -> dict[str, Any]:
    """The background job: :meth:`Loop.advance`, its refusal (Label Studio unreachable, the
    token refused) written to the log as well as to ``/metrics``."""
    try:
        return loop.advance()
    except RaresiftError as exc:
        log.warning("raresift: the next round or the push to Label Studio failed: %s", exc)
        raise


def _model_version() -> str:
    return f"raresift-{raresift.__version__}"


def health(request):
    state = request.app.state
    return as_json({"status": "UP", "model_class": MODEL_CLASS, "project": state.project.name})


async def setup(request):
    state = request.app.state
    data = await body_of(request)
    labelstudio.check_project(state.ls_project, data.get("project"))
    labelstudio.choices_tag(data.get("schema"))
    return as_json({"model_version": _model_version()})


async def predict(request):
    state = request.app.state
    data = await body_of(request)
    labelstudio.check_project(state.ls_project, data.get("project"))
    results = await in_thread(
        labelstudio.predict, state.session, data.get("tasks"), data.get("label_config")
    )
    return as_json({"results": results})


async def webhook(request):
    state = request.app.state
    data = await body_of(request)
    action = data.get("action")
    if action not in labelstudio.EVENTS:
        return as_json({"status": "Unknown event"})
    labelstudio.check_project(state.ls_project, data.get("project"))
    result = await in_thread(labelstudio.record_event, state.session, action, data)
    if action not in labelstudio.DELETE_EVENTS:
        state.jobs.start()  # nothing to do while the batch still has unanswered items
    return as_json({"status": "ok", "result": result}, status_code=201)


def metrics(request):
    state = request.app.state
    info = state.session.round_info()
    job = state.jobs.state()
    shown = ("state", "run", "seconds", "result", "error")
    return as_json(
        {
            "answers": len(state.session.answers()),
            "round": info["round"] if info else 0,
            "next_round": {k: v for k, v in job.items() if k in shown},
        }
    )


async def internal_error(request, exc):
    """An unexpected failure: one line, logged in full, never a traceback in the reply."""
    log.error("%s %s failed", request.method, request.url.path, exc_info=exc)
    return as_json({"error": short(f"{type(exc).__name__}: {exc}")}, status_code=500)


ROUTES = (
    ("/", health, None),
    ("/health", health, None),
    ("/setup", setup, ["POST"]),
    ("/predict", predict, ["POST"]),
    ("/webhook", webhook, ["POST"]),
    ("/metrics", metrics, None),
)


class BasicAuth:
    """ASGI middleware: every request carries HTTP basic credentials ``user:password``."""

    def __init__(self, app, user: str, password: str):
        self.app = app
        self.expected = f"{user}:{password}".encode()

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http" and not self._allowed(dict(scope["headers"])):
            from starlette.responses import JSONResponse

            reply = JSONResponse(
                {"error": "wrong or missing basic-auth credentials (BASIC_AUTH_USER / _PASS)"},
                status_code=401,
                headers={"WWW-Authenticate": 'Basic realm="raresift"'},
            )
            return await reply(scope, receive, send)
        return await self.app(scope, receive, send)

    def _allowed(self, headers: dict[bytes, bytes]) -> bool:
        kind, _, value = headers.get(b"authorization", b"").partition(b" ")
        if kind.lower() != b"basic":
            return False
        try:
            given = base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError):
            return False
        return hmac.compare_digest(given, self.expected)


def create_backend(
    project: str | os.PathLike,
    *,
    url: str | None = None,
    token: str | None = None,
    ls_project: int | None = None,
    basic_auth: tuple[str, str] | None = None,
):
    """The ASGI application of the ML backend over the session in ``project``; with ``url``,
    ``token`` and ``ls_project`` it pushes priorities to that Label Studio project, with
    ``basic_auth`` (user, password) it requires those credentials."""
    _require_app_extra()
    from starlette.applications import Starlette
    from starlette.routing import Route

    from raresift.session import Session

    client = connect(url, token, ls_project)
    project = Path(project).resolve()
    session = Session.open(project)
    app = Starlette(
        routes=[Route(path, handler, methods=methods) for path, handler, methods in ROUTES],
        exception_handlers={RaresiftError: user_error, Exception: internal_error},
    )
    state = app.state
    state.project = project
    state.session = session
    state.ls_project = ls_project
    state.client = client
    loop = labelstudio.Loop(session, client, ls_project)
    state.jobs = JobRunner(partial(advance, loop), rerun=True)  # no completed batch missed
    return app if basic_auth is None else BasicAuth(app, *basic_auth)


def connect(url: str | None, token: str | None, ls_project: int | None):
    """The Label Studio client when ``url`` and ``token`` are given (``ls_project`` too: the
    project whose tasks get the priorities), None when neither is (``ls_project`` alone only
    restricts the requests served to that project)."""
    if url is None and token is None:
        return None
    if url is None or token is None or ls_project is None:
        raise ValidationError(
            "give --url, --token and --ls-project together (Label Studio's address, an access "
            "token and the project's id) to push raresift_priority, or none of them"
        )
    return labelstudio.LabelStudio(url, token)


def basic_auth_from_environment() -> tuple[str, str] | None:
    """``(BASIC_AUTH_USER, BASIC_AUTH_PASS)`` when both are set, as for Label Studio's own
    ML backends."""
    user, password = os.environ.get("BASIC_AUTH_USER"), os.environ.get("BASIC_AUTH_PASS")
    if bool(user) != bool(password):
        raise ValidationError("set both BASIC_AUTH_USER and BASIC_AUTH_PASS, or neither")
    return (user, password) if user else None


def sync(project, url: str, token: str, ls_project: int) -> dict[str, Any]:
    """Run the next round if the batch is answered and push the priorities once."""
    from raresift.session import Session

    client = connect(url, token, ls_project)
    if client is None:
        raise ValidationError("--sync needs --url, --token and --ls-project")
    client.project(ls_project)  # reachable, before a round is stored
    with Session.open(project) as session:
        return labelstudio.Loop(session, client, ls_project).advance()


def serve_backend(
    project: str | os.PathLike,
    host: str = "127.0.0.1",
    port: int = 9090,
    *,
    url: str | None = None,
    token: str | None = None,
    ls_project: int | None = None,
    ready=None,
) -> None:
    """Serve the ML backend until interrupted; ``ready(url)`` once the socket listens. At the
    start, the first round runs if none has, and the priorities are pushed (when connected)."""
    import uvicorn

    sock = bind(host, port)
    try:
        app = create_backend(
            project,
            url=url,
            token=token,
            ls_project=ls_project,
            basic_auth=basic_auth_from_environment(),
        )
        state = (app.app if isinstance(app, BasicAuth) else app).state
        if state.client is not None:  # a wrong --url, --token or --ls-project: say so now
            state.client.project(ls_project)
        state.jobs.start()
        config = uvicorn.Config(
            app, log_level="warning", access_log=False, timeout_graceful_shutdown=3, lifespan="off"
        )
        if ready is not None:
            ready(url_of(sock))
        uvicorn.Server(config).run(sockets=[sock])
    finally:
        sock.close()
