"""Creating a session: reading the user's collection into a new project folder.

:func:`create_session` checks every option first (:class:`SessionConfig`), reads the source
(embeddings, texts or images, an item table), writes ``session.db`` under a temporary name and
moves it into place, then builds the SEALS index and imports the seed answers. A create that
fails removes what it made (:class:`_Made`). :meth:`Session.create` is its public face.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

import raresift
from raresift.errors import ValidationError
from raresift.session import inputs
from raresift.session.config import SMALL_POOL, SessionConfig
from raresift.session.errors import SessionError
from raresift.session.project import _SPECIAL_ALIASES, _progress, _relative, record_file
from raresift.session.store import DB_NAME, Store

log = logging.getLogger("raresift")

STOP_SET_SIZE = 1_000
CLASS_DEFAULT = "rare-search"  # a class session's default strategy (the replay study's choice)


def create_session(
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
    image_size: int | None = None,
    model_C: float = 1.0,
    model_max_iter: int = 1000,
    progress: bool | None = None,
    encoding: str | None = None,
) -> Any:
    """:meth:`Session.create`, for the session class ``cls``."""
    root = Path(path).resolve()
    options = SessionConfig(
        kind="concept" if classes is None else "classes",
        strategy=strategy,
        strategy_params=strategy_params,
        candidates=candidates,
        budget=budget,
        index=index,
        index_search=index_search,
        seals_k=seals_k,
        seed=seed,
        engine=engine,
        address=address,
        image_size=image_size,
        model_C=model_C,
        model_max_iter=model_max_iter,
    )
    from raresift.outputs import check_output_folder

    check_output_folder(root, "PROJECT")
    if (root / DB_NAME).exists():
        raise SessionError(f"{root} already holds a session; open it, or pick another folder")
    sources = [s for s in (embeddings, texts, images) if s is not None]
    if len(sources) != 1:
        raise ValidationError("give exactly one of embeddings=, texts= or images=")
    if concept is not None and classes is not None:
        raise ValidationError("give either concept= or classes=, not both")
    class_list = _check_classes(classes) if classes is not None else None
    rare = list(rare_classes) if rare_classes is not None else None
    if rare is not None:
        if class_list is None:
            raise ValidationError("rare_classes= needs classes=")
        unknown = [c for c in rare if c not in class_list]
        if unknown:
            raise ValidationError(f"rare classes {unknown} are not among {class_list}")
    _check_nothing_in_the_way(root, embeddings)
    made = _Made(root)
    try:
        return _create(
            cls, root, options, class_list, rare, concept, seed_labels, progress, encoding,
            embeddings=embeddings, texts=texts, text_column=text_column, images=images,
            image_column=image_column, items=items, ids_column=ids_column,
            vector_column=vector_column, npz_key=npz_key,
        )  # fmt: skip
    except BaseException:
        made.remove()
        raise


def _create(
    cls, root, options, class_list, rare, concept, seed_labels, progress, encoding, **source
) -> Any:
    root.mkdir(parents=True, exist_ok=True)
    cache = root / "cache"
    ids_column, text_column = source["ids_column"], source["text_column"]
    image_column = source["image_column"]
    source_info, table, emb_path, owned, embedder = _read_source(
        root,
        cache,
        source["embeddings"],
        source["texts"],
        text_column,
        source["images"],
        image_column,
        source["items"],
        source["vector_column"],
        source["npz_key"],
        options.image_size,
        progress,
        encoding,
    )
    array = np.load(emb_path, mmap_mode="r")
    from raresift.pool import check_finite

    check_finite(array, f"embeddings {emb_path}")
    n, dim = array.shape
    if table is not None and "__image__" in table.columns:  # images inside the project move
        table.columns["__image__"] = [_relative(Path(p), root) for p in table.columns["__image__"]]
    ids = _read_ids(table, ids_column, n)
    id_col = ids_column or ("id" if table is not None and "id" in table.columns else None)
    default_cand = options.candidates or ("all" if n <= SMALL_POOL else "seals")
    strategy = options.strategy
    if strategy is None:  # chosen from the replay study (docs/results/replay-sessions)
        strategy = CLASS_DEFAULT if class_list is not None else "mlp"
    plan = options.index_plan(n, dim)
    stop = np.sort(
        np.random.default_rng([options.seed, 7]).choice(n, min(n, STOP_SET_SIZE), replace=False)
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
        "source": source_info,
        "ids": ids.kind,
        "ids_column": id_col,
        "engine": options.engine,
        "address": options.address,
        "seed": int(options.seed),
        "model": {
            "kind": "logistic",
            "C": float(options.model_C),
            "max_iter": int(options.model_max_iter),
        },
        "defaults": {
            "strategy": strategy,
            "candidates": default_cand,
            "budget": int(options.budget),
        },
        "strategy_params": options.strategy_params,
        "index": {
            "factory": plan.factory,
            "search_params": plan.search_params,
            "path": "index/index.faiss" if plan.on_disk else "index.faiss",
            "nlist": plan.nlist,
            "calibrate": plan.calibrate,
            "on_disk": plan.on_disk,
            "max_scan": plan.max_scan,
        },
        "seals_k": int(options.seals_k),
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
        record_file(
            db, "embeddings", root, emb_path, {"shape": [n, dim], "dtype": str(array.dtype)}
        )
        if ids.kind != "row" or table is not None:
            _store_items(db, table, ids, {id_col, text_column, image_column})
    store.close()
    for suffix in ("-wal", "-shm"):
        Path(str(tmp) + suffix).unlink(missing_ok=True)
    os.replace(tmp, root / DB_NAME)
    session = cls.open(root)
    try:
        if default_cand == "seals":
            session.index(progress=_progress(progress))
        if seed_labels is not None:
            session.import_file(seed_labels, who="seed", source="seed", encoding=encoding)
    except BaseException:
        session.close()
        raise
    log.info("created session %s: %d items, %s", root, n, session.describe_defaults())
    return session


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
    encoding=None,
):
    out = root / "embeddings.npy"
    if embeddings is not None:
        path = Path(embeddings)
        if path.suffix.lower() in inputs.TABLE_SUFFIXES:
            table = inputs.read_table(path, encoding)
            vectors, column = inputs.vectors_from_table(table, vector_column)
            del table.columns[column]
            inputs.save_vectors(vectors, out)
            return {"type": "embeddings", "file": str(path.resolve())}, table, out, True, None
        emb, owned = inputs.open_embeddings(path, out, npz_key)
        table = inputs.read_table(items, encoding) if items is not None else None
        n = np.load(emb, mmap_mode="r").shape[0]
        if table is not None and table.n_rows != n:
            raise ValidationError(
                f"item table {items} has {table.n_rows} rows but the embeddings have {n}; "
                "they must be aligned row by row"
            )
        return {"type": "embeddings", "file": str(path.resolve())}, table, emb, owned, None
    if texts is not None:
        from raresift import embed

        table = inputs.read_table(texts, encoding)
        if text_column is None:
            raise ValidationError("texts= needs text_column= (the column holding the texts)")
        values = table.column(text_column, "text")
        for i, t in enumerate(values):
            where = f"{texts} line {i + table.first_line}"
            if t is not None and not isinstance(t, str):
                raise ValidationError(f"{where}: the text is a {type(t).__name__}, not a string")
            if t is None or not t.strip():
                raise ValidationError(f"{where}: the text is empty")
        # computed once per set of texts for every project (the user's cache), linked in
        array = embed.embed_texts(values, cache=embed.embeddings_cache(), progress=progress)
        table.columns["__text__"] = table.columns[text_column]
        source = {
            "type": "texts",
            "file": str(Path(texts).resolve()),
            "text_column": text_column,
        }
        return source, table, inputs.link_or_copy(Path(array.filename), out), True, embed.MODEL
    from raresift import embed
    from raresift import embed_images as image_model

    path = Path(images)
    if path.is_dir():
        files = inputs.image_files(path)
        table = inputs.Table(path, {"id": [f.relative_to(path).as_posix() for f in files]})
        table.columns["__image__"] = [str(f.resolve()) for f in files]
    else:
        table = inputs.read_table(path, encoding)
        column = image_column or "image"
        base = path.parent
        table.columns["__image__"] = [
            str((base / str(p)).resolve()) for p in table.column(column, "image path")
        ]
    if image_size is None:
        image_size = image_model.choose_image_size(table.columns["__image__"])
    array = image_model.embed_images(
        table.columns["__image__"],
        cache=embed.embeddings_cache(),
        image_size=image_size,
        progress=progress,
    )
    source = {"type": "images", "file": str(path.resolve()), "image_size": image_size}
    return (
        source,
        table,
        inputs.link_or_copy(Path(array.filename), out),
        True,
        image_model.MODEL,
    )


def _read_ids(table, ids_column, n) -> inputs.ItemIds:
    if table is None:
        if ids_column is not None:
            raise ValidationError("ids_column= needs an item table (items=, texts= or images=)")
        return inputs.ItemIds(None, "row", n)
    column = ids_column or ("id" if "id" in table.columns else None)
    if column is None:
        return inputs.ItemIds([str(i) for i in range(n)], "row", n)
    return inputs.parse_ids(table.column(column, "id"), str(table.path), table.first_line)


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

    db.put_items(rows())


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


def _check_nothing_in_the_way(root: Path, embeddings: Any) -> None:
    """Refuse a folder holding files a create would write over (a user's ``embeddings.npy``, an
    index), unless it is the ``.npy`` the session will read where it lies."""
    if (root / (DB_NAME + ".partial")).exists():
        return  # the leftovers of an init killed midway: its own files, made again now
    own = root / "embeddings.npy"
    source = None if embeddings is None else Path(embeddings).resolve()
    for path in (own, root / "index.faiss", root / "index.faiss.json"):
        if path.exists() and not (path == own and source == own.resolve()):
            raise SessionError(
                f"{root} already holds {path.name}, which a new session would write over; "
                "choose an empty folder (or a new one) for the project"
            )


class _Made:
    """What a failed create must remove: the project folder if create made it (and the
    folders above it that it made), else the entries it added to the existing folder."""

    def __init__(self, root: Path):
        self.root = root
        self.top = next((p for p in reversed([root, *root.parents]) if not p.exists()), None)
        self.before = set(root.iterdir()) if self.top is None else set()

    def remove(self) -> None:
        import shutil

        if self.top is not None:
            shutil.rmtree(self.top, ignore_errors=True)
            return
        for entry in set(self.root.iterdir()) - self.before:
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry, ignore_errors=True)
            else:
                entry.unlink(missing_ok=True)
