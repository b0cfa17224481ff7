"""Reading a user's collection: embeddings files and item tables.

Embeddings
    ``.npy`` float16 / float32 files are memory-mapped where they lie and never copied; other
    dtypes, ``.npz`` archives and vector columns of Parquet / CSV / JSONL tables are converted
    once into ``embeddings.npy`` in the project folder.
Item tables
    CSV, JSONL or Parquet (through pyarrow) with an id column (int64 or string ids; row numbers
    when there is none), optional text, image path and any other columns (kept as metadata).
Text files (item tables and answer files)
    UTF-8 by default; a byte-order mark selects UTF-8, UTF-16 or UTF-32 (what Excel's "CSV
    UTF-8" and "Unicode text" write); any other encoding is declared with ``encoding=`` /
    ``--encoding`` (``latin-1``, ``cp1252``, ...). Fields have no length limit. A column name
    may appear once in a header (twice, which column is meant would be a guess).
Ids
    Read as written, surrounding spaces removed (in the table and in every answer alike); an
    id is an integer only when it is plain ASCII digits (``1_0`` and full-width digits stay
    strings).
"""

from __future__ import annotations

import codecs
import csv
import json
import logging
import math
import os
import re
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from raresift.errors import CorruptFileError, DatasetNotInstalledError, ValidationError
from raresift.outputs import reserve_disk

log = logging.getLogger("raresift")

TABLE_SUFFIXES = {".csv": "csv", ".tsv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl"}
TABLE_SUFFIXES[".parquet"] = "parquet"
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff"}
VECTOR_COLUMNS = ("embedding", "vector", "embeddings")
_INT_ID = re.compile(r"-?(0|[1-9][0-9]*)\Z")  # ASCII digits only, as written
_ASCII_INT = re.compile(r"-?[0-9]+\Z")
_CONVERT_BLOCK = 1 << 16
_BOMS = (  # longest first: the UTF-32 LE mark starts with the UTF-16 LE one
    (codecs.BOM_UTF32_LE, "utf-32"),
    (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF8, "utf-8-sig"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)


def text_encoding(path: Path, encoding: str | None = None) -> str:
    """The encoding to read ``path`` with: ``encoding`` when given (checked), else the one its
    byte-order mark names, else UTF-8."""
    if encoding is not None:
        try:
            codecs.lookup(encoding)
        except LookupError:
            raise ValidationError(
                f"unknown encoding {encoding!r}; name one Python knows, such as utf-8, latin-1, "
                "cp1252 or utf-16"
            ) from None
        return encoding
    with open(path, "rb") as fh:
        head = fh.read(4)
    return next((name for bom, name in _BOMS if head.startswith(bom)), "utf-8")


def _decode_error(path: Path, encoding: str, line: int, exc: UnicodeDecodeError) -> ValidationError:
    hint = "save it as UTF-8, or name its encoding with --encoding (for example latin-1)"
    if encoding.lower().replace("_", "-") not in ("utf-8", "utf8", "utf-8-sig"):
        hint = "name the file's real encoding with --encoding"
    return ValidationError(
        f"{path} is not {encoding} text (byte {exc.object[exc.start : exc.start + 1]!r} near "
        f"line {line}); {hint}"
    )


def text_lines(path: Path, encoding: str | None = None) -> Iterator[tuple[int, str]]:
    """``(line number, line)`` of a text file, decoded as :func:`text_encoding` says."""
    name = text_encoding(path, encoding)
    number = 0
    try:
        with open(path, encoding=name, newline="") as fh:
            for number, line in enumerate(fh, 1):
                yield number, line
    except UnicodeDecodeError as exc:
        raise _decode_error(path, name, number + 1, exc) from None


def csv_rows(
    path: Path, encoding: str | None = None, delimiter: str | None = None
) -> Iterator[tuple[int, list[str]]]:
    """``(line number, cells)`` of a CSV / TSV file; the header is the first row. Fields of
    any length; BOMs and declared encodings as :func:`text_encoding` says."""
    name = text_encoding(path, encoding)
    if delimiter is None:
        delimiter = "\t" if path.suffix.lower() == ".tsv" else ","
    limit = csv.field_size_limit()
    csv.field_size_limit(sys.maxsize)  # one long e-mail is a field, not an error
    line = 0
    try:
        with open(path, encoding=name, newline="") as fh:
            reader = csv.reader(fh, delimiter=delimiter)
            for row in reader:
                line = reader.line_num
                yield line, row
    except UnicodeDecodeError as exc:
        raise _decode_error(path, name, line + 1, exc) from None
    except csv.Error as exc:
        hint = ""
        if "NUL" in str(exc) and encoding is None:
            hint = (
                "; the file looks like UTF-16 without a byte-order mark: pass --encoding utf-16-le"
            )
        raise CorruptFileError(f"{path} line {line + 1}: not CSV ({exc}){hint}") from None
    finally:
        csv.field_size_limit(limit)


def check_header(path: Path, header: list[str]) -> list[str]:
    """The header's column names, or :class:`ValidationError` when one appears twice."""
    seen: dict[str, int] = {}
    for position, column in enumerate(header, 1):
        if column in seen:
            raise ValidationError(
                f"{path}: column {column!r} appears twice in the header (columns {seen[column]} "
                f"and {position}); rename or remove one"
            )
        seen[column] = position
    return header


def json_object(text: str, where: str) -> Any:
    """``json.loads`` refusing an object with a key twice and nesting Python cannot follow."""

    def no_duplicates(pairs):
        keys = [k for k, _ in pairs]
        twice = next((k for k in keys if keys.count(k) > 1), None)
        if twice is not None:
            raise ValidationError(f"{where}: key {twice!r} appears twice in one object")
        return dict(pairs)

    try:
        return json.loads(text, object_pairs_hook=no_duplicates)
    except json.JSONDecodeError as exc:
        raise CorruptFileError(f"{where} is not JSON ({exc})") from None
    except RecursionError:
        raise CorruptFileError(f"{where} is JSON nested too deeply to be raresift data") from None


@dataclass
class Table:
    """Columns of an item table, each a list with one value per row (row ``i`` is line ``i + 2``
    of a CSV file and line ``i + 1`` of a JSONL file)."""

    path: Path
    columns: dict[str, list[Any]]
    first_line: int = 2  # file line of row 0, for messages

    @property
    def n_rows(self) -> int:
        return len(next(iter(self.columns.values()))) if self.columns else 0

    def column(self, name: str, what: str) -> list[Any]:
        if name not in self.columns:
            raise ValidationError(
                f"{self.path} has no {what} column {name!r}; its columns are "
                f"{', '.join(map(repr, self.columns)) or 'none'}"
            )
        return self.columns[name]


def read_table(path: str | os.PathLike, encoding: str | None = None) -> Table:
    """Read a CSV / TSV, JSONL or Parquet item table into columns (``encoding``: of a text
    table, when it has no byte-order mark and is not UTF-8)."""
    path = Path(path)
    if not path.is_file():
        raise ValidationError(f"item table {path} does not exist")
    kind = TABLE_SUFFIXES.get(path.suffix.lower())
    if kind is None:
        raise ValidationError(
            f"cannot read {path}: item tables must be .csv, .tsv, .jsonl or .parquet"
        )
    if kind == "parquet":
        try:
            import pyarrow.parquet as pq
        except ImportError:
            raise DatasetNotInstalledError(
                "reading Parquet needs pyarrow; run pip install 'raresift[session]'"
            ) from None
        try:
            table = pq.read_table(path)
        except Exception as exc:  # pyarrow raises its own ArrowInvalid / OSError types
            raise CorruptFileError(f"cannot read Parquet file {path}: {exc}") from None
        return Table(
            path,
            {
                name: table.column(i).to_pylist()
                for i, name in enumerate(check_header(path, table.column_names))
            },
        )
    if kind == "jsonl":
        rows = []
        for number, line in text_lines(path, encoding):
            if not line.strip():
                continue
            row = json_object(line, f"{path} line {number}")
            if not isinstance(row, dict):
                raise ValidationError(f"{path} line {number}: expected a JSON object")
            rows.append(row)
        names = list(dict.fromkeys(k for row in rows for k in row))
        return Table(path, {n: [row.get(n) for row in rows] for n in names}, first_line=1)
    records = csv_rows(path, encoding)
    _, header = next(records, (1, None))
    if not header:
        raise ValidationError(f"{path} is empty: it needs a header line and one row per item")
    columns: dict[str, list[Any]] = {name: [] for name in check_header(path, header)}
    for line, row in records:
        if len(row) != len(header):
            raise ValidationError(
                f"{path} line {line}: {len(row)} fields, the header has {len(header)}"
            )
        for name, value in zip(header, row, strict=True):
            columns[name].append(value)
    return Table(path, columns)


@dataclass
class ItemIds:
    """The user's ids as strings (shown back exactly) and their kind: ``"row"`` (no id column:
    row numbers), ``"int"`` (every id an int64) or ``"str"``."""

    uids: list[str] | None
    kind: str
    n: int = 0


def parse_ids(values: list[Any], where: str, first_line: int) -> ItemIds:
    """Check ids are present and unique; classify them as int64 or string ids."""
    uids: list[str] = []
    all_int = True
    for i, v in enumerate(values):
        if v is None or (isinstance(v, float) and math.isnan(v)) or str(v).strip() == "":
            raise ValidationError(f"{where} line {i + first_line}: the id is empty")
        if isinstance(v, bool):
            raise ValidationError(f"{where} line {i + first_line}: id {v!r} is not an id")
        if isinstance(v, float):
            if v != int(v):
                raise ValidationError(f"{where} line {i + first_line}: id {v!r} is not an integer")
            v = int(v)
        s = str(v).strip()
        if all_int and not (_INT_ID.match(s) and -(2**63) <= int(s) < 2**63):
            all_int = False
        uids.append(s)
    seen: dict[str, int] = {}
    for i, s in enumerate(uids):
        if s in seen:
            raise ValidationError(
                f"{where}: id {s!r} appears on lines {seen[s] + first_line} and "
                f"{i + first_line}; ids must be unique"
            )
        seen[s] = i
    return ItemIds(uids, "int" if all_int else "str", len(uids))


def id_key(item_id: Any, kind: str) -> str | None:
    """The stored form of a user's id in a session whose ids are ``kind`` (``row``, ``int`` or
    ``str``), or None when it cannot name an item: surrounding spaces removed; for integer ids
    only plain ASCII digits (``"1_0"``, ``"\uff13"`` and ``"+3"`` name no item); booleans never.

    >>> id_key(" 7 ", "int"), id_key("007", "int"), id_key("1_0", "int"), id_key(7.0, "row")
    ('7', '7', None, '7')
    >>> id_key(" a b ", "str"), id_key(True, "str"), id_key("", "str")
    ('a b', None, None)
    """
    if item_id is None or isinstance(item_id, bool):
        return None
    if isinstance(item_id, float):
        if not item_id.is_integer():
            return None
        item_id = int(item_id)
    text = str(item_id).strip()
    if not text:
        return None
    if kind in ("row", "int"):
        return str(int(text)) if _ASCII_INT.match(text) else None
    return text


def _parse_vector(value: Any, where: str) -> list[float]:
    if isinstance(value, (list, tuple, np.ndarray)):
        return [float(x) for x in value]
    if isinstance(value, str):
        text = value.strip()
        try:
            if text.startswith("["):
                return [float(x) for x in json.loads(text)]
            return [float(x) for x in re.split(r"[\s,;]+", text) if x]
        except (ValueError, TypeError):
            pass
    raise ValidationError(f"{where}: cannot read a vector from {str(value)[:40]!r}")


def vectors_from_table(table: Table, column: str | None) -> tuple[np.ndarray, str]:
    """The vector column of a table as a float32 (n, d) array, and its name."""
    if column is None:
        column = next((c for c in VECTOR_COLUMNS if c in table.columns), None)
        if column is None:
            raise ValidationError(
                f"{table.path} has no vector column (looked for {', '.join(VECTOR_COLUMNS)}); "
                "name it with --vector-column"
            )
    values = table.column(column, "vector")
    rows = [
        _parse_vector(v, f"{table.path} line {i + table.first_line}") for i, v in enumerate(values)
    ]
    if not rows:
        raise ValidationError(f"{table.path} has no rows")
    dims = {len(r) for r in rows}
    if len(dims) != 1:
        lengths = [len(r) for r in rows]
        bad = next(i for i, n in enumerate(lengths) if n != lengths[0])
        raise ValidationError(
            f"{table.path} line {bad + table.first_line}: vector of length {lengths[bad]}, "
            f"the first row has {lengths[0]}"
        )
    return np.asarray(rows, dtype=np.float32), column


def open_embeddings(
    path: str | os.PathLike, out: Path, npz_key: str | None = None
) -> tuple[Path, bool]:
    """The ``.npy`` file to memory-map for ``path``, and whether it is a converted copy.

    ``.npy`` float16 / float32 files are used in place; others are converted to float32 into
    ``out`` block by block (memmaps are never loaded whole).
    """
    path = Path(path).resolve()
    if not path.is_file():
        raise ValidationError(f"embeddings file {path} does not exist")
    suffix = path.suffix.lower()
    if npz_key is not None and suffix != ".npz":
        raise ValidationError(f"--npz-key names an array inside an .npz; {path} is not one")
    if suffix == ".npy":
        try:
            array = np.load(path, mmap_mode="r")
        except (ValueError, OSError) as exc:
            raise CorruptFileError(f"cannot read {path} as .npy ({exc})") from None
        _check_array(array, path)
        if array.dtype in (np.float16, np.float32) and array.flags.c_contiguous:
            return path, False
        if out.resolve() == path:
            raise ValidationError(
                f"{path} holds {array.dtype} values and would be converted to float32 over "
                "itself; move it out of the project folder"
            )
        log.info("converting %s (%s) to float32 in %s", path, array.dtype, out)
        _write_float32(array, out)
        return out, True
    if suffix == ".npz":
        try:
            archive = np.load(path)
        except (ValueError, OSError) as exc:
            raise CorruptFileError(f"cannot read {path} as .npz ({exc})") from None
        keys = list(archive.keys())
        key = npz_key or (
            "embeddings" if "embeddings" in keys else keys[0] if len(keys) == 1 else None
        )
        if key is None or key not in keys:
            raise ValidationError(f"{path} holds arrays {keys}; name the embeddings with --npz-key")
        array = archive[key]
        _check_array(array, path)
        _write_float32(array, out, keep_float16=array.dtype == np.float16)
        return out, True
    raise ValidationError(
        f"cannot read embeddings from {path}: use .npy or .npz, or a Parquet / CSV / JSONL table "
        "with a vector column (--embeddings table.parquet --vector-column COL)"
    )


def _check_array(array: np.ndarray, path: Path) -> None:
    if array.ndim != 2:
        raise ValidationError(
            f"embeddings in {path} must be 2-d (n_items x n_features), got shape {array.shape}"
        )
    if array.shape[0] == 0 or array.shape[1] == 0:
        raise ValidationError(f"embeddings in {path} are empty (shape {array.shape})")
    if not (np.issubdtype(array.dtype, np.floating) or np.issubdtype(array.dtype, np.integer)):
        raise ValidationError(f"embeddings in {path} must be numbers, got dtype {array.dtype}")


def _write_float32(array: np.ndarray, out: Path, keep_float16: bool = False) -> None:
    dtype = np.float16 if keep_float16 else np.float32
    tmp = out.with_suffix(".tmp.npy")
    target = np.lib.format.open_memmap(tmp, mode="w+", dtype=dtype, shape=array.shape)
    reserve_disk(tmp)  # a full disk: ENOSPC now, not SIGBUS while writing
    for lo in range(0, array.shape[0], _CONVERT_BLOCK):
        target[lo : lo + _CONVERT_BLOCK] = array[lo : lo + _CONVERT_BLOCK]
    target.flush()
    del target
    os.replace(tmp, out)


def save_vectors(vectors: np.ndarray, out: Path) -> None:
    """Write an in-memory (n, d) array as the project's ``embeddings.npy`` (atomically)."""
    _write_float32(vectors, out)


def link_or_copy(source: Path, out: Path) -> Path:
    """``out`` as a hard link to ``source`` (no bytes copied), or a copy where the two lie on
    different file systems; atomically. The project then owns its embeddings: it can be moved,
    and the shared cache can be emptied, without breaking it."""
    import shutil

    tmp = out.with_name(f"{out.name}.{os.getpid()}.tmp")
    tmp.unlink(missing_ok=True)
    try:
        os.link(source, tmp)
    except OSError:
        shutil.copyfile(source, tmp)
    os.replace(tmp, out)
    return out


def image_files(folder: Path) -> list[Path]:
    """Image files under ``folder`` (recursive), sorted by relative path."""
    files = sorted(
        (p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES),
        key=lambda p: p.relative_to(folder).as_posix(),
    )
    if not files:
        raise ValidationError(
            f"no images under {folder} (looked for {', '.join(sorted(IMAGE_SUFFIXES))})"
        )
    return files
