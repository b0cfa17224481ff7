"""Answers in and out of a session: CSV / JSONL answer files, Label Studio tasks and exports.

Answer files (import and ``raresift label ANSWERS.csv``) are CSV, TSV or JSONL with an id
column (``id``, or the session's id column) and an answer column (``label``, ``answer`` or
``class``). Label Studio: :func:`label_studio_tasks` writes tasks with ``data``
(``raresift_id``, ``raresift_priority``, the text or an image URL of Label Studio's local-files
storage), the answers in force as ``annotations`` and raresift's priority as
``predictions[0].score``; importing a
Label Studio JSON export records each task's latest non-cancelled annotation, so an export read
back changes nothing. :func:`label_studio_config` writes the matching labeling config, e.g.::

    <View>
      <Text name="item" value="$text"/>
      <Choices name="label" toName="item" choice="single" showInline="true">
        <Choice value="1" hint="yes: cat"/><Choice value="0" hint="no: not cat"/> ...
      </Choices>
    </View>
"""

from __future__ import annotations

import csv
import io
import json
import os
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

import raresift
from raresift.errors import CorruptFileError, ValidationError
from raresift.session import inputs
from raresift.session.errors import AnswerError

if TYPE_CHECKING:
    # typed by the floor below the facade: these functions read and write a Project
    from raresift.session.project import Project as Session

ID_FIELD = "raresift_id"  # a Label Studio task's data field naming its item
PRIORITY_FIELD = "raresift_priority"  # its data field of raresift's order: 1 = label first
ID_COLUMNS = (ID_FIELD, "id", "item_id")  # raresift_id first: Label Studio CSV / JSON-MIN
ANSWER_COLUMNS = ("label", "answer", "class", "choice")
FORMATS = ("csv", "jsonl", "label-studio")
_EXPORT_FIELDS = ("id", "answer", "previous", "who", "at", "round", "seq", "source")


def _iso(ts: float | None) -> str | None:
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, tz=timezone.utc).isoformat(timespec="seconds")


# ---------------------------------------------------------------------- export
def export(
    session: Session,
    fmt: str,
    out: str | os.PathLike | None,
    items: str = "batch",
    history: bool = False,
    image_root: str | os.PathLike | None = None,
) -> str | Path:
    if fmt not in FORMATS:
        raise ValidationError(f"unknown export format {fmt!r}; choose {', '.join(FORMATS)}")
    if fmt == "label-studio":
        tasks = label_studio_tasks(session, items, image_root=image_root)
        text = json.dumps(tasks, indent=1, ensure_ascii=False)
    else:
        rows = _answer_rows(session, history)
        if fmt == "csv":
            buf = io.StringIO()
            fields = list(_EXPORT_FIELDS) + (["undone_at"] if history else [])
            writer = csv.DictWriter(buf, fieldnames=fields, extrasaction="ignore")
            writer.writeheader()
            writer.writerows(rows)
            text = buf.getvalue()
        else:
            details = _item_details(session, [r["id"] for r in rows])
            text = "".join(
                json.dumps({**r, **details.get(r["id"], {})}, ensure_ascii=False, default=str)
                + "\n"
                for r in rows
            )
    if out is None:
        return text
    from raresift.outputs import check_output_file

    out = check_output_file(out, "--out", session.project_files())
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, out)
    return out


def _answer_rows(session: Session, history: bool) -> list[dict[str, Any]]:
    if not history:
        rows = session.answers()
    else:
        with session.store.reading() as db:
            rows = db.history()
        for r, u in zip(rows, session.uids([r["iid"] for r in rows]), strict=True):
            r["id"] = u
            r["answer"] = r.pop("value")
            r["undone_at"] = _iso(r["undone_at"])
    for r in rows:
        r["at"] = _iso(r["at"])
    return rows


def _item_details(session: Session, uids: list[Any]) -> dict[Any, dict[str, Any]]:
    """Text, image and metadata of items (empty for bare embeddings)."""
    if session.config["ids"] == "row" and session.config["source"]["type"] == "embeddings":
        with session.store.reading() as db:
            if not db.has_items():
                return {}
    out = {}
    iids = session.iids(uids)
    with session.store.reading() as db:
        for uid, iid in zip(uids, iids, strict=True):
            row = db.item_row(iid)
            if row is None:
                continue
            details = {k: row[k] for k in ("text", "image") if row[k] is not None}
            if "image" in details:  # a path inside the project is stored relative to it
                details["image"] = str(session._path(details["image"]))
            if row["meta"]:
                details["meta"] = json.loads(row["meta"])
            out[uid] = details
    return out


LABEL_STUDIO_ITEMS = ("batch", "answered", "all")
LOCAL_FILES = "/data/local-files/?d="


def label_studio_tasks(
    session: Session, items: str = "batch", image_root: str | os.PathLike | None = None
) -> list[dict[str, Any]]:
    """Label Studio tasks: the pending batch (``"batch"``), every answered item
    (``"answered"``) or every item (``"all"``).

    Each task's ``data`` holds ``raresift_id``, ``raresift_priority`` (:func:`priority_ranks`:
    sort ascending to label in raresift's order), the text (``text``) or the image (``image``, a
    URL of Label Studio's local-files storage, see :func:`image_url`), and for a pending pick its
    ``raresift_reason``. An answered item carries its answer as an annotation (a ``choices``
    result, the raresift answer itself: ``1``/``0``, a class, ``skip``, ``junk``,
    ``duplicate``), so importing the file back records the same answers. ``predictions[0]``
    is :func:`label_studio_predictions`' (its ``score``: sort descending).
    """
    if items not in LABEL_STUDIO_ITEMS:
        raise ValidationError(
            f"items must be one of {', '.join(LABEL_STUDIO_ITEMS)}, got {items!r}"
        )
    answers = {r["id"]: r for r in session.answers()}
    batch = session.batch()
    info = session.round_info()
    if items == "batch":
        if not batch:
            raise ValidationError(
                "no batch yet; run raresift next first (or export --items answered / all)"
            )
        if all(b.answer is not None for b in batch):
            raise ValidationError(
                f"round {info['round']}'s batch is fully answered ({len(batch)} answers); run "
                "raresift next for the next batch, or export --items answered (every answer) "
                "or --items all"
            )
    pending = {b.id: b for b in batch if b.answer is None}
    if items == "batch":
        uids = [b.id for b in batch]
    elif items == "answered":
        uids = list(answers)
        if not uids:
            raise ValidationError("no answers yet; export --items batch or all instead")
    else:
        uids = session.uids(range(session.n_items))
    predictions = label_studio_predictions(session, uids, full=items == "all")
    ranks = priority_ranks(session)
    details = _item_details(session, uids)
    urls = _image_urls(session, details, image_root)
    tasks = []
    for k, (uid, prediction) in enumerate(zip(uids, predictions, strict=True)):
        item = details.get(uid, {})
        data: dict[str, Any] = {ID_FIELD: uid, PRIORITY_FIELD: ranks.get(uid, ranks[None])}
        if "text" in item:
            data["text"] = item["text"]
        if uid in urls:
            data["image"] = urls[uid]
        pick = pending.get(uid)
        if pick is not None:
            data["raresift_reason"] = pick.reason
        task: dict[str, Any] = {"id": k + 1, "data": data, "predictions": [prediction]}
        answer = answers.get(uid)
        if answer is not None:
            task["annotations"] = [
                {
                    "result": [_choice(answer["answer"])],
                    "was_cancelled": False,
                    "created_at": _iso(answer["at"]),
                    "updated_at": _iso(answer["at"]),
                }
            ]
        tasks.append(task)
    return tasks


def _choice(value: str, names: tuple[str, str] = ("label", "item")) -> dict[str, Any]:
    """A Choices result: ``names`` are the ``<Choices>`` tag's ``name`` and ``toName``."""
    return {
        "from_name": names[0],
        "to_name": names[1],
        "type": "choices",
        "value": {"choices": [str(value)]},
    }


def priority_ranks(session: Session) -> dict[Any, int]:
    """The ``raresift_priority`` of items: the latest batch's items 1, 2, ... in raresift's
    order (1 = label first); under the key None, the rank of every other item (the number of
    items + 1, after them all). Empty of items before the first batch.

    >>> import tempfile, numpy as np
    >>> from raresift.session import Session
    >>> folder = tempfile.mkdtemp()
    >>> np.save(f"{folder}/e.npy", np.random.default_rng(0).normal(size=(50, 4)).astype("f4"))
    >>> s = Session.create(f"{folder}/p", embeddings=f"{folder}/e.npy", progress=False)
    >>> priority_ranks(s)
    {None: 51}
    >>> batch = s.next(budget=3)
    >>> [priority_ranks(s)[b.id] for b in batch], priority_ranks(s)[None]
    ([1, 2, 3], 51)
    """
    ranks: dict[Any, int] = {b.id: b.position + 1 for b in session.batch()}
    ranks[None] = session.n_items + 1
    return ranks


def label_studio_predictions(
    session: Session,
    uids: list[Any],
    full: bool = False,
    names: tuple[str, str] = ("label", "item"),
) -> list[dict[str, Any]]:
    """raresift's Label Studio prediction of each item of ``uids`` (every item, in order, when
    ``full``): ``score`` is its priority (sort descending to label in raresift's order: the
    pending batch's unanswered picks first, 2 down to 1 in the batch's order, then the other
    items by the model's p(positive), 0 to 1); ``result`` the predicted choice (a ``choices``
    result for the ``<Choices>`` tag ``names``: name, toName) once a model can be fitted."""
    batch = session.batch()
    pending = {b.id: b for b in batch if b.answer is None}
    p_positive, choices, model_version = _predictions(session, uids, full)
    out = []
    for k, uid in enumerate(uids):
        pick = pending.get(uid)
        if pick is not None:
            score = 2.0 - pick.position / len(batch)  # raresift's order, ahead of the rest
        else:
            score = float(p_positive[k]) if p_positive is not None else 0.0
        result = [] if choices is None else [_choice(choices[k], names)]
        out.append({"model_version": model_version, "score": score, "result": result})
    return out


def _predictions(session: Session, uids: list[Any], full: bool):
    """The current model's p(positive) and predicted choice for ``uids`` (blockwise over the
    whole memmap when ``full``), or (None, None) while no model can be fitted."""
    from raresift.index import ROW_BLOCK
    from raresift.session.rounds import fitted_model

    version = f"raresift-{raresift.__version__}"
    model = fitted_model(session)
    if model is None:
        return None, None, f"{version} (no model yet: answers of two classes needed)"
    pool = session.pool()
    positive = [session.label_index(c) for c in session.rare_classes]
    rows = range(len(pool)) if full else session.iids(uids)
    rows = np.asarray(rows, dtype=np.int64)
    scores, choices = [], []
    for lo in range(0, rows.size, ROW_BLOCK):
        block = rows[lo : lo + ROW_BLOCK]
        if full:
            x = np.asarray(pool.embeddings[block[0] : block[-1] + 1])
        else:
            x = pool.embeddings_of(block)
        proba = model.predict_proba(x)
        scores.extend(proba[:, positive].sum(axis=1).tolist())
        choices.extend(session.label_name(int(c)) for c in proba.argmax(axis=1))
    return scores, choices, f"{version} model on {len(session.answers())} answers"


def _image_urls(
    session: Session, details: dict[Any, dict], root: str | os.PathLike | None
) -> dict[Any, str]:
    """``data.image`` of each image item: :func:`image_url` relative to ``root`` (Label
    Studio's ``LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT``; default: the folder above the images'
    folder, or above the item table's)."""
    source = session.config["source"]
    if source["type"] != "images":
        return {}
    if root is None:
        folder = Path(source["file"])
        root = (folder if folder.is_dir() else folder.parent).parent
    return {uid: image_url(item["image"], root) for uid, item in details.items() if "image" in item}


def image_url(path: str | os.PathLike, root: str | os.PathLike) -> str:
    """The URL under which Label Studio's local-files storage serves ``path``, when started with
    ``LABEL_STUDIO_LOCAL_FILES_SERVING_ENABLED=true`` and
    ``LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT=root``.

    >>> image_url("/data/photos/cat 1.png", "/data")
    '/data/local-files/?d=photos/cat%201.png'
    """
    from urllib.parse import quote

    resolved, base = Path(os.path.abspath(path)), Path(os.path.abspath(root))
    try:
        relative = resolved.relative_to(base)
    except ValueError:
        raise ValidationError(
            f"image {path} is not under the image root {root}; pass --image-root (image_root=) "
            "a folder holding every image (Label Studio's LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT)"
        ) from None
    return LOCAL_FILES + quote(relative.as_posix())


def label_studio_config(session: Session) -> str:
    """A Label Studio labeling config for the exported tasks: the item (text, image, or its id
    for bare embeddings) and one choice per raresift answer (``from_name="label"``)."""
    from html import escape

    source = session.config["source"]["type"]
    if source == "images":
        shown = '<Image name="item" value="$image"/>'
    elif source == "texts":
        shown = '<Text name="item" value="$text"/>'
    else:
        shown = '<Text name="item" value="$raresift_id"/>'
    concept = session.config.get("concept") or "positive"
    titles = {"1": f"yes: {concept}", "0": f"no: not {concept}"}
    choices = "\n".join(
        f'    <Choice value="{escape(o)}"'
        + (f' hint="{escape(titles[o])}"' if o in titles else "")
        + "/>"
        for o in session.answer_options()
    )
    return (
        f'<View>\n  {shown}\n  <Choices name="label" toName="item" choice="single" '
        f'showInline="true">\n{choices}\n  </Choices>\n</View>\n'
    )


# ---------------------------------------------------------------------- import
def import_answers(
    session: Session,
    path: Path,
    partial: bool = False,
    who: str | None = None,
    source: str = "import",
    encoding: str | None = None,
) -> dict:
    """Record the answers in ``path`` (CSV / TSV / JSONL answers, or a Label Studio export);
    ``encoding`` when the file is neither UTF-8 nor marked with a byte-order mark."""
    if path.is_dir():
        raise ValidationError(f"answers file {path} is a folder; give a CSV / JSONL / JSON file")
    if not path.is_file():
        raise ValidationError(f"answers file {path} does not exist")
    suffix = path.suffix.lower()
    if suffix == ".json":
        rows, unit, default_who = _label_studio_rows(path, encoding)
    elif suffix in (".csv", ".tsv", ".jsonl", ".ndjson"):
        rows, unit, default_who = _table_rows(session, path, encoding), "line", "import"
    else:
        raise ValidationError(
            f"cannot import {path}: use a CSV / TSV / JSONL answers file or a Label Studio "
            "JSON export"
        )
    started = time.perf_counter()
    result = session.answer_many(
        rows, partial=partial, who=who or default_who, source=source, what=str(path), unit=unit
    )
    result["seconds"] = time.perf_counter() - started
    return result


def _table_rows(
    session: Session, path: Path, encoding: str | None = None
) -> list[tuple[int, Any, Any]]:
    """``(line, id, answer)`` rows of a CSV / TSV / JSONL answers file."""
    # dict.fromkeys: each name once, in order (the id column is often called "id" itself)
    id_names = tuple(dict.fromkeys([*ID_COLUMNS, session.config.get("ids_column") or "id"]))
    answer_names = tuple(dict.fromkeys([*ANSWER_COLUMNS, session.config.get("concept") or "label"]))
    if path.suffix.lower() in (".jsonl", ".ndjson"):
        records = []
        for number, line in inputs.text_lines(path, encoding):
            if not line.strip():
                continue
            try:
                obj = inputs.json_object(line, f"{path} line {number}")
            except CorruptFileError:
                records.append((number, None))
                continue
            records.append((number, obj if isinstance(obj, dict) else None))
        if not records:
            raise AnswerError(str(path), [(1, "the file is empty")])
        keys = {k for _, r in records if r for k in r}
        id_col = next((c for c in id_names if c in keys), None)
        ans_col = next((c for c in answer_names if c in keys), None)
        if id_col is None or ans_col is None:
            missing = "id" if id_col is None else "answer"
            raise AnswerError(str(path), [(1, f"no {missing} column (keys: {sorted(keys)})")])
        return [
            (n, r.get(id_col) if r else None, r.get(ans_col) if r else None) for n, r in records
        ]
    records = inputs.csv_rows(path, encoding)
    _, header = next(records, (1, None))
    if not header or not any(h.strip() for h in header):
        raise AnswerError(str(path), [(1, "the file is empty (it needs a header: id,label)")])
    names = inputs.check_header(path, [h.strip() for h in header])
    folded = [n.casefold() for n in names]  # Excel's "ID,Label" names the same columns

    def find(candidates) -> int | None:
        for c in candidates:
            if c in names:
                return names.index(c)
            if folded.count(c.casefold()) == 1:
                return folded.index(c.casefold())
        return None

    id_col, ans_col = find(id_names), find(answer_names)
    if id_col is None:
        raise AnswerError(
            str(path),
            [(1, f"no id column (header: {names}; expected one of {', '.join(id_names)})")],
        )
    if ans_col is None:
        expected = ", ".join(answer_names)
        raise AnswerError(
            str(path), [(1, f"no answer column (header: {names}; expected one of {expected})")]
        )
    rows = []
    for line, row in records:
        if not row or not any(cell.strip() for cell in row):
            continue
        cells = row + [""] * (max(id_col, ans_col) + 1 - len(row))
        rows.append((line, cells[id_col], cells[ans_col]))
    if not rows:
        raise AnswerError(str(path), [(2, "no answers below the header")])
    return rows


def _as_list(value: Any) -> list:
    """Label Studio's ``choices``: a list, or one choice written bare."""
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


def _number(value: Any) -> float:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else 0.0


def annotation_choice(annotation: dict[str, Any]) -> str | None:
    """The answer a Label Studio annotation gives: its ``choices`` result (several choices
    joined by ``|``, which no answer option matches), or None when it has none.

    >>> annotation_choice({"result": [{"type": "choices", "value": {"choices": ["1"]}}]})
    '1'
    >>> annotation_choice({"result": []}) is None
    True
    """
    results = annotation.get("result") if isinstance(annotation.get("result"), list) else []
    choices = [
        str(c)
        for r in results
        if isinstance(r, dict) and r.get("type") == "choices" and isinstance(r.get("value"), dict)
        for c in _as_list(r["value"].get("choices"))
    ]
    return choices[0] if len(choices) == 1 else None if not choices else "|".join(choices)


def _label_studio_rows(
    path: Path, encoding: str | None = None
) -> tuple[list[tuple[int, Any, Any]], str, str]:
    """``(task number, id, answer)`` from a Label Studio JSON export (latest non-cancelled
    annotation of each task; ``choices`` results)."""
    name = inputs.text_encoding(path, encoding)
    try:
        text = path.read_text(encoding=name)
    except UnicodeDecodeError as exc:
        raise CorruptFileError(f"{path} is not JSON: not {name} text ({exc})") from None
    tasks = inputs.json_object(text, str(path))
    if not isinstance(tasks, list):
        raise AnswerError(
            str(path), [(1, "a Label Studio export is a JSON list of tasks")], unit="task"
        )
    if not tasks:
        raise AnswerError(str(path), [(1, "the export holds no tasks")], unit="task")
    rows = []
    not_tasks = []
    for number, task in enumerate(tasks, 1):
        if not isinstance(task, dict):
            not_tasks.append((number, f"a JSON {type(task).__name__}, not a task object"))
            continue
        if "data" not in task and ID_FIELD in task:  # Label Studio's JSON-MIN export
            rows.append((number, task[ID_FIELD], task.get("label", task.get("choice"))))
            continue
        data = task.get("data") or {}
        annotations = task.get("annotations") or []
        if not isinstance(data, dict) or not isinstance(annotations, list):
            not_tasks.append((number, "not a Label Studio task ('data' must be an object and "
                                      "'annotations' a list)"))  # fmt: skip
            continue
        uid = data.get(ID_FIELD, data.get("id"))
        annotations = [a for a in annotations if isinstance(a, dict) and not a.get("was_cancelled")]
        if not annotations:
            continue  # an unannotated task is not an answer
        latest = max(
            annotations, key=lambda a: (str(a.get("updated_at") or ""), _number(a.get("id")))
        )
        rows.append((number, uid, annotation_choice(latest)))
    if not_tasks:
        raise AnswerError(str(path), not_tasks, unit="task")
    if not rows:
        raise AnswerError(str(path), [(1, "no task has an annotation")], unit="task")
    return rows, "task", "label-studio"
