"""The answer store of a session: one SQLite database in WAL mode (stdlib ``sqlite3``).

Every write is one ``BEGIN IMMEDIATE`` transaction (one answer, one imported file, one batch,
one undo), so a ``kill -9`` at any moment leaves either the whole write or none of it, and
several processes (two ``raresift label`` runs, the web server and the CLI) can write at once:
SQLite serialises the writers and each waits up to ``timeout`` seconds for the others.

Tables
------
``meta``      key/value: schema version, raresift version, the session config (JSON), and
              ``version``, a counter bumped by every change of the answers.
``files``     the files the session depends on, with their fingerprints.
``items``     user id <-> internal id, text, image path and metadata (absent for bare
              embeddings, whose ids are the row numbers).
``answers``   the append-only answer log: one row per answer with the previous value, who,
              when, the round it arrived in and whether it was undone.
``current``   the answer in force per item (kept in step with ``answers`` in each transaction).
``rounds``    one row per batch: strategy, candidates, budget, the answers version it was
              computed from, timings and the stop-set predictions of its model.
``batch``     the items of each round's batch with score and reason.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from raresift.errors import StorageError
from raresift.session.errors import SchemaError, SessionCorruptError

SCHEMA_VERSION = 1
DB_NAME = "session.db"

_SCHEMA = """
CREATE TABLE meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE files(
    role TEXT PRIMARY KEY, path TEXT NOT NULL, size INTEGER NOT NULL, mtime_ns INTEGER NOT NULL,
    sample_sha256 TEXT NOT NULL, sha256 TEXT NOT NULL, detail TEXT NOT NULL);
CREATE TABLE items(
    iid INTEGER PRIMARY KEY, uid TEXT NOT NULL UNIQUE, text TEXT, image TEXT, meta TEXT);
CREATE TABLE answers(
    seq INTEGER PRIMARY KEY AUTOINCREMENT, iid INTEGER NOT NULL, value TEXT NOT NULL,
    previous TEXT, who TEXT NOT NULL, at REAL NOT NULL, round INTEGER NOT NULL,
    source TEXT NOT NULL, undone_at REAL);
CREATE INDEX answers_by_item ON answers(iid, seq);
CREATE TABLE current(iid INTEGER PRIMARY KEY, value TEXT NOT NULL, seq INTEGER NOT NULL);
CREATE TABLE rounds(
    round INTEGER PRIMARY KEY, created REAL NOT NULL, version INTEGER NOT NULL,
    strategy TEXT NOT NULL, candidates TEXT NOT NULL, budget INTEGER NOT NULL,
    options TEXT NOT NULL, note TEXT NOT NULL, n_labeled INTEGER NOT NULL,
    n_positive INTEGER NOT NULL, seconds TEXT NOT NULL, stop_predictions BLOB);
CREATE TABLE batch(
    round INTEGER NOT NULL, position INTEGER NOT NULL, iid INTEGER NOT NULL,
    score REAL NOT NULL, reason TEXT NOT NULL, PRIMARY KEY(round, position));
"""
_TABLES = {"meta", "files", "items", "answers", "current", "rounds", "batch"}
_QUICK_CHECK_MAX_BYTES = 256 << 20  # full page check below this size, header check above


_STORAGE_PROBLEMS = (  # SQLite's words for a refusal of the disk, not damage to the database
    ("disk is full", "the disk is full; free some space and run the command again"),
    ("readonly database", "the database or its folder is read-only (or the file is immutable); "
     "make it writable, or copy the project to a writable place"),
    ("read-only", "the file system is read-only; copy the project to a writable place"),
    ("unable to open database file", "it cannot be opened (check the permissions of the file, "
     "its -wal / -shm companions and the folder)"),
    ("disk i/o error", "the disk reported an input/output error; check the disk"),
    ("database is locked", "another process has held it locked too long; retry when it is done"),
)  # fmt: skip


def storage_problem(exc: sqlite3.Error, path: Path, doing: str) -> StorageError | None:
    """A :class:`StorageError` when SQLite's error is the disk's refusal (full, read-only,
    permissions, locked), else None (the caller decides whether the file is damaged)."""
    text = str(exc).lower()
    for words, what in _STORAGE_PROBLEMS:
        if words in text:
            return StorageError(
                f"cannot {doing} the session database {path}: {what} (what is stored is intact)"
            )
    return None


def _connect(path: Path, timeout: float) -> sqlite3.Connection:
    conn = sqlite3.connect(path, timeout=timeout, isolation_level=None, check_same_thread=False)
    conn.row_factory = sqlite3.Row
    conn.execute(f"PRAGMA busy_timeout = {int(timeout * 1000)}")
    return conn


class Store:
    """Thin access layer over a session database; one connection per Store.

    Use :meth:`create` for a new database and :meth:`open` for an existing one. Reads see a
    consistent snapshot inside :meth:`reading`; writes go through :meth:`writing`.
    A Store may be shared between threads: a lock serialises its connection.
    """

    def __init__(self, conn: sqlite3.Connection, path: Path):
        import threading

        self.conn = conn
        self.path = path
        self._lock = threading.RLock()

    # ------------------------------------------------------------------ opening
    @classmethod
    def create(cls, path: Path, meta: dict[str, Any], timeout: float = 60.0) -> Store:
        """A new database at ``path`` (which must not exist) with ``meta`` filled in."""
        try:
            conn = _connect(path, timeout)
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute("PRAGMA synchronous = FULL")
        except sqlite3.Error as exc:
            raise storage_problem(exc, path, "create") or exc from None
        store = cls(conn, path)
        try:
            with store.writing() as db:
                db.executescript_in_txn(_SCHEMA)
                for key, value in {"schema_version": SCHEMA_VERSION, "version": 0, **meta}.items():
                    db.execute("INSERT INTO meta VALUES (?, ?)", (key, json.dumps(value)))
        except BaseException:
            store.close()
            raise
        return store

    @classmethod
    def open(cls, path: Path, timeout: float = 60.0) -> Store:
        """Open an existing database, refusing corrupted files and foreign schemas (read-only
        checks: nothing is written)."""
        where = f"session database {path}"
        if not path.is_file():
            raise SessionCorruptError(f"{where} is missing; create the session with raresift init")
        # The file is never opened outside SQLite: closing any descriptor of it would drop the
        # POSIX locks this process's other connections hold on it, and another process could
        # then checkpoint and delete the WAL under them (their later commits would be lost).
        not_sqlite = SessionCorruptError(
            f"{where} is not an SQLite database (truncated or overwritten); restore it from "
            "a backup or export what you can and start a new session"
        )
        if path.stat().st_size < 100:
            raise not_sqlite
        try:
            conn = _connect(path, timeout)
            if path.stat().st_size <= _QUICK_CHECK_MAX_BYTES:
                problems = [r[0] for r in conn.execute("PRAGMA quick_check").fetchall()]
                if problems != ["ok"]:
                    raise sqlite3.DatabaseError(problems[0])
            tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master")}
            if not _TABLES <= tables:
                raise SchemaError(
                    f"{path} is an SQLite file but not a raresift session (tables "
                    f"{sorted(_TABLES - tables)} missing)"
                )
            meta = {r[0]: _json(r[0], r[1], where) for r in conn.execute("SELECT * FROM meta")}
            conn.execute("PRAGMA synchronous = FULL")
        except sqlite3.DatabaseError as exc:
            problem = storage_problem(exc, path, "open")
            if problem is not None:
                raise problem from None
            if "not a database" in str(exc):
                raise not_sqlite from None
            raise SessionCorruptError(
                f"{where} is corrupted ({exc}); restore it from a backup, or export what "
                "`raresift export` can still read and start a new session"
            ) from None
        version = meta.get("schema_version")
        if version != SCHEMA_VERSION:
            raise SchemaError(
                f"{where} has schema version {version}, this raresift reads version "
                f"{SCHEMA_VERSION} only (written by raresift {meta.get('raresift_version')}); "
                "use that raresift version to export its answers and import them into a new session"
            )
        return cls(conn, path)

    def close(self) -> None:
        self.conn.close()

    # ------------------------------------------------------------------ transactions
    @contextlib.contextmanager
    def writing(self) -> Iterator[_Txn]:
        """One write transaction (``BEGIN IMMEDIATE``): all of it is stored, or none. A full
        or read-only disk raises :class:`~raresift.errors.StorageError` (nothing written)."""
        with self._lock, self._translated("write to"):
            self.conn.execute("BEGIN IMMEDIATE")
            try:
                yield _Txn(self.conn)
            except BaseException:
                if self.conn.in_transaction:
                    self.conn.execute("ROLLBACK")
                raise
            self.conn.execute("COMMIT")

    @contextlib.contextmanager
    def reading(self) -> Iterator[_Txn]:
        """A read transaction: every query inside sees the same snapshot."""
        with self._lock, self._translated("read"):
            self.conn.execute("BEGIN DEFERRED")
            try:
                yield _Txn(self.conn)
            finally:
                if self.conn.in_transaction:
                    self.conn.execute("COMMIT")

    @contextlib.contextmanager
    def _translated(self, doing: str) -> Iterator[None]:
        try:
            yield
        except sqlite3.Error as exc:
            problem = storage_problem(exc, self.path, doing)
            if problem is not None:
                raise problem from None
            if isinstance(exc, sqlite3.DatabaseError) and not isinstance(
                exc, (sqlite3.IntegrityError, sqlite3.ProgrammingError, sqlite3.InterfaceError)
            ):
                raise SessionCorruptError(
                    f"session database {self.path}: {exc}; restore it from a backup, or export "
                    "what `raresift export` can still read and start a new session"
                ) from None
            raise


def _json(key: str, text: str, where: str) -> Any:
    try:
        return json.loads(text)
    except (TypeError, ValueError):
        raise SessionCorruptError(
            f"{where}: the stored value of {key!r} is not JSON (hand-edited?); restore the "
            "database from a backup"
        ) from None


class _Txn:
    """The queries of one transaction."""

    def __init__(self, conn: sqlite3.Connection):
        self.conn = conn

    def execute(self, sql: str, params: tuple | dict = ()) -> sqlite3.Cursor:
        return self.conn.execute(sql, params)

    def executemany(self, sql: str, rows) -> sqlite3.Cursor:
        return self.conn.executemany(sql, rows)

    def executescript_in_txn(self, script: str) -> None:
        for statement in script.split(";"):
            if statement.strip():
                self.conn.execute(statement)

    # ------------------------------------------------------------------ meta
    def meta(self, key: str) -> Any:
        row = self.conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else _json(key, row[0], "session database")

    def set_meta(self, key: str, value: Any) -> None:
        self.conn.execute(
            "INSERT INTO meta VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            (key, json.dumps(value)),
        )

    def version(self) -> int:
        version = self.meta("version")
        if isinstance(version, bool) or not isinstance(version, int) or version < 0:
            raise SessionCorruptError(
                f"session database: the stored version {version!r} is damaged (hand-edited?); "
                "restore the database from a backup"
            )
        return version

    def bump_version(self) -> int:
        version = self.version() + 1
        self.set_meta("version", version)
        return version

    # ------------------------------------------------------------------ files and items
    def files(self) -> dict[str, dict[str, Any]]:
        """``{role: row}`` of the files the session depends on (path, fingerprint, detail)."""
        return {r["role"]: dict(r) for r in self.conn.execute("SELECT * FROM files")}

    def record_file(self, role: str, path: str, fp: dict[str, Any], detail: dict) -> None:
        """Record (or replace) the file of ``role`` with its fingerprint ``fp``."""
        self.conn.execute(
            "INSERT INTO files VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT(role) DO UPDATE SET "
            "path=excluded.path, size=excluded.size, mtime_ns=excluded.mtime_ns, "
            "sample_sha256=excluded.sample_sha256, sha256=excluded.sha256, detail=excluded.detail",
            (role, path, fp["size"], fp["mtime_ns"], fp["sample_sha256"], fp["sha256"],
             json.dumps(detail)),
        )  # fmt: skip

    # ------------------------------------------------------------------ SEALS' index
    def neighbor_rows(self, key: str) -> dict[int, bytes]:
        """``{iid: int64 bytes}``: the neighbour rows stored for the index and k ``key``
        (rows stored for another key are not returned). The table is created on first write,
        so sessions written before it read no rows."""
        if not self._has_table("knn_rows"):
            return {}
        rows = self.conn.execute("SELECT iid, neighbors FROM knn_rows WHERE key = ?", (key,))
        return {int(r[0]): r[1] for r in rows}

    def put_neighbor_rows(self, key: str, rows: list[tuple[int, bytes]]) -> None:
        """Store ``(iid, int64 bytes)`` neighbour rows for ``key`` (replacing an item's row)."""
        self.conn.execute(
            "CREATE TABLE IF NOT EXISTS knn_rows("
            "iid INTEGER PRIMARY KEY, key TEXT NOT NULL, neighbors BLOB NOT NULL)"
        )
        self.conn.executemany(
            "INSERT OR REPLACE INTO knn_rows VALUES (?, ?, ?)", [(i, key, b) for i, b in rows]
        )

    def _has_table(self, name: str) -> bool:
        query = "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?"
        return self.conn.execute(query, (name,)).fetchone() is not None

    def put_items(self, rows) -> None:
        """Insert ``(iid, uid, text, image, meta JSON)`` rows."""
        self.conn.executemany("INSERT INTO items VALUES (?, ?, ?, ?, ?)", rows)

    def item_row(self, iid: int) -> sqlite3.Row | None:
        """``text``, ``image`` and ``meta`` (JSON text) of an item, or None (bare embeddings)."""
        return self.conn.execute(
            "SELECT text, image, meta FROM items WHERE iid = ?", (iid,)
        ).fetchone()

    def has_items(self) -> bool:
        return self.conn.execute("SELECT 1 FROM items LIMIT 1").fetchone() is not None

    def shape_facts(self) -> dict[str, Any]:
        """What :func:`project._check_rows` checks cheaply: the distinct answers in force, the
        range of answered ids and the last item id."""
        low, high = self.conn.execute("SELECT MIN(iid), MAX(iid) FROM current").fetchone()
        return {
            "values": [r[0] for r in self.conn.execute("SELECT DISTINCT value FROM current")],
            "low": low,
            "high": high,
            "last_item": self.conn.execute("SELECT MAX(iid) FROM items").fetchone()[0],
        }

    # ------------------------------------------------------------------ ids
    def iids_of(self, uids: list[str]) -> dict[str, int]:
        """``{uid: iid}`` of the stored user ids among ``uids`` (absent ones left out)."""
        found: dict[str, int] = {}
        for lo in range(0, len(uids), 900):
            chunk = uids[lo : lo + 900]
            marks = ",".join("?" * len(chunk))
            found.update(
                (uid, iid)
                for iid, uid in self.conn.execute(
                    f"SELECT iid, uid FROM items WHERE uid IN ({marks})", chunk
                )
            )
        return found

    def uids_of(self, iids: list[int]) -> dict[int, str]:
        """``{iid: uid}`` of internal ids."""
        out: dict[int, str] = {}
        for lo in range(0, len(iids), 900):
            chunk = iids[lo : lo + 900]
            marks = ",".join("?" * len(chunk))
            out.update(
                self.conn.execute(f"SELECT iid, uid FROM items WHERE iid IN ({marks})", chunk)
            )
        return out

    # ------------------------------------------------------------------ answers
    def current(self) -> dict[int, tuple[str, int]]:
        """``{iid: (value, seq)}`` of every answer in force."""
        return {
            r[0]: (r[1], r[2]) for r in self.conn.execute("SELECT iid, value, seq FROM current")
        }

    def current_of(self, iids: list[int]) -> dict[int, tuple[str, int]]:
        out = {}
        for lo in range(0, len(iids), 900):
            chunk = iids[lo : lo + 900]
            marks = ",".join("?" * len(chunk))
            for r in self.conn.execute(
                f"SELECT iid, value, seq FROM current WHERE iid IN ({marks})", chunk
            ):
                out[r[0]] = (r[1], r[2])
        return out

    def in_force(self, iid: int) -> sqlite3.Row | None:
        """The answer in force of ``iid`` (``value``, ``seq``, ``who``), or None."""
        return self.conn.execute(
            "SELECT c.value, c.seq, a.who FROM current c JOIN answers a ON a.seq = c.seq "
            "WHERE c.iid = ?",
            (iid,),
        ).fetchone()

    def value_counts(self) -> dict[str, int]:
        """How many items have each answer in force."""
        return dict(self.conn.execute("SELECT value, COUNT(*) FROM current GROUP BY value"))

    def item_history(self, iid: int) -> list[dict[str, Any]]:
        """Every answer ever given to ``iid`` (undone ones too), oldest first."""
        return [
            dict(r)
            for r in self.conn.execute(
                "SELECT seq, value, previous, who, at, round, source, undone_at FROM answers "
                "WHERE iid = ? ORDER BY seq",
                (iid,),
            )
        ]

    def answers_in_force(self) -> list[dict[str, Any]]:
        """The full answer records in force, in the order they were given."""
        return [
            dict(r)
            for r in self.conn.execute(
                "SELECT a.* FROM current c JOIN answers a ON a.seq = c.seq ORDER BY a.seq"
            )
        ]

    def record_answer(
        self, iid: int, value: str, who: str, round_index: int, source: str
    ) -> dict[str, Any]:
        """Append one answer and make it current; returns the stored record."""
        row = self.conn.execute("SELECT value FROM current WHERE iid = ?", (iid,)).fetchone()
        previous = None if row is None else row[0]
        at = time.time()
        cur = self.conn.execute(
            "INSERT INTO answers(iid, value, previous, who, at, round, source) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)",
            (iid, value, previous, who, at, round_index, source),
        )
        seq = int(cur.lastrowid)
        self.conn.execute(
            "INSERT INTO current VALUES (?, ?, ?) ON CONFLICT(iid) DO UPDATE SET "
            "value = excluded.value, seq = excluded.seq",
            (iid, value, seq),
        )
        return {
            "seq": seq,
            "iid": iid,
            "value": value,
            "previous": previous,
            "who": who,
            "at": at,
            "round": round_index,
            "source": source,
        }

    def count_in_force(self) -> int:
        """Answers not undone (what :meth:`undo_last` can take back)."""
        return int(
            self.conn.execute("SELECT COUNT(*) FROM answers WHERE undone_at IS NULL").fetchone()[0]
        )

    def undo_last(self, n: int) -> list[dict[str, Any]]:
        """Undo the ``n`` most recent answers still in force; returns them, newest first."""
        return self._undo(
            self.conn.execute(
                "SELECT * FROM answers WHERE undone_at IS NULL ORDER BY seq DESC LIMIT ?", (n,)
            ).fetchall()
        )

    def undo_source(self, source: str) -> list[dict[str, Any]]:
        """Undo every answer not undone yet that was recorded with ``source``; returns them,
        newest first."""
        return self._undo(
            self.conn.execute(
                "SELECT * FROM answers WHERE undone_at IS NULL AND source = ? ORDER BY seq DESC",
                (source,),
            ).fetchall()
        )

    def _undo(self, rows: list[sqlite3.Row]) -> list[dict[str, Any]]:
        """Mark ``rows`` (newest first) undone; each item falls back to its latest answer not
        undone (or none)."""
        now = time.time()
        for r in rows:
            self.conn.execute("UPDATE answers SET undone_at = ? WHERE seq = ?", (now, r["seq"]))
            before = self.conn.execute(
                "SELECT value, seq FROM answers WHERE iid = ? AND undone_at IS NULL "
                "ORDER BY seq DESC LIMIT 1",
                (r["iid"],),
            ).fetchone()
            if before is None:
                self.conn.execute("DELETE FROM current WHERE iid = ?", (r["iid"],))
            else:
                self.conn.execute(
                    "UPDATE current SET value = ?, seq = ? WHERE iid = ?",
                    (before[0], before[1], r["iid"]),
                )
        return [dict(r) for r in rows]

    def history(self, include_undone: bool = True) -> list[dict[str, Any]]:
        sql = "SELECT * FROM answers"
        if not include_undone:
            sql += " WHERE undone_at IS NULL"
        return [dict(r) for r in self.conn.execute(sql + " ORDER BY seq")]

    # ------------------------------------------------------------------ rounds
    def round_row(self, round_index: int) -> sqlite3.Row | None:
        return self.conn.execute("SELECT * FROM rounds WHERE round = ?", (round_index,)).fetchone()

    def last_round(self) -> sqlite3.Row | None:
        return self.conn.execute("SELECT * FROM rounds ORDER BY round DESC LIMIT 1").fetchone()

    def rounds(self) -> list[sqlite3.Row]:
        return self.conn.execute("SELECT * FROM rounds ORDER BY round").fetchall()

    def put_round(
        self,
        round_index: int,
        version: int,
        picks: Any,
        options: dict[str, Any],
        n_labeled: int,
        n_positive: int,
    ) -> None:
        """Store round ``round_index`` and its batch (``picks``: a rounds.Picks), replacing a
        stored round of that number."""
        self.conn.execute("DELETE FROM batch WHERE round = ?", (round_index,))
        self.conn.execute("DELETE FROM rounds WHERE round = ?", (round_index,))
        self.conn.execute(
            "INSERT INTO rounds VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                round_index,
                time.time(),
                version,
                picks.strategy,
                picks.candidates,
                options["budget"],
                json.dumps(options),
                picks.note,
                n_labeled,
                n_positive,
                json.dumps(picks.seconds),
                picks.stop_predictions,
            ),
        )
        self.conn.executemany(
            "INSERT INTO batch VALUES (?, ?, ?, ?, ?)",
            [
                (round_index, pos, int(i), float(s), r)
                for pos, (i, s, r) in enumerate(
                    zip(picks.iids, picks.scores, picks.reasons, strict=True)
                )
            ],
        )

    def batch_rows(self, round_index: int) -> list[sqlite3.Row]:
        return self.conn.execute(
            "SELECT * FROM batch WHERE round = ? ORDER BY position", (round_index,)
        ).fetchall()
