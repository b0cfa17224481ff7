"""Answers in and out of a session: CSV / JSONL answer files, Label Studio tasks and exports.

Answer files (import and ``raresift label ANSWERS.csv``) are CSV, TSV or JSONL with an id
column (``id``, or the session's id column) and an answer column (``label``, ``answer`` or
``class``). Label Studio: :func:`export` writes tasks with ``data`` (``raresift_id``, text,
image) and ``predictions`` (``model_version``, ``score`` and a ``choices`` result); importing a
Label Studio JSON export records each task's latest non-cancelled annotation.

Label Studio labeling config matching the exported tasks (``$text`` or ``$image``)::

    <View>
      <Text name="item" value="$text"/>
      <Choices name="label" toName="item" choice="single">
        <Choice value="1"/><Choice value="0"/><Choice value="skip"/>
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

ID_COLUMNS = ("raresift_id", "id", "item_id")  # raresift_id first: Label Studio CSV / JSON-MIN
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
) -> str | Path:
    if fmt not in FORMATS:
        raise ValidationError(f"unknown export format {fmt!r}; choose {', '.join(FORMATS)}")
    if fmt == "label-studio":
        text = json.dumps(label_studio_tasks(session, items), indent=1, ensure_ascii=False)
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


def label_studio_tasks(session: Session, items: str = "batch") -> list[dict[str, Any]]:
    """Label Studio tasks for the latest batch (``"batch"``) or every item (``"all"``)."""
    version = f"raresift-{raresift.__version__}"
    if items == "batch":
        batch = session.batch()
        if not batch:
            raise ValidationError("no batch yet; run raresift next first (or export --items all)")
        info = session.round_info()
        model_version = f"{version} round {info['round']} {info['strategy']}"
        uids = [b.id for b in batch]
        scores = [b.score for b in batch]
        reasons = [b.reason for b in batch]
        choices = [None] * len(batch)
    elif items == "all":
        uids, scores, choices, model_version = _all_predictions(session, version)
        reasons = [None] * len(uids)
    else:
        raise ValidationError(f"items must be 'batch' or 'all', got {items!r}")
    details = _item_details(session, uids)
    tasks = []
    for k, (uid, score, reason, choice) in enumerate(
        zip(uids, scores, reasons, choices, strict=True)
    ):
        data = {
            "raresift_id": uid,
            **{key: v for key, v in details.get(uid, {}).items() if key in ("text", "image")},
        }
        data.setdefault("text", f"item {uid}")
        prediction: dict[str, Any] = {
            "model_version": model_version,
            "score": float(score),
            "result": [],
        }
        if choice is not None:
            prediction["result"] = [
                {
                    "from_name": "label",
                    "to_name": "item",
                    "type": "choices",
                    "value": {"choices": [choice]},
                }
            ]
        if reason:
            data["raresift_reason"] = reason
        tasks.append({"id": k + 1, "data": data, "predictions": [prediction]})
    return tasks


def _all_predictions(session: Session, version: str):
    """The current model's p(positive) for every item (blockwise over the memmap)."""
    from raresift.index import ROW_BLOCK
    from raresift.session.status import fitted_model

    model = fitted_model(session)
    if model is None:
        raise ValidationError("need answers of two classes before predicting every item")
    pool = session.pool()
    positive = [session.label_index(c) for c in session.rare_classes]
    scores, choices = [], []
    for lo in range(0, len(pool), ROW_BLOCK):
        proba = model.predict_proba(np.asarray(pool.embeddings[lo : lo + ROW_BLOCK]))
        scores.extend(proba[:, positive].sum(axis=1).tolist())
        choices.extend(session.label_name(int(c)) for c in proba.argmax(axis=1))
    uids = session.uids(range(len(pool)))
    return uids, scores, choices, f"{version} model on {len(session.answers())} answers"


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
    id_names = ID_COLUMNS + tuple(filter(None, [session.config.get("ids_column")]))
    answer_names = ANSWER_COLUMNS + tuple(filter(None, [session.config.get("concept")]))
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
        if "data" not in task and "raresift_id" in task:  # Label Studio's JSON-MIN export
            rows.append((number, task["raresift_id"], task.get("label", task.get("choice"))))
            continue
        data = task.get("data") or {}
        annotations = task.get("annotations") or []
        if not isinstance(data, dict) or not isinstance(annotations, list):
            not_tasks.append((number, "not a Label Studio task ('data' must be an object and "
                                      "'annotations' a list)"))  # fmt: skip
            continue
        uid = data.get("raresift_id", data.get("id"))
        annotations = [a for a in annotations if isinstance(a, dict) and not a.get("was_cancelled")]
        if not annotations:
            continue  # an unannotated task is not an answer
        latest = max(
            annotations, key=lambda a: (str(a.get("updated_at") or ""), _number(a.get("id")))
        )
        results = latest.get("result") if isinstance(latest.get("result"), list) else []
        choices = [
            str(c)
            for r in results
            if isinstance(r, dict)
            and r.get("type") == "choices"
            and isinstance(r.get("value"), dict)
            for c in _as_list(r["value"].get("choices"))
        ]
        rows.append(
            (
                number,
                uid,
                choices[0] if len(choices) == 1 else None if not choices else "|".join(choices),
            )
        )
    if not_tasks:
        raise AnswerError(str(path), not_tasks, unit="task")
    if not rows:
        raise AnswerError(str(path), [(1, "no task has an annotation")], unit="task")
    return rows, "task", "label-studio"
