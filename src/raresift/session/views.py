"""Text renderings of batches and status for the command line (the CLI prints them)."""

from __future__ import annotations

import csv
import io
import json
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from raresift.session.project import BatchItem
    from raresift.session.project import Project as Session  # views read the floor

BATCH_FORMATS = ("table", "csv", "jsonl")


def batch_text(session: Session, batch: list[BatchItem], fmt: str = "table") -> str:
    """A batch as an aligned table, CSV or JSON lines (with each item's text when it has one)."""
    texts = _texts(session, [b.id for b in batch])
    rows = [{**b.as_dict(), **({"text": texts[b.id]} if b.id in texts else {})} for b in batch]
    if fmt == "jsonl":
        return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)
    fields = ["position", "id", "score", "answer", "reason"] + (["text"] if texts else [])
    if fmt == "csv":
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=fields, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
        return buf.getvalue()
    cells = [[str(r.get(f) if r.get(f) is not None else "") for f in fields] for r in rows]
    for row in cells:
        row[2] = f"{float(row[2]):.4g}"
        if texts:
            row[-1] = row[-1].replace("\n", " ")[:60]
    widths = [
        max(len(f), *(len(c[i]) for c in cells)) if cells else len(f) for i, f in enumerate(fields)
    ]
    lines = ["  ".join(f.ljust(w) for f, w in zip(fields, widths, strict=True)).rstrip()]
    lines += [
        "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in cells
    ]
    return "\n".join(lines) + "\n"


def _texts(session: Session, uids: list[Any]) -> dict[Any, str]:
    if session.config["source"]["type"] != "texts":
        return {}
    iids = session.iids(uids)
    with session.store.reading() as db:
        out = {}
        for uid, iid in zip(uids, iids, strict=True):
            row = db.item_row(iid)
            if row is not None and row["text"] is not None:
                out[uid] = row["text"]
    return out


def round_header(session: Session) -> str:
    """What ran for the latest batch, in one line."""
    info = session.round_info()
    if info is None:
        return "no batch yet"
    text = (
        f"round {info['round']}: {info['budget']} items by {info['strategy']} over "
        f"{info['candidates']} candidates, model fitted on {info['n_labeled']} answers"
    )
    if info["note"]:
        text += f" ({info['note']})"
    secs = info["seconds"]
    if secs:
        text += "; seconds " + ", ".join(f"{k} {v:.2f}" for k, v in secs.items())
    return text


def status_text(status: dict[str, Any]) -> str:
    """The status dict as a short report."""
    answers = ", ".join(f"{k} {v}" for k, v in status["answers"].items())
    lines = [status["summary"]] if status.get("summary") else []
    lines += [
        f"project   {status['project']} ({status['items']} items, {status['task']})",
        f"labels    {status['labels_spent']} spent" + (f": {answers}" if answers else ""),
        f"positives {status['positives_found']} found in {status['rounds']} round(s)",
    ]
    if status["curve"]:
        lines.append(
            "per round "
            + ", ".join(
                f"r{p['round']}: +{p['new_positives']}/{p['answers']}" for p in status["curve"]
            )
        )
    for est in status["estimates"]:
        spread = (
            f"{est['confidence']:.0%} interval {est['low']:.1f}-{est['high']:.1f}"
            if est.get("confidence")
            else f"spread {est['low']:.1f}-{est['high']:.1f}, no confidence claim"
        )
        lines.append(
            f"left      {est['positives_left']:.1f} positives unlabeled ({spread}; {est['method']})"
        )
    if not status["estimates"]:
        lines.append("left      no estimate yet (needs answers of two classes or an audit)")
    recall = status.get("recall")
    if recall is not None:
        lines.append(
            f"recall    >= {recall['lower_bound']:.1%} with {recall['confidence']:.0%} confidence "
            f"over {recall['frame']['items']} items ({recall['frame']['description']})"
        )
    plan = status.get("certify")
    if plan is not None:
        more = "?" if plan["extra_labels"] is None else plan["extra_labels"]
        lines.append(
            f"certify   {plan['target']:.0%} at {plan['confidence']:.0%}: {more} audit labels "
            f"({plan['why']})"
        )
    for rule in status["stop"]:
        kind = " (heuristic)" if rule.get("heuristic") else ""
        lines.append(f"stop?     {rule['verdict'].upper()}: {rule['rule']}{kind}: {rule['why']}")
    pending = status["pending"]
    if pending is not None:
        state = "pending" if pending["up_to_date"] else "answered since; next makes a new one"
        lines.append(
            f"batch     round {pending['round']} by {pending['strategy']} over "
            f"{pending['candidates']} ({state})"
        )
    lines.append(f"defaults  {status['defaults']}")
    probe = status.get("index_recall")
    if probe is not None:
        lines.append(f"index     {index_recall_text(probe)}")
    return "\n".join(lines)


def index_recall_text(probe: dict[str, Any]) -> str:
    """The SEALS index's recall probe in words (see :mod:`raresift.session.probe`).

    >>> index_recall_text({"last": {"round": 2, "k": 100, "queries": 4, "recall": 0.8125,
    ...     "items": 10**8}, "pending": {"round": 5, "scanned": 0.25}})
    'recall@100 0.81 against exact search (4 queries of round 2, 100,000,000 items scanned); \
probe of round 5 pending: 25% of the pool scanned'
    """
    last, pending = probe.get("last"), probe.get("pending")
    parts = []
    if last is not None:
        parts.append(
            f"recall@{last['k']} {last['recall']:.2f} against exact search ({last['queries']} "
            f"queries of round {last['round']}, {last['items']:,} items scanned)"
        )
    if pending is not None:
        parts.append(
            f"probe of round {pending['round']} pending: {pending['scanned']:.0%} of the pool "
            "scanned"
        )
    return "; ".join(parts)
