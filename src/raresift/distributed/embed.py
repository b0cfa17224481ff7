"""Embedding Parquet shards with Ray Data: an actor pool of embedders, resumable by shard.

Input: a folder of Parquet files, one shard each, with an int64 id column and a column of
texts or image file paths. Output: one folder per shard, ``<destination>/<shard>/``, holding
Parquet files with the ids and their embeddings (a fixed-size list of float32; L2-normalised
all-MiniLM-L6-v2 for texts, exactly :func:`raresift.embed.encode_texts`; EfficientNet-Lite0
for images, exactly :mod:`raresift.embed_images`). A shard's folder appears (by an atomic
rename) only once all its rows are embedded, so a run that stops resumes by skipping the shards
already there.

Shards are embedded ``shards_per_job`` at a time, each group one Ray Data job:
``from_items(shard paths) -> map_batches(read a shard, its texts longest first) ->
map_batches(embedder class, concurrency=..., batch_size=..., num_gpus=...) ->
write_parquet(partitioned by shard)``; the embedder is a stateful class, so each actor loads
the model once. GPUs are requested (one per actor) when the cluster has them. One reading task
per shard, rather than a ``read_parquet`` per shard joined by ``union``, keeps a job's plan to
four operators (the union of per-shard reads spent ~20 s listing and reading 4 small shards on 2
busy cores), and sorting a shard by text length gives batches that pad little, as the
single-process path's sentence-transformers does.

Example
-------
>>> import tempfile
>>> folder = tempfile.mkdtemp()
>>> [p.name for p in write_text_shards(["a", "b", "c"], folder + "/in", shard_size=2)]
['shard-00000.parquet', 'shard-00001.parquet']
"""

from __future__ import annotations

import logging
import os
import shutil
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from raresift.distributed.cluster import cluster_gpus, connect, import_ray
from raresift.errors import ConfigError, CorruptFileError, ValidationError
from raresift.pool import as_ids

log = logging.getLogger("raresift")

_SHARD = "__shard"  # the partition column the job writes by


def _pyarrow():
    import pyarrow as pa
    import pyarrow.compute  # noqa: F401 (pa.compute)
    import pyarrow.parquet as pq

    return pa, pq


def write_text_shards(
    texts: Sequence[str],
    directory: str | os.PathLike,
    ids: Any = None,
    shard_size: int = 100_000,
    text_column: str = "text",
    id_column: str = "id",
) -> list[Path]:
    """Write ``texts`` (ids default to ``0..n-1``) as Parquet shards of ``shard_size`` rows:
    ``shard-00000.parquet``, ... Returns their paths."""
    pa, pq = _pyarrow()
    texts = list(texts)
    ids = np.arange(len(texts), dtype=np.int64) if ids is None else as_ids(ids)
    if ids.size != len(texts):
        raise ValidationError(f"got {ids.size} ids for {len(texts)} texts; pass one id per text")
    if shard_size <= 0:
        raise ValidationError(f"shard_size must be positive, got {shard_size}")
    folder = Path(directory)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for number, lo in enumerate(range(0, len(texts), shard_size)):
        table = pa.table(
            {id_column: ids[lo : lo + shard_size], text_column: texts[lo : lo + shard_size]}
        )
        path = folder / f"shard-{number:05d}.parquet"
        pq.write_table(table, path)
        paths.append(path)
    return paths


class _Embedder:
    """Ray Data's stateful transform: the model loads once per actor (in ``__init__``), then
    each batch of rows (id, value, shard) becomes (id, embedding, shard)."""

    sort_by_length = False  # whether batches should be cut from blocks sorted by value length

    def __init__(self, column: str, id_column: str, batch_size: int):
        self.column, self.id_column, self.batch_size = column, id_column, batch_size

    def encode(self, values: list) -> np.ndarray:
        raise NotImplementedError

    def __call__(self, batch):
        pa, _ = _pyarrow()
        values = batch.column(self.column).to_pylist()
        bad = next((i for i, v in enumerate(values) if not isinstance(v, str)), None)
        if bad is not None:
            raise ValidationError(
                f"row with id {batch.column(self.id_column)[bad]} has no {self.column!r} "
                f"({type(values[bad]).__name__}); fill or drop it before embedding"
            )
        vectors = self.encode(values)
        flat = pa.array(vectors.reshape(-1), type=pa.float32())
        return pa.table(
            {
                "id": batch.column(self.id_column).cast(pa.int64()),
                "embedding": pa.FixedSizeListArray.from_arrays(flat, vectors.shape[1]),
                _SHARD: batch.column(_SHARD),
            }
        )


class TextEmbedder(_Embedder):
    """all-MiniLM-L6-v2 on ``device``: exactly :func:`raresift.embed.encode_texts`."""

    sort_by_length = True

    def __init__(self, column, id_column, batch_size, device="cpu", image_size=None):
        from raresift.embed import load_model

        super().__init__(column, id_column, batch_size)
        self.device = device
        load_model(device)

    def encode(self, values):
        from raresift.embed import encode_texts

        return encode_texts(values, self.batch_size, device=self.device)


class ImageEmbedder(_Embedder):
    """EfficientNet-Lite0 on the CPU (:mod:`raresift.embed_images`) of image file paths."""

    def __init__(self, column, id_column, batch_size, device="cpu", image_size=224):
        from raresift.embed_images import load_model

        super().__init__(column, id_column, batch_size)
        self.image_size = image_size
        load_model()

    def encode(self, values):
        from raresift.embed_images import encode, load_image

        return encode(np.stack([load_image(p, self.image_size) for p in values]))


EMBEDDERS = {"text": TextEmbedder, "image": ImageEmbedder}


def embed_parquet(
    source: str | os.PathLike,
    destination: str | os.PathLike,
    *,
    kind: str = "text",
    column: str = "text",
    id_column: str = "id",
    image_size: int = 224,
    batch_size: int = 64,
    concurrency: int = 2,
    num_gpus: float | None = None,
    num_cpus: float = 1,
    shards_per_job: int = 8,
    address: str | None = None,
    progress: bool = True,
) -> list[Path]:
    """Embed every Parquet shard in ``source`` into ``destination``; returns the output shard
    folders, in shard order. Shards already in ``destination`` are skipped.

    Parameters
    ----------
    source : path
        A folder of ``*.parquet`` files, one shard each (:func:`write_text_shards`).
    destination : path
        Receives one folder per shard, named like the shard without ``.parquet``.
    kind : {"text", "image"}
        Texts (all-MiniLM-L6-v2, on a GPU when the actor has one) or image file paths
        (EfficientNet-Lite0 at ``image_size`` pixels, on the CPU); every node must see the
        image files.
    column, id_column : str
        The input columns: texts or image paths, and int64 ids.
    batch_size : int
        Rows per ``map_batches`` call (and per forward pass).
    concurrency : int
        Embedder actors (each loads the model once).
    num_gpus : float, optional
        GPUs per actor; default 1 for texts when the cluster has GPUs, else 0 (CPU).
    num_cpus : float
        CPUs per actor. The actors together must leave at least one CPU of the cluster free
        for Ray Data's read and write tasks, or the job could never start.
    shards_per_job : int
        Shards per Ray Data job: the unit of resumption (a stopped job's shards are redone).
        Each job starts its actors afresh (process, imports, model load: 5-9 s on 2 busy
        cores), so on a large cluster raise it until a job runs for minutes.
    address : str, optional
        A Ray cluster to join; default the Ray already running, or a local one.
    progress : bool
        Show a tqdm bar over shards (Ray Data shows its own per job).
    """
    if kind not in EMBEDDERS:
        raise ConfigError(f"kind must be one of {sorted(EMBEDDERS)}, got {kind!r}")
    connect(address)
    ray = import_ray()
    for name, value in (
        ("batch_size", batch_size),
        ("concurrency", concurrency),
        ("shards_per_job", shards_per_job),
    ):
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            raise ValidationError(f"{name} must be a positive integer, got {value!r}")
    inputs = sorted(Path(source).glob("*.parquet"))
    if not inputs:
        raise ValidationError(
            f"no *.parquet shards in {os.fspath(source)!r}; write some with write_text_shards()"
        )
    cpus = float(ray.cluster_resources().get("CPU", 0))
    if concurrency * num_cpus > cpus - 1:
        raise ConfigError(
            f"{concurrency} embedder actors of {num_cpus} CPU each leave no CPU of the cluster's "
            f"{cpus:g} for reading and writing shards; lower concurrency or num_cpus"
        )
    out = Path(destination)
    out.mkdir(parents=True, exist_ok=True)
    todo = [p for p in inputs if not (out / p.stem).is_dir()]
    if len(todo) < len(inputs):
        log.info("embedding: %d of %d shards already done", len(inputs) - len(todo), len(inputs))
    if num_gpus is None:  # the image model runs on the CPU
        num_gpus = 1.0 if kind == "text" and cluster_gpus() > 0 else 0.0
    gpus = float(num_gpus)
    device = "cuda" if gpus > 0 else "cpu"
    bar = tqdm(
        total=len(inputs),
        initial=len(inputs) - len(todo),
        desc="embedding shards",
        unit="shard",
        disable=not progress,
    )
    for lo in range(0, len(todo), shards_per_job):
        group = todo[lo : lo + shards_per_job]
        scratch = out / f".job-{uuid.uuid4().hex[:12]}"
        start = time.perf_counter()
        actors = {
            "compute": ray.data.ActorPoolStrategy(size=concurrency),
            "num_gpus": gpus,
            "num_cpus": num_cpus,
        }
        embedder = {
            "column": column,
            "id_column": id_column,
            "batch_size": batch_size,
            "device": device,
            "image_size": image_size,
        }
        rows = _embed_group(ray, group, scratch, EMBEDDERS[kind], embedder, actors, concurrency)
        for path in group:
            written = scratch / f"{_SHARD}={path.stem}"
            if not written.is_dir():  # an empty shard writes nothing
                written.mkdir(parents=True)
            os.replace(written, out / path.stem)
        shutil.rmtree(scratch, ignore_errors=True)
        log.info(
            "embedded %d rows of %d shards in %.1f s", rows, len(group), time.perf_counter() - start
        )
        bar.update(len(group))
    bar.close()
    return [out / p.stem for p in inputs]


def _embed_group(ray, group, scratch, embedder_class, embedder, actors, concurrency):
    """One Ray Data job over ``group``; returns the rows embedded."""
    pa, pq = _pyarrow()
    for path in group:
        try:
            names = pq.read_schema(path).names
        except (OSError, pa.ArrowInvalid) as exc:
            raise CorruptFileError(f"cannot read Parquet shard {path} ({exc})") from None
        missing = [c for c in (embedder["column"], embedder["id_column"]) if c not in names]
        if missing:
            raise ValidationError(
                f"shard {path} has no column {missing[0]!r} (it has {names}); pass "
                "column= / id_column="
            )
    rows = sum(pq.read_metadata(p).num_rows for p in group)
    shards = ray.data.from_items(
        [{"path": os.fspath(p)} for p in group], override_num_blocks=len(group)
    ).map_batches(
        _read_shards,
        batch_size=1,  # one reading task per shard
        batch_format="pyarrow",
        fn_kwargs={
            "columns": [embedder["id_column"], embedder["column"]],
            "sort_column": embedder["column"] if embedder_class.sort_by_length else None,
            "rows_per_block": _rows_per_block(rows, embedder["batch_size"], concurrency),
        },
    )
    embedded = shards.map_batches(
        embedder_class,
        fn_constructor_kwargs=embedder,
        batch_size=embedder["batch_size"],
        batch_format="pyarrow",
        **actors,
    )
    embedded.write_parquet(os.fspath(scratch), partition_cols=[_SHARD])
    return rows


def _rows_per_block(rows: int, batch_size: int, concurrency: int) -> int:
    """Rows per block handed to the embedders: whole batches, at most 64 of them, and enough
    blocks that every actor gets some."""
    batches = -(-rows // batch_size)
    return batch_size * max(1, min(64, batches // concurrency))


def _read_shards(batch, columns: list[str], sort_column: str | None, rows_per_block: int):
    """Ray Data task: the rows of the Parquet shards named in ``batch`` (a ``path`` column),
    tagged with their shard (its file name without .parquet, for the partitioned write), in
    blocks of ``rows_per_block``; longest text first when ``sort_column`` is given.

    Sorting a shard lets the batches cut from it hold texts of similar length, so a forward
    pass pads little: the single-process path gets the same from sentence-transformers, which
    sorts all the texts it is given, whereas batches of ``batch_size`` rows in file order pad
    every text to their longest (2.5x the tokens on WordNet glosses in batches of 64).
    One task reads a whole shard (``write_text_shards`` writes 10^5 rows a shard).
    """
    pa, pq = _pyarrow()
    for path in batch.column("path").to_pylist():
        table = pq.read_table(path, columns=columns)
        if sort_column is not None and table.num_rows > 1:
            values = table.column(sort_column)
            if pa.types.is_string(values.type) or pa.types.is_large_string(values.type):
                order = pa.compute.sort_indices(
                    pa.table({"length": pa.compute.utf8_length(values)}),
                    [("length", "descending")],
                )  # a stable sort: equal lengths keep the file's order
                table = table.take(order)
        shard = pa.array([Path(path).stem] * table.num_rows, pa.string())
        table = table.append_column(_SHARD, shard)
        for lo in range(0, table.num_rows, rows_per_block):
            yield table.slice(lo, rows_per_block)


def read_embedding_shards(
    directory: str | os.PathLike, out: str | os.PathLike | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Ids and embeddings of every shard :func:`embed_parquet` wrote, shards in name order and
    rows by id within a shard. With ``out`` (a ``.npy`` path) the embeddings are written there
    shard by shard and returned as a memmap, so 10^8 rows never sit in memory at once.
    """
    pa, pq = _pyarrow()
    folders = sorted(p for p in Path(directory).iterdir() if p.is_dir() and not p.name[0] == ".")
    if not folders:
        raise ValidationError(f"no embedded shards in {os.fspath(directory)!r}")
    tables = []
    for folder in folders:
        files = sorted(folder.glob("*.parquet"))
        try:
            parts = [pq.read_table(f, columns=["id", "embedding"]) for f in files]
        except (OSError, pa.ArrowInvalid, KeyError) as exc:
            raise CorruptFileError(f"cannot read embedded shard {folder} ({exc})") from None
        if parts:
            table = pa.concat_tables(parts)
            tables.append(table.take(pa.compute.sort_indices(table, [("id", "ascending")])))
    n = sum(t.num_rows for t in tables)
    dim = tables[0].schema.field("embedding").type.list_size
    ids = np.empty(n, dtype=np.int64)
    if out is None:
        embeddings = np.empty((n, dim), dtype=np.float32)
    else:
        embeddings = np.lib.format.open_memmap(out, mode="w+", dtype=np.float32, shape=(n, dim))
    lo = 0
    for table in tables:
        hi = lo + table.num_rows
        ids[lo:hi] = table.column("id").to_numpy()
        flat = table.column("embedding").combine_chunks().flatten().to_numpy()
        embeddings[lo:hi] = flat.reshape(-1, dim)
        lo = hi
    if out is not None:
        embeddings.flush()
    return ids, embeddings
