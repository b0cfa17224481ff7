"""The :class:`Session`: a person's labeling project in one folder."""

from __future__ import annotations

import json
import logging
import math
import os
import threading
import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

import raresift
from raresift.errors import ConfigError, UnknownIdError, ValidationError
from raresift.session import inputs
from raresift.session.errors import (
    AnswerError,
    ConflictError,
    FingerprintError,
    SessionError,
)
from raresift.session.files import check_fingerprint, fingerprint
from raresift.session.rounds import SPECIAL, compute_round
from raresift.session.store import DB_NAME, Store

log = logging.getLogger("raresift")

ENGINES = ("local", "ray")  # where rounds run; stored in the config
CANDIDATE_NAMES = ("all", "seals", "random")
# strategies that need a neural network's dropout, penultimate features or Fisher scores; a
# session fits logistic regression on the embeddings (tests/test_session.py checks both ways)
NEEDS_NETWORK = frozenset(
    {"bald", "variation-ratio", "pcc", "fisher", "fisher-weak", "ibal", "ibal-d"}
)
CLASS_DEFAULT = "rare-search"  # a class session's default strategy (the replay study's choice)
SMALL_POOL = 50_000  # up to here every item is a candidate; above, SEALS with an index
STOP_SET_SIZE = 1_000
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


def default_index_factory(n: int) -> tuple[str, str]:
    """Faiss factory string and search parameters for a pool of ``n`` items.

    >>> default_index_factory(10_000), default_index_factory(10**7)
    (('Flat', ''), ('IVF4096,SQ8', 'nprobe=16'))
    """
    if n <= SMALL_POOL:
        return "Flat", ""
    if n <= 1_000_000:
        nlist = 2 ** int(round(math.log2(4 * math.sqrt(n))))
        return f"IVF{nlist},Flat", "nprobe=16"
    return "IVF4096,SQ8", "nprobe=16"


class Session:
    """A labeling session stored in a project folder (``session.db`` plus files beside it).

    Build one with :meth:`create`, reopen it with :meth:`open`. Every method reads the answers
    from the database, so several processes and threads may use the same project at once; each
    answer, imported file, undo and batch is one transaction.

    Examples
    --------
    >>> import tempfile, numpy as np
    >>> folder = tempfile.mkdtemp()
    >>> x = np.random.default_rng(0).normal(size=(300, 8)).astype(np.float32)
    >>> np.save(f"{folder}/emb.npy", x)
    >>> s = Session.create(f"{folder}/project", embeddings=f"{folder}/emb.npy", concept="cat",
    ...                    progress=False)
    >>> s.answer_options()
    ['1', '0', 'skip', 'junk', 'duplicate']
    >>> batch = s.next(budget=5)
    >>> [b.id for b in batch] == [b.id for b in s.next()]     # nothing answered: same batch
    True
    >>> s.answer(batch[0].id, "1")["answer"], s.status()["labels_spent"]
    ('1', 1)
    """

    def __init__(self, root: Path, store: Store, config: dict[str, Any]):
        self.root = root
        self.store = store
        self.config = config
        self._pool = None
        self._index = None
        self._lock = threading.RLock()

    # ================================================================== creating / opening
    @classmethod
    def create(
        cls,
        path: str | os.PathLike,
        *,
        embeddings: str | os.PathLike | None = None,
        texts: str | os.PathLike | None = None,
        text_column: str | None = None,
        images: str | os.PathLike | None = None,
        image_column: str | None = None,
        items: str | os.PathLike | None = None,
        ids_column: str | None = None,
        vector_column: str | None = None,
        npz_key: str | None = None,
        concept: str | None = None,
        classes: Iterable[str] | None = None,
        rare_classes: Iterable[str] | None = None,
        seed_labels: str | os.PathLike | None = None,
        strategy: str | None = None,
        strategy_params: dict[str, dict[str, Any]] | None = None,
        candidates: str | None = None,
        budget: int = 100,
        index: str | None = None,
        index_search: str | None = None,
        seals_k: int = 100,
        seed: int = 0,
        engine: str = "local",
        address: str | None = None,
        image_size: int = 224,
        model_C: float = 1.0,
        model_max_iter: int = 1000,
        progress: bool | None = None,
    ) -> Session:
        """Create a session in the folder ``path`` (created; must not hold a session yet).

        Give exactly one source: ``embeddings`` (``.npy``, ``.npz``, or a Parquet / CSV /
        JSONL table with a ``vector_column``), ``texts`` (an item table with ``text_column``,
        embedded with all-MiniLM-L6-v2) or ``images`` (a folder, or an item table with
        ``image_column``, embedded with EfficientNet-Lite0). ``items`` is an optional item table
        aligned row by row with a bare ``.npy`` / ``.npz``. ``ids_column`` names the id column
        of the table (default: ``id`` when present, else row numbers).

        The task is a binary ``concept`` (answers 1/0) or one of ``classes``; ``rare_classes``
        name the classes whose labeled items form SIMILAR's query set. ``seed_labels`` is a
        CSV of answers recorded as round 0. ``strategy`` / ``candidates`` / ``budget`` are the
        defaults of ``next`` (chosen from the pool size when omitted), ``index`` a Faiss factory
        string for SEALS (built now when SEALS is the default). ``engine`` is where rounds run:
        ``"local"``, or ``"ray"`` (:mod:`raresift.distributed`: "all" rounds scored on Ray
        workers, SEALS searches on index actors, the same picks as local) on the cluster at
        ``address``, or a local Ray when it is None. ``strategy_params`` maps strategy names to
        constructor parameters used whenever that strategy runs (e.g. ``{"flqmi":
        {"representation": "gradient"}}``).
        """
        root = Path(path).resolve()
        if (root / DB_NAME).exists():
            raise SessionError(f"{root} already holds a session; open it, or pick another folder")
        sources = [s for s in (embeddings, texts, images) if s is not None]
        if len(sources) != 1:
            raise ValidationError("give exactly one of embeddings=, texts= or images=")
        if concept is not None and classes is not None:
            raise ValidationError("give either concept= or classes=, not both")
        if engine not in ENGINES:
            raise ConfigError(f"unknown engine {engine!r}; choose one of {', '.join(ENGINES)}")
        if address is not None and engine != "ray":
            raise ConfigError("address= names a Ray cluster; it needs engine='ray'")
        if engine == "ray":
            from raresift.distributed.cluster import import_ray

            import_ray()  # not installed: say so now, not at the first round
        class_list = _check_classes(classes) if classes is not None else None
        rare = list(rare_classes) if rare_classes is not None else None
        if rare is not None:
            if class_list is None:
                raise ValidationError("rare_classes= needs classes=")
            unknown = [c for c in rare if c not in class_list]
            if unknown:
                raise ValidationError(f"rare classes {unknown} are not among {class_list}")
        root.mkdir(parents=True, exist_ok=True)
        cache = root / "cache"
        source, table, emb_path, owned, embedder = cls._read_source(
            root,
            cache,
            embeddings,
            texts,
            text_column,
            images,
            image_column,
            items,
            vector_column,
            npz_key,
            image_size,
            progress,
        )
        array = np.load(emb_path, mmap_mode="r")
        from raresift.pool import check_finite

        check_finite(array, f"embeddings {emb_path}")
        n, dim = array.shape
        ids = cls._read_ids(table, ids_column, n)
        id_col = ids_column or ("id" if table is not None and "id" in table.columns else None)
        if candidates is not None and candidates not in CANDIDATE_NAMES:
            raise ConfigError(
                f"unknown candidates {candidates!r}; choose {', '.join(CANDIDATE_NAMES)}"
            )
        default_cand = candidates or ("all" if n <= SMALL_POOL else "seals")
        if strategy is None:  # chosen from the replay study (docs/results/replay-sessions)
            strategy = CLASS_DEFAULT if class_list is not None else "mlp"
        from raresift.strategies import strategy_names

        if strategy not in strategy_names():
            raise ConfigError(f"unknown strategy {strategy!r}; see raresift strategies")
        _check_session_strategy(strategy)
        params = _check_strategy_params(strategy_params, class_list)
        factory, search = default_index_factory(n)
        factory, search = index or factory, index_search if index_search is not None else search
        stop = np.sort(
            np.random.default_rng([seed, 7]).choice(n, min(n, STOP_SET_SIZE), replace=False)
        )
        config = {
            "kind": "classes" if class_list is not None else "concept",
            "concept": None if class_list is not None else (concept or "positive"),
            "classes": class_list,
            "rare_classes": rare,
            "n_items": int(n),
            "dim": int(dim),
            "dtype": str(array.dtype),
            "embeddings": {"path": _relative(emb_path, root), "owned": owned},
            "embedder": embedder,
            "source": source,
            "ids": ids.kind,
            "ids_column": id_col,
            "engine": engine,
            "address": address,
            "seed": int(seed),
            "model": {"kind": "logistic", "C": float(model_C), "max_iter": int(model_max_iter)},
            "defaults": {"strategy": strategy, "candidates": default_cand, "budget": int(budget)},
            "strategy_params": params,
            "index": {"factory": factory, "search_params": search, "path": "index.faiss"},
            "seals_k": int(seals_k),
            "random_fraction": 0.1,
            "stop_set": stop.tolist(),
        }
        tmp = root / (DB_NAME + ".partial")
        for suffix in ("", "-wal", "-shm", "-journal"):
            Path(str(tmp) + suffix).unlink(missing_ok=True)
        store = Store.create(
            tmp,
            {"raresift_version": raresift.__version__, "config": config, "created": time.time()},
        )
        with store.writing() as db:
            cls._store_file(
                db, "embeddings", emb_path, {"shape": [n, dim], "dtype": str(array.dtype)}
            )
            if ids.kind != "row" or table is not None:
                cls._store_items(db, table, ids, {id_col, text_column, image_column})
        store.close()
        for suffix in ("-wal", "-shm"):
            Path(str(tmp) + suffix).unlink(missing_ok=True)
        os.replace(tmp, root / DB_NAME)
        session = cls.open(root)
        if default_cand == "seals":
            session.index(progress=_progress(progress))
        if seed_labels is not None:
            session.import_file(seed_labels, who="seed", source="seed")
        log.info("created session %s: %d items, %s", root, n, session.describe_defaults())
        return session

    @staticmethod
    def _read_source(
        root,
        cache,
        embeddings,
        texts,
        text_column,
        images,
        image_column,
        items,
        vector_column,
        npz_key,
        image_size,
        progress,
    ):
        out = root / "embeddings.npy"
        if embeddings is not None:
            path = Path(embeddings)
            if path.suffix.lower() in inputs.TABLE_SUFFIXES:
                table = inputs.read_table(path)
                vectors, column = inputs.vectors_from_table(table, vector_column)
                del table.columns[column]
                inputs.save_vectors(vectors, out)
                return {"type": "embeddings", "file": str(path.resolve())}, table, out, True, None
            emb, owned = inputs.open_embeddings(path, out, npz_key)
            table = inputs.read_table(items) if items is not None else None
            n = np.load(emb, mmap_mode="r").shape[0]
            if table is not None and table.n_rows != n:
                raise ValidationError(
                    f"item table {items} has {table.n_rows} rows but the embeddings have {n}; "
                    "they must be aligned row by row"
                )
            return {"type": "embeddings", "file": str(path.resolve())}, table, emb, owned, None
        if texts is not None:
            from raresift import embed

            table = inputs.read_table(texts)
            if text_column is None:
                raise ValidationError("texts= needs text_column= (the column holding the texts)")
            values = table.column(text_column, "text")
            for i, t in enumerate(values):
                if not isinstance(t, str) or not t.strip():
                    raise ValidationError(f"{texts} line {i + table.first_line}: the text is empty")
            array = embed.embed_texts(values, cache=cache, progress=_progress(progress))
            table.columns["__text__"] = table.columns[text_column]
            source = {
                "type": "texts",
                "file": str(Path(texts).resolve()),
                "text_column": text_column,
            }
            return source, table, Path(array.filename), False, embed.MODEL
        from raresift.session import images as image_model

        path = Path(images)
        if path.is_dir():
            files = inputs.image_files(path)
            table = inputs.Table(path, {"id": [f.relative_to(path).as_posix() for f in files]})
            table.columns["__image__"] = [str(f.resolve()) for f in files]
        else:
            table = inputs.read_table(path)
            column = image_column or "image"
            base = path.parent
            table.columns["__image__"] = [
                str((base / str(p)).resolve()) for p in table.column(column, "image path")
            ]
        array = image_model.embed_images(
            table.columns["__image__"],
            cache=cache,
            image_size=image_size,
            progress=_progress(progress),
        )
        source = {"type": "images", "file": str(path.resolve()), "image_size": image_size}
        return source, table, Path(array.filename), False, image_model.MODEL

    @staticmethod
    def _read_ids(table, ids_column, n) -> inputs.ItemIds:
        if table is None:
            if ids_column is not None:
                raise ValidationError("ids_column= needs an item table (items=, texts= or images=)")
            return inputs.ItemIds(None, "row", n)
        column = ids_column or ("id" if "id" in table.columns else None)
        if column is None:
            return inputs.ItemIds([str(i) for i in range(n)], "row", n)
        return inputs.parse_ids(table.column(column, "id"), str(table.path), table.first_line)

    @staticmethod
    def _store_file(db, role: str, path: Path, detail: dict) -> dict:
        fp = fingerprint(path)
        db.execute(
            "INSERT INTO files VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT(role) DO UPDATE SET "
            "path=excluded.path, size=excluded.size, mtime_ns=excluded.mtime_ns, "
            "sample_sha256=excluded.sample_sha256, sha256=excluded.sha256, detail=excluded.detail",
            (
                role,
                str(path),
                fp["size"],
                fp["mtime_ns"],
                fp["sample_sha256"],
                fp["sha256"],
                json.dumps(detail),
            ),
        )
        return fp

    @staticmethod
    def _store_items(db, table, ids: inputs.ItemIds, shown: set) -> None:
        special = {"__text__", "__image__"} | shown
        cols = table.columns if table is not None else {}
        meta_cols = [c for c in cols if c not in special and not c.startswith("__")]
        texts = cols.get("__text__")
        images = cols.get("__image__")
        n = ids.n if ids.uids is not None else table.n_rows
        uids = ids.uids or [str(i) for i in range(n)]

        def rows():
            for i in range(n):
                meta = {c: cols[c][i] for c in meta_cols}
                yield (
                    i,
                    uids[i],
                    None if texts is None else texts[i],
                    None if images is None else images[i],
                    json.dumps(meta, default=str) if meta else None,
                )

        db.executemany("INSERT INTO items VALUES (?, ?, ?, ?, ?)", rows())

    @classmethod
    def open(cls, path: str | os.PathLike) -> Session:
        """Open the session in folder ``path``; checks the database and the fingerprints of the
        files it depends on. Raises a :class:`~raresift.errors.RaresiftError` subclass (and
        changes nothing) when anything is wrong."""
        root = Path(path).resolve()
        if not root.is_dir():
            raise SessionError(f"no session folder {root}; create one with raresift init")
        store = Store.open(root / DB_NAME)
        with store.reading() as db:
            config = db.meta("config")
            files = {r["role"]: dict(r) for r in db.execute("SELECT * FROM files")}
        session = cls(root, store, config)
        emb = files.get("embeddings")
        if emb is None:
            raise FingerprintError(f"{root / DB_NAME} records no embeddings file")
        check_fingerprint(session._path(emb["path"]), emb, "embeddings file")
        if "index" in files:
            check_fingerprint(session._path(files["index"]["path"]), files["index"], "index file")
        return session

    def close(self) -> None:
        """Close the database connection."""
        self.store.close()

    def __enter__(self) -> Session:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Session({str(self.root)!r}, n={self.n_items}, {self.kind})"

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
            counts = dict(
                db.execute("SELECT value, COUNT(*) FROM current GROUP BY value").fetchall()
            )
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

    def iids(self, item_ids: Iterable[Any]) -> list[int]:
        """Internal ids of user ids; -1 where an id is unknown."""
        keys = [self._key(u) for u in item_ids]
        if self.config["ids"] == "row":
            n = self.n_items
            return [
                int(k) if k is not None and k.lstrip("-").isdigit() and 0 <= int(k) < n else -1
                for k in keys
            ]
        found: dict[str, int] = {}
        wanted = [k for k in dict.fromkeys(keys) if k is not None]
        with self.store.reading() as db:
            for lo in range(0, len(wanted), 900):
                chunk = wanted[lo : lo + 900]
                marks = ",".join("?" * len(chunk))
                for iid, uid in db.execute(
                    f"SELECT iid, uid FROM items WHERE uid IN ({marks})", chunk
                ):
                    found[uid] = iid
        return [found.get(k, -1) if k is not None else -1 for k in keys]

    def _key(self, item_id: Any) -> str | None:
        if item_id is None:
            return None
        if isinstance(item_id, float):
            if not item_id.is_integer():
                return None
            item_id = int(item_id)
        text = str(item_id).strip()
        if self.config["ids"] in ("row", "int"):
            try:
                return str(int(text))
            except ValueError:
                return None
        return text

    def uid(self, iid: int) -> Any:
        """The user's id of internal id ``iid`` (int for row and int64 ids, else str)."""
        return self.uids([iid])[0]

    def uids(self, iids: Iterable[int]) -> list[Any]:
        iids = [int(i) for i in iids]
        if self.config["ids"] == "row":
            return iids
        out: dict[int, str] = {}
        with self.store.reading() as db:
            for lo in range(0, len(iids), 900):
                chunk = iids[lo : lo + 900]
                marks = ",".join("?" * len(chunk))
                out.update(db.execute(f"SELECT iid, uid FROM items WHERE iid IN ({marks})", chunk))
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
                row = db.execute("SELECT * FROM files WHERE role = 'index'").fetchone()
            if row is not None:
                check_fingerprint(path, dict(row), "index file")
                self._index = NeighborIndex.load(path, pool=self.pool(), progress=False)
                return self._index
            n = self.n_items
            nlist = (
                int(spec["factory"][3:].split(",")[0]) if spec["factory"].startswith("IVF") else 0
            )
            index = NeighborIndex(
                spec["factory"],
                spec["search_params"],
                train_size=min(n, max(100_000, 40 * nlist)),
                seed=self.config["seed"],
                progress=_progress(progress),
            ).fit(self.pool())
            tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")  # one per builder
            index.save(tmp)
            os.replace(str(tmp) + ".json", str(path) + ".json")
            os.replace(tmp, path)
            with self.store.writing() as db:
                self._store_file(db, "index", path, {"factory": spec["factory"]})
            self._index = index
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
            row = db.execute("SELECT * FROM items WHERE iid = ?", (iid,)).fetchone()
            cur = db.execute("SELECT value, seq FROM current WHERE iid = ?", (iid,)).fetchone()
            history = [
                dict(r)
                for r in db.execute(
                    "SELECT seq, value, previous, who, at, round, source, undone_at FROM answers "
                    "WHERE iid = ? ORDER BY seq",
                    (iid,),
                )
            ]
        return {
            "id": self.uid(iid),
            "text": row["text"] if row else None,
            "image": row["image"] if row else None,
            "meta": json.loads(row["meta"]) if row and row["meta"] else {},
            "answer": cur[0] if cur else None,
            "seq": cur[1] if cur else None,
            "history": history,
        }

    def neighbors(self, item_id: Any, k: int = 8, labeled_only: bool = True) -> list[dict]:
        """The ``k`` items most similar to ``item_id`` (cosine of embeddings, exact), among the
        answered items by default; each with id, similarity and answer."""
        from raresift.index import normalize_rows
        from raresift.session.rounds import top_similar

        iid = self.iid(item_id)
        pool = self.pool()
        target = normalize_rows(pool.embeddings_of([iid]))
        with self.store.reading() as db:
            current = db.current()
        if labeled_only:
            ref = np.asarray([i for i in current if i != iid], dtype=np.int64)
            if ref.size == 0:
                return []
            sims = normalize_rows(pool.embeddings_of(ref)) @ target[0]
            order = np.lexsort((ref, -sims))[:k]
            ids, sims = ref[order], sims[order]
        else:
            ids, sims, _ = top_similar(self, target, min(k, self.n_items - 1), np.array([iid]))
        uids = self.uids(ids.tolist())
        return [
            {"id": u, "similarity": float(s), "answer": current.get(int(i), (None,))[0]}
            for u, s, i in zip(uids, sims, ids, strict=True)
        ]

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
        iid = self.iid(item_id)
        value = self.normalize_answer(label)
        with self.store.writing() as db:
            if expected_seq != "any":
                row = db.execute("SELECT seq FROM current WHERE iid = ?", (iid,)).fetchone()
                now = None if row is None else row[0]
                if now != expected_seq:
                    raise ConflictError(
                        f"item {item_id!r} was answered by another writer (answer #{now}) after "
                        f"the version you saw (#{expected_seq}); reload it and answer again"
                    )
            record = db.record_answer(iid, value, who, self._round_now(db), "answer")
            db.bump_version()
        return self._public(record)

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
            rows = db.undo_last(last)
            if rows:
                db.bump_version()
        if not rows:
            raise ValidationError("nothing to undo: no answers are recorded")
        return [self._public(r) for r in rows]

    def answers(self) -> list[dict[str, Any]]:
        """Every answer in force: id, answer, previous, who, at, round, seq, source."""
        with self.store.reading() as db:
            rows = [
                dict(r)
                for r in db.execute(
                    "SELECT a.* FROM current c JOIN answers a ON a.seq = c.seq ORDER BY a.seq"
                )
            ]
        uids = self.uids([r["iid"] for r in rows])
        for r, u in zip(rows, uids, strict=True):
            r["id"] = u
            r["answer"] = r.pop("value")
            del r["iid"], r["undone_at"]
        return rows

    # ================================================================== rounds
    def _options(self, budget, strategy, candidates, query, like) -> dict[str, Any]:
        d = self.config["defaults"]
        cand = candidates or d["candidates"]
        if cand not in CANDIDATE_NAMES:
            raise ConfigError(f"unknown candidates {cand!r}; choose {', '.join(CANDIDATE_NAMES)}")
        strat = strategy or d["strategy"]
        from raresift.strategies import strategy_names

        if strat not in strategy_names():
            raise ConfigError(f"unknown strategy {strat!r}; see raresift strategies")
        _check_session_strategy(strat)
        from raresift.pool import check_budget

        b = check_budget(
            budget if budget is not None else min(d["budget"], self.n_items),
            self.n_items,
            "items in the session",
        )
        return {
            "budget": b,
            "strategy": strat,
            "candidates": cand,
            "query": query or None,
            "like": list(like) if like else None,
        }

    def next(
        self,
        budget: int | None = None,
        strategy: str | None = None,
        candidates: str | None = None,
        progress: bool | None = None,
        *,
        query: str | None = None,
        like: Iterable[Any] | None = None,
        audit: int | None = None,
    ) -> list[BatchItem]:
        """The batch to label now: the stored pending batch when no answer arrived since it
        was chosen (and no different option is asked for), else a new one (model fitted on the
        answers in force, items selected, batch stored in one transaction).

        ``query`` (a text) or ``like`` (example ids) aim the batch at the most similar items.
        ``audit``: a stratified random sample of that many unlabeled items instead (see
        :mod:`raresift.session.audit`); asked again while it is not fully answered, the same.
        """
        explicit = any(x is not None for x in (budget, strategy, candidates, query, like, audit))
        if audit is not None:
            from raresift.session.audit import audit_options

            options = audit_options(self, audit, budget, strategy, candidates, query, like)
        else:
            options = self._options(budget, strategy, candidates, query, like)
        with self.store.reading() as db:
            version = db.version()
            last = db.last_round()
            current = db.current()
        stored_options = None if last is None else _without_design(last["options"])
        if (
            last is not None
            and (last["version"] == version or (audit is not None and self.pending()))
            and (not explicit or stored_options == options)
        ):
            return self.batch(int(last["round"]))
        same = last is not None and last["version"] == version
        round_index = 1 if last is None else int(last["round"]) + (0 if same else 1)
        picks = compute_round(self, current, round_index, options, _progress(progress))
        n_positive = sum(self.is_positive(v) for v, _ in current.values())
        with self.store.writing() as db:
            now = db.last_round()
            if (
                now is not None
                and now["version"] == version
                and _without_design(now["options"]) == options
            ):
                stored = int(now["round"])  # another process stored this very batch meanwhile
            elif now is not None and now["version"] > version:
                stored = int(now["round"])  # a batch from newer answers was stored meanwhile
            else:
                if now is None:
                    stored = 1
                else:  # same answers, other options: replace the pending batch; else a new round
                    stored = int(now["round"]) + (0 if now["version"] == version else 1)
                db.execute("DELETE FROM batch WHERE round = ?", (stored,))
                db.execute("DELETE FROM rounds WHERE round = ?", (stored,))
                db.execute(
                    "INSERT INTO rounds VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        stored,
                        time.time(),
                        version,
                        picks.strategy,
                        picks.candidates,
                        options["budget"],
                        json.dumps(
                            options if picks.design is None else {**options, "design": picks.design}
                        ),
                        picks.note,
                        len(current),
                        n_positive,
                        json.dumps(picks.seconds),
                        picks.stop_predictions,
                    ),
                )
                db.executemany(
                    "INSERT INTO batch VALUES (?, ?, ?, ?, ?)",
                    [
                        (stored, pos, int(i), float(s), r)
                        for pos, (i, s, r) in enumerate(
                            zip(picks.iids, picks.scores, picks.reasons, strict=True)
                        )
                    ],
                )
        return self.batch(stored)

    def round_info(self, round_index: int | None = None) -> dict[str, Any] | None:
        """What ran in a round (latest by default): strategy, candidates, budget, note,
        seconds; None before the first ``next``."""
        with self.store.reading() as db:
            row = (
                db.last_round()
                if round_index is None
                else db.execute("SELECT * FROM rounds WHERE round = ?", (round_index,)).fetchone()
            )
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

    # ================================================================== views
    def status(self, estimate: bool = True) -> dict[str, Any]:
        """Labels spent, positives per round, an estimate of the positives left (with a 95 %
        interval) and the stopping rules' verdicts, as a JSON-serialisable dict."""
        from raresift.session.status import session_status

        return session_status(self, estimate=estimate)

    def status_plot(self, path: str | os.PathLike) -> Path:
        """Write the positives-found curve (PNG) to ``path``."""
        from raresift.session.status import plot_status

        return plot_status(self, Path(path))

    def export(
        self,
        fmt: str,
        out: str | os.PathLike | None = None,
        *,
        items: str = "batch",
        history: bool = False,
    ) -> str | Path:
        """Export answers as ``csv`` / ``jsonl``, or Label Studio tasks (``label-studio``) for
        the pending batch (``items="batch"``) or every item (``items="all"``). Returns the
        text when ``out`` is None, else writes it (atomically) and returns the path."""
        from raresift.session.exchange import export

        return export(self, fmt, out, items=items, history=history)

    def import_file(
        self,
        path: str | os.PathLike,
        partial: bool = False,
        *,
        who: str | None = None,
        source: str = "import",
    ) -> dict:
        """Record the answers of a CSV / JSONL answers file or a Label Studio JSON export, in
        one transaction (all or nothing unless ``partial``)."""
        from raresift.session.exchange import import_answers

        return import_answers(self, Path(path), partial=partial, who=who, source=source)


# ---------------------------------------------------------------------- helpers
def _without_design(stored: str) -> dict[str, Any]:
    """A round's stored options less an audit's design (which the caller never gives)."""
    options = json.loads(stored)
    options.pop("design", None)
    return options


def _check_classes(classes: Iterable[str]) -> list[str]:
    out = [str(c).strip() for c in classes]
    if len(out) < 2:
        raise ValidationError(f"classes needs at least two names, got {out}")
    if len(set(out)) != len(out) or any(not c for c in out):
        raise ValidationError(f"class names must be distinct and non-empty, got {out}")
    reserved = [c for c in out if c.lower() in _SPECIAL_ALIASES]
    if reserved:
        raise ValidationError(
            f"{reserved} are reserved answers (skip, junk, duplicate); rename them"
        )
    return out


def _check_session_strategy(name: str) -> None:
    if name in NEEDS_NETWORK:
        raise ConfigError(
            f"strategy {name!r} needs a neural network trained on the raw items; a session fits "
            "logistic regression on the embeddings, so use entropy, margin, mlp, "
            "information-density, badge, coreset or a SIMILAR function such as flqmi"
        )


def _check_strategy_params(params, class_list) -> dict[str, dict[str, Any]]:
    """``strategy_params`` checked: names of strategies, parameters they accept."""
    if params is None:
        return {}
    if not isinstance(params, dict):
        raise ValidationError("strategy_params must map strategy names to parameter dicts")
    from raresift.strategies import strategy_names
    from raresift.strategies.rare import session_strategy

    kind = "concept" if class_list is None else "classes"
    out = {}
    for name, values in params.items():
        if name not in strategy_names():
            raise ConfigError(f"strategy_params names unknown strategy {name!r}")
        if not isinstance(values, dict):
            raise ValidationError(f"strategy_params[{name!r}] must be a dict of parameters")
        session_strategy(name, kind=kind, positive=[1], params=values)  # bad ones raise now
        out[str(name)] = dict(values)
    return out


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
