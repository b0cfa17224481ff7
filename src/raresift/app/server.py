"""The local labeling web app: a Starlette application over one labeling session.

The app is a thin view over :class:`raresift.session.Session`: it holds no state of its own
beyond a thumbnail cache and the background job that selects the next batch. Each answer is one
POST and one session transaction; the page marks an answer *saved* only after the server
answered that request, so a server killed at any moment loses nothing the page showed as saved.

Run it with ``raresift serve PROJECT`` (see :func:`serve`); :func:`create_app` builds the ASGI
application alone. Each route is a module-level handler (the table :data:`ROUTES`) that reaches
the session and the app's other parts through ``request.app.state``.

The HTTP API speaks one vocabulary, in JSON in and out (and in the pages' ``data-`` attributes):

- ``id``: an item's id, always a JSON string (an item of a project with integer ids is named by
  its digits, ``"17"``; a JSON number sent as an id is read as its digits too); in a query
  string ``?id=``.
- ``answer``: an answer, one of the session's answer options (``"1"``, ``"0"``, ``"skip"``,
  ``"junk"``, ``"duplicate"`` in a concept session; a class name in a class session); ``null``
  where no answer is in force.
- ``version``: the sequence number of the answer in force (``null``: none). A page sends back
  the version it showed, so the server can say which other writer's answer it replaced.

The writes (POST, with the page's ``X-CSRF-Token`` header and a JSON object body):

- ``/api/answer`` ``{"id", "answer", "version"?}`` -> ``{"saved": true, "id", "answer",
  "version", "replaced": null | {"answer", "who", "version"}}`` (a request may still call the
  answer ``label``, its earlier name; replies always say ``answer``);
- ``/api/undo`` ``{"last"?: 1}`` -> ``{"items": [{"id", "undone", "answer", "version"}]}``
  (``undone``: the answer taken back; ``answer``: the one in force now);
- ``/api/next`` ``{}`` and ``/api/audit`` ``{"n"?: 200}`` start the next round / an audit batch.

The reads: ``/api/batch`` -> ``{"batch", "status_line", "items": [{"id", "answer",
"version"}]}``, ``/api/job`` (the background round's state), ``/api/status`` (the session's
status). A mistake is a 4xx with ``{"error": message}`` (404: an unknown id; 503: the disk
refused a write), never a 500.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import socket
import time
from base64 import b64encode
from pathlib import Path
from typing import Any

from raresift.app.guard import Guard, HostPolicy
from raresift.app.jobs import JobRunner
from raresift.app.thumbnails import Thumbnailer, ThumbnailFailure, media_type, placeholder_svg
from raresift.errors import (
    RaresiftError,
    StorageError,
    UnknownIdError,
    ValidationError,
    storage_error,
)

log = logging.getLogger("raresift")

HERE = Path(__file__).parent
THUMB_SIZE = 148
FULL_SIZE = 1024
EXCERPT_CHARS = 280
ERROR_CHARS = 400
EXPORT_FORMATS = {
    "csv": ("text/csv", "csv"),
    "jsonl": ("application/x-ndjson", "jsonl"),
    "label-studio": ("application/json", "json"),
}
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-store",
}


def _require_app_extra():
    try:
        import jinja2  # noqa: F401
        import PIL  # noqa: F401
        import starlette  # noqa: F401
        import uvicorn  # noqa: F401
    except ImportError as exc:
        raise RaresiftError(f"the web app needs {exc.name}: pip install 'raresift[app]'") from None


def option_keys(options: list[str], concept: bool) -> list[dict[str, str]]:
    """The answer buttons: answer, title, keyboard key and kind of each answer option.

    >>> [o["key"] for o in option_keys(["1", "0", "skip", "junk", "duplicate"], concept=True)]
    ['y', 'n', 's', 'j', 'd']
    >>> [(o["answer"], o["key"]) for o in option_keys(["cat", "dog", "skip"], concept=False)]
    [('cat', '1'), ('dog', '2'), ('skip', 's')]
    """
    special = {"skip": "s", "junk": "j", "duplicate": "d"}
    buttons, digit = [], 0
    for answer in options:
        answer = str(answer)
        if answer in special:
            buttons.append(
                {"answer": answer, "title": answer, "key": special[answer], "kind": answer}
            )
        elif concept:
            positive = answer == "1"
            buttons.append(
                {
                    "answer": answer,
                    "title": "yes" if positive else "no",
                    "key": "y" if positive else "n",
                    "kind": "positive" if positive else "negative",
                }
            )
        else:
            digit += 1
            key = str(digit % 10) if digit <= 10 else ""
            buttons.append({"answer": answer, "title": answer, "key": key, "kind": "class"})
    return buttons


def excerpt(text: str, limit: int = EXCERPT_CHARS) -> tuple[str, bool]:
    """The first ``limit`` characters, cut at a word, and whether anything was cut.

    >>> excerpt("a short text")
    ('a short text', False)
    >>> excerpt("one two three four", 9)
    ('one two…', True)
    """
    if len(text) <= limit:
        return text, False
    cut = text[:limit]
    space = cut.rfind(" ")
    return (cut[:space] if space > limit // 2 else cut).rstrip() + "…", True


def short(message: str, limit: int = ERROR_CHARS) -> str:
    """An error message cut to ``limit`` characters (an id or a value from the request can be
    long; the answer never echoes a whole request back).

    >>> short("unknown id " + "x" * 1000).endswith("x… (1011 chars)")
    True
    """
    return message if len(message) <= limit else f"{message[:limit]}… ({len(message)} chars)"


def bind(host: str, port: int) -> socket.socket:
    """A listening TCP socket on ``host:port`` (``port=0`` picks a free port)."""
    if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 65535:
        raise ValidationError(f"port must be an integer from 0 to 65535, got {port!r}")
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host.strip("[]"), int(port)))
    except OSError as exc:
        sock.close()
        raise RaresiftError(
            f"cannot listen on {host}:{port} ({exc.strerror}); pass another --port"
        ) from None
    sock.listen(128)
    return sock


def url_of(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    return f"http://[{host}]:{port}/" if ":" in host else f"http://{host}:{port}/"


def serve(
    project: str | os.PathLike,
    host: str = "127.0.0.1",
    port: int = 8765,
    who: str | None = None,
    ready=None,
) -> None:
    """Serve the labeling app for ``project`` until interrupted.

    ``ready(url)`` is called once the socket listens (the CLI prints the URL there and opens a
    browser with ``--open``). Binds to loopback unless ``host`` says otherwise; the caller warns.
    """
    _require_app_extra()
    import uvicorn

    sock = bind(host, port)
    try:
        app = create_app(project, host=host, port=sock.getsockname()[1], who=who)
        config = uvicorn.Config(
            app, log_level="warning", access_log=False, timeout_graceful_shutdown=3, lifespan="off"
        )
        server = uvicorn.Server(config)
        if ready is not None:
            ready(url_of(sock))
        server.run(sockets=[sock])
    finally:
        sock.close()


def batch_key(session) -> str:
    """Names the stored batch, so a page can tell that another tab or process replaced it."""
    info = session.round_info()
    return "none" if info is None else f"{info['round']}-{info['created']:.6f}"


def item_card(session, batch_item) -> dict[str, Any]:
    """What a batch card shows: the pick (score, reason), the answer in force, text, image."""
    item = session.item(batch_item.id)
    text = item["text"]
    short, truncated = excerpt(text) if text is not None else (None, False)
    return {
        "id": str(batch_item.id),
        "position": batch_item.position,
        "score": batch_item.score,
        "reason": batch_item.reason,
        "answer": item["answer"],
        "version": item["seq"],
        "text": text,
        "excerpt": short,
        "truncated": truncated,
        "image": bool(item["image"]),
    }


def item_view(item: dict[str, Any]) -> dict[str, Any]:
    """The item page's fields; metadata values are shown as text (never as markup)."""
    meta = [(str(k), v if isinstance(v, str) else json.dumps(v)) for k, v in item["meta"].items()]
    history = [
        {
            "answer": h["value"],
            "who": h["who"],
            "round": h["round"],
            "at": time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(h["at"])),
            "undone": h["undone_at"] is not None,
        }
        for h in item["history"]
    ]
    return {
        "id": str(item["id"]),
        "text": item["text"],
        "image": bool(item["image"]),
        "answer": item["answer"],
        "version": item["seq"],
        "meta": meta,
        "history": history,
    }


def neighbour_card(session, neighbour: dict[str, Any]) -> dict[str, Any]:
    item = session.item(neighbour["id"])
    return {
        "id": str(neighbour["id"]),
        "similarity": neighbour["similarity"],
        "answer": neighbour["answer"],
        "image": bool(item["image"]),
        "excerpt": None if item["text"] is None else excerpt(item["text"], 120)[0],
    }


def record_answer(session, item_id: str, answer: str, seen, who: str) -> dict[str, Any]:
    """Store one answer in one transaction; the later answer wins.

    ``seen`` is the ``seq`` of the answer the page showed (None: none; "any": not said). When
    another writer answered since, ``replaced`` says what this answer replaced.
    """
    record = session.answer_seen(item_id, answer, who=who, seen=seen)
    replaced = record["replaced"] if seen != "any" else None
    return {
        "saved": True,
        "id": str(record["id"]),
        "answer": record["answer"],
        "version": record["seq"],
        "replaced": None
        if replaced is None
        else {"answer": replaced["answer"], "who": replaced["who"], "version": replaced["seq"]},
    }


def progress_context(status: dict[str, Any]) -> dict[str, Any]:
    """The progress page's figures, tables and verdicts from ``session.status()``."""
    figures = [
        {"value": status["labels_spent"], "label": "labels spent"},
        {"value": status["positives_found"], "label": "positives found"},
    ]
    for est in status["estimates"]:
        figures.append(
            {
                "value": f"{est['positives_left']:.1f}",
                "label": (
                    f"positives left ({est['confidence']:.0%}: {est['low']:.1f}–"
                    f"{est['high']:.1f}; {est['method']})"
                    if est.get("confidence")
                    else f"positives left, a guess with no confidence claim ({est['method']})"
                ),
            }
        )
    if not status["estimates"]:
        figures.append({"value": "–", "label": "positives left: needs answers of two classes"})
    figures.append({"value": status["rounds"], "label": f"rounds · {status['items']} items"})
    rounds = [
        [p["round"], p["answers"], p["new_positives"], p["labels_spent"], p["positives_found"]]
        for p in status["curve"]
    ]
    verdicts = {"stop": "stop", "continue": "keep labeling", "cannot judge": "cannot judge"}
    rules = [
        {
            "name": r["rule"] + (" (heuristic)" if r.get("heuristic") else ""),
            "stop": r["verdict"] == "stop",
            "verdict": verdicts[r["verdict"]],
            "detail": r["why"],
        }
        for r in status["stop"]
    ]
    return {
        "summary": status.get("summary"),
        "audit_size": 200,
        "figures": figures,
        "rounds": rounds,
        "round_columns": ["round", "answers", "new positives", "labels spent", "positives found"],
        "rules": rules,
        "has_curve": bool(status["curve"]),
        "version": status["version"],
        "task": status["task"],
        "exports": [
            ("csv", "Answers (CSV)"),
            ("jsonl", "Answers (JSONL)"),
            ("label-studio", "Label Studio tasks (JSON)"),
        ],
    }


def status_line(session) -> str:
    """Labels spent and positives found, for the header of every page."""
    status = session.status(estimate=False)
    spent, found = status["labels_spent"], status["positives_found"]
    return f"{spent} label{'' if spent == 1 else 's'} · {found} positive{'' if found == 1 else 's'}"


def _seen_version(data: dict) -> int | None | str:
    if "version" not in data:
        return "any"
    seen = data["version"]
    if seen is not None and (isinstance(seen, bool) or not isinstance(seen, int)):
        raise ValidationError(f"version must be an integer or null, got {seen!r}")
    return seen


# ---------------------------------------------------------------------- the request's context
# Every handler below is a plain module-level function of the request: what the app serves
# (session, job runner, thumbnails, templates, token) lives on ``request.app.state``, set once
# by :func:`create_app`, so the handlers hold no state of their own.


def select_next(session) -> dict[str, Any]:
    """The background job: the next round. The session holds its store's lock only while it
    reads or writes, not while it fits and selects, so answers keep being stored meanwhile."""
    batch = session.next()
    return {"batch": batch_key(session), "size": len(batch)}


def image_path(state, item_id: str) -> str | None:
    """The image path of ``item_id`` (UnknownIdError if foreign); remembered, since an item's
    path never changes."""
    if item_id not in state.image_paths:
        state.image_paths[item_id] = state.session.item(item_id)["image"]
    return state.image_paths[item_id]


def secured(response):
    for key, value in SECURITY_HEADERS.items():
        response.headers.setdefault(key, value)
    return response


def as_json(data: Any, status_code: int = 200):
    from starlette.responses import JSONResponse

    return secured(JSONResponse(data, status_code=status_code))


def page(request, name: str, view: str, **context):
    """The page ``name`` rendered with ``context`` and what every page shows."""
    state = request.app.state
    context.update(
        csrf_token=state.token,
        project_name=state.project.name,
        project_path=str(state.project),
        view=view,
        status_line=status_line(state.session),
    )
    return secured(state.templates.TemplateResponse(request, name, context))


async def body_of(request) -> dict:
    """The request's JSON object (duplicate keys, deep nesting and non-UTF-8 refused)."""
    from raresift.session.inputs import json_object

    raw = await request.body()
    try:
        data = json_object(raw.decode("utf-8"), "the request body")
    except UnicodeDecodeError:
        raise ValidationError("the request body is not UTF-8 JSON") from None
    if not isinstance(data, dict):
        raise ValidationError("the request body must be a JSON object")
    return data


def item_id_of(request) -> str:
    value = request.query_params.get("id")
    if not value:
        raise ValidationError("missing ?id= (the id of an item of this project)")
    return value


def options_of(session) -> list[dict[str, str]]:
    return option_keys(session.answer_options(), session.kind == "concept")


async def in_thread(fn, *args, **kwargs):
    """``fn(*args, **kwargs)`` in a worker thread: the event loop never waits on the disk or
    the model."""
    from starlette.concurrency import run_in_threadpool

    return await run_in_threadpool(fn, *args, **kwargs)


def inline_thumbnail(state, item: dict[str, Any]) -> str | None:
    """A made thumbnail as a data: URL, so a batch page is one request, not 1 + 100."""
    path = image_path(state, item["id"]) if item["image"] else None
    data = None if path is None else state.thumbs.cached_jpeg(path, THUMB_SIZE)
    if data is None:
        return None
    return f"data:{media_type(data)};base64," + b64encode(data).decode()


# ---------------------------------------------------------------------- pages


def index(request):
    from starlette.responses import RedirectResponse

    return RedirectResponse("/label", status_code=303)


def label_page(request):
    state = request.app.state
    session = state.session
    items = [item_card(session, b) for b in session.batch()]
    for item in items:
        item["inline"] = inline_thumbnail(state, item)
    info = session.round_info()
    return page(
        request,
        "label.html",
        "label",
        items=items,
        options=options_of(session),
        round=None if info is None else info["round"],
        strategy=None if info is None else f"{info['strategy']} over {info['candidates']}",
        note=None if info is None else info["note"],
        batch_key=batch_key(session),
        answered=sum(item["answer"] is not None for item in items),
        thumb_size=THUMB_SIZE,
    )


def progress_page(request):
    status = request.app.state.session.status()
    return page(request, "progress.html", "progress", **progress_context(status))


def item_page(request):
    session = request.app.state.session
    item_id = item_id_of(request)
    item = item_view(session.item(item_id))
    neighbours = [neighbour_card(session, n) for n in session.neighbors(item_id, k=12)]
    buttons = options_of(session)
    return page(
        request,
        "item.html",
        "item",
        item=item,
        options=buttons,
        titles={o["answer"]: o for o in buttons},
        neighbours=neighbours,
    )


def progress_png(request):
    from starlette.responses import FileResponse

    state = request.app.state
    phone = request.query_params.get("size") == "phone"
    target = state.project / "cache" / "app" / ("status-phone.png" if phone else "status.png")
    target.parent.mkdir(parents=True, exist_ok=True)
    state.session.status_plot(target, phone=phone)
    return secured(FileResponse(target, media_type="image/png"))


async def image_response(request, size: int):
    """An item's image at ``size`` px. Held in memory: answered on the event loop at once;
    otherwise looked up and made in a worker thread."""
    from starlette.responses import Response

    state = request.app.state
    item_id = item_id_of(request)
    path = state.image_paths.get(item_id)
    data = None if path is None else state.thumbs.in_memory(path, size)
    if data is None:
        path = await in_thread(image_path, state, item_id)
        if not path:
            raise UnknownIdError(f"item {item_id!r} has no image")
        try:
            data = await in_thread(state.thumbs.jpeg, path, size)
        except ThumbnailFailure as failure:
            log.warning("item %r: %s (%s)", item_id, failure.reason, path)
            return secured(
                Response(
                    placeholder_svg(failure.reason, size),
                    media_type="image/svg+xml",
                    headers={"X-Raresift-Image-Error": failure.reason},
                )
            )
    return secured(
        Response(
            data, media_type=media_type(data), headers={"Cache-Control": "private, max-age=300"}
        )
    )


async def thumb(request):
    return await image_response(request, THUMB_SIZE)


async def image(request):
    return await image_response(request, FULL_SIZE)


def export(request):
    from starlette.responses import Response

    state = request.app.state
    fmt = request.query_params.get("format", "csv")
    if fmt not in EXPORT_FORMATS:
        raise ValidationError(
            f"unknown export format {fmt!r}; choose one of {', '.join(EXPORT_FORMATS)}"
        )
    mime, suffix = EXPORT_FORMATS[fmt]
    items = "all" if fmt == "label-studio" else "batch"
    text = state.session.export(fmt, None, items=items)
    name = f"{state.project.name}-{'tasks' if fmt == 'label-studio' else 'answers'}.{suffix}"
    return secured(
        Response(
            text.encode("utf-8"),
            media_type=mime,
            headers={"Content-Disposition": f'attachment; filename="{name}"'},
        )
    )


# ---------------------------------------------------------------------- api


async def api_answer(request):
    state = request.app.state
    data = await body_of(request)
    if "answer" not in data and "label" in data:  # the API's earlier name, still read
        data["answer"] = data.pop("label")
    elif "answer" in data and "label" in data:
        raise ValidationError("an answer has 'answer' or its earlier name 'label', not both")
    if "id" not in data or "answer" not in data:
        raise ValidationError("an answer needs 'id' and 'answer'")
    seen = _seen_version(data)
    saved = await in_thread(
        record_answer, state.session, str(data["id"]), str(data["answer"]), seen, state.who
    )
    return as_json(saved)


def undo_answers(session, last) -> list[dict[str, Any]]:
    """Undo the last ``last`` answers; each undone item with the answer now in force."""
    items = []
    for record in session.undo(last=last):
        now = session.item(record["id"])
        items.append(
            {
                "id": str(record["id"]),
                "undone": record["answer"],
                "answer": now["answer"],
                "version": now["seq"],
            }
        )
    return items


async def api_undo(request):
    data = await body_of(request)
    items = await in_thread(undo_answers, request.app.state.session, data.get("last", 1))
    return as_json({"items": items})


def job_state(state: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in state.items() if k != "result"}


async def api_next(request):
    state = request.app.state
    info = await in_thread(state.session.round_info)
    expected = sum(info["seconds"].values()) if info and info["seconds"] else None
    return as_json(job_state(state.jobs.start(expected_seconds=expected)))


def api_job(request):
    return as_json(job_state(request.app.state.jobs.state()))


def api_batch(request):
    session = request.app.state.session
    return as_json(
        {
            "batch": batch_key(session),
            "status_line": status_line(session),
            "items": [
                {"id": str(b.id), "answer": b.answer, "version": b.seq} for b in session.batch()
            ],
        }
    )


def api_status(request):
    return as_json(request.app.state.session.status())


async def api_audit(request):
    session = request.app.state.session
    data = await body_of(request)
    batch = await in_thread(session.next, audit=data.get("n", 200))
    return as_json({"batch": batch_key(session), "size": len(batch)})


async def user_error(request, exc):
    """A RaresiftError as a JSON error: 404 for an unknown id, 503 when the disk refused (the
    request was fine and nothing stored is lost), 400 otherwise."""
    status_code = 404 if isinstance(exc, UnknownIdError) else 400
    if isinstance(exc, StorageError):
        status_code = 503
    return as_json({"error": short(str(exc))}, status_code=status_code)


async def disk_error(request, exc):
    log.warning("%s %s: %s", request.method, request.url.path, exc)
    return await user_error(request, storage_error(exc, "write"))


# (path, handler, methods): GET (and HEAD) unless methods are named
ROUTES = (
    ("/", index, None),
    ("/label", label_page, None),
    ("/progress", progress_page, None),
    ("/progress.png", progress_png, None),
    ("/item", item_page, None),
    ("/thumb", thumb, None),
    ("/image", image, None),
    ("/export", export, None),
    ("/api/answer", api_answer, ["POST"]),
    ("/api/undo", api_undo, ["POST"]),
    ("/api/next", api_next, ["POST"]),
    ("/api/job", api_job, None),
    ("/api/batch", api_batch, None),
    ("/api/status", api_status, None),
    ("/api/audit", api_audit, ["POST"]),
)


def create_app(
    project: str | os.PathLike,
    host: str = "127.0.0.1",
    port: int = 8765,
    who: str | None = None,
    token: str | None = None,
):
    """The ASGI application serving ``project`` as ``http://host:port``: the routes of
    :data:`ROUTES` over one open session, behind the request :class:`Guard`.

    ``who`` is recorded with each answer (default: the login name); ``token`` is the CSRF token
    the pages carry (a fresh random one by default).
    """
    _require_app_extra()
    from functools import partial

    import jinja2
    from starlette.applications import Starlette
    from starlette.routing import Mount, Route
    from starlette.staticfiles import StaticFiles
    from starlette.templating import Jinja2Templates

    from raresift.session import Session

    project = Path(project).resolve()
    session = Session.open(project)
    routes = [Route(path, handler, methods=methods) for path, handler, methods in ROUTES]
    routes.append(Mount("/static", StaticFiles(directory=str(HERE / "static")), name="static"))
    app = Starlette(
        routes=routes, exception_handlers={RaresiftError: user_error, OSError: disk_error}
    )
    state = app.state
    state.project = project
    state.session = session
    state.who = who or _login_name()
    state.token = token or secrets.token_urlsafe(32)
    state.jobs = JobRunner(partial(select_next, session))
    state.thumbs = Thumbnailer(project / "cache" / "thumbnails")
    state.image_paths = {}  # item id -> image path
    state.templates = Jinja2Templates(
        env=jinja2.Environment(
            loader=jinja2.FileSystemLoader(HERE / "templates"), autoescape=True, trim_blocks=True
        )
    )
    return Guard(app, HostPolicy(host, port), state.token)


def _login_name() -> str:
    import getpass

    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "web"
