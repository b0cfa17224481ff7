"""Run a study: strategies x seeds x rounds on one scenario, resumable, from a TOML file or Python.

A study is one data set, one scenario, one model recipe, a budget per round, a number of rounds,
a list of seeds and a list of strategies. Every (strategy, seed) pair is a job. Seed ``s`` fixes
the scenario (all strategies see the same initial labeled set, as in papers/000), the model's
initialisation and the strategy's generator, so a job's batches are a function of its config.

Results are appended, one JSON line per finished round, to ``OUT/runs/<strategy>__seed<s>.jsonl``
(the batch ids included). A killed study resumes by replaying each job's recorded batches (teach
them, grow the query / conditioning sets) and continuing from the first unfinished round; since
everything is seeded the finished table is the same as that of an uninterrupted run (timing columns
aside). ``OUT/results.csv`` is the tidy table: one row per strategy, seed and round (round 0 is the
model trained on the initial labels).

SCMI strategies in a scenario whose conditioning set starts empty (out-of-distribution) select
with the SMI function of their family until the set has items (the strategy does that itself;
:data:`~raresift.simulate.config.SCMI_FALLBACKS` names them); the ``selected_by`` column says
which function picked each round.

Binary-concept studies (active search of rare concepts, papers/002-003: SEALS against the
global baselines) run on the same harness: :func:`run_concept_study` makes every task x method
x seed a :class:`Job` whose scenario is the task's (:meth:`~raresift.simulate.concepts.
BinaryConcept.scenario`) and whose rows are :func:`~raresift.simulate.concepts.concept_metrics`;
:func:`run_rounds` runs, logs and resumes every job of either kind.

The study is cut by concern: :mod:`~raresift.simulate.config` (the TOML schema),
:mod:`~raresift.simulate.build` (scenario, model, strategy and candidate pool of a job),
:mod:`~raresift.simulate.joblog` (per-job logs and the results table) and
:mod:`~raresift.simulate.metrics` (what each round records); this module runs the jobs.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from raresift.errors import ConfigError, StudyFailedError, ValidationError
from raresift.pool import fingerprint_mismatch
from raresift.simulate import metrics
from raresift.simulate.build import (
    build_candidates,
    build_model,
    build_scenario,
    build_strategy,
    check_study,
)
from raresift.simulate.config import StudyConfig
from raresift.simulate.joblog import (
    append_log,
    collect_rows,
    log_path,
    read_log,
    write_log,
    write_table,
)
from raresift.simulate.report import read_study

logger = logging.getLogger("raresift")


@dataclass
class Job:
    """One learner run, round by round: the runner's unit of work (a class study's strategy on
    one seed, a binary concept's method on one seed).

    ``scenario()`` builds the problem and ``learner(scenario)`` the learner at round 0, in the
    process that runs the job; round ``r`` (1-based) buys ``round_sizes[r - 1]`` labels;
    ``measure(learner, scenario, selected, facts)`` gives a row's figures after each fit, where
    ``facts`` holds the round's ``n_candidates`` (eligible before the query) and its seconds of
    ``training``, model ``features``, the rest of ``selection`` and ``knn`` search (each as
    ``seconds_<name>``); every row starts with ``base``. ``log`` is the job's round log (None:
    the rows live in memory only and nothing resumes).
    """

    base: dict[str, Any]
    log: Path | None
    scenario: Callable[[], Any]
    learner: Callable[[Any], Any]
    round_sizes: list[int]
    measure: Callable[..., dict[str, Any]]


def run_rounds(
    job: Job, round_callback: Callable[[dict[str, Any]], None] | None = None
) -> tuple[list[dict[str, Any]], int]:
    """Run (or resume) ``job``; returns all its rows (batch ids included) and how many are new.

    A resumed job first replays its logged batches (teach them, grow the query / conditioning
    sets, no training in between) and continues from the first unfinished round.
    ``round_callback(row)`` runs after each new row is saved.
    """
    done: list[dict[str, Any]] = []
    if job.log is not None:
        done = read_log(job.log)[: len(job.round_sizes) + 1]
        write_log(job.log, done)  # drops a torn line for good
    scenario = job.scenario()
    learner = job.learner(scenario)
    selected: list[np.ndarray] = []

    def grow(ids: np.ndarray, answers: np.ndarray) -> None:
        """After ``ids`` were taught: grow the query / conditioning sets as the scenario says."""
        to_query, to_cond = scenario.growth(ids, answers)
        if to_query.size:
            learner.add_query_ids(to_query)
        if to_cond.size:
            learner.add_conditioning_ids(to_cond)
        selected.append(ids)

    for row in done[1:]:  # replay: teach the recorded batches, no training in between
        ids = np.asarray(row["batch_ids"], dtype=np.int64)
        answers = scenario.oracle(ids)
        learner.teach(ids, answers)
        grow(ids, answers)
    rows = list(done)
    for round_index in range(len(done), len(job.round_sizes) + 1):
        n_candidates = len(learner.candidates)
        knn_before = _knn_seconds(learner.candidates)
        if round_index == 0:  # the model on the initial labels
            start = time.perf_counter()
            learner.fit()
            seconds = {"training": time.perf_counter() - start, "features": 0.0, "selection": 0.0}
            selected_by, batch_ids = "", np.empty(0, np.int64)
        else:  # one round of the loop: query, the oracle answers, teach, refit
            size = job.round_sizes[round_index - 1]
            (record,) = learner.run(scenario.oracle, 1, size)
            batch_ids, selected_by = record["batch_ids"], record["selected_by"]
            grow(batch_ids, record["batch_labels"])
            seconds = {k: record[f"seconds_{k}"] for k in ("training", "features", "selection")}
        seconds["knn"] = _knn_seconds(learner.candidates) - knn_before
        chosen = np.concatenate(selected) if selected else np.empty(0, np.int64)
        facts = {"n_candidates": n_candidates, **{f"seconds_{k}": v for k, v in seconds.items()}}
        row = {
            **job.base,
            "selected_by": selected_by,
            "round": round_index,
            "n_labeled": int(learner.training_ids.size),
            **job.measure(learner, scenario, chosen, facts),
            "batch_ids": batch_ids.tolist(),
        }
        if job.log is not None:
            append_log(job.log, row)
        rows.append(row)
        if round_callback is not None:
            round_callback(row)
    return rows, len(rows) - len(done)


def _knn_seconds(candidates: Any) -> float:
    """Seconds a candidate pool has spent in k-NN searches so far (SEALS counts them)."""
    return float(getattr(candidates, "knn_seconds", 0.0))


def make_learner(scenario, model, strategy, candidates, seed: int):
    """The learner of one job at round 0: the scenario's pool, labels and id sets."""
    from raresift.loop import ActiveLearner

    return ActiveLearner(
        scenario.pool,
        model,
        strategy,
        candidates=candidates,
        labels=scenario.labels,
        query_ids=scenario.query_ids,
        conditioning_ids=scenario.conditioning_ids,
        validation_ids=scenario.validation_ids,
        seed=seed,
    )


# --------------------------------------------------------------------------- class studies
def run_job(
    config: StudyConfig,
    label: str,
    seed: int,
    out_dir: str | Path,
    round_callback: Callable[[dict[str, Any]], None] | None = None,
) -> int:
    """Run (or resume) one strategy on one seed; returns the number of rounds computed now.

    ``round_callback(row)`` runs after each new row is saved (tests use it to simulate a kill).
    Torch runs single-threaded inside a job, so that a table does not depend on ``jobs``.
    """
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return run_rounds(study_job(config, label, seed, Path(out_dir)), round_callback)[1]
    finally:
        torch.set_num_threads(threads)


def study_job(config: StudyConfig, label: str, seed: int, out_dir: Path) -> Job:
    """Job (strategy ``label``, ``seed``) of a class study, logged under ``out_dir``."""
    spec = config.strategy(label)
    return Job(
        base={"study": config.name, "strategy": label, "strategy_name": spec.name, "seed": seed},
        log=log_path(out_dir, label, seed),
        scenario=lambda: build_scenario(config, seed),
        learner=lambda scenario: _make_learner(config, spec, scenario, seed),
        round_sizes=[config.budget] * config.rounds,
        measure=_study_measure,
    )


def _study_measure(learner, scenario, selected: np.ndarray, facts: dict) -> dict[str, Any]:
    """A class study's row: test accuracy and selection counts, training facts, seconds."""
    return {
        **metrics.evaluate(learner, scenario, selected),
        **metrics.training_facts(learner.model),
        "seconds_training": facts["seconds_training"],
        "seconds_selection": facts["seconds_features"] + facts["seconds_selection"],
    }


def _make_learner(config: StudyConfig, spec, scenario, seed: int):
    """The learner of job (``spec``, ``seed``) at round 0."""
    return make_learner(
        scenario,
        build_model(config.model, scenario, seed),
        build_strategy(spec),
        build_candidates(spec.candidates, scenario, seed),
        seed,
    )


def preflight(config: StudyConfig, scenario, labels: list[str]) -> None:
    """Build every strategy of ``labels`` on the first seed's scenario and select one batch.

    A typo'd parameter, a bad Faiss factory string or optimizer, or a strategy the model cannot
    serve (``bald`` with a logistic model) raises :class:`ConfigError` here, before the first job
    starts, instead of the strategy vanishing from the table.
    """
    seed = config.seeds[0]
    for label in labels:
        spec = config.strategy(label)
        logger.info("checking strategy %s: one batch on seed %d", label, seed)
        try:
            _make_learner(config, spec, scenario, seed).query(config.budget)
        except Exception as exc:
            raise ConfigError(
                f"strategy {label!r} (`{spec.name}`) cannot run in this study: "
                f"{type(exc).__name__}: {exc}; fix its name, params or candidates"
            ) from None


def _job_worker(config_dict: dict, label: str, seed: int, out_dir: str) -> tuple[str, int, int]:
    """Process-pool entry point."""
    config = StudyConfig.from_dict(config_dict)
    return label, seed, run_job(config, label, seed, out_dir)


_WATCH_SECONDS = 0.5


def _start_watchdog(parent_pid: int, stop) -> None:
    """Worker initializer: a daemon thread ends this worker at once when the study's process
    is gone (killed with SIGKILL, say) or ``stop`` is set (the study was interrupted). Finished
    rounds are already on disk; a torn last line is dropped on resume."""
    import threading

    def watch() -> None:
        while os.getppid() == parent_pid and not stop.is_set():
            stop.wait(_WATCH_SECONDS)
        os._exit(1)

    threading.Thread(target=watch, name="raresift-parent-watch", daemon=True).start()


def run_in_workers(worker, tasks: dict, n_jobs: int, failed, after_wait) -> None:
    """Run ``worker(*tasks[key])`` for every key on ``n_jobs`` spawned processes.

    ``failed(key, exc)`` is told of each job that raised; ``after_wait(finished_keys)`` runs
    after every wait (at least once a second), e.g. to move a progress bar. The workers watch
    this process and stop if it dies; on an interrupt (Ctrl-C, or SIGTERM turned into
    KeyboardInterrupt) queued jobs are cancelled and running ones stopped before re-raising.
    """
    context = get_context("spawn")
    stop = context.Event()
    pool = ProcessPoolExecutor(
        n_jobs, mp_context=context, initializer=_start_watchdog, initargs=(os.getpid(), stop)
    )
    try:
        futures = {pool.submit(worker, *args): key for key, args in tasks.items()}
        pending = set(futures)
        while pending:
            finished, pending = wait(pending, timeout=1.0, return_when=FIRST_COMPLETED)
            for future in finished:
                try:
                    future.result()
                except Exception as exc:
                    failed(futures[future], exc)
            after_wait([futures[f] for f in finished])
    except BaseException:
        stop.set()
        pool.shutdown(wait=True, cancel_futures=True)
        raise
    pool.shutdown(wait=True)


def _follow_logs(bar, logs: list[Path], per_job: int):
    """An ``after_wait`` that moves ``bar`` to the rounds the workers' logs hold."""

    def after_wait(_finished) -> None:
        if (new := rounds_logged(logs, per_job) - bar.n) > 0:
            bar.update(new)

    return after_wait


# --------------------------------------------------------------------------- the study
def _fingerprint(config: StudyConfig) -> dict[str, Any]:
    data = config.as_dict()
    return {k: data[k] for k in ("dataset", "scenario", "model", "budget")}


def _check_resumable(config: StudyConfig, out_dir: Path) -> None:
    saved_path = out_dir / "study.json"
    if not saved_path.exists():
        return
    old = StudyConfig.from_dict(read_study(saved_path)["config"])
    if _fingerprint(old) != _fingerprint(config):
        raise ConfigError(
            f"{out_dir} holds a study with a different dataset, scenario, model or budget; "
            "choose another output folder or run without resume"
        )
    for spec in config.strategies:
        for prev in old.strategies:
            if prev.label == spec.label and prev.as_dict() != spec.as_dict():
                raise ConfigError(
                    f"strategy {spec.label!r} changed since {out_dir} was written; "
                    "give it a new label, choose another output folder or run without resume"
                )


def run_study(
    config: StudyConfig | dict,
    out_dir: str | Path,
    resume: bool = True,
    jobs: int | None = None,
    progress: bool = True,
    command: str | None = None,
    round_callback: Callable[[dict[str, Any]], None] | None = None,
    only: list[str] | None = None,
    check: bool = True,
) -> Path:
    """Run every (strategy, seed) job of a study into ``out_dir``; returns ``results.csv``.

    ``jobs`` worker processes run jobs in parallel (default: the config's ``jobs``, else the
    number of cores); ``jobs=1`` runs in this process. With ``resume`` (default) finished rounds
    in ``out_dir`` are kept; without it the old logs are removed first. ``round_callback`` runs
    after every new row (only with ``jobs=1``). ``only`` runs just the strategies with these
    labels (the others keep whatever rows they have), e.g. to add strategies to a study later.
    Before the first job, ``check`` (default) has every strategy with unfinished jobs select one
    batch on the first seed (:func:`preflight`): a strategy that cannot run raises
    :class:`ConfigError` there. A job that still raises is logged and listed under ``failures``
    in ``study.json`` (and at the top of the report); the other jobs go on, and a later resume
    retries it. An interrupt cancels queued jobs and stops running workers; workers also exit
    when this process dies. Either way, finished rounds are kept for resume. ``progress`` shows
    a bar of finished rounds over all jobs (resumed ones included), with the time left.
    """
    if isinstance(config, dict):
        config = StudyConfig.from_dict(config)
    if jobs is not None and (isinstance(jobs, bool) or not isinstance(jobs, int) or jobs < 1):
        raise ConfigError(f"jobs must be a positive number of worker processes, got {jobs!r}")
    if only is not None:
        for label in only:
            config.strategy(label)  # unknown labels raise
    out_dir = Path(out_dir)
    scenario = check_study(config, only)
    if resume:
        _check_resumable(config, out_dir)
    else:
        for spec in config.strategies:
            for seed in config.seeds:
                if only is None or spec.label in only:
                    log_path(out_dir, spec.label, seed).unlink(missing_ok=True)
    (out_dir / "runs").mkdir(parents=True, exist_ok=True)
    commands = []
    if resume and (out_dir / "study.json").exists():
        commands = read_study(out_dir / "study.json").get("commands", [])
    commands.append(
        {
            "command": command or "raresift.simulate.run_study (Python)",
            "started": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
            "cores": os.cpu_count(),
        }
    )
    study = {
        "config": config.as_dict(),
        "scenario": {"kind": scenario.kind, "n_classes": scenario.n_classes,
                     "class_names": scenario.class_names, **scenario.info,
                     "test": int(scenario.test_y.size)},
        "commands": commands,
    }  # fmt: skip
    (out_dir / "study.json").write_text(json.dumps(study, indent=2))
    todo = [
        (spec.label, seed)
        for spec in config.strategies
        if only is None or spec.label in only
        for seed in config.seeds
    ]
    unfinished = [
        (label, seed)
        for label, seed in todo
        if len(read_log(log_path(out_dir, label, seed))) < config.rounds + 1
    ]
    if check:
        preflight(config, scenario, list(dict.fromkeys(label for label, _ in unfinished)))
    n_jobs = jobs or config.jobs or os.cpu_count() or 1
    n_jobs = min(n_jobs, len(todo))
    logger.info(
        "study %s: %d jobs on %d worker(s) into %s", config.name, len(todo), n_jobs, out_dir
    )
    logs = [log_path(out_dir, label, seed) for label, seed in todo]
    per_job = config.rounds + 1
    bar = tqdm(
        total=len(todo) * per_job, initial=rounds_logged(logs, per_job), unit="round",
        desc=config.name, disable=not progress,
    )  # fmt: skip
    failures: list[dict[str, Any]] = []

    def count_rounds(row: dict[str, Any]) -> None:
        bar.update()
        if round_callback is not None:
            round_callback(row)

    def failed(label: str, seed: int, exc: Exception) -> None:
        logger.error("strategy %s, seed %d failed: %s: %s", label, seed, type(exc).__name__, exc)
        failures.append({"strategy": label, "seed": seed, "error": f"{type(exc).__name__}: {exc}"})

    try:
        if n_jobs == 1:
            for label, seed in todo:
                try:
                    run_job(config, label, seed, out_dir, count_rounds)
                except Exception as exc:  # one failing strategy must not stop the study
                    failed(label, seed, exc)
        else:
            if round_callback is not None:
                raise ValidationError("round_callback needs jobs=1")
            tasks = {job: (config.as_dict(), *job, str(out_dir)) for job in todo}
            run_in_workers(
                _job_worker,
                tasks,
                n_jobs,
                lambda job, exc: failed(*job, exc),
                _follow_logs(bar, logs, per_job),
            )
    finally:
        bar.close()
        study["failures"] = failures
        (out_dir / "study.json").write_text(json.dumps(study, indent=2))
        write_table(collect_rows(config, out_dir), out_dir / "results.csv")
    return out_dir / "results.csv"


def rounds_logged(logs: list[Path], per_job: int) -> int:
    """Finished rounds in these job logs (at most ``per_job`` each; a torn last line is not one)."""
    return sum(min(p.read_bytes().count(b"\n"), per_job) for p in logs if p.exists())


def simulate_command(
    config_path: str | Path,
    out_dir: str | Path | None = None,
    resume: bool = True,
    jobs: int | None = None,
    progress: bool = True,
    command: str | None = None,
    only: list[str] | None = None,
) -> Path:
    """``raresift simulate CONFIG``: run the study, then write its report; returns the report path.

    Raises :class:`StudyFailedError` (after writing the report) when a job failed.

    ``out_dir`` defaults to ``runs/<study name>``. ``command`` is the command line recorded in the
    report (default: the equivalent ``raresift simulate`` call).
    """
    from raresift.simulate.config import read_toml
    from raresift.simulate.replay import is_replay_config, replay_command
    from raresift.simulate.report import write_report

    raw = read_toml(config_path)
    if is_replay_config(raw):  # replayed labeling sessions (raresift.simulate.replay)
        if only:
            raise ConfigError("--only selects strategies of a class study, not of a replay")
        return replay_command(config_path, raw, out_dir, resume, jobs, progress, command)
    config = StudyConfig.from_dict(raw)
    out_dir = Path(out_dir) if out_dir is not None else Path("runs") / config.name
    if command is None:
        command = f"raresift simulate {config_path} --out {out_dir}"
        if jobs:
            command += f" --jobs {jobs}"
        if only:
            command += f" --only {','.join(only)}"
    results = run_study(config, out_dir, resume=resume, jobs=jobs, progress=progress,
                        command=command, only=only)  # fmt: skip
    report = write_report(results, out_dir)
    failures = read_study(out_dir / "study.json").get("failures", [])
    if failures:
        first = failures[0]
        raise StudyFailedError(
            f"{len(failures)} job(s) failed (first: {first['strategy']} seed {first['seed']}: "
            f"{first['error'].splitlines()[0][:200]}); the report lists them at the top: {report}"
        )
    return report


# --------------------------------------------------------------------------- binary concepts
def run_concept_study(
    tasks: Sequence[Any],
    methods: Sequence[Any],
    seeds: Sequence[int] = (0,),
    out_dir: str | Path | None = None,
    resume: bool = True,
    progress: bool = True,
    round_callback: Callable[[dict[str, Any]], None] | None = None,
    budget: int = 2000,
    batch_size: int = 100,
    n_seed_positives: int = 5,
    n_seed_negatives: int = 95,
    C: float = 1.0,
    class_weight: str | dict | None = "balanced",
    max_iter: int = 1000,
) -> list[dict[str, Any]]:
    """Active search of rare binary concepts: every task x method x seed is a job of this runner.

    ``tasks`` are :class:`~raresift.simulate.concepts.BinaryConcept` s, ``methods``
    :class:`~raresift.simulate.concepts.Method` s. Job (task, method, seed) draws a seed of
    ``n_seed_positives`` positives and ``n_seed_negatives`` negatives (the task's ``seed_ids``
    if it has them), then labels ``batch_size`` items a round with logistic regression
    (``C``, ``class_weight``, ``max_iter``) on the embeddings until ``budget`` labels, the seed
    included (the last round buys what is left). Returns one row per fit, in job order (seeds,
    then tasks, then methods): :func:`~raresift.simulate.concepts.concept_metrics` plus
    ``method``, ``concept``, ``strategy_name``, ``seed``, ``round``, ``n_labeled`` and
    ``selected_by``.

    With ``out_dir`` each job logs its rounds to ``out_dir/runs/<method>__<concept>__seed<s>
    .jsonl`` (batch ids included) and a killed study resumes from them, unless ``resume`` is
    False; ``out_dir/concepts.json`` records the settings, and a resume with other settings
    raises :class:`ConfigError`. The tasks hold their pools and indexes in memory, so the jobs
    run in this process. ``round_callback(row)`` runs after every new row.

    The papers leave C and class weighting open; the default weighs classes inversely to their
    frequency ("balanced"): unweighted, a 5:95 seed makes every p(y=1) < 0.5, where entropy
    ranks exactly like p(y=1) and MaxEnt degenerates into most-likely positive.
    """
    from raresift.simulate.concepts import concept_metrics

    model = {"kind": "logistic", "C": C, "max_iter": max_iter, "class_weight": class_weight}
    settings = {"budget": budget, "batch_size": batch_size, "n_seed_positives": n_seed_positives,
                "n_seed_negatives": n_seed_negatives, "model": model}  # fmt: skip
    logs = None if out_dir is None else Path(out_dir)
    if logs is not None:
        settings["tasks"] = {task.name: _task_fingerprint(task) for task in tasks}
        _concept_log_start(logs, tasks, methods, seeds, settings, resume)
    rows: list[dict[str, Any]] = []
    runs = [(t, m, s) for s in seeds for t in tasks for m in methods]
    for task, method, seed in tqdm(runs, desc="concept runs", disable=not progress):
        n_seed = (
            n_seed_positives + n_seed_negatives if task.seed_ids is None else task.seed_ids.size
        )
        if batch_size <= 0 or budget < n_seed:
            raise ConfigError(f"need batch_size > 0 and budget >= the seed size ({n_seed})")
        sizes = [min(batch_size, budget - n) for n in range(n_seed, budget, batch_size)]
        label = f"{method.label}__{task.name}"
        job = Job(
            base={"method": method.label, "concept": task.name,
                  "strategy_name": method.strategy, "seed": seed},
            log=None if logs is None else log_path(logs, label, seed),
            scenario=lambda task=task, seed=seed: task.scenario(
                seed, n_seed_positives, n_seed_negatives
            ),
            learner=lambda scenario, method=method, seed=seed: make_learner(
                scenario,
                build_model(model, scenario, seed),
                method.strategy,
                build_candidates(method.candidate_spec, scenario, seed),
                seed,
            ),
            round_sizes=sizes,
            measure=concept_metrics,
        )  # fmt: skip
        for row in run_rounds(job, round_callback)[0]:
            del row["batch_ids"]
            rows.append(row)
    return rows


def _task_fingerprint(task) -> dict[str, Any]:
    """What a resumed concept job must find again: the pool (:meth:`~raresift.pool.Pool.
    fingerprint`), the answers and the fixed seed ids."""
    import hashlib

    def digest(values: np.ndarray | None) -> str | None:
        if values is None:
            return None
        return hashlib.blake2b(np.ascontiguousarray(values).tobytes(), digest_size=16).hexdigest()

    return {
        "pool": task.pool.fingerprint(),
        "answers": digest(task.y),
        "seed_ids": digest(task.seed_ids),
    }


def _same_task(old: dict[str, Any], new: dict[str, Any]) -> bool:
    """Whether two :func:`_task_fingerprint` name the same data (the pool's through
    :func:`~raresift.pool.fingerprint_mismatch`: a log written before consecutive ids were
    fingerprinted by their first still resumes)."""
    return {**old, "pool": None} == {**new, "pool": None} and (
        fingerprint_mismatch(old["pool"], new["pool"]) is None
    )


def _concept_log_start(out_dir: Path, tasks, methods, seeds, settings: dict, resume: bool) -> None:
    """Check (resume) or clear (no resume) a concept study's logs; record its settings."""
    settings = json.loads(json.dumps(settings))  # as read back: class weights' keys as text
    saved = out_dir / "concepts.json"
    if resume and saved.exists():
        old = json.loads(saved.read_text())["settings"]
        old_tasks, tasks_now = old.pop("tasks", {}), settings.pop("tasks")
        changed = [
            name
            for name in tasks_now
            if not _same_task(old_tasks.get(name, tasks_now[name]), tasks_now[name])
        ]
        if old != settings or changed:
            what = f"other data for {', '.join(changed)}" if changed else f"other settings ({old})"
            raise ConfigError(
                f"{out_dir} holds a concept study with {what}; choose another output folder "
                "or run without resume"
            )
        settings["tasks"] = {**old_tasks, **tasks_now}
    elif not resume:
        for task in tasks:
            for method in methods:
                for seed in seeds:
                    log_path(out_dir, f"{method.label}__{task.name}", seed).unlink(missing_ok=True)
    (out_dir / "runs").mkdir(parents=True, exist_ok=True)
    saved.write_text(json.dumps({"settings": settings}, indent=2))
