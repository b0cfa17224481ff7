"""The :class:`Session`: a person's labeling project in one folder, as the CLI and the web app
use it. A thin facade over :class:`~raresift.session.project.Project` (the data: store,
config, ids, answers) that adds what combines the floor's parts: creating a project
(:mod:`raresift.session.create`), choosing the next batch (:mod:`raresift.session.rounds`), the
status (:mod:`raresift.session.status`) and answers in and out
(:mod:`raresift.session.exchange`)."""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from raresift.errors import ConfigError, ValidationError
from raresift.session.audit import audit_options, audit_picks
from raresift.session.config import CANDIDATE_NAMES, check_session_strategy
from raresift.session.create import create_session
from raresift.session.errors import SessionError
from raresift.session.probe import probe_in_background, store_round_knowledge
from raresift.session.project import BatchItem, Project, _progress
from raresift.session.rounds import compute_round

__all__ = ["BatchItem", "Session"]


class Session(Project):
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

    # ================================================================== creating / opening
    @classmethod
    def open(cls, path: str | os.PathLike, full: bool = False) -> Session:
        """Open the session in folder ``path`` (:meth:`Project.open`'s checks; ``full=True``
        hashes every file whole, as ``raresift verify`` does); a session created with
        ``engine="ray"`` gets the Ray engine (the one place that reaches
        :mod:`raresift.distributed`, and only on that path)."""
        session = super().open(path, full=full)
        if session.config["engine"] == "ray":
            from raresift.distributed.engine import RayEngine

            session.engine = RayEngine(session.config.get("address"))
        return session

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
        image_size: int | None = None,
        model_C: float = 1.0,
        model_max_iter: int = 1000,
        progress: bool | None = None,
        encoding: str | None = None,
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
        {"representation": "gradient"}}``). ``encoding`` is that of text tables that are neither
        UTF-8 nor marked with a byte-order mark.

        Every option is checked first (:class:`~raresift.session.config.SessionConfig`); a
        create that fails leaves nothing behind (the folder, or what it added to an existing
        folder, is removed).
        """
        if engine == "ray":
            from raresift.distributed.cluster import import_ray

            import_ray()  # not installed: say so now, not at the first round
        return create_session(
            cls,
            path,
            embeddings=embeddings,
            texts=texts,
            text_column=text_column,
            images=images,
            image_column=image_column,
            items=items,
            ids_column=ids_column,
            vector_column=vector_column,
            npz_key=npz_key,
            concept=concept,
            classes=classes,
            rare_classes=rare_classes,
            seed_labels=seed_labels,
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
            progress=progress,
            encoding=encoding,
        )

    def neighbors(self, item_id: Any, k: int = 8, labeled_only: bool = True) -> list[dict]:
        """The ``k`` items most similar to ``item_id`` (cosine of embeddings, exact), among the
        answered items by default; each with id, similarity and answer. The search is
        :func:`raresift.index.exact_search`, the one exact k-NN path."""
        from raresift.index import exact_search, normalize_rows
        from raresift.params import positive_int

        k = positive_int(k, "k")
        iid = self.iid(item_id)
        pool = self.pool()
        target = normalize_rows(pool.embeddings_of([iid]))
        with self.store.reading() as db:
            current = db.current()
        if labeled_only:
            ref = np.asarray(sorted(i for i in current if i != iid), dtype=np.int64)
            if ref.size == 0:
                return []
            positions, sims = exact_search(pool.embeddings_of(ref), target, min(k, ref.size))
            ids, sims = ref[positions[0]], sims[0]
        else:
            positions, sims = exact_search(pool.embeddings, target, min(k + 1, self.n_items))
            keep = positions[0] != iid
            ids, sims = positions[0][keep][:k].astype(np.int64), sims[0][keep][:k]
        uids = self.uids(ids.tolist())
        return [
            {"id": u, "similarity": float(s), "answer": current.get(int(i), (None,))[0]}
            for u, s, i in zip(uids, sims, ids, strict=True)
        ]

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
        check_session_strategy(strat, self.config.get("strategy_params", {}).get(strat), self.kind)
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
        replace: bool = False,
        audit: int | None = None,
    ) -> list[BatchItem]:
        """The batch to label now: the stored pending batch when no answer arrived since it
        was chosen (and no different option is asked for), else a new one (model fitted on the
        answers in force, items selected, batch stored in one transaction).

        ``query`` (a text) or ``like`` (example ids) aim the batch at the most similar items
        (the examples themselves excluded). While the pending batch still has unanswered items
        an aimed batch is refused (SessionError) unless ``replace=True`` sets them aside.
        ``audit``: a stratified random sample of that many unlabeled items instead (see
        :mod:`raresift.session.audit`); asked again while it is not fully answered, the same.
        """
        explicit = any(x is not None for x in (budget, strategy, candidates, query, like, audit))
        if audit is not None:
            options = audit_options(self, audit, budget, strategy, candidates, query, like)
        else:
            options = self._options(budget, strategy, candidates, query, like)
        with self.store.reading() as db:
            version = db.version()
            last = db.last_round()
            current = db.current()
        unanswered = self.n_items - len(current)
        if budget is None and 0 < unanswered < options["budget"]:  # the default, not the user's
            options["budget"] = unanswered
        stored_options = None if last is None else _without_design(last["options"])
        if (
            last is not None
            and (last["version"] == version or (audit is not None and self.pending()))
            and (not explicit or stored_options == options)
        ):
            return self.batch(int(last["round"]))
        for example in options["like"] or ():  # an unknown example: the first thing to say
            self.iid(example)
        if (options["query"] or options["like"]) and last is not None and not replace:
            pending = self.batch(int(last["round"]))
            left = sum(b.answer is None for b in pending)
            if left:
                raise SessionError(
                    f"round {last['round']}'s batch still has {left} unanswered item(s) of "
                    f"{len(pending)}; answer them first, or pass --replace (replace=True) to "
                    "set them aside for a batch aimed by --query/--like"
                )
        same = last is not None and last["version"] == version
        round_index = 1 if last is None else int(last["round"]) + (0 if same else 1)
        if unanswered == 0:
            raise ValidationError("every item is answered: there is nothing left to label")
        if options.get("audit"):  # a stratified random sample, not chosen by the strategy
            picks = audit_picks(self, current, round_index, options["budget"])
        else:
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
                db.put_round(
                    stored,
                    version,
                    picks,
                    options if picks.design is None else {**options, "design": picks.design},
                    n_labeled=len(current),
                    n_positive=n_positive,
                )
                store_round_knowledge(db, self, picks)
        probe_in_background(self)
        return self.batch(stored)

    # ================================================================== views
    def status(self, estimate: bool = True) -> dict[str, Any]:
        """Labels spent, positives per round, an estimate of the positives left (with a 95 %
        interval) and the stopping rules' verdicts, as a JSON-serialisable dict."""
        from raresift.session.status import session_status

        return session_status(self, estimate=estimate)

    def status_plot(self, path: str | os.PathLike, phone: bool = False) -> Path:
        """Write the positives-found curve (PNG) to ``path``; ``phone``: drawn small and sharp
        (3.6 x 2.8 inches at 200 dpi) so its text reads at a phone's width."""
        from raresift.session.status import plot_status

        if phone:
            return plot_status(self, Path(path), size=(3.6, 2.8), dpi=200)
        return plot_status(self, Path(path))

    def export(
        self,
        fmt: str,
        out: str | os.PathLike | None = None,
        *,
        items: str = "batch",
        history: bool = False,
        image_root: str | os.PathLike | None = None,
    ) -> str | Path:
        """Export answers as ``csv`` / ``jsonl``, or Label Studio tasks (``label-studio``) for
        the pending batch (``items="batch"``), every answered item (``"answered"``) or every
        item (``"all"``), answers as annotations, image URLs relative to ``image_root``
        (:func:`raresift.session.exchange.label_studio_tasks`). Returns the text when ``out``
        is None, else writes it (atomically) and returns the path."""
        from raresift.session.exchange import export

        return export(self, fmt, out, items=items, history=history, image_root=image_root)

    def import_file(
        self,
        path: str | os.PathLike,
        partial: bool = False,
        *,
        who: str | None = None,
        source: str = "import",
        encoding: str | None = None,
    ) -> dict:
        """Record the answers of a CSV / JSONL answers file or a Label Studio JSON export, in
        one transaction (all or nothing unless ``partial``); ``encoding`` when the file is
        neither UTF-8 nor marked with a byte-order mark."""
        from raresift.session.exchange import import_answers

        return import_answers(
            self, Path(path), partial=partial, who=who, source=source, encoding=encoding
        )


def _without_design(stored: str) -> dict[str, Any]:
    """A round's stored options less an audit's design (which the caller never gives)."""
    options = json.loads(stored)
    options.pop("design", None)
    return options
