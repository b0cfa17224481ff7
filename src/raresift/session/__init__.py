"""Labeling sessions: a person's project of finding and labeling the rare items in a collection.

A session lives in one project folder: ``session.db`` (SQLite, WAL; answers, rounds, batches,
config, fingerprints) and the files beside it (``embeddings.npy`` when the input had to be
converted, ``index.faiss`` for SEALS, ``cache/`` for text and image embeddings). Bare ``.npy``
embeddings stay where they are, memory-mapped, and are fingerprinted instead of copied.

API (stable: the CLI and the web app are thin views over it; names are extended, never renamed)
-----------------------------------------------------------------------------------------------
``Session.create(path, *, embeddings=None, texts=None, text_column=None, images=None,
image_column=None, items=None, ids_column=None, vector_column=None, npz_key=None,
concept=None, classes=None, rare_classes=None, seed_labels=None, strategy=None,
candidates=None, budget=100, index=None, index_search=None, seals_k=100, seed=0,
engine="local", image_size=224, model_C=1.0, model_max_iter=1000, progress=None,
encoding=None)`` -> Session; every option checked first (``config.SessionConfig``), and a
    create that fails leaves nothing behind.
``Session.open(path)`` -> Session; checks the database and the files' fingerprints.
``session.answer_options()`` -> ``["1", "0", "skip", "junk", "duplicate"]`` or class names +
    the three special answers.
``session.next(budget=None, strategy=None, candidates=None, progress=None, *, query=None,
like=None)`` -> list[BatchItem]; the stored pending batch when no answer arrived since.
``session.pending()`` -> list[BatchItem] | None (latest batch while some of it is unanswered);
    ``session.batch(round=None)`` any stored batch; ``session.round_info(round=None)``.
    BatchItem: ``id`` (the user's id), ``position``, ``score``, ``reason``, ``round``,
    ``answer`` (in force, or None), ``seq`` (its sequence number); ``.as_dict()``.
``session.answer(item_id, label, *, who="cli", expected_seq="any")`` -> record dict with
    ``id, answer, previous, who, at, round, seq, source``. ``seq`` increases with every answer
    of the session; pass the ``seq`` you saw (None if the item had no answer) as
    ``expected_seq`` to get :class:`ConflictError` if another writer answered since.
``session.answer_seen(item_id, label, *, who, seen)`` -> the record with ``replaced`` (what
    another writer's answer given after ``seen`` it replaced), all in one transaction.
``session.answer_many(rows, *, partial=False, who="cli", ...)`` -> ``{"written",
    "unchanged", "problems"}``; :class:`AnswerError` (with ``.problems``) unless partial.
``session.undo(last=1)`` -> the undone records, newest first; ``session.undo_source(source)``
    undoes every answer recorded with ``source`` (one Label Studio annotation's).
``session.answers()`` -> every answer in force.
``session.status(estimate=True)`` -> JSON-serialisable dict: ``labels_spent``, ``answers``,
    ``positives_found``, ``curve`` (per round), ``estimates`` (positives left, ``low``/``high``
    95 % interval), ``stopping`` (rules with ``verdict``), ``pending``, ``version``.
``session.status_plot(path)``, ``session.export(fmt, out=None, *, items="batch",
    history=False)`` (csv, jsonl, label-studio), ``session.import_file(path, partial=False)``.
``session.item(item_id)`` -> ``{id, text, image, meta, answer, seq, history}``;
``session.neighbors(item_id, k=8, labeled_only=True)`` -> ``[{id, similarity, answer}]``.
``session.iid(user_id)`` / ``session.uid(iid)`` map the user's ids to internal row ids.

Layers: :class:`~raresift.session.project.Project` (store, validated config, id map, answer
vocabulary; all SQL in ``store.py``) is the floor that rounds, status and exchange read;
``Session`` is a thin facade over it (``tests/test_layers.py`` checks the directions).

Safe from several processes and threads at once: every write is one SQLite transaction and a
Session object serialises its own connection.

Example
-------
>>> import tempfile, numpy as np
>>> folder = tempfile.mkdtemp()
>>> np.save(f"{folder}/emb.npy", np.random.default_rng(1).normal(size=(200, 4)).astype("f4"))
>>> s = Session.create(f"{folder}/p", embeddings=f"{folder}/emb.npy", progress=False)
>>> first = s.next(budget=3)
>>> first[0].reason
'random: no answers yet, so no model can rank items; score = chance of being drawn'
"""

from raresift.session.errors import (
    AnswerError,
    ConflictError,
    FingerprintError,
    SchemaError,
    SessionCorruptError,
    SessionError,
)
from raresift.session.session import BatchItem, Session

__all__ = [
    "AnswerError",
    "BatchItem",
    "ConflictError",
    "FingerprintError",
    "SchemaError",
    "Session",
    "SessionCorruptError",
    "SessionError",
]
