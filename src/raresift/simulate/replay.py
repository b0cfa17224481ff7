"""Replayed labeling sessions: what a person gets from ``raresift init`` / ``next`` / ``label``.

A replay study drives :class:`~raresift.session.Session` exactly as the command line does
(``Session.create`` as ``raresift init`` calls it, then ``Session.next`` and
``Session.answer_many`` as ``raresift next`` and ``raresift label`` do), answering every batch
from the true labels. Nothing of the session is re-implemented here: the model, the
representation, the candidates, the cold start, the reasons and the defaults are the session's
own, so the figures are what a user meets.

Config (TOML, ``kind = "replay"``)::

    kind = "replay"
    name = "replay-sessions"
    seeds = [0, 1, 2, 3, 4]        # each seed draws its own pool and seeds the session
    budget = 50                    # labels per batch (raresift init --budget)
    labels = 400                   # labels bought after the seed answers
    checkpoints = [200, 400]       # where the report compares (multiples of budget)
    seed_examples = [0, 3]         # seed answers: this many items of each rare class
    jobs = 2                       # worker processes (default: all cores)

    [[datasets]]
    label = "fashion-pca64"        # name in the report
    source = "fashion-mnist"       # raresift.simulate.replay_data.SOURCES
    representation = "pca64"       # source options: representation, per_class, image_size
    common = 300                   # items of each common class (or a table: class -> items)
    rare = { Dress = 30, Bag = 30 }  # rare classes (named at init) and their items

    [[strategies]]
    label = "default"              # no strategy: the session's default
    [[strategies]]
    label = "flqmi-embedding"
    strategy = "flqmi"             # raresift init --strategy
    params = { representation = "embedding" }   # Session.create(strategy_params=...)

Every (data set, seed examples, strategy, seed) is a job; its rounds are logged one JSON line
each to ``OUT/runs/<dataset>__seeds<k>__<strategy>__seed<s>.jsonl`` (the picks included), a
killed study resumes (the session is driven again through the logged rounds, which must give
the same picks, then goes on), ``OUT/results.csv`` is the tidy table and ``OUT/report.md`` the
report (:func:`write_replay_report`).
"""

from __future__ import annotations

import csv
import json
import logging
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from raresift.errors import ConfigError, StudyFailedError, ValidationError
from raresift.simulate.config import check_known_keys
from raresift.simulate.joblog import append_log, log_path, read_log, write_log
from raresift.simulate.runner import run_in_workers

logger = logging.getLogger("raresift")

TOP_KEYS = {"kind", "name", "description", "seeds", "budget", "labels", "checkpoints",
            "seed_examples", "jobs", "datasets", "strategies"}  # fmt: skip
DATASET_KEYS = {"label", "source", "representation", "per_class", "image_size", "common", "rare"}
STRATEGY_KEYS = {"label", "strategy", "params"}


@dataclass
class ReplayConfig:
    """A validated replay study (:meth:`from_dict`)."""

    name: str
    seeds: list[int]
    budget: int
    labels: int
    checkpoints: list[int]
    seed_examples: list[int]
    datasets: list[dict[str, Any]]
    strategies: list[dict[str, Any]]
    description: str = ""
    jobs: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def rounds(self) -> int:
        return self.labels // self.budget

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> ReplayConfig:
        if not isinstance(raw, dict) or raw.get("kind") != "replay":
            raise ConfigError('a replay study config needs kind = "replay"')
        check_known_keys(raw, TOP_KEYS, "the replay study")
        for key in ("seeds", "budget", "labels", "datasets", "strategies"):
            if key not in raw:
                raise ConfigError(f"the replay study config lacks `{key}`")
        seeds = raw["seeds"]
        if (
            not isinstance(seeds, list)
            or not seeds
            or len(set(seeds)) != len(seeds)
            or not all(isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in seeds)
        ):
            raise ConfigError(
                f"`seeds` must be a non-empty list of distinct integers >= 0: {seeds!r}"
            )
        budget, labels = _positive(raw["budget"], "budget"), _positive(raw["labels"], "labels")
        if labels % budget:
            raise ConfigError(f"`labels` ({labels}) must be a multiple of `budget` ({budget})")
        checkpoints = raw.get("checkpoints", [labels])
        if not isinstance(checkpoints, list) or not all(
            isinstance(c, int) and 0 < c <= labels and c % budget == 0 for c in checkpoints
        ):
            raise ConfigError(
                f"`checkpoints` must list multiples of budget up to labels, got {checkpoints!r}"
            )
        examples = raw.get("seed_examples", [0])
        if (
            not isinstance(examples, list)
            or not examples
            or not all(isinstance(k, int) and k >= 0 for k in examples)
        ):
            raise ConfigError(f"`seed_examples` must list integers >= 0, got {examples!r}")
        datasets = []
        for i, ds in enumerate(_tables(raw["datasets"], "datasets")):
            check_known_keys(ds, DATASET_KEYS, f"datasets[{i}]")
            for key in ("label", "source", "common", "rare"):
                if key not in ds:
                    raise ConfigError(f"datasets[{i}] lacks `{key}`")
            if not isinstance(ds["rare"], dict) or not ds["rare"]:
                raise ConfigError(f"datasets[{i}].rare must map rare class names to item counts")
            common = ds["common"]
            for name, count in common.items() if isinstance(common, dict) else [("", common)]:
                _positive(count, f"datasets[{i}].common{'.' + name if name else ''}")
            for name, count in ds["rare"].items():
                _positive(count, f"datasets[{i}].rare.{name}")
            datasets.append(dict(ds))
        strategies = []
        for i, spec in enumerate(_tables(raw["strategies"], "strategies")):
            check_known_keys(spec, STRATEGY_KEYS, f"strategies[{i}]")
            if "label" not in spec:
                raise ConfigError(f"strategies[{i}] lacks `label`")
            if "params" in spec and "strategy" not in spec:
                raise ConfigError(f"strategies[{i}]: `params` needs `strategy`")
            strategies.append({"label": str(spec["label"]), "strategy": spec.get("strategy"),
                               "params": dict(spec.get("params", {}))})  # fmt: skip
        for what, items in (("datasets", datasets), ("strategies", strategies)):
            names = [x["label"] for x in items]
            if len(set(names)) != len(names):
                raise ConfigError(f"{what} labels must be unique, got {names}")
        jobs = raw.get("jobs")
        return cls(
            name=str(raw.get("name", "replay")),
            seeds=list(seeds),
            budget=budget,
            labels=labels,
            checkpoints=sorted(set(checkpoints)),
            seed_examples=list(examples),
            datasets=datasets,
            strategies=strategies,
            description=str(raw.get("description", "")),
            jobs=None if jobs is None else _positive(jobs, "jobs"),
        )

    def as_dict(self) -> dict[str, Any]:
        out = {"kind": "replay", "name": self.name, "description": self.description,
               "seeds": self.seeds, "budget": self.budget, "labels": self.labels,
               "checkpoints": self.checkpoints, "seed_examples": self.seed_examples,
               "datasets": self.datasets, "strategies": self.strategies}  # fmt: skip
        if self.jobs is not None:
            out["jobs"] = self.jobs
        return json.loads(json.dumps(out))

    def jobs_list(self) -> list[tuple[str, int, str, int]]:
        return [
            (ds["label"], k, spec["label"], seed)
            for ds in self.datasets
            for k in self.seed_examples
            for spec in self.strategies
            for seed in self.seeds
        ]

    def dataset(self, label: str) -> dict[str, Any]:
        return next(ds for ds in self.datasets if ds["label"] == label)

    def strategy(self, label: str) -> dict[str, Any]:
        return next(s for s in self.strategies if s["label"] == label)


def _positive(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"`{name}` must be a positive integer, got {value!r}")
    return value


def _tables(value: Any, name: str) -> list[dict]:
    if not isinstance(value, list) or not value or not all(isinstance(v, dict) for v in value):
        raise ConfigError(f"`{name}` must be a non-empty list of [[{name}]] tables")
    return value


def is_replay_config(raw: Any) -> bool:
    return isinstance(raw, dict) and raw.get("kind") == "replay"


# --------------------------------------------------------------------------- pools
@dataclass
class ReplayPool:
    """One data set's pool for one seed: embeddings file, true class names, rare classes."""

    embeddings: Path
    truth: list[str]
    classes: list[str]
    rare: list[str]

    def seed_rows(self, k: int, seed: int) -> list[tuple[int, str]]:
        """``k`` items of each rare class (drawn with ``seed``), as (row id, class) answers."""
        rng = np.random.default_rng([seed, 1])
        truth = np.asarray(self.truth)
        rows = []
        for name in self.rare:
            members = np.flatnonzero(truth == name)
            for i in sorted(rng.choice(members, min(k, members.size), replace=False)):
                rows.append((int(i), name))
        return rows


def make_pool(ds: dict[str, Any], seed: int, folder: Path) -> ReplayPool:
    """Draw (or read back) the pool of data set ``ds`` for ``seed`` under ``folder``: every
    common class cut to ``common`` items, each rare class to its count, in random order."""
    from raresift.simulate.replay_data import load_source

    emb = folder / f"{_safe(ds['label'])}__seed{seed}.npy"
    meta = emb.with_suffix(".json")
    if emb.exists() and meta.exists():
        info = json.loads(meta.read_text())
        return ReplayPool(emb, info["truth"], info["classes"], info["rare"])
    source = load_source({k: v for k, v in ds.items() if k not in ("label", "common", "rare")})
    names = source.class_names
    unknown = [c for c in ds["rare"] if c not in names]
    if unknown:
        raise ConfigError(f"dataset {ds['label']!r}: rare classes {unknown} not among {names}")
    rng = np.random.default_rng([seed, 2])
    take = []
    for index, name in enumerate(names):
        members = np.flatnonzero(source.y == index)
        common = ds["common"]
        want = ds["rare"].get(name, common.get(name) if isinstance(common, dict) else common)
        if want is None:
            raise ConfigError(f"dataset {ds['label']!r}: `common` gives no count for {name!r}")
        if want > members.size:
            raise ConfigError(
                f"dataset {ds['label']!r}: class {name!r} has {members.size} items, "
                f"{want} asked for"
            )
        take.append(rng.choice(members, want, replace=False))
    order = rng.permutation(np.concatenate(take))
    folder.mkdir(parents=True, exist_ok=True)
    tmp = emb.with_name(emb.name + ".tmp.npy")
    np.save(tmp, np.ascontiguousarray(source.X[order], dtype=np.float32))
    os.replace(tmp, emb)
    truth = [names[int(c)] for c in source.y[order]]
    rare = [c for c in names if c in ds["rare"]]
    meta.write_text(json.dumps({"truth": truth, "classes": names, "rare": rare,
                                "embedder": source.embedder}))  # fmt: skip
    return ReplayPool(emb, truth, names, rare)


def pool_facts(pool: ReplayPool) -> dict[str, Any]:
    """What the report says of a data set's pool: its size and embedder."""
    meta = json.loads(pool.embeddings.with_suffix(".json").read_text())
    return {"items": len(pool.truth), "embedder": meta.get("embedder", "?")}


def _safe(label: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in label)


# --------------------------------------------------------------------------- one session
def replay_session(
    pool: ReplayPool,
    folder: Path,
    *,
    seed: int,
    budget: int,
    rounds: int,
    strategy: str | None = None,
    params: dict | None = None,
    seed_examples: int = 0,
    done: list[dict[str, Any]] | None = None,
    on_round=None,
) -> list[dict[str, Any]]:
    """Drive one labeling session in ``folder`` (replaced) for ``rounds`` batches, answering
    each from the truth; returns one row per round (round 0: the seed answers).

    ``done`` are rows of an interrupted run: their rounds are driven again and must pick the
    same items. ``on_round(row)`` runs after every new row.
    """
    from raresift.session import Session

    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    seeds_csv = None
    seed_rows = pool.seed_rows(seed_examples, seed) if seed_examples else []
    if seed_rows:
        seeds_csv = folder / "seed.csv"
        with open(seeds_csv, "w", newline="", encoding="utf-8") as fh:
            writer = csv.writer(fh)
            writer.writerow(["id", "label"])
            writer.writerows(seed_rows)
    session = Session.create(
        folder / "project",
        embeddings=pool.embeddings,
        classes=pool.classes,
        rare_classes=pool.rare,
        seed_labels=seeds_csv,
        strategy=strategy,
        strategy_params={strategy: params} if params else None,
        budget=budget,
        seed=seed,
        progress=False,
    )
    truth = pool.truth
    rare = set(pool.rare)
    n_rare_pool = sum(t in rare for t in truth)
    found: dict[str, int] = dict.fromkeys(pool.rare, 0)
    bought = 0
    rows: list[dict[str, Any]] = []

    def row(round_index, picks, info, seconds):
        return {
            "round": round_index,
            "n_labels": bought,
            "n_rare": int(sum(found.values())),
            "n_rare_pool": n_rare_pool,
            "n_seed": len(seed_rows),
            "found": dict(found),
            "default": session.config["defaults"]["strategy"],
            "selected_by": "" if info is None else info["strategy"],
            "note": "" if info is None else info["note"],
            "first_reason": picks[0].reason if picks else "",
            "seconds": seconds,
            "batch_ids": [int(b.id) for b in picks],
        }

    def emit(r):
        rows.append(r)
        if on_round is not None and (not done or r["round"] >= len(done)):
            on_round(r)

    try:
        emit(row(0, [], None, 0.0))
        for round_index in range(1, rounds + 1):
            start = time.perf_counter()
            picks = session.next()
            seconds = time.perf_counter() - start
            ids = [int(b.id) for b in picks]
            if (
                done is not None
                and round_index < len(done)
                and done[round_index]["batch_ids"] != ids
            ):
                raise ValidationError(
                    f"replaying round {round_index} picked other items than the logged run; "
                    "the session is not deterministic here: delete the run log to start over"
                )
            answers = [(i, truth[i]) for i in ids]
            session.answer_many(answers, who="replay", source="replay")
            bought += len(ids)
            for _, value in answers:
                if value in rare:
                    found[value] += 1
            emit(row(round_index, picks, session.round_info(), seconds))
    finally:
        session.close()
    return rows


# --------------------------------------------------------------------------- the study
def _job_name(dataset: str, k: int, strategy: str) -> str:
    return f"{dataset}__seeds{k}__{strategy}"


def run_replay_job(config: ReplayConfig, job: tuple, out_dir: Path, keep: bool = False) -> int:
    """Run (or resume) one job; returns the rounds computed now."""
    from threadpoolctl import threadpool_limits

    dataset, k, label, seed = job
    path = log_path(out_dir, _job_name(dataset, k, label), seed)
    done = read_log(path)[: config.rounds + 1]
    if len(done) == config.rounds + 1:
        return 0
    spec = config.strategy(label)
    pool = make_pool(config.dataset(dataset), seed, out_dir / "pools")
    base = {"study": config.name, "dataset": dataset, "seed_examples": k, "strategy": label,
            "strategy_name": spec["strategy"] or "default", "seed": seed}  # fmt: skip
    write_log(path, done)
    new = 0

    def on_round(row):
        nonlocal new
        append_log(path, {**base, **row})
        new += 1

    folder = out_dir / "sessions" / f"{_job_name(dataset, k, label)}__seed{seed}"
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with threadpool_limits(1):
            replay_session(
                pool, folder, seed=seed, budget=config.budget, rounds=config.rounds,
                strategy=spec["strategy"], params=spec["params"] or None, seed_examples=k,
                done=done or None, on_round=on_round,
            )  # fmt: skip
    finally:
        torch.set_num_threads(threads)
    if not keep:
        shutil.rmtree(folder, ignore_errors=True)
    return new


def _worker(config_dict: dict, job: tuple, out_dir: str) -> tuple:
    return job, run_replay_job(ReplayConfig.from_dict(config_dict), job, Path(out_dir))


def collect_replay_rows(config: ReplayConfig, out_dir: Path) -> list[dict[str, Any]]:
    rows = []
    for dataset, k, label, seed in config.jobs_list():
        for row in read_log(log_path(out_dir, _job_name(dataset, k, label), seed)):
            row = dict(row)
            row.pop("batch_ids", None)
            found = row.pop("found", {})
            for name, count in found.items():
                row[f"found_{name}"] = count
            rows.append(row)
    return rows


def run_replay_study(
    config: ReplayConfig | dict,
    out_dir: str | Path,
    resume: bool = True,
    jobs: int | None = None,
    progress: bool = True,
    command: str | None = None,
) -> Path:
    """Run every job of a replay study into ``out_dir``; returns ``results.csv``."""
    from raresift.simulate.joblog import write_table

    if isinstance(config, dict):
        config = ReplayConfig.from_dict(config)
    out_dir = Path(out_dir)
    saved = out_dir / "study.json"
    commands = []
    if resume and saved.exists():
        old = json.loads(saved.read_text())
        if not _resumable(old["config"], config.as_dict()):
            raise ConfigError(
                f"{out_dir} holds a replay study with other data sets, seeds or budget; choose "
                "another output folder or run without resume"
            )
        commands = old.get("commands", [])
    todo = config.jobs_list()
    if not resume:
        for dataset, k, label, seed in todo:
            log_path(out_dir, _job_name(dataset, k, label), seed).unlink(missing_ok=True)
    (out_dir / "runs").mkdir(parents=True, exist_ok=True)
    commands.append({"command": command or "raresift.simulate.replay.run_replay_study (Python)",
                     "started": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
                     "cores": os.cpu_count()})  # fmt: skip
    study = {"config": config.as_dict(), "commands": commands, "failures": []}
    saved.write_text(json.dumps(study, indent=2))
    study["pools"] = {}
    for ds in config.datasets:  # draw every pool (and embed every source) before the jobs
        for seed in config.seeds:
            pool = make_pool(ds, seed, out_dir / "pools")
        study["pools"][ds["label"]] = pool_facts(pool)
    unfinished = [
        j for j in todo
        if len(read_log(log_path(out_dir, _job_name(*j[:3]), j[3]))) < config.rounds + 1
    ]  # fmt: skip
    n_jobs = max(1, min(jobs or config.jobs or os.cpu_count() or 1, len(unfinished) or 1))
    bar = tqdm(total=len(todo), initial=len(todo) - len(unfinished), unit="session",
               desc=config.name, disable=not progress)  # fmt: skip
    failures = study["failures"]

    def failed(job, exc):
        logger.error("replay job %s failed: %s: %s", job, type(exc).__name__, exc)
        failures.append({"job": list(job), "error": f"{type(exc).__name__}: {exc}"})

    try:
        if n_jobs == 1:
            for job in unfinished:
                try:
                    run_replay_job(config, job, out_dir)
                except Exception as exc:
                    failed(job, exc)
                bar.update()
        else:
            tasks = {job: (config.as_dict(), job, str(out_dir)) for job in unfinished}
            run_in_workers(_worker, tasks, n_jobs, failed, lambda done: bar.update(len(done)))
    finally:
        bar.close()
        saved.write_text(json.dumps(study, indent=2))
        write_table(collect_replay_rows(config, out_dir), out_dir / "results.csv")
    return out_dir / "results.csv"


def _resumable(old: dict[str, Any], new: dict[str, Any]) -> bool:
    """Whether a study may resume into a folder written with ``old``: same seeds, budget,
    labels and seed examples, and every data set of both under the same label unchanged (data
    sets and strategies may be added)."""
    keys = ("seeds", "budget", "labels", "seed_examples")
    if any(old.get(k) != new.get(k) for k in keys):
        return False
    before = {ds["label"]: ds for ds in old["datasets"]}
    return all(before.get(ds["label"], ds) == ds for ds in new["datasets"])


def replay_command(
    config_path: str | Path,
    raw: dict[str, Any],
    out_dir: str | Path | None = None,
    resume: bool = True,
    jobs: int | None = None,
    progress: bool = True,
    command: str | None = None,
) -> Path:
    """``raresift simulate CONFIG`` for a replay config: run it, write the report."""
    config = ReplayConfig.from_dict(raw)
    out_dir = Path(out_dir) if out_dir is not None else Path("runs") / config.name
    if command is None:
        command = f"raresift simulate {config_path} --out {out_dir}"
        if jobs:
            command += f" --jobs {jobs}"
    results = run_replay_study(config, out_dir, resume, jobs, progress, command)
    report = write_replay_report(results, out_dir)
    failures = json.loads((out_dir / "study.json").read_text()).get("failures", [])
    if failures:
        raise StudyFailedError(
            f"{len(failures)} replay job(s) failed (first: {failures[0]['job']}: "
            f"{failures[0]['error'][:200]}); the report lists them: {report}"
        )
    return report


# --------------------------------------------------------------------------- the report
def _read_rows(results: Path) -> list[dict[str, Any]]:
    with open(results, newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    for row in rows:
        for key in (
            "seed_examples",
            "seed",
            "round",
            "n_labels",
            "n_rare",
            "n_rare_pool",
            "n_seed",
        ):
            row[key] = int(row[key])
    return rows


def found_at(rows, dataset: str, k: int, strategy: str, labels: int) -> np.ndarray:
    """Rare items found after ``labels`` bought labels, one value per seed (seed order)."""
    values = {
        r["seed"]: r["n_rare"]
        for r in rows
        if r["dataset"] == dataset and r["seed_examples"] == k and r["strategy"] == strategy
        and r["n_labels"] == labels
    }  # fmt: skip
    return np.array([values[s] for s in sorted(values)], dtype=np.float64)


def replay_table(rows, config: dict) -> dict:
    """``{(dataset, k, strategy, labels): (mean, std, n)}`` of rare items found."""
    out = {}
    for ds in config["datasets"]:
        for k in config["seed_examples"]:
            for spec in config["strategies"]:
                for c in config["checkpoints"]:
                    v = found_at(rows, ds["label"], k, spec["label"], c)
                    if v.size:
                        std = float(v.std(ddof=1)) if v.size > 1 else float("nan")
                        out[ds["label"], k, spec["label"], c] = (float(v.mean()), std, v.size)
    return out


def acceptance(table: dict, config: dict, default: str = "default", random: str = "random",
               mlp: str | None = "mlp") -> list[dict[str, Any]]:  # fmt: skip
    """The issue's acceptance checks per data set and seed condition, from the table."""
    labels = config["labels"]
    half = labels // 2 if labels // 2 in config["checkpoints"] else None
    fixed = [s["label"] for s in config["strategies"] if s["label"] not in (default, random)]
    checks = []
    for ds in config["datasets"]:
        for k in config["seed_examples"]:

            def get(s, c=labels, key=(ds["label"], k)):
                return table.get((*key, s, c), (np.nan,))[0]

            d, r = get(default), get(random)
            best_name = max(fixed, key=lambda s: np.nan_to_num(get(s), nan=-1), default=None)
            best = get(best_name) if best_name else np.nan
            need = 3.0 if k else 2.0
            check = {
                "dataset": ds["label"], "seed_examples": k, "default": d, "random": r,
                "ratio": d / r if r > 0 else np.inf, "need": need,
                "best": best_name, "best_value": best,
                "of_best": d / best if best > 0 else np.inf,
            }  # fmt: skip
            if half is not None:
                check["default_half"], check["random_half"] = get(default, half), get(random, half)
            if mlp is not None and mlp in [s["label"] for s in config["strategies"]]:
                check["mlp"] = get(mlp)
            checks.append(check)
    return checks


def write_replay_report(results: str | Path, out_dir: str | Path | None = None) -> Path:
    """``report.md`` of a replay study: rare items found per strategy at each checkpoint, the
    ratio to random, and the acceptance checks."""
    results = Path(results)
    out_dir = Path(out_dir) if out_dir is not None else results.parent
    from raresift.simulate.report import read_study

    study = read_study(results.parent / "study.json")
    if study is None:
        raise ValidationError(f"no study.json beside {results}: not a replay study's results")
    config = study["config"]
    rows = _read_rows(results)
    table = replay_table(rows, config)
    labels, cps = config["labels"], config["checkpoints"]
    lines = [f"# {config['name']}", ""]
    for f in study.get("failures", []):
        lines += [f"**Failed**: {f['job']}: {f['error']}", ""]
    if config.get("description"):
        lines += [config["description"], ""]
    lines += ["## Setup", ""]
    lines += [f"- `{c['command']}` (started {c['started']}, {c['cores']} cores)"
              for c in study.get("commands", [])]  # fmt: skip
    lines += [
        f"- Sessions: budget {config['budget']} per batch, {labels} labels bought after the seed "
        f"answers; seeds {config['seeds']} (each draws its own pool and seeds the session); seed "
        f"answers: {' or '.join(str(k) for k in config['seed_examples'])} items of each rare "
        "class.",
        "- Each session is `Session.create` (what `raresift init --embeddings POOL.npy --classes "
        "... --rare-classes ... --budget B --seed S [--labels SEED.csv] [--strategy NAME]` runs), "
        "then `next` and `label` with the true answers, round after round.",
        "- `default` is the session's own choice (no `--strategy`); the others are `--strategy "
        "NAME` (with `strategy_params`). Every class session shares the session's cold start "
        "until its strategy can run (no answers; one class answered; for strategies that seek "
        "the rare classes, `mlp`, `information-density` and SIMILAR's, no rare item known or "
        "only rare items answered), so early batches are often the same for several "
        "strategies; `random` stays uniformly random throughout.",
        "",
        "| data set | source | embeddings | pool | rare classes (items) |",
        "|---|---|---|---|---|",
    ]
    for ds in config["datasets"]:
        facts = study.get("pools", {}).get(ds["label"], {})
        embedder, n_pool = facts.get("embedder", "?"), facts.get("items")
        rare = ", ".join(f"{c} ({n})" for c, n in ds["rare"].items())
        total = sum(ds["rare"].values())
        share = f"{100 * total / n_pool:.1f} %" if n_pool else "?"
        lines.append(f"| {ds['label']} | {ds['source']} | {embedder} | {n_pool} items | "
                     f"{rare}: {share} |")  # fmt: skip
    lines += ["", "## Rare items found", "",
              f"Rare items among the labels bought (seed answers not counted), mean ± sd over "
              f"{len(config['seeds'])} seeds, at {', '.join(map(str, cps))} labels; "
              f"`x random` is the ratio to random's mean at {labels}.", ""]  # fmt: skip
    names = [s["label"] for s in config["strategies"]]
    for ds in config["datasets"]:
        for k in config["seed_examples"]:
            lines += [f"### {ds['label']}, {k} seed examples per rare class", "",
                      "| strategy | " + " | ".join(f"{c} labels" for c in cps) + " | x random |",
                      "|---|" + "---|" * (len(cps) + 1)]  # fmt: skip
            r = table.get((ds["label"], k, "random", labels), (np.nan,))[0]
            for s in names:
                cells = []
                for c in cps:
                    m, sd, _ = table.get((ds["label"], k, s, c), (np.nan, np.nan, 0))
                    cells.append(f"{m:.1f} ± {sd:.1f}")
                m = table.get((ds["label"], k, s, labels), (np.nan,))[0]
                ratio = f"{m / r:.2f}" if r and np.isfinite(r) and r > 0 else "n/a"
                lines.append(f"| {s} | " + " | ".join(cells) + f" | {ratio} |")
            lines.append("")
    if "default" in names and "random" in names:
        lines += ["## Acceptance (issue 22)", "",
                  f"At {labels} labels: default / random (needed: 3x with seed examples, 2x "
                  "without), default vs random at half the labels (never fewer), default / best "
                  "fixed strategy (needed: 0.9), and `mlp` / random (needed: 3x).", "",
                  "| data set | seed ex. | default | random | x random | at half: default vs random"
                  " | best fixed | default / best | mlp x random | holds |",
                  "|---|---|---|---|---|---|---|---|---|---|"]  # fmt: skip
        for c in acceptance(table, config):
            half = c.get("default_half", np.nan), c.get("random_half", np.nan)
            mlp_ratio = c.get("mlp", np.nan) / c["random"] if c["random"] > 0 else np.nan
            ok = (c["ratio"] >= c["need"] and c["of_best"] >= 0.9
                  and not (half[0] < half[1]))  # fmt: skip
            lines.append(
                f"| {c['dataset']} | {c['seed_examples']} | {c['default']:.1f} | "
                f"{c['random']:.1f} | {c['ratio']:.2f} (need {c['need']:.0f}) | "
                f"{half[0]:.1f} vs {half[1]:.1f} | {c['best']} {c['best_value']:.1f} | "
                f"{c['of_best']:.2f} | {mlp_ratio:.2f} | {'yes' if ok else '**no**'} |"
            )
        lines.append("")
    seconds = [float(r["seconds"]) for r in rows if r.get("seconds") not in (None, "")]
    if seconds:
        lines += [f"Seconds per `next` (selection, reasons and the store): median "
                  f"{np.median(seconds):.2f}, 95th percentile {np.percentile(seconds, 95):.2f}.",
                  ""]  # fmt: skip
    path = out_dir / "report.md"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path
