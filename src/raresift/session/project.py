"""The :class:`Project`: one floor below :class:`~raresift.session.Session`.

A project is the data of a labeling session and nothing else: its folder, its store (all SQL is
in :mod:`raresift.session.store`), its validated config, the map between the user's ids and
internal row ids, the answer vocabulary (classes or 1/0, and skip / junk / duplicate), the
memory-mapped embeddings and the SEALS index, the answers (each write one transaction) and the
stored batches. Rounds, status and exchange read and write a project; none of them, and nothing
here, imports the :class:`Session` facade (as Datasette's ``database.py`` imports nothing from
its app).
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from raresift.errors import UnknownIdError, ValidationError
from raresift.session import inputs
from raresift.session.config import RECALL_TARGET, SPECIAL, LocalEngine, check_stored
from raresift.session.errors import (
    AnswerError,
    ConflictError,
    FingerprintError,
    SessionCorruptError,
    SessionError,
)
from raresift.session.files import check_fingerprint, fingerprint
from raresift.session.store import DB_NAME, Store

ON_DISK_SHARD = 10_000_000  # rows a shard of an on-disk build adds in memory (~1 GB at SQ8)
_CONCEPT_ALIASES = {
    "1": "1",
    "yes": "1",
    "y": "1",
    "true": "1",
    "pos": "1",
    "positive": "1",
    "accept": "1",
    "0": "0",
    "no": "0",
    "n": "0",
    "false": "0",
    "neg": "0",
    "negative": "0",
    "reject": "0",
}
_SPECIAL_ALIASES = {
    "skip": "skip",
    "ignore": "skip",
    "junk": "junk",
    "duplicate": "duplicate",
    "dup": "duplicate",
}


@dataclass
class BatchItem:
    """One item of a stored batch, as ``next`` / :meth:`Session.pending` return it.

    ``id`` is the user's own id (int or str), ``position`` 0-based, ``answer`` the answer in
    force (None if unanswered) and ``seq`` its sequence number (None if unanswered).
    """

    id: Any
    position: int
    score: float
    reason: str
    round: int
    answer: str | None = None
    seq: int | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class Project:
    """The data of a session in its folder: open one with :meth:`open`."""

    def __init__(self, root: Path, store: Store, config: dict[str, Any]):
        self.root = root
        self.store = store
        self.config = config
        self._pool = None
        self._index = None
        self._lock = threading.RLock()
        self.engine = LocalEngine()  # where rounds run (the facade may wire another)
        self.checked_files: list[dict] = []  # what open() checked (Project.open)

    @classmethod
    def open(cls, path: str | os.PathLike, full: bool = False) -> Project:
        """Open the session in folder ``path``; checks the database and the fingerprints of the
        files it depends on (size, time and sampled blocks). Raises a
        :class:`~raresift.errors.RaresiftError` subclass (and changes nothing) when anything is
        wrong.

        ``full=True`` (``raresift verify``) hashes every file whole against the SHA-256
        recorded at init instead of trusting the time, and records the new time of a file
        whose contents are unchanged; :attr:`checked_files` then says what was checked."""
        root = Path(path).resolve()
        if not root.is_dir():
            raise SessionError(f"no session folder {root}; create one with raresift init")
        store = Store.open(root / DB_NAME)
        try:
            with store.reading() as db:
                config = check_stored(db.meta("config"), str(root / DB_NAME))
                files = db.files()
                _check_rows(db, config, str(root / DB_NAME))
        except BaseException:
            store.close()
            raise
        session = cls(root, store, config)
        try:
            session.checked_files = session._check_files(files, full)
        except BaseException:
            store.close()
            raise
        return session

    def _check_files(self, files: dict[str, dict[str, Any]], full: bool = False) -> list[dict]:
        """The files the project depends on are there, unchanged, of the recorded shape: one
        ``{role, path, size, full, retimed}`` per file checked (``retimed``: a full check found
        the contents unchanged under a new time, now recorded)."""
        root, config = self.root, self.config
        emb = files.get("embeddings")
        if emb is None:
            raise FingerprintError(f"{root / DB_NAME} records no embeddings file")
        # the config's path (relative for the project's own files): a project written before
        # the files table held relative paths still opens after a move
        paths = {"embeddings": self._path(config["embeddings"]["path"])}
        if "index" in files:
            paths["index"] = root / config["index"]["path"]
        checked = []
        for role, path in paths.items():
            what = f"{role} file"
            retimed = check_fingerprint(path, files[role], what, full=full, project=root)
            checked.append({"role": role, "path": str(path), "size": files[role]["size"],
                            "full": full, "retimed": retimed})  # fmt: skip
        shape = np.load(self._path(config["embeddings"]["path"]), mmap_mode="r").shape
        if tuple(shape) != (config["n_items"], config["dim"]):
            raise SessionCorruptError(
                f"{root / DB_NAME} records {config['n_items']} x {config['dim']} embeddings but "
                f"the file holds {shape[0]} x {shape[1]} (hand-edited?); restore the database "
                "from a backup"
            )
        retimed = [(f["role"], paths[f["role"]]) for f in checked if f["retimed"]]
        if retimed:  # every check passed: record the verified files' new times
            with self.store.writing() as db:
                for role, path in retimed:
                    row = files[role]
                    fp = {**row, "mtime_ns": path.stat().st_mtime_ns}
                    db.record_file(role, row["path"], fp, json.loads(row["detail"]))
        return checked

    def close(self) -> None:
        """Stop the index recall probe's scan (a later process resumes it) and close the
        database connection."""
        from raresift.session.probe import stop_probe

        stop_probe(self)
        self.store.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Session({str(self.root)!r}, n={self.n_items}, {self.kind})"

    def project_files(self) -> list[Path]:
        """Every file of the project folder and every file the session depends on: what no
        export or plot may write over (the web app's own outputs under ``cache/app`` aside)."""
        scratch = self.root / "cache" / "app"
        own = [p for p in self.root.rglob("*") if not p.is_dir() and scratch not in p.parents]
        index = self.root / self.config["index"]["path"]
        return [*own, self._path(self.config["embeddings"]["path"]), index, Path(f"{index}.json")]

    def _path(self, stored: str) -> Path:
        p = Path(stored)
        return p if p.is_absolute() else self.root / p

    # ================================================================== the task
    @property
    def kind(self) -> str:
        """``"concept"`` (answers 1/0) or ``"classes"``."""
        return self.config["kind"]

    @property
    def n_items(self) -> int:
        return int(self.config["n_items"])

    @property
    def n_classes(self) -> int:
        return 2 if self.kind == "concept" else len(self.config["classes"])

    @property
    def rare_classes(self) -> list[str]:
        """Classes whose labeled items are positives (SIMILAR's query set)."""
        if self.kind == "concept":
            return ["1"]
        if self.config["rare_classes"]:
            return list(self.config["rare_classes"])
        with self.store.reading() as db:
            counts = db.value_counts()
        classes = self.config["classes"]
        common = max(classes, key=lambda c: (counts.get(c, 0), -classes.index(c)))
        return [c for c in classes if c != common]

    def answer_options(self) -> list[str]:
        """The answers this session accepts: class names (or ``1``/``0`` for a concept), then
        ``skip``, ``junk``, ``duplicate``."""
        base = ["1", "0"] if self.kind == "concept" else list(self.config["classes"])
        return base + list(SPECIAL)

    def normalize_answer(self, label: Any) -> str:
        """The canonical form of an answer, or :class:`ValidationError` saying what is allowed."""
        text = str(label).strip()
        low = text.lower()
        if low in _SPECIAL_ALIASES:
            return _SPECIAL_ALIASES[low]
        if self.kind == "concept":
            if low in _CONCEPT_ALIASES:
                return _CONCEPT_ALIASES[low]
            if low == str(self.config["concept"]).lower():
                return "1"
        else:
            classes = self.config["classes"]
            if text in classes:
                return text
            folded = [c for c in classes if c.lower() == low]
            if len(folded) == 1:
                return folded[0]
        raise ValidationError(f"answer {text!r} is not one of {', '.join(self.answer_options())}")

    def label_index(self, value: str) -> int:
        """Training label of a class answer (0/1 for a concept, class position otherwise)."""
        return int(value) if self.kind == "concept" else self.config["classes"].index(value)

    def label_name(self, index: int) -> str:
        return str(index) if self.kind == "concept" else self.config["classes"][index]

    def is_positive(self, value: str) -> bool:
        return value in self.rare_classes

    def describe_defaults(self) -> str:
        """One line saying what ``next`` runs by default."""
        d = self.config["defaults"]
        text = f"strategy {d['strategy']} over {d['candidates']} candidates, budget {d['budget']}"
        if d["candidates"] == "seals":
            idx = self.config["index"]
            text += f" (SEALS k={self.config['seals_k']}, index {idx['factory']}"
            text += f", {idx['search_params']})" if idx["search_params"] else ")"
        return text

    # ================================================================== ids
    def iid(self, item_id: Any) -> int:
        """The internal id of the user's id ``item_id``; :class:`UnknownIdError` if absent."""
        found = self.iids([item_id])[0]
        if found < 0:
            raise UnknownIdError(f"unknown id {item_id!r}: no such item in this session")
        return found

    def iids(self, item_ids: Iterable[Any], db=None) -> list[int]:
        """Internal ids of user ids; -1 where an id is unknown (read in ``db``, a transaction
        of the caller's, when given)."""
        keys = [self._key(u) for u in item_ids]
        if self.config["ids"] == "row":
            n = self.n_items
            return [int(k) if k is not None and 0 <= int(k) < n else -1 for k in keys]
        wanted = [k for k in dict.fromkeys(keys) if k is not None]
        if db is None:
            with self.store.reading() as db:
                found = db.iids_of(wanted)
        else:
            found = db.iids_of(wanted)
        return [found.get(k, -1) if k is not None else -1 for k in keys]

    def _key(self, item_id: Any) -> str | None:
        return inputs.id_key(item_id, self.config["ids"])

    def uid(self, iid: int) -> Any:
        """The user's id of internal id ``iid`` (int for row and int64 ids, else str)."""
        return self.uids([iid])[0]

    def uids(self, iids: Iterable[int]) -> list[Any]:
        iids = [int(i) for i in iids]
        if self.config["ids"] == "row":
            return iids
        with self.store.reading() as db:
            out = db.uids_of(iids)
        cast = int if self.config["ids"] == "int" else str
        return [cast(out[i]) for i in iids]

    # ================================================================== data
    def pool(self):
        """The items as a :class:`~raresift.pool.Pool` over the memory-mapped embeddings
        (internal ids 0..n-1)."""
        with self._lock:
            if self._pool is None:
                from raresift.pool import Pool

                path = self._path(self.config["embeddings"]["path"])
                # values checked by create() and fingerprinted since: no NaN scan per process
                self._pool = Pool(np.load(path, mmap_mode="r"), values_checked=True)
            return self._pool

    def index(self, progress: bool | None = None):
        """The Faiss index for SEALS, built (and recorded with its fingerprint) on first use."""
        from raresift.index import NeighborIndex

        with self._lock:
            if self._index is not None:
                return self._index
            spec = self.config["index"]
            path = self.root / spec["path"]
            with self.store.reading() as db:
                row = db.files().get("index")
            if row is not None:
                check_fingerprint(path, dict(row), "index file")  # so load need not hash it
                self._index = NeighborIndex.load(
                    path, pool=self.pool(), progress=False, verify=False
                )
                return self._index
            if spec.get("on_disk"):
                index = self._build_on_disk(spec, path, _progress(progress))
            else:
                index = self._build_in_memory(spec, path, _progress(progress))
            with self.store.writing() as db:
                record_file(db, "index", self.root, path, {"factory": spec["factory"]})
                if index.search_params != spec["search_params"]:  # calibrated for this index
                    config = db.meta("config")
                    config["index"]["search_params"] = index.search_params
                    db.set_meta("config", config)
                    self.config = config
            self._index = index
            return index

    def _train_size(self, spec: dict) -> int:
        nlist = int(spec.get("nlist", 0))  # read from the index Faiss built at init
        return min(self.n_items, max(100_000, 40 * nlist))

    def _build_in_memory(self, spec: dict, path: Path, progress: bool):
        from raresift.index import NeighborIndex

        index = NeighborIndex(
            spec["factory"],
            spec["search_params"],
            train_size=self._train_size(spec),
            seed=self.config["seed"],
            recall_target=RECALL_TARGET if spec.get("calibrate") else None,
            progress=progress,
        ).fit(self.pool())
        tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")  # one per builder
        index.save(tmp)
        os.replace(str(tmp) + ".json", str(path) + ".json")
        os.replace(tmp, path)
        return index

    def _build_on_disk(self, spec: dict, path: Path, progress: bool):
        """A sharded build with its lists on disk, in ``path``'s folder; run again after an
        interruption, it keeps the shards already built."""
        from raresift.index import build_sharded_index

        index = build_sharded_index(
            self.pool(),
            spec["factory"],
            path.parent,
            shard_size=ON_DISK_SHARD,
            train_size=self._train_size(spec),
            seed=self.config["seed"],
            search_params=spec["search_params"],
            progress=progress,
        )
        if spec.get("calibrate"):
            index.calibrate(RECALL_TARGET, max_scan=spec.get("max_scan"))
            index.save(path)
        return index

    def embed_query(self, text: str) -> np.ndarray:
        """A text query as a unit row vector in the session's embedding space."""
        from raresift import embed

        if self.config["embedder"] != embed.MODEL:
            raise ValidationError(
                f"--query TEXT needs a session of texts embedded with {embed.MODEL}; this "
                "session's embeddings came from elsewhere, so aim with --like ID instead"
            )
        return embed.embed_texts([text], progress=False)

    def item(self, item_id: Any) -> dict[str, Any]:
        """An item: its id, text, image path, metadata, the answer in force and its history."""
        iid = self.iid(item_id)
        with self.store.reading() as db:
            row = db.item_row(iid)
            cur = db.current_of([iid]).get(iid)
            history = db.item_history(iid)
        return {
            "id": self.uid(iid),
            "text": row["text"] if row else None,
            "image": str(self._path(row["image"])) if row and row["image"] else None,
            "meta": json.loads(row["meta"]) if row and row["meta"] else {},
            "answer": cur[0] if cur else None,
            "seq": cur[1] if cur else None,
            "history": history,
        }

    # ================================================================== answers
    def _round_now(self, db) -> int:
        last = db.last_round()
        return 0 if last is None else int(last["round"])

    def answer(
        self, item_id: Any, label: Any, *, who: str = "cli", expected_seq: int | None | str = "any"
    ) -> dict[str, Any]:
        """Record one answer (one transaction) and return its record: ``id``, ``answer``,
        ``previous``, ``who``, ``at``, ``round``, ``seq``.

        Relabeling is allowed (the previous value is kept). ``expected_seq``: the ``seq`` of the
        answer the caller saw (None: it saw none); if another writer answered since, raises
        :class:`ConflictError` and writes nothing.
        """
        out = self._record(item_id, label, who, expected_seq)
        del out["replaced"]
        return out

    def answer_seen(
        self, item_id: Any, label: Any, *, who: str, seen: int | None
    ) -> dict[str, Any]:
        """Record one answer given after seeing answer ``seen`` (its ``seq``; None: none) of
        the item, in one transaction; the later answer wins. The record (as :meth:`answer`
        returns it) has ``replaced``: None, or ``{"answer", "who", "seq"}`` of another
        writer's answer given after ``seen`` that this one replaced."""
        return self._record(item_id, label, who, "any", seen)

    def _record(
        self, item_id: Any, label: Any, who: str, expected_seq: Any, seen: Any = "any"
    ) -> dict[str, Any]:
        """One answer in one write transaction: the id looked up, the expected answer checked
        (:class:`ConflictError`), the answer recorded; returns its public record."""
        value = self.normalize_answer(label)
        with self.store.writing() as db:
            iid = self.iids([item_id], db)[0]
            if iid < 0:
                raise UnknownIdError(f"unknown id {item_id!r}: no such item in this session")
            now = db.in_force(iid)
            now_seq = None if now is None else now["seq"]
            if expected_seq != "any" and now_seq != expected_seq:
                raise ConflictError(
                    f"item {item_id!r} was answered by another writer (answer #{now_seq}) after "
                    f"the version you saw (#{expected_seq}); reload it and answer again"
                )
            record = db.record_answer(iid, value, who, self._round_now(db), "answer")
            db.bump_version()
        key = self._key(item_id)  # the stored form of the id: no read to show it back
        out = {k: v for k, v in record.items() if k not in ("iid", "value")}
        out["id"] = key if self.config["ids"] == "str" else int(key)
        out["answer"] = record["value"]
        out["replaced"] = None
        if now is not None and seen != "any" and now["seq"] != seen:
            out["replaced"] = {"answer": now["value"], "who": now["who"], "seq": now["seq"]}
        return out

    def _public(self, record: dict[str, Any]) -> dict[str, Any]:
        out = {k: v for k, v in record.items() if k != "iid"}
        out["id"] = self.uid(record["iid"])
        out["answer"] = out.pop("value")
        return out

    def answer_many(
        self,
        rows: Iterable[Any],
        *,
        partial: bool = False,
        who: str = "cli",
        source: str = "import",
        what: str = "answers",
        unit: str = "line",
    ) -> dict:
        """Record many answers in one transaction.

        ``rows`` holds ``(line, item_id, label)`` triples, or ``(item_id, label)`` pairs /
        ``{"id", "label"}`` dicts numbered from 1. Every row is checked first; with problems and
        ``partial=False`` nothing is written and :class:`AnswerError` lists them by line.
        Returns ``{"written", "unchanged", "problems"}``.
        """
        parsed = []
        for number, row in enumerate(rows, 1):
            if isinstance(row, dict):
                parsed.append((number, row.get("id"), row.get("label", row.get("answer"))))
            elif len(row) == 3:
                parsed.append(tuple(row))
            else:
                parsed.append((number, row[0], row[1]))
        if not parsed:
            raise AnswerError(what, [(1, "no answers: the input is empty")], unit=unit)
        iids = self.iids([p[1] for p in parsed])
        problems: list[tuple[int, str]] = []
        good: dict[int, tuple[int, str]] = {}
        for (line, item_id, label), iid in zip(parsed, iids, strict=True):
            if item_id is None or str(item_id).strip() == "":
                problems.append((line, "the id is empty"))
                continue
            if iid < 0:
                problems.append((line, f"unknown id {item_id!r}"))
                continue
            if label is None or str(label).strip() == "":
                problems.append((line, f"no answer for id {item_id!r}"))
                continue
            try:
                value = self.normalize_answer(label)
            except ValidationError as exc:
                problems.append((line, str(exc)))
                continue
            if iid in good and good[iid][1] != value:
                problems.append(
                    (
                        line,
                        f"id {item_id!r} is answered {good[iid][1]!r} on "
                        f"{unit} {good[iid][0]}, here {value!r}",
                    )
                )
                continue
            good[iid] = (line, value)
        if problems and not partial:
            raise AnswerError(what, problems, n_good=len(good), unit=unit)
        written = unchanged = 0
        if good:
            with self.store.writing() as db:
                now = db.current_of(list(good))
                round_now = self._round_now(db)
                for iid, (_, value) in good.items():
                    if now.get(iid, (None,))[0] == value:
                        unchanged += 1
                        continue
                    db.record_answer(iid, value, who, round_now, source)
                    written += 1
                if written:
                    db.bump_version()
        return {"written": written, "unchanged": unchanged, "problems": problems}

    def undo(self, last: int = 1) -> list[dict[str, Any]]:
        """Undo the ``last`` most recent answers in force (one transaction); each item gets
        back its previous answer (or none). Returns the undone records, newest first."""
        if isinstance(last, bool) or not isinstance(last, int) or last < 1:
            raise ValidationError(f"last must be a positive integer, got {last!r}")
        with self.store.writing() as db:
            in_force = db.count_in_force()
            if in_force == 0:
                raise ValidationError("nothing to undo: no answers are recorded")
            if last > in_force:
                raise ValidationError(
                    f"last={last} is more than the {in_force} answers that can be undone; "
                    f"give last={in_force} to undo them all"
                )
            rows = db.undo_last(last)
            db.bump_version()
        return [self._public(r) for r in rows]

    def undo_source(self, source: str) -> list[dict[str, Any]]:
        """Undo every answer recorded with ``source`` (e.g. one Label Studio annotation's,
        created then updated) in one transaction; each item gets back the answer it had
        before them (or none). Returns the undone records, newest first (empty: none)."""
        with self.store.writing() as db:
            rows = db.undo_source(source)
            if rows:
                db.bump_version()
        return [self._public(r) for r in rows]

    def answers(self) -> list[dict[str, Any]]:
        """Every answer in force: id, answer, previous, who, at, round, seq, source."""
        with self.store.reading() as db:
            rows = db.answers_in_force()
        uids = self.uids([r["iid"] for r in rows])
        for r, u in zip(rows, uids, strict=True):
            r["id"] = u
            r["answer"] = r.pop("value")
            del r["iid"], r["undone_at"]
        return rows

    def round_info(self, round_index: int | None = None) -> dict[str, Any] | None:
        """What ran in a round (latest by default): strategy, candidates, budget, note,
        seconds; None before the first ``next``."""
        with self.store.reading() as db:
            row = db.last_round() if round_index is None else db.round_row(round_index)
        if row is None:
            return None
        info = {
            k: row[k]
            for k in (
                "round",
                "strategy",
                "candidates",
                "budget",
                "note",
                "n_labeled",
                "n_positive",
                "created",
                "version",
            )
        }
        info["seconds"] = json.loads(row["seconds"])
        info["options"] = json.loads(row["options"])
        return info

    def batch(self, round_index: int | None = None) -> list[BatchItem]:
        """The stored batch of a round (latest by default) with the answers in force."""
        with self.store.reading() as db:
            if round_index is None:
                last = db.last_round()
                if last is None:
                    return []
                round_index = int(last["round"])
            rows = db.batch_rows(round_index)
            answers = db.current_of([r["iid"] for r in rows])
        uids = self.uids([r["iid"] for r in rows])
        return [
            BatchItem(
                u,
                r["position"],
                r["score"],
                r["reason"],
                round_index,
                *answers.get(r["iid"], (None, None)),
            )
            for u, r in zip(uids, rows, strict=True)
        ]

    def pending(self) -> list[BatchItem] | None:
        """The latest stored batch if some of its items are still unanswered, else None."""
        batch = self.batch()
        if not batch or all(b.answer is not None for b in batch):
            return None
        return batch


# ---------------------------------------------------------------------- helpers
def record_file(db, role: str, root: Path, path: Path, detail: dict) -> dict:
    """Record ``path``'s fingerprint; a file inside the project folder by its path relative to
    the folder, so the project can be moved, renamed and copied."""
    fp = fingerprint(path)
    db.record_file(role, _relative(path, root), fp, detail)
    return fp


def _check_rows(db, config: dict[str, Any], where: str) -> None:
    """Refuse a database whose answers or item table a hand edit has broken (cheap checks:
    the distinct answers in force, the id range, the last item)."""
    options = (["1", "0"] if config["kind"] == "concept" else list(config["classes"])) + list(
        SPECIAL
    )
    n = config["n_items"]
    facts = db.shape_facts()
    values, low, high, last_item = (facts[k] for k in ("values", "low", "high", "last_item"))
    problem = next((f"answer {v!r} is not one of {options}" for v in values if v not in options),
                   None)  # fmt: skip
    if problem is None and low is not None and (low < 0 or high >= n):
        problem = f"an answer names item {low if low < 0 else high}, outside 0..{n - 1}"
    if problem is None and config["ids"] != "row" and last_item != n - 1:
        problem = f"the item table ends at {last_item}, not at item {n - 1}"
    if problem is not None:
        raise SessionCorruptError(
            f"{where}: {problem} (hand-edited?); restore the database from a backup"
        )


def _relative(path: Path, root: Path) -> str:
    try:
        return path.resolve().relative_to(root).as_posix()
    except ValueError:
        return str(path.resolve())


def _progress(progress: bool | None) -> bool:
    if progress is None:
        import sys

        return sys.stderr.isatty()
    return bool(progress)
