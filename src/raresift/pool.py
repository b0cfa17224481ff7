"""The items to choose from (:class:`Pool`) and the answers so far (:class:`Labels`).

Items are addressed by stable int64 ids, never by positions: a pool of 10^8 memmapped
embeddings and one of 2,000 in-memory vectors behave the same.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np

from raresift.errors import BudgetError, UnknownIdError, ValidationError
from raresift.idsets import is_run

_FINITE_CHUNK = 1 << 20  # rows checked at a time, so memmaps are never loaded whole


_EXACT_FLOAT_INTEGERS = 2**53  # beyond this a float64 cannot hold every whole number
_INT64_MAX = np.iinfo(np.int64).max


def as_ids(ids: Any, name: str = "ids") -> np.ndarray:
    """Return ``ids`` as a 1-d int64 array, raising :class:`ValidationError` otherwise.

    Ids are stored exactly or refused: unsigned ids above 2^63 - 1 (they would wrap to negative
    numbers) and float ids above 2^53 (floats that large are already rounded) raise.

    >>> as_ids([3, 1]).dtype
    dtype('int64')
    """
    arr = np.asarray(ids)
    if arr.ndim == 0:
        arr = arr.reshape(1)
    if arr.ndim != 1:
        raise ValidationError(
            f"{name} must be a 1-d sequence of integer ids, got shape {arr.shape}"
        )
    if not arr.size:
        return arr.astype(np.int64)
    if np.issubdtype(arr.dtype, np.unsignedinteger):
        if arr.max() > _INT64_MAX:
            raise ValidationError(
                f"{name} must fit in int64, but {int(arr.max())} exceeds 2^63 - 1; map such ids "
                "to smaller integers (keep the mapping yourself)"
            )
    elif not np.issubdtype(arr.dtype, np.integer):
        if not np.issubdtype(arr.dtype, np.floating):
            raise ValidationError(f"{name} must be integers, got dtype {arr.dtype}")
        if not (np.all(np.isfinite(arr)) and np.all(arr == np.round(arr))):
            raise ValidationError(
                f"{name} must be integers, got dtype {arr.dtype} with fractional or "
                "non-finite values"
            )
        if np.abs(arr).max() > _EXACT_FLOAT_INTEGERS:
            raise ValidationError(
                f"{name} are floats up to {float(np.abs(arr).max()):.17g}, beyond 2^53, where a "
                "float cannot hold every integer; pass the ids as integers (int64)"
            )
    return arr.astype(np.int64, copy=False)


def check_matrix(
    x: Any, name: str, dim: int | None = None, allow_empty: bool = False, finite: bool = True
) -> np.ndarray:
    """Validate a 2-d array of finite floats (chunked, so memmaps stay on disk).

    Returns the array itself when it is already a float ndarray or memmap, else a float32 copy.
    ``finite=False`` skips the O(n d) scan for NaN / infinity (the caller has done it).
    """
    if isinstance(x, np.ndarray):
        arr = x
    else:
        try:
            arr = np.asarray(x)
        except ValueError:  # numpy refuses ragged nested sequences
            raise ValidationError(
                f"{name} has rows of different lengths; every row needs the same number of features"
            ) from None
    if arr.dtype == object or not (
        np.issubdtype(arr.dtype, np.floating) or np.issubdtype(arr.dtype, np.integer)
    ):
        raise ValidationError(f"{name} must be numeric, got dtype {arr.dtype}")
    if arr.ndim != 2:
        raise ValidationError(
            f"{name} must be 2-d (n_items x n_features), got {arr.ndim}-d with shape {arr.shape}"
        )
    if not allow_empty and arr.shape[0] == 0:
        raise ValidationError(f"{name} is empty: it needs at least one row")
    if arr.shape[1] == 0 and (arr.shape[0] or not allow_empty):
        raise ValidationError(f"{name} has 0 features per row; it needs at least one column")
    if dim is not None and arr.shape[1] != dim:
        raise ValidationError(f"{name} has {arr.shape[1]} features per row, expected {dim}")
    if not np.issubdtype(arr.dtype, np.floating):
        arr = arr.astype(np.float32)
    if finite:
        check_finite(arr, name)
    return arr


def check_finite(arr: np.ndarray, name: str) -> None:
    """Raise :class:`ValidationError` naming the first row with a NaN or infinity."""
    for start in range(0, arr.shape[0], _FINITE_CHUNK):
        block = np.asarray(arr[start : start + _FINITE_CHUNK])
        bad = ~np.isfinite(block)
        if bad.any():
            row = start + int(np.argwhere(bad)[0][0])
            raise ValidationError(
                f"{name} contains NaN or infinite values (first at row {row}); "
                "clean or impute them before building a pool"
            )


def check_budget(budget: Any, n_eligible: int, what: str = "eligible items") -> int:
    """Return ``budget`` as an int, or raise :class:`BudgetError` if it cannot be met.

    >>> check_budget(5, 10)
    5
    """
    if isinstance(budget, bool) or not isinstance(budget, (int, np.integer)):
        raise BudgetError(f"budget must be a positive integer, got {budget!r}")
    budget = int(budget)
    if budget <= 0:
        raise BudgetError(f"budget must be a positive integer, got {budget}")
    if budget > n_eligible:
        raise BudgetError(
            f"budget {budget} exceeds the {n_eligible} {what}; "
            "lower the budget or widen the candidate pool"
        )
    return budget


FINGERPRINT_ROWS = 64  # rows hashed by :func:`fingerprint`, evenly spaced over the pool


def fingerprint(
    ids: Any, embeddings: Any, sample: int = FINGERPRINT_ROWS, run: bool | None = None
) -> dict[str, Any]:
    """A short description of a pool that changes when its ids or (sampled) vectors do: the size,
    the dimension, the ids (:func:`ids_digest`) and a hash of ``sample`` evenly spaced rows (as
    float32). ``run``: whether the ids are known to be consecutive (else they are looked at).

    Files built from a pool (a Faiss index, a session's cache) store it and compare it with the
    pool they are used with, so one built over other vectors, or over part of the pool, is
    refused instead of silently answering for the wrong items.

    >>> a = fingerprint(np.arange(3), np.eye(3))
    >>> a == fingerprint(np.arange(3), np.eye(3, dtype=np.float32)), a["n"], a["dim"]
    (True, 3, 3)
    >>> a == fingerprint(np.arange(3), 2 * np.eye(3))
    False
    """
    ids = np.ascontiguousarray(ids, dtype=np.int64)
    n = int(ids.size)
    positions = np.unique(np.linspace(0, max(n - 1, 0), min(n, sample)).astype(np.int64))
    rows = np.ascontiguousarray(np.asarray(embeddings[positions]), dtype=np.float32)
    return {
        "n": n,
        "dim": int(embeddings.shape[1]),
        "ids": ids_digest(ids, is_run(ids) if run is None else run),
        "rows": hashlib.blake2b(rows.tobytes(), digest_size=16).hexdigest(),
    }


def ids_digest(ids: np.ndarray, run: bool) -> str:
    """The ids' part of a :func:`fingerprint`: consecutive ids (``run``: a session's row
    numbers) by their first, ``"run:FIRST"``, with no pass over them (10^8 ids hash in about
    1.5 s); any other ids by a blake2b of their int64 bytes, the form every id had before.

    >>> ids_digest(np.arange(5, 9), True), len(ids_digest(np.array([3, 1]), False))
    ('run:5', 32)
    """
    if run and ids.size:
        return f"run:{int(ids[0])}"
    return hashlib.blake2b(np.ascontiguousarray(ids, dtype=np.int64), digest_size=16).hexdigest()


def _same_ids(expected: str, actual: str, n: int) -> bool:
    """Whether two :func:`ids_digest` of ``n`` ids name the same ids, one of them perhaps of
    the earlier form (a file written before consecutive ids were named by their first)."""
    if expected == actual:
        return True
    run, other = (expected, actual) if expected.startswith("run:") else (actual, expected)
    if not run.startswith("run:") or other.startswith("run:"):
        return False
    first = int(run[4:])
    return ids_digest(np.arange(first, first + n, dtype=np.int64), False) == other


def fingerprint_mismatch(expected: dict[str, Any], actual: dict[str, Any]) -> str | None:
    """What differs between two :func:`fingerprint` results, in words; None if nothing.

    >>> fingerprint_mismatch(fingerprint([1, 2], np.eye(2)), fingerprint([1, 3], np.eye(2)))
    'the same number of items with other ids'
    """
    if expected["dim"] != actual["dim"]:
        return f"{expected['dim']}-d vectors, not {actual['dim']}-d"
    if expected["n"] != actual["n"]:
        return f"{expected['n']} items, not {actual['n']}"
    if not _same_ids(expected["ids"], actual["ids"], actual["n"]):
        return "the same number of items with other ids"
    if expected["rows"] != actual["rows"]:
        return "the same ids with other vectors"
    return None


ROW_CACHE = 1 << 18  # rows of a memory-mapped pool kept in RAM once looked up by id


class RowCache:
    """Rows of a matrix read by position, kept once read (up to ``capacity`` rows; past that,
    rows are read and not kept). Reads are sorted by position, the file's order.

    >>> x = np.arange(12.0).reshape(6, 2)
    >>> cache = RowCache(capacity=3)
    >>> cache.take(x, np.array([4, 1, 4])).tolist(), cache.take(x, np.array([1, 5])).tolist()
    ([[8.0, 9.0], [2.0, 3.0], [8.0, 9.0]], [[2.0, 3.0], [10.0, 11.0]])
    >>> len(cache), cache.take(x, np.array([0])).tolist(), len(cache)
    (3, [[0.0, 1.0]], 3)
    """

    def __init__(self, capacity: int):
        self.capacity = int(capacity)
        self._keys = np.empty(0, dtype=np.int64)  # cached positions, ascending
        self._slots = np.empty(0, dtype=np.int64)  # their rows in self._rows
        self._rows: np.ndarray | None = None
        self._lock = threading.Lock()

    def __getstate__(self) -> dict:  # a pickled pool (a worker's copy) starts with none kept
        return {"capacity": self.capacity}

    def __setstate__(self, state: dict) -> None:
        self.__init__(state["capacity"])

    def __len__(self) -> int:
        return int(self._keys.size)

    def take(self, matrix: np.ndarray, positions: np.ndarray) -> np.ndarray:
        with self._lock:
            if self._rows is None:
                self._rows = np.empty((self.capacity, matrix.shape[1]), dtype=matrix.dtype)
            out = np.empty((positions.size, matrix.shape[1]), dtype=matrix.dtype)
            where = np.searchsorted(self._keys, positions)
            hit = where < self._keys.size
            hit[hit] = self._keys[where[hit]] == positions[hit]
            out[hit] = self._rows[self._slots[where[hit]]]
            if hit.all():
                return out
            wanted, back = np.unique(positions[~hit], return_inverse=True)
            rows = np.asarray(matrix[wanted])
            out[~hit] = rows[back]
            room = min(wanted.size, self.capacity - self._keys.size)
            if room > 0:
                slots = np.arange(self._keys.size, self._keys.size + room)
                self._rows[slots] = rows[:room]
                keys = np.concatenate([self._keys, wanted[:room]])
                order = np.argsort(keys, kind="stable")
                self._keys = keys[order]
                self._slots = np.concatenate([self._slots, slots])[order]
            return out


class IdIndex:
    """Maps stable ids to row positions (unique ids required; contiguous ids cost nothing).

    >>> IdIndex([50, 10, 40]).positions([40, 50]).tolist()
    [2, 0]
    """

    def __init__(self, ids: Any, name: str = "ids", run: bool | None = None):
        self.ids = as_ids(ids, name)
        self._offset: int | None = None
        if is_run(self.ids) if run is None else run:  # run: the caller made them consecutive
            self._offset = int(self.ids[0])  # contiguous ids: position = id - offset
            self._sorted_ids = self._order = None
        else:
            self._order = np.argsort(self.ids, kind="stable")
            self._sorted_ids = self.ids[self._order]
            dup = np.flatnonzero(self._sorted_ids[1:] == self._sorted_ids[:-1])
            if dup.size:
                raise ValidationError(
                    f"{name} must be unique; id {int(self._sorted_ids[dup[0]])} appears more "
                    "than once"
                )

    def __len__(self) -> int:
        return self.ids.size

    @property
    def is_run(self) -> bool:
        """Whether the ids are consecutive and ascending (positions are ids minus the first)."""
        return self._offset is not None

    def contains(self, ids: Any) -> np.ndarray:
        """Boolean mask: which of ``ids`` are indexed."""
        ids = as_ids(ids)
        if self._offset is not None:
            return (ids >= self._offset) & (ids < self._offset + len(self))
        if not len(self):
            return np.zeros(ids.shape, dtype=bool)
        pos = np.searchsorted(self._sorted_ids, ids)
        pos = np.minimum(pos, len(self) - 1)
        return self._sorted_ids[pos] == ids

    def positions(self, ids: Any, where: str = "the pool") -> np.ndarray:
        """Row positions of ``ids``; raises :class:`UnknownIdError` for ids not indexed."""
        ids = as_ids(ids)
        known = self.contains(ids)
        if not known.all():
            missing = ids[~known]
            raise UnknownIdError(
                f"{missing.size} id(s) are not in {where}, e.g. {missing[:5].tolist()}; "
                "use ids from Pool.ids"
            )
        if self._offset is not None:
            return ids - self._offset
        return self._order[np.searchsorted(self._sorted_ids, ids)]


class Pool:
    """Items addressed by stable int64 ids, with their embeddings.

    Parameters
    ----------
    embeddings : array-like or np.memmap of shape (n, d)
        One row per item. Memmaps are validated in chunks and never copied.
    ids : array-like of int, optional
        Stable ids, unique; defaults to ``0 .. n-1``.
    items : callable, optional
        ``items(ids) -> sequence`` returning raw inputs (images, texts) for models that need them.
    values_checked : bool
        The caller has already checked that every value is finite (a labeling session checks
        its embeddings file once and fingerprints it): skip the O(n d) scan.

    Examples
    --------
    >>> import numpy as np
    >>> pool = Pool(np.eye(3, dtype=np.float32), ids=[10, 20, 30])
    >>> pool.positions([30, 10]).tolist()
    [2, 0]
    >>> pool.embeddings_of([20]).shape
    (1, 3)
    """

    def __init__(
        self,
        embeddings: Any,
        ids: Any = None,
        items: Callable[[np.ndarray], Any] | None = None,
        values_checked: bool = False,
    ):
        self.embeddings = check_matrix(embeddings, "embeddings", finite=not values_checked)
        n = self.embeddings.shape[0]
        if ids is None:  # row numbers: consecutive by construction, no pass to find it out
            self._index = IdIndex(np.arange(n, dtype=np.int64), run=True)
        else:
            self._index = IdIndex(ids)
        self.ids = self._index.ids
        if self.ids.shape[0] != n:
            raise ValidationError(
                f"ids has {self.ids.shape[0]} entries but embeddings has {n} rows"
            )
        self._items = items
        self._rows = RowCache(ROW_CACHE)  # filled only for a memory-mapped pool

    def __len__(self) -> int:
        return self.embeddings.shape[0]

    def __repr__(self) -> str:
        return f"Pool(n={len(self)}, dim={self.dim})"

    @property
    def dim(self) -> int:
        """Number of embedding features."""
        return self.embeddings.shape[1]

    def contains(self, ids: Any) -> np.ndarray:
        """Boolean mask: which of ``ids`` are in the pool."""
        return self._index.contains(ids)

    def positions(self, ids: Any) -> np.ndarray:
        """Row positions of ``ids``; raises :class:`UnknownIdError` for ids not in the pool."""
        return self._index.positions(ids)

    def fingerprint(self) -> dict[str, Any]:
        """This pool's :func:`fingerprint` (ids and a sample of rows)."""
        return fingerprint(self.ids, self.embeddings, run=self._index.is_run)

    def embeddings_of(self, ids: Any) -> np.ndarray:
        """Embeddings of ``ids`` as an in-memory float array, rows in the order of ``ids``.

        Rows of a memory-mapped pool looked up a few at a time (a SEALS pool's members, read
        every round) are kept in RAM once read (:class:`RowCache`): each would otherwise cost
        a page of the file, a disk read whenever the page cache lost it."""
        positions = self.positions(ids)
        if isinstance(self.embeddings, np.memmap) and positions.size <= ROW_CACHE // 4:
            return self._rows.take(self.embeddings, positions)
        return np.asarray(self.embeddings[positions])

    def row_blocks(self, ids: Any, size: int):
        """Yield ``(start, stop, rows, take)`` covering ``ids`` in order, ``size`` pool rows at a
        time: the embeddings of ``ids[start:stop]`` are ``rows`` (``take`` None) or
        ``rows[take]``.

        When ``ids`` are ascending and cover at least half of the rows they span (all of U
        but the labeled items, say), ``rows`` are contiguous slices of the embeddings, read in
        place with no gathering copy (callers then process the few extra rows and keep
        ``take``); otherwise they are gathered in blocks of ``size``.

        >>> pool = Pool(np.arange(12, dtype=np.float32).reshape(6, 2))
        >>> blocks = pool.row_blocks([0, 1, 3, 4], 4)
        >>> [(a, b, len(r), t if t is None else t.tolist()) for a, b, r, t in blocks]
        [(0, 3, 4, [0, 1, 3]), (3, 4, 1, None)]
        """
        pos = self.positions(ids)
        n = pos.size
        if n > 1 and pos[-1] - pos[0] < 2 * n and bool(np.all(pos[1:] > pos[:-1])):
            start = 0
            while start < n:
                lo = int(pos[start])
                hi = min(lo + size, int(pos[-1]) + 1)
                stop = start + int(np.searchsorted(pos[start:], hi))
                take = pos[start:stop] - lo
                yield start, stop, self.embeddings[lo:hi], None if take.size == hi - lo else take
                start = stop
            return
        for start in range(0, n, size):
            stop = min(n, start + size)
            yield start, stop, np.asarray(self.embeddings[pos[start:stop]]), None

    def items(self, ids: Any) -> Any:
        """Raw inputs of ``ids`` through the accessor given at construction."""
        if self._items is None:
            raise ValidationError("this pool has no raw items; pass items=callable to Pool()")
        return self._items(as_ids(ids))


class Labels:
    """Sparse mapping from item id to an integer label; an unlabeled item is simply absent.

    Examples
    --------
    >>> labels = Labels()
    >>> labels.add([4, 7], [1, 0])
    >>> len(labels), labels[7], 5 in labels
    (2, 0, False)
    >>> labels.mask([7, 5]).tolist()
    [True, False]

    :attr:`version` counts the changes (new answers and relabelings), so a model fitted at one
    version is stale at any other, even when the number of labels is the same:

    >>> before = labels.version
    >>> labels.add([7], [1], overwrite=True)
    >>> len(labels), labels.version - before
    (2, 1)
    """

    def __init__(self, ids: Iterable[int] = (), labels: Iterable[int] = ()):
        self._map: dict[int, int] = {}
        self._ids_cache: np.ndarray | None = None
        self.version = 0
        ids = as_ids(list(ids))
        if ids.size:
            self.add(ids, labels)

    @classmethod
    def coerce(cls, labels: Any) -> Labels:
        """A copy of ``labels`` given as :class:`Labels`, a ``{id: label}`` dict or an
        ``(ids, labels)`` pair; anything else raises :class:`ValidationError`.

        >>> Labels.coerce({3: 1, 5: 0}).of([5, 3]).tolist()
        [0, 1]
        >>> len(Labels.coerce(([1, 2], [0, 1])))
        2
        """
        if isinstance(labels, Labels):
            return labels.copy()
        if isinstance(labels, dict):
            return cls(list(labels.keys()), list(labels.values()))
        if isinstance(labels, tuple) and len(labels) == 2:
            return cls(as_ids(labels[0]), labels[1])
        raise ValidationError(
            f"labels must be a Labels, a {{id: label}} dict or an (ids, labels) pair, got "
            f"{type(labels).__name__}; e.g. Labels(ids, y)"
        )

    def add(self, ids: Any, labels: Any, overwrite: bool = False) -> None:
        """Record answers. Relabeling an item with a different label needs ``overwrite=True``."""
        ids = as_ids(ids)
        values = np.asarray(labels)
        if values.ndim == 0:
            values = np.full(ids.shape, values)
        if values.ndim != 1:
            raise ValidationError(
                f"labels must be 1-d (one label per id), got shape {values.shape}; "
                "flatten them, e.g. y.ravel()"
            )
        if values.shape != ids.shape:
            raise ValidationError(
                f"got {ids.size} ids but {values.size} labels; pass one label per id"
            )
        if values.size and not np.issubdtype(values.dtype, np.integer):
            if np.issubdtype(values.dtype, np.bool_):
                values = values.astype(np.int64)
            elif np.issubdtype(values.dtype, np.floating) and np.all(values == np.round(values)):
                values = values.astype(np.int64)
            else:
                raise ValidationError(
                    f"labels must be integer class indices (or 0/1), got dtype {values.dtype}"
                )
        if np.unique(ids).size != ids.size:
            raise ValidationError("ids passed to Labels.add contain duplicates")
        if (values < 0).any():
            raise ValidationError("labels must be non-negative class indices")
        pairs = list(zip(ids.tolist(), values.tolist(), strict=True))
        changed = [(i, y, self._map.get(i)) for i, y in pairs if self._map.get(i) != y]
        relabeled = [(i, y, old) for i, y, old in changed if old is not None]
        if relabeled and not overwrite:
            i, y, old = relabeled[0]
            raise ValidationError(
                f"item {i} is already labeled {old}, not {y}; pass overwrite=True to relabel"
            )
        self._map.update(pairs)
        self._ids_cache = None
        if changed:
            self.version += 1

    def __len__(self) -> int:
        return len(self._map)

    def __contains__(self, item_id: int) -> bool:
        return int(item_id) in self._map

    def __getitem__(self, item_id: int) -> int:
        try:
            return self._map[int(item_id)]
        except KeyError:
            raise UnknownIdError(f"item {item_id} has no label") from None

    def __repr__(self) -> str:
        return f"Labels(n={len(self)})"

    @property
    def ids(self) -> np.ndarray:
        """Labeled ids in insertion order (int64)."""
        if self._ids_cache is None:
            self._ids_cache = np.fromiter(self._map.keys(), dtype=np.int64, count=len(self._map))
        return self._ids_cache

    @property
    def values(self) -> np.ndarray:
        """Labels aligned with :attr:`ids`."""
        return np.fromiter(self._map.values(), dtype=np.int64, count=len(self._map))

    def of(self, ids: Any) -> np.ndarray:
        """Labels of ``ids``; raises :class:`UnknownIdError` if any is unlabeled."""
        return np.array([self[i] for i in as_ids(ids).tolist()], dtype=np.int64)

    def mask(self, ids: Any) -> np.ndarray:
        """Boolean mask: which of ``ids`` are labeled."""
        return np.isin(as_ids(ids), self.ids)

    def copy(self) -> Labels:
        out = Labels()
        out._map = dict(self._map)
        out.version = self.version
        return out
