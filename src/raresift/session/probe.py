"""What a session knows of its SEALS index: the neighbour rows of earlier rounds and the
index's measured recall.

*Neighbour rows*: every row the index gives for an item (the labeled items' neighbourhoods, and
what a round searched ahead) is kept in the session store, keyed by the index file and its
search parameters and ``k``; a round reads the rows it has and searches only the rest, so a
round costs the searches of its new items, in a fresh process as in a long-lived one
(:class:`raresift.candidates.NeighborRows`).

*Recall probe*: each SEALS round whose probe is not pending starts one: ``PROBE_QUERIES`` of the
items whose neighbours the round looked up, their rows as the index gave them, and the exact
top k of each over the whole pool (itself left out), computed by a scan of every row
(:class:`raresift.index.RecallProbe`). The scan never runs inside a round: a background thread
of the process holding the session advances it ``PROBE_SLICE`` rows at a time, at the lowest
CPU priority, storing its progress after each slice, and stops when the session closes; a later
process resumes where it stopped. ``raresift status`` shows the last finished probe (recall@k of
the index on those queries: the share of each query's k nearest items that SEALS' search
finds) and how far a pending one has scanned.
"""

from __future__ import annotations

import logging
import os
import threading
from typing import Any

import numpy as np

log = logging.getLogger("raresift")

PROBE_QUERIES = 4  # queries of a round whose recall is measured
PROBE_SLICE = 1 << 18  # rows scanned between two stores of a probe's progress
PROBE_HISTORY = 50  # finished probes kept in the store


def rows_key(session, db=None) -> str:
    """What the stored neighbour rows depend on: the index file, its search parameters, k
    (``db``: read inside this transaction)."""
    if db is None:
        with session.store.reading() as db:
            row = db.files().get("index")
    else:
        row = db.files().get("index")
    spec = session.config["index"]
    digest = "" if row is None else row["sha256"]
    return f"{spec['factory']}|{spec['search_params']}|k={session.config['seals_k']}|{digest}"


def neighbor_rows(session):
    """The session's :class:`~raresift.candidates.NeighborRows` (read from the store once a
    process; rows added by a round are stored by :func:`store_round_knowledge`)."""
    from raresift.candidates import NeighborRows

    key = rows_key(session)
    cached = getattr(session, "_neighbor_rows", None)
    if cached is not None and cached[0] == key:
        return cached[1]
    with session.store.reading() as db:
        stored = db.neighbor_rows(key)
    k = int(session.config["seals_k"])
    rows = NeighborRows(k, {i: np.frombuffer(b, dtype=np.int64) for i, b in stored.items()})
    session._neighbor_rows = (key, rows)
    return rows


def new_probe(session, candidates, round_index: int) -> dict[str, Any] | None:
    """The state of a probe of this round's lookups (None while one is pending)."""
    from raresift.index import RecallProbe

    with session.store.reading() as db:
        if db.meta("index_probe") is not None:
            return None
    looked_up = np.fromiter(candidates.looked_up, np.int64, len(candidates.looked_up))
    if looked_up.size == 0:
        return None
    rng = np.random.default_rng([session.config["seed"], round_index, 11])
    queries = np.sort(rng.choice(looked_up, min(PROBE_QUERIES, looked_up.size), replace=False))
    found = candidates.neighbors(queries)
    return RecallProbe(queries, found, round_index).as_dict()


def store_round_knowledge(db, session, picks) -> None:
    """Inside the round's write: the new neighbour rows and a new probe."""
    if picks.neighbor_rows is not None:
        ids, rows = picks.neighbor_rows
        db.put_neighbor_rows(
            rows_key(session, db), [(int(i), r.tobytes()) for i, r in zip(ids, rows, strict=True)]
        )
    if picks.probe is not None:
        db.set_meta("index_probe", picks.probe)


def advance_probe(session, max_rows: int | None = None, stop: threading.Event | None = None):
    """Scan the pending probe's rows, ``PROBE_SLICE`` at a time (at most ``max_rows``), storing
    progress after each slice and the recall once done. Returns the finished result or None."""
    from raresift.index import RecallProbe

    with session.store.reading() as db:
        state = db.meta("index_probe")
    if state is None:
        return None
    probe = RecallProbe.from_dict(state)
    pool = session.pool()
    left = pool.embeddings.shape[0] if max_rows is None else max_rows
    while not probe.done and left > 0 and not (stop is not None and stop.is_set()):
        step = min(PROBE_SLICE, left)
        probe.advance(
            pool.embeddings,
            step,
            ids=pool.ids,
            metric=session.index().metric,
            stop=None if stop is None else stop.is_set,
            positions=pool.positions(probe.queries),
        )
        left -= step
        with session.store.writing() as db:
            now = db.meta("index_probe")
            if now is None or now["round"] != state["round"] or now["cursor"] != state["cursor"]:
                return None  # another process advanced or finished it meanwhile
            state = probe.as_dict()
            if not probe.done:
                db.set_meta("index_probe", state)
                continue
            result = {
                "round": probe.round,
                "k": probe.k,
                "queries": int(probe.queries.size),
                "query_ids": probe.queries.tolist(),
                "recall": probe.recall,
                "scan_seconds": round(probe.seconds, 2),
                "items": int(pool.embeddings.shape[0]),
                "search_params": session.config["index"]["search_params"],
            }
            history = (db.meta("index_recall") or [])[-(PROBE_HISTORY - 1) :]
            db.set_meta("index_recall", [*history, result])
            db.set_meta("index_probe", None)
            return result
    return None


class ProbeThread(threading.Thread):
    """Advances the pending probe in the background at the lowest CPU priority, until it is
    finished or :meth:`stop` (the session closing) is called."""

    def __init__(self, session):
        super().__init__(name="raresift-recall-probe", daemon=True)
        self.session = session
        self.halt = threading.Event()
        self.result: dict[str, Any] | None = None

    def run(self) -> None:
        try:
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 19)
        except (OSError, AttributeError):  # not Linux: run at the process's priority
            pass
        try:
            self.result = advance_probe(self.session, stop=self.halt)
        except Exception as exc:  # a closing session, a vanished project: try again later
            if not self.halt.is_set():
                log.warning("the index recall probe stopped: %s", exc)

    def stop(self) -> None:
        self.halt.set()
        self.join()


def probe_in_background(session) -> ProbeThread | None:
    """Start the session's probe thread unless one runs or nothing is pending."""
    thread = getattr(session, "_probe_thread", None)
    if thread is not None and thread.is_alive():
        return thread
    with session.store.reading() as db:
        if db.meta("index_probe") is None:
            return None
    session._probe_thread = ProbeThread(session)
    session._probe_thread.start()
    return session._probe_thread


def stop_probe(session) -> None:
    thread = getattr(session, "_probe_thread", None)
    if thread is not None:
        thread.stop()
        session._probe_thread = None


def index_recall_status(session) -> dict[str, Any] | None:
    """The last finished probe and the pending one's progress, for ``status``."""
    with session.store.reading() as db:
        history = db.meta("index_recall") or []
        pending = db.meta("index_probe")
    if not history and pending is None:
        return None
    out: dict[str, Any] = {"last": history[-1] if history else None, "pending": None}
    if pending is not None:
        n = session.n_items
        scanned = n if pending["cursor"] < 0 else pending["cursor"]
        out["pending"] = {"round": pending["round"], "scanned": scanned / max(n, 1)}
    return out
