"""A session as Label Studio's ML backend: its tasks mapped to items, its annotations recorded
as answers, raresift's priorities pushed into its tasks.

Label Studio never asks a backend for the next task; it sorts its Data Manager by a task data
field. So the loop is: each annotation becomes an answer (:func:`record_event`, one
transaction); once the latest batch is fully answered the next round runs
(:func:`next_round_if_answered`) and :func:`push_priorities` writes ``raresift_priority`` into
the data of every unlabeled task through Label Studio's API (:class:`LabelStudio`): 1, 2, ...
for the new batch in raresift's order, the number of items + 1 for every other task. Sorting
the Data Manager by that field ascending is the loop.

Tasks name their item by the data field ``raresift_id``, which ``raresift export --format
label-studio`` writes. An annotation's answers are recorded with the source ``label-studio
annotation <id>``, so deleting the annotation undoes exactly them (:meth:`Project.undo_source`);
an update is a new answer (a relabel, the earlier one kept in the history); a skipped
(cancelled) annotation is the answer ``skip``.

The HTTP side (the ``/predict``, ``/webhook``, ``/setup`` contract) is
:mod:`raresift.app.ml_backend`; this module speaks Python dicts.
"""

from __future__ import annotations

import json
import threading
import urllib.error
import urllib.request
from typing import TYPE_CHECKING, Any
from xml.etree import ElementTree

from raresift.errors import ValidationError
from raresift.session.errors import LabelStudioError
from raresift.session.exchange import (
    ID_FIELD,
    PRIORITY_FIELD,
    annotation_choice,
    label_studio_predictions,
    priority_ranks,
)

if TYPE_CHECKING:
    from raresift.session.project import Project as Session

ANSWER_EVENTS = ("ANNOTATION_CREATED", "ANNOTATION_UPDATED")
DELETE_EVENTS = ("ANNOTATION_DELETED", "ANNOTATIONS_DELETED")  # the backend's name, Label Studio's
EVENTS = (*ANSWER_EVENTS, *DELETE_EVENTS, "START_TRAINING")
PAGE_SIZE = 100
TIMEOUT_SECONDS = 30.0


def annotation_source(annotation_id: Any) -> str:
    """The ``source`` of the answers an annotation gives.

    >>> annotation_source(17)
    'label-studio annotation 17'
    """
    return f"label-studio annotation {annotation_id}"


def project_id(value: Any) -> int | None:
    """Label Studio's project id from what it sends: ``"3.1733420000"`` (``<id>.<created>`` of
    /predict and /setup), ``{"id": 3, ...}`` (a webhook's project) or ``3``; None when absent.

    >>> project_id("3.1733420000"), project_id({"id": 3}), project_id(None)
    (3, 3, None)
    """
    if isinstance(value, dict):
        value = value.get("id")
    if value is None or value == "":
        return None
    text = str(value).split(".", 1)[0]
    if not text.isdigit():
        raise ValidationError(f"project {value!r} is not a Label Studio project id")
    return int(text)


def check_project(expected: int | None, value: Any) -> None:
    """Refuse a request for another Label Studio project than the one this backend serves."""
    got = project_id(value)
    if expected is not None and got is not None and got != expected:
        raise ValidationError(
            f"this backend serves Label Studio project {expected}, not project {got}; connect "
            f"project {got} to its own raresift label-studio backend"
        )


def choices_tag(label_config: Any) -> tuple[str, str]:
    """``(name, toName)`` of the first ``<Choices>`` tag of a labeling config.

    >>> choices_tag('<View><Text name="t" value="$text"/><Choices name="c" toName="t">'
    ...             '<Choice value="1"/></Choices></View>')
    ('c', 't')
    """
    if not isinstance(label_config, str) or not label_config.strip():
        raise ValidationError("no labeling config: Label Studio sends it as label_config / schema")
    try:
        root = ElementTree.fromstring(label_config)
    except ElementTree.ParseError as exc:
        raise ValidationError(f"the labeling config is not XML ({exc})") from None
    tag = next((t for t in root.iter() if t.tag.lower() == "choices"), None)
    if tag is None or not tag.get("name") or not tag.get("toName"):
        raise ValidationError(
            "the labeling config has no <Choices name=... toName=...> tag: raresift answers "
            "with choices (raresift export --format label-studio --out F writes a config)"
        )
    return tag.get("name"), tag.get("toName")


def task_item(session: Session, task: Any) -> Any:
    """The item id a Label Studio task names in ``data.raresift_id`` (checked to exist)."""
    data = task.get("data") if isinstance(task, dict) else None
    if not isinstance(data, dict):
        raise ValidationError(f"a Label Studio task is an object with a data object, got {task!r}")
    if ID_FIELD not in data:
        raise ValidationError(
            f"task {task.get('id')!r} has no data.{ID_FIELD}; import tasks written by raresift "
            "export --format label-studio, which name their item"
        )
    uid = data[ID_FIELD]
    session.iid(uid)  # UnknownIdError when the task is from another project or session
    return uid


def predict(session: Session, tasks: Any, label_config: Any) -> list[dict[str, Any]]:
    """raresift's prediction of each task (:func:`label_studio_predictions`: ``score`` sorts
    raresift's next batch first when descending; ``result`` its predicted choice)."""
    if not isinstance(tasks, list):
        raise ValidationError("tasks must be a list of Label Studio tasks")
    names = choices_tag(label_config)
    uids = [task_item(session, t) for t in tasks]
    return label_studio_predictions(session, uids, names=names) if uids else []


def record_event(session: Session, action: str, payload: dict[str, Any]) -> dict[str, Any]:
    """Record one webhook event of :data:`ANSWER_EVENTS` / :data:`DELETE_EVENTS` (one
    transaction); returns what it did: ``{"id", "answer", "written"}`` for an answer,
    ``{"undone": [ids]}`` for a delete, ``{}`` for ``START_TRAINING``."""
    if action in ANSWER_EVENTS:
        annotation = payload.get("annotation")
        if not isinstance(annotation, dict) or "id" not in annotation:
            raise ValidationError(f"{action} needs an annotation object with an id")
        uid = task_item(session, payload.get("task"))
        answer = annotation_answer(session, uid, annotation)
        return {"id": uid, "answer": answer, "written": _record(session, uid, annotation, answer)}
    if action in DELETE_EVENTS:
        found = payload.get("annotations", [payload.get("annotation")])
        if not isinstance(found, list) or not all(isinstance(a, dict) and "id" in a for a in found):
            raise ValidationError(f"{action} needs annotation objects with ids")
        undone = [r for a in found for r in session.undo_source(annotation_source(a["id"]))]
        return {"undone": [r["id"] for r in undone]}
    if action == "START_TRAINING":
        return {}
    raise ValidationError(f"unknown event {action!r}; raresift handles {', '.join(EVENTS)}")


def annotation_answer(session: Session, uid: Any, annotation: dict[str, Any]) -> str:
    """The answer an annotation of item ``uid`` gives: ``skip`` when it was skipped
    (cancelled), else its choice."""
    answer = "skip" if annotation.get("was_cancelled") else annotation_choice(annotation)
    if answer is None:
        raise ValidationError(
            f"annotation {annotation['id']} of item {uid!r} has no choice; choose one of "
            f"{', '.join(session.answer_options())}"
        )
    return answer


def _record(session: Session, uid: Any, annotation: dict[str, Any], answer: str) -> int:
    """Record one annotation's answer in one transaction; 1 if written, 0 if unchanged."""
    who = annotation.get("completed_by")
    if isinstance(who, dict):
        who = who.get("email") or who.get("id")
    result = session.answer_many(
        [(1, uid, answer)],
        who=f"label-studio user {who}" if who is not None else "label-studio",
        source=annotation_source(annotation["id"]),
        what=f"annotation {annotation['id']}",
        unit="annotation",
    )
    return result["written"]


def pull_annotations(session: Session, client: LabelStudio, project: int) -> dict[str, int]:
    """Record the annotations the backend missed (Label Studio sends each webhook once and
    never again, so an annotation made while the backend was down is only in Label Studio):
    each task's latest annotation whose answer the store has not recorded from that
    annotation yet. An answer given in raresift after an annotation's stays in force.
    Returns ``{"tasks", "recorded"}``."""
    with session.store.reading() as db:
        seen = {(r["source"], r["value"]) for r in db.history(include_undone=False)}
    tasks = client.tasks(project, annotations=True)
    recorded = 0
    for task in tasks:
        annotations = [
            a for a in task.get("annotations") or [] if isinstance(a, dict) and "id" in a
        ]
        if ID_FIELD not in (task.get("data") or {}) or not annotations:
            continue
        latest = max(annotations, key=lambda a: (str(a.get("updated_at") or ""), a["id"]))
        uid = task["data"][ID_FIELD]
        try:
            answer = annotation_answer(session, uid, latest)
        except ValidationError:
            continue  # an annotation without a choice gives no answer
        if (annotation_source(latest["id"]), answer) not in seen and session.iids([uid])[0] >= 0:
            recorded += _record(session, uid, latest, answer)
    return {"tasks": len(tasks), "recorded": recorded}


def next_round_if_answered(session: Session) -> bool:
    """Run the next round when there is no batch yet or the latest is fully answered (and
    items are left); True when it ran."""
    batch = session.batch()
    if batch and any(b.answer is None for b in batch):
        return False
    if len(session.answers()) >= session.n_items:
        return False
    session.next()
    return True


class Loop:
    """The loop of one backend: :meth:`advance` runs the next round when the batch is
    answered and pushes the priorities to Label Studio (when ``client`` is given) whenever the
    latest batch differs from the one last pushed (so the first call always pushes)."""

    def __init__(self, session: Session, client: LabelStudio | None, project: int | None):
        self.session = session
        self.client = client
        self.project = project
        self.pushed: tuple[int, float] | None = None  # (round, created) of the batch pushed

    def advance(self) -> dict[str, Any]:
        """``{"pulled", "ran", "pushed"}``: the first call first records the annotations
        missed while no backend ran (:func:`pull_annotations`); then the next round if the
        batch is answered, and the push when the batch changed."""
        pulled = None
        if self.client is not None and self.pushed is None:
            pulled = pull_annotations(self.session, self.client, self.project)
        ran = next_round_if_answered(self.session)
        info = self.session.round_info()
        batch = None if info is None else (info["round"], info["created"])
        pushed = None
        if self.client is not None and batch != self.pushed:
            pushed = push_priorities(self.session, self.client, self.project)
            self.pushed = batch
        return {"pulled": pulled, "ran": ran, "pushed": pushed}


class LabelStudio:
    """Label Studio's REST API at ``url`` with ``token``: a personal access token (a JWT
    refresh token, Label Studio 1.23's default; exchanged at ``/api/token/refresh/`` for
    short-lived access tokens) or a legacy token (``Authorization: Token``; 1.23 accepts these
    only where the organization enabled them, e.g. ``LABEL_STUDIO_ENABLE_LEGACY_API_TOKEN=true``
    at its first start)."""

    def __init__(self, url: str, token: str):
        if not url.startswith(("http://", "https://")):
            raise ValidationError(f"--url must be Label Studio's http(s):// address, got {url!r}")
        if not token:
            raise ValidationError("--token is empty: copy one from Label Studio's account page")
        self.url = url.rstrip("/")
        self.token = token
        self.personal = token.count(".") == 2  # a JWT: header.payload.signature
        self._access: str | None = None
        self._lock = threading.Lock()

    def _authorization(self, fresh: bool = False) -> str:
        if not self.personal:
            return f"Token {self.token}"
        with self._lock:
            if self._access is None or fresh:
                reply = self._send("POST", "/api/token/refresh/", {"refresh": self.token}, None)
                self._access = reply["access"]
            return f"Bearer {self._access}"

    def request(self, method: str, path: str, body: Any = None) -> Any:
        """One API call; the reply's JSON. An expired access token is refreshed once."""
        try:
            return self._send(method, path, body, self._authorization())
        except LabelStudioError as exc:
            if not (self.personal and "401" in str(exc)):
                raise
        return self._send(method, path, body, self._authorization(fresh=True))

    def _send(self, method: str, path: str, body: Any, authorization: str | None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.url + path, data=data, method=method)
        request.add_header("Content-Type", "application/json")
        if authorization is not None:
            request.add_header("Authorization", authorization)
        try:
            with urllib.request.urlopen(request, timeout=TIMEOUT_SECONDS) as reply:
                text = reply.read().decode("utf-8")
        except urllib.error.HTTPError as exc:
            detail = exc.read().decode("utf-8", "replace")[:300]
            hint = " (check --token)" if exc.code in (401, 403) else ""
            raise LabelStudioError(
                f"Label Studio answered {exc.code} to {method} {path}{hint}: {detail}"
            ) from None
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise LabelStudioError(
                f"cannot reach Label Studio at {self.url} ({reason}); is it running? check --url"
            ) from None
        return json.loads(text) if text else None

    def project(self, project: int) -> dict[str, Any]:
        """The project ``project`` (its title, labeling config, ...): the first call a backend
        makes, so a wrong ``--url``, ``--token`` or ``--ls-project`` is said at once."""
        try:
            return self.request("GET", f"/api/projects/{project}/")
        except LabelStudioError as exc:
            if "answered 404" not in str(exc):
                raise
        raise LabelStudioError(
            f"Label Studio at {self.url} has no project {project} that this token's user can "
            "see; check --ls-project (the number in the project's URL, /projects/N/)"
        )

    def tasks(self, project: int, annotations: bool = False) -> list[dict[str, Any]]:
        """Every task of ``project`` (``id`` and ``data``; and ``annotations`` when asked),
        page by page."""
        out: list[dict[str, Any]] = []
        page = 1
        fields = "&fields=all" if annotations else ""
        while True:
            reply = self.request(
                "GET", f"/api/tasks/?project={project}&page={page}&page_size={PAGE_SIZE}{fields}"
            )
            tasks = reply.get("tasks", []) if isinstance(reply, dict) else reply
            out.extend(tasks)
            total = reply.get("total", len(out)) if isinstance(reply, dict) else len(out)
            if not tasks or len(out) >= total:
                return out
            page += 1

    def set_data(self, task: dict[str, Any], data: dict[str, Any]) -> None:
        """Replace a task's data (Label Studio's PATCH replaces the whole object)."""
        self.request("PATCH", f"/api/tasks/{task['id']}/", {"data": data})


def push_priorities(session: Session, client: LabelStudio, project: int) -> dict[str, int]:
    """Write :func:`priority_ranks` into ``data.raresift_priority`` of the tasks of Label
    Studio ``project`` that name an unanswered item, changing only those whose value differs
    (a PATCH each, about 0.2 s in Label Studio 1.23; an answered task keeps its value, since
    Label Studio's labeling stream skips labeled tasks). Returns ``{"tasks", "updated",
    "round"}``."""
    ranks = priority_ranks(session)
    later = ranks.pop(None)
    by_row = dict(zip(session.iids(list(ranks)), ranks.values(), strict=True))
    with session.store.reading() as db:
        answered = set(db.current())
    tasks = [t for t in client.tasks(project) if ID_FIELD in (t.get("data") or {})]
    rows = session.iids([t["data"][ID_FIELD] for t in tasks])  # -1: not an item of the session
    updated = 0
    for task, row in zip(tasks, rows, strict=True):
        data = task["data"]
        rank = by_row.get(row, later)
        if row not in answered and data.get(PRIORITY_FIELD) != rank:
            client.set_data(task, {**data, PRIORITY_FIELD: rank})
            updated += 1
    info = session.round_info()
    return {"tasks": len(tasks), "updated": updated, "round": info["round"] if info else 0}
