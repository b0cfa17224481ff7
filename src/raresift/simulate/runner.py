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
with their SMI counterpart until the set has items (:data:`SCMI_FALLBACKS`, overridable per
strategy with ``fallback = "name"``, disabled with ``fallback = ""``); the ``selected_by`` column
says which one picked each round.

Config layout (all keys shown; see experiments/*.toml)::

    name = "demo"                  # study name (report title)
    description = "..."            # optional
    seeds = [0, 1, 2]
    rounds = 5                     # selection rounds after the initial fit
    budget = 50                    # labels per round
    jobs = 2                       # worker processes (optional; default: all cores)

    [dataset]
    name = "fashion-mnist"         # fashion-mnist | mnist5k | digits
    test_per_class = 300           # optional: subsample (fashion-mnist) or hold out (others)
    train_subset = 20000           # optional: random subset of the training split to draw from

    [scenario]
    kind = "rare-classes"          # standard | rare-classes | redundancy | out-of-distribution
    # ... the keyword arguments of the scenario builder (raresift.simulate.scenarios)

    [model]
    kind = "mlp"                   # mlp | lenet | logistic
    hidden = [128]                 # mlp only; other keys: dropout, epochs, batch_size, lr,
                                   # momentum, weight_decay, target_accuracy; logistic: C, max_iter

    [[strategies]]
    name = "flqmi"                 # any registered strategy (`raresift strategies`)
    label = "FLQMI"                # optional display name, unique
    params = { }                   # optional constructor parameters
    candidates = "all"             # optional candidate pool name, or { kind = "...", ... }
"""

from __future__ import annotations

import copy
import inspect
import json
import logging
import os
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from functools import lru_cache
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from raresift.errors import ConfigError, ValidationError
from raresift.simulate import metrics
from raresift.simulate.scenarios import BUILDERS, Scenario
from raresift.submodular.objectives import OBJECTIVES, objective_without

logger = logging.getLogger("raresift")

#: SCMI strategy -> the SMI strategy it equals while the conditioning set is empty.
SCMI_FALLBACKS = {  # {"flcmi": "flvmi", "logdetcmi": "logdetmi"}
    name: objective_without(name, "conditioning")
    for name, spec in OBJECTIVES.items()
    if spec.query and spec.conditioning
}

DATASETS = ("fashion-mnist", "mnist5k", "digits")
MODEL_KEYS = {
    "mlp": {"kind", "hidden", "dropout", "epochs", "batch_size", "lr", "momentum",
            "weight_decay", "target_accuracy"},
    "lenet": {"kind", "dropout", "epochs", "batch_size", "lr", "momentum", "weight_decay",
              "target_accuracy"},
    "logistic": {"kind", "C", "max_iter"},
}  # fmt: skip
TOP_KEYS = {"name", "description", "seeds", "rounds", "budget", "jobs", "dataset", "scenario",
            "model", "strategies"}  # fmt: skip
DATASET_KEYS = {"name", "test_per_class", "train_subset"}
STRATEGY_KEYS = {"name", "label", "params", "candidates", "fallback"}
TIMING_COLUMNS = ("seconds_training", "seconds_selection")
COLUMN_ORDER = (
    "study", "strategy", "strategy_name", "selected_by", "seed", "round", "n_labeled",
    "accuracy", "rare_accuracy", "average_precision", "recall", "n_selected",
    "n_rare_selected", "n_unique_selected", "n_in_distribution_selected", "train_accuracy",
    "n_epochs", *TIMING_COLUMNS,
)  # fmt: skip


# --------------------------------------------------------------------------- config
@dataclass
class StrategySpec:
    """One strategy of a study: registered ``name``, display ``label`` and parameters."""

    name: str
    label: str
    params: dict[str, Any] = field(default_factory=dict)
    candidates: Any = "all"
    fallback: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "label": self.label,
            "params": self.params,
            "candidates": self.candidates,
            "fallback": self.fallback,
        }


@dataclass
class StudyConfig:
    """A validated study. Build with :func:`load_config` or :meth:`from_dict`."""

    name: str
    seeds: list[int]
    rounds: int
    budget: int
    dataset: dict[str, Any]
    scenario: dict[str, Any]
    model: dict[str, Any]
    strategies: list[StrategySpec]
    description: str = ""
    jobs: int | None = None

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> StudyConfig:
        """Validate a parsed config; each problem raises :class:`ConfigError` saying what to fix."""
        if not isinstance(raw, dict):
            raise ConfigError("a study config must be a table (dict) of settings")
        _unknown(raw, TOP_KEYS, "the study")
        for key in ("seeds", "rounds", "budget", "dataset", "scenario", "model", "strategies"):
            if key not in raw:
                raise ConfigError(f"the study config lacks `{key}`")
        seeds = raw["seeds"]
        if (
            not isinstance(seeds, list)
            or not seeds
            or not all(isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in seeds)
            or len(set(seeds)) != len(seeds)
        ):
            raise ConfigError(
                f"`seeds` must be a non-empty list of distinct integers >= 0: {seeds!r}"
            )
        rounds = _positive(raw["rounds"], "rounds")
        budget = _positive(raw["budget"], "budget")
        jobs = raw.get("jobs")
        if jobs is not None:
            jobs = _positive(jobs, "jobs")
        dataset = _table(raw["dataset"], "dataset")
        _unknown(dataset, DATASET_KEYS, "[dataset]")
        if dataset.get("name") not in DATASETS:
            raise ConfigError(
                f"[dataset] name must be one of {', '.join(DATASETS)}, got {dataset.get('name')!r}"
            )
        for key in ("test_per_class", "train_subset"):
            if key in dataset:
                _positive(dataset[key], f"dataset.{key}")
        scenario = _table(raw["scenario"], "scenario")
        kind = scenario.get("kind")
        if kind not in BUILDERS:
            raise ConfigError(f"[scenario] kind must be one of {', '.join(BUILDERS)}, got {kind!r}")
        allowed = set(inspect.signature(BUILDERS[kind]).parameters) - {
            "X", "y", "test_X", "test_y", "class_names", "seed"
        }  # fmt: skip
        _unknown(scenario, allowed | {"kind"}, f"[scenario] (kind {kind!r})")
        model = _table(raw["model"], "model")
        if model.get("kind") not in MODEL_KEYS:
            raise ConfigError(
                f"[model] kind must be one of {', '.join(MODEL_KEYS)}, got {model.get('kind')!r}"
            )
        _unknown(model, MODEL_KEYS[model["kind"]], f"[model] (kind {model['kind']!r})")
        strategies = [_strategy_spec(s, i) for i, s in enumerate(_list(raw["strategies"]))]
        labels = [s.label for s in strategies]
        if len(set(labels)) != len(labels):
            raise ConfigError(
                f"strategy labels must be unique, got {labels}; give repeated strategies a `label`"
            )
        name = raw.get("name", "study")
        if not isinstance(name, str) or not name:
            raise ConfigError("`name` must be a non-empty string")
        return cls(
            name=name,
            seeds=list(seeds),
            rounds=rounds,
            budget=budget,
            dataset=dataset,
            scenario=scenario,
            model=model,
            strategies=strategies,
            description=str(raw.get("description", "")),
            jobs=jobs,
        )

    def as_dict(self) -> dict[str, Any]:
        """The config as plain data (round-trips through :meth:`from_dict`)."""
        out = {
            "name": self.name,
            "description": self.description,
            "seeds": self.seeds,
            "rounds": self.rounds,
            "budget": self.budget,
            "dataset": self.dataset,
            "scenario": self.scenario,
            "model": self.model,
            "strategies": [s.as_dict() for s in self.strategies],
        }
        if self.jobs is not None:
            out["jobs"] = self.jobs
        return copy.deepcopy(out)

    def strategy(self, label: str) -> StrategySpec:
        for spec in self.strategies:
            if spec.label == label:
                return spec
        raise ConfigError(f"no strategy labeled {label!r} in this study")


def _unknown(table: dict, allowed: set[str], where: str) -> None:
    extra = sorted(set(table) - allowed)
    if extra:
        raise ConfigError(
            f"unknown key(s) {', '.join(extra)} in {where}; allowed: {', '.join(sorted(allowed))}"
        )


def _positive(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"`{name}` must be a positive integer, got {value!r}")
    return value


def _table(value: Any, name: str) -> dict:
    if not isinstance(value, dict):
        raise ConfigError(f"`{name}` must be a table, e.g. [{name}] in TOML")
    return dict(value)


def _list(value: Any) -> list:
    if not isinstance(value, list) or not value:
        raise ConfigError("`strategies` must be a non-empty list of names or [[strategies]] tables")
    return value


def _strategy_spec(raw: Any, index: int) -> StrategySpec:
    if isinstance(raw, str):
        raw = {"name": raw}
    if not isinstance(raw, dict):
        raise ConfigError(f"strategies[{index}] must be a name or a table, got {raw!r}")
    _unknown(raw, STRATEGY_KEYS, f"strategies[{index}]")
    name = raw.get("name")
    if not isinstance(name, str):
        raise ConfigError(f"strategies[{index}] needs a `name`")
    params = raw.get("params", {})
    if not isinstance(params, dict):
        raise ConfigError(f"strategies[{index}].params must be a table")
    label = raw.get("label", name)
    fallback = raw.get("fallback", SCMI_FALLBACKS.get(name))
    if fallback == "":
        fallback = None
    candidates = raw.get("candidates", "all")
    if not isinstance(candidates, (str, dict)):
        raise ConfigError(f"strategies[{index}].candidates must be a name or a table")
    return StrategySpec(name, str(label), dict(params), candidates, fallback)


def load_config(path: str | Path) -> StudyConfig:
    """Read and validate a TOML study config.

    Python 3.11+ reads TOML with the standard library; on 3.10 the ``tomli`` package is needed.
    """
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        try:
            import tomli as tomllib
        except ModuleNotFoundError:
            raise ConfigError(
                "reading TOML on Python 3.10 needs tomli; run `pip install tomli`"
            ) from None
    path = Path(path)
    try:
        with open(path, "rb") as fh:
            raw = tomllib.load(fh)
    except FileNotFoundError:
        raise ConfigError(f"config file {path} does not exist") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path} is not valid TOML: {exc}") from None
    return StudyConfig.from_dict(raw)


# --------------------------------------------------------------------------- building blocks
@lru_cache(maxsize=4)
def _load_dataset(name: str) -> tuple:
    from raresift import datasets

    if name == "fashion-mnist":
        train, test = datasets.load_fashion_mnist("train"), datasets.load_fashion_mnist("test")
        return train.X, train.y, test.X, test.y, train.class_names, 255.0
    data = datasets.load_mnist5k() if name == "mnist5k" else datasets.load_digits()
    return data.X, data.y, None, None, data.class_names, 255.0 if name == "mnist5k" else 16.0


def load_study_data(spec: dict[str, Any]) -> tuple:
    """``(X, y, test_X, test_y, class_names)`` for a ``[dataset]`` table; pixels scaled to [0, 1].

    Data sets without a test split (mnist5k, digits) hold out ``test_per_class`` items per class
    (default 100) with a fixed generator, the same for every seed.
    """
    X, y, test_X, test_y, names, scale = _load_dataset(spec["name"])
    rng = np.random.default_rng(12345)
    test_per_class = spec.get("test_per_class")
    if test_X is None:
        from raresift.simulate.scenarios import take_per_class

        n_classes = int(y.max()) + 1
        test_idx = take_per_class(y, np.full(n_classes, test_per_class or 100), rng)
        keep = np.ones(y.size, dtype=bool)
        keep[test_idx] = False
        test_X, test_y, X, y = X[test_idx], y[test_idx], X[keep], y[keep]
    elif test_per_class is not None:
        from raresift.simulate.scenarios import take_per_class

        n_classes = int(test_y.max()) + 1
        test_idx = np.sort(take_per_class(test_y, np.full(n_classes, test_per_class), rng))
        test_X, test_y = test_X[test_idx], test_y[test_idx]
    if spec.get("train_subset") is not None and spec["train_subset"] < y.size:
        subset = np.sort(rng.permutation(y.size)[: spec["train_subset"]])
        X, y = X[subset], y[subset]
    inv = np.float32(1.0 / scale)
    return (
        X.astype(np.float32) * inv,
        y,
        test_X.astype(np.float32) * inv,
        test_y,
        names,
    )


def build_scenario(config: StudyConfig, seed: int) -> Scenario:
    """The study's scenario for one seed."""
    X, y, test_X, test_y, names = load_study_data(config.dataset)
    params = {k: v for k, v in config.scenario.items() if k != "kind"}
    try:
        return BUILDERS[config.scenario["kind"]](
            X, y, test_X, test_y, class_names=names, seed=seed, **params
        )
    except ValidationError as exc:
        raise ConfigError(f"[scenario]: {exc}") from None


def build_model(config: StudyConfig, scenario: Scenario, seed: int):
    """A fresh model adapter for one job (retrained from scratch at every fit)."""
    spec = dict(config.model)
    kind = spec.pop("kind")
    n_classes = scenario.n_classes
    if kind == "logistic":
        from sklearn.linear_model import LogisticRegression

        from raresift.models import SklearnModel

        estimator = LogisticRegression(C=spec.get("C", 1.0), max_iter=spec.get("max_iter", 500))
        return SklearnModel(estimator, n_classes)
    from raresift.models import MLP, LeNet, TorchModel

    train = {k: spec.pop(k) for k in list(spec) if k not in ("hidden", "dropout")}
    if kind == "mlp":
        net = MLP(
            scenario.pool.dim,
            hidden=spec.get("hidden", 128),
            n_classes=n_classes,
            dropout=spec.get("dropout", 0.2),
        )
    else:
        side = int(round(np.sqrt(scenario.pool.dim)))
        if side * side != scenario.pool.dim or side != 28:
            raise ConfigError("the lenet model needs 28 x 28 images (fashion-mnist, mnist5k)")
        net = LeNet(n_classes=n_classes, dropout=spec.get("dropout", 0.5))
    return TorchModel(net, n_classes, device="cpu", seed=seed, **train)


CANDIDATE_KEYS = {
    "all": {"kind"},
    "seals": {"kind", "k", "expand", "index"},
    "random": {"kind", "fraction"},
}


def build_candidates(spec: Any, scenario: Scenario | None = None, seed: int = 0):
    """A candidate pool from a name or table.

    ``"all"`` (every unlabeled item); ``{kind = "seals", k = 100, expand = "item", index =
    "Flat"}`` (SEALS: k-NN of the labeled items, with a Faiss index of that factory string built
    over the scenario's pool); ``{kind = "random", fraction = 0.1}`` (a fixed random subset).
    Without ``scenario`` only the spec is checked.
    """
    from raresift import candidates as cand

    name, params = (spec, {}) if isinstance(spec, str) else (spec.get("kind"), dict(spec))
    if name not in CANDIDATE_KEYS:
        raise ConfigError(
            f"unknown candidate pool {name!r}; choose one of: {', '.join(CANDIDATE_KEYS)}"
        )
    _unknown(params, CANDIDATE_KEYS[name], f"candidates (kind {name!r})")
    params.pop("kind", None)
    if name == "all":
        return cand.AllCandidates()
    wanted = {"seals": "SEALSCandidates", "random": "RandomCandidates"}[name]
    if not hasattr(cand, wanted):
        raise ConfigError(f"this raresift has no {wanted}; candidate pool {name!r} is unavailable")
    if scenario is None:
        return None
    if name == "random":
        return cand.RandomCandidates(params.get("fraction", 0.1), seed=seed)
    from raresift.index import NeighborIndex

    index = NeighborIndex(params.pop("index", "Flat"), progress=False).fit(scenario.pool)
    return cand.SEALSCandidates(index, **params)


class ConditioningFallback:
    """Select with ``primary`` once the conditioning set has items, with ``fallback`` before.

    SIMILAR's OOD recipe conditions on the labeled OOD items, of which there are none in round
    one; there SCMI equals SMI, so the SMI strategy picks.
    """

    def __init__(self, primary: Any, fallback: Any):
        self.primary = primary
        self.fallback = fallback
        self.name = getattr(primary, "name", type(primary).__name__)

    def select(self, state, candidates, budget):
        empty = state.conditioning_ids is None or len(state.conditioning_ids) == 0
        return (self.fallback if empty else self.primary).select(state, candidates, budget)


def build_strategy(spec: StrategySpec, scenario: Scenario):
    """The strategy object for a spec, wrapped in :class:`ConditioningFallback` where needed."""
    from raresift.strategies import make_strategy

    strategy = make_strategy(spec.name, **spec.params)
    starts_empty = scenario.conditioning_ids is not None and scenario.conditioning_ids.size == 0
    if spec.fallback and starts_empty:
        return ConditioningFallback(strategy, make_strategy(spec.fallback, **spec.params))
    return strategy


def check_study(config: StudyConfig, only: list[str] | None = None) -> Scenario:
    """Check strategy names, candidate pools and budgets; returns the first seed's scenario.

    ``only`` restricts the strategy checks to these labels.
    """
    import raresift.strategies as strategies

    known = set(strategies.strategy_names())
    for spec in config.strategies:
        if only is not None and spec.label not in only:
            continue
        for name in (spec.name, spec.fallback):
            if name and name not in known:
                raise ConfigError(
                    f"unknown strategy {name!r} (in {spec.label!r}); choose one of: "
                    f"{', '.join(sorted(known))}"
                )
        build_candidates(spec.candidates)
    scenario = build_scenario(config, config.seeds[0])
    needed = config.rounds * config.budget
    if needed > scenario.n_unlabeled:
        raise ConfigError(
            f"{config.rounds} rounds x budget {config.budget} = {needed} labels, but the scenario "
            f"has only {scenario.n_unlabeled} unlabeled items; lower rounds or budget"
        )
    return scenario


# --------------------------------------------------------------------------- one job
def _log_path(out_dir: Path, label: str, seed: int) -> Path:
    safe = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in label)
    return out_dir / "runs" / f"{safe}__seed{seed}.jsonl"


def read_log(path: Path) -> list[dict[str, Any]]:
    """Finished rounds of one job, in order. A torn last line (killed mid-write) is dropped."""
    if not path.exists():
        return []
    rows = []
    with open(path, encoding="utf-8") as fh:
        lines = fh.read().split("\n")
    for number, line in enumerate(lines):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            if number >= len(lines) - 2:  # only the final line may be torn
                logger.warning("dropping a torn last line in %s", path)
                break
            raise ValidationError(
                f"{path}:{number + 1} is not a JSON line; delete the file"
            ) from None
        if row.get("round") != len(rows):
            raise ValidationError(f"{path} skips a round at line {number + 1}; delete the file")
        rows.append(row)
    return rows


def _write_log(path: Path, rows: list[dict[str, Any]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    with open(tmp, "w", encoding="utf-8") as fh:
        for row in rows:
            fh.write(json.dumps(row) + "\n")
    os.replace(tmp, path)


def _append_log(path: Path, row: dict[str, Any]) -> None:
    with open(path, "a", encoding="utf-8") as fh:
        fh.write(json.dumps(row) + "\n")
        fh.flush()
        os.fsync(fh.fileno())


def _evaluate(learner, scenario: Scenario, selected: np.ndarray) -> dict[str, float | int]:
    proba = np.asarray(learner.model.predict_proba(scenario.test_X))
    predicted = metrics.predictions(proba, scenario.eval_classes)
    out: dict[str, Any] = {"accuracy": metrics.accuracy(predicted, scenario.test_y)}
    if scenario.rare_classes.size:
        out["rare_accuracy"] = metrics.mean_class_accuracy(
            predicted, scenario.test_y, scenario.rare_classes
        )
    positions = scenario.pool.positions(selected)
    selected_labels = scenario.oracle[positions]
    in_distribution = scenario.eval_classes if scenario.kind == "out-of-distribution" else None
    out.update(
        metrics.selection_counts(
            selected, selected_labels, scenario.origin[positions], scenario.rare_classes,
            in_distribution,
        )
    )  # fmt: skip
    if scenario.n_classes == 2:
        out["average_precision"] = metrics.binary_average_precision(proba, scenario.test_y)
        positives = int((scenario.oracle_labels(scenario.unlabeled_ids) == 1).sum())
        out["recall"] = metrics.positive_recall(int((selected_labels == 1).sum()), positives)
    if scenario.kind != "rare-classes":
        out.pop("n_rare_selected")
    if scenario.kind != "redundancy":
        out.pop("n_unique_selected")
    return out


def _training_facts(model) -> dict[str, Any]:
    """Training accuracy and epochs of torch models (did the fit reach its target?)."""
    facts = {}
    if hasattr(model, "train_accuracy_"):
        facts["train_accuracy"] = float(model.train_accuracy_)
    if hasattr(model, "n_epochs_"):
        facts["n_epochs"] = int(model.n_epochs_)
    return facts


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
        return _run_job(config, label, seed, Path(out_dir), round_callback)
    finally:
        torch.set_num_threads(threads)


def _run_job(config, label, seed, out_dir, round_callback) -> int:
    from raresift.loop import ActiveLearner

    spec = config.strategy(label)
    path = _log_path(out_dir, label, seed)
    done = read_log(path)[: config.rounds + 1]
    _write_log(path, done)  # drops a torn line for good
    scenario = build_scenario(config, seed)
    learner = ActiveLearner(
        scenario.pool,
        build_model(config, scenario, seed),
        build_strategy(spec, scenario),
        candidates=build_candidates(spec.candidates, scenario, seed),
        labels=scenario.labels,
        query_ids=scenario.query_ids,
        conditioning_ids=scenario.conditioning_ids,
        validation_ids=scenario.validation_ids,
        seed=seed,
    )
    selected: list[np.ndarray] = []

    def absorb(ids: np.ndarray) -> None:
        answers = scenario.oracle_labels(ids)
        learner.teach(ids, answers)
        to_query, to_cond = scenario.growth(ids, answers)
        if to_query.size:
            learner.add_query_ids(to_query)
        if to_cond.size:
            learner.add_conditioning_ids(to_cond)
        selected.append(ids)

    for row in done[1:]:  # replay: teach the recorded batches, no training in between
        absorb(np.asarray(row["batch_ids"], dtype=np.int64))
    base = {"study": config.name, "strategy": label, "strategy_name": spec.name, "seed": seed}
    computed = 0
    for round_index in range(len(done), config.rounds + 1):
        seconds_selection, selected_by, batch_ids = 0.0, "", np.empty(0, np.int64)
        if round_index > 0:
            start = time.perf_counter()
            batch = learner.query(config.budget)
            seconds_selection = time.perf_counter() - start
            batch_ids, selected_by = batch.ids, batch.strategy
            absorb(batch_ids)
        start = time.perf_counter()
        learner.fit()
        seconds_training = time.perf_counter() - start
        chosen = np.concatenate(selected) if selected else np.empty(0, np.int64)
        row = {
            **base,
            "selected_by": selected_by,
            "round": round_index,
            "n_labeled": int(learner.training_ids.size),
            **_evaluate(learner, scenario, chosen),
            **_training_facts(learner.model),
            "seconds_training": seconds_training,
            "seconds_selection": seconds_selection,
            "batch_ids": batch_ids.tolist(),
        }
        _append_log(path, row)
        computed += 1
        if round_callback is not None:
            round_callback(row)
    return computed


def _job_worker(config_dict: dict, label: str, seed: int, out_dir: str) -> tuple[str, int, int]:
    """Process-pool entry point."""
    config = StudyConfig.from_dict(config_dict)
    return label, seed, run_job(config, label, seed, out_dir)


# --------------------------------------------------------------------------- the study
def _fingerprint(config: StudyConfig) -> dict[str, Any]:
    data = config.as_dict()
    return {k: data[k] for k in ("dataset", "scenario", "model", "budget")}


def _check_resumable(config: StudyConfig, out_dir: Path) -> None:
    saved_path = out_dir / "study.json"
    if not saved_path.exists():
        return
    saved = json.loads(saved_path.read_text())["config"]
    old = StudyConfig.from_dict(saved)
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


def collect_rows(config: StudyConfig, out_dir: str | Path) -> list[dict[str, Any]]:
    """Every finished row of the study's jobs, ordered by strategy (config order), seed, round."""
    rows = []
    for spec in config.strategies:
        for seed in config.seeds:
            for row in read_log(_log_path(Path(out_dir), spec.label, seed))[: config.rounds + 1]:
                row = dict(row)
                row.pop("batch_ids", None)
                rows.append(row)
    return rows


def write_table(rows: list[dict[str, Any]], path: str | Path) -> Path:
    """Write rows as a CSV table with the known columns first (empty cells for missing values)."""
    import csv

    columns = [c for c in COLUMN_ORDER if any(c in r for r in rows)]
    columns += sorted({k for r in rows for k in r} - set(columns))
    path = Path(path)
    tmp = path.with_suffix(".tmp")
    with open(tmp, "w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=columns)
        writer.writeheader()
        for row in rows:
            writer.writerow({k: _cell(row.get(k)) for k in columns})
    os.replace(tmp, path)
    return path


def _cell(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, float):
        return "" if np.isnan(value) else repr(value)
    return value


def run_study(
    config: StudyConfig | dict,
    out_dir: str | Path,
    resume: bool = True,
    jobs: int | None = None,
    progress: bool = True,
    command: str | None = None,
    round_callback: Callable[[dict[str, Any]], None] | None = None,
    only: list[str] | None = None,
) -> Path:
    """Run every (strategy, seed) job of a study into ``out_dir``; returns ``results.csv``.

    ``jobs`` worker processes run jobs in parallel (default: the config's ``jobs``, else the
    number of cores); ``jobs=1`` runs in this process. With ``resume`` (default) finished rounds
    in ``out_dir`` are kept; without it the old logs are removed first. ``round_callback`` runs
    after every new row (only with ``jobs=1``). ``only`` runs just the strategies with these
    labels (the others keep whatever rows they have), e.g. to add strategies to a study later.
    A job that raises is logged and listed under ``failures`` in ``study.json`` (and the report);
    the other jobs go on, and a later resume retries it.
    """
    if isinstance(config, dict):
        config = StudyConfig.from_dict(config)
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
                    _log_path(out_dir, spec.label, seed).unlink(missing_ok=True)
    (out_dir / "runs").mkdir(parents=True, exist_ok=True)
    commands = []
    if resume and (out_dir / "study.json").exists():
        commands = json.loads((out_dir / "study.json").read_text()).get("commands", [])
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
    n_jobs = jobs or config.jobs or os.cpu_count() or 1
    n_jobs = min(n_jobs, len(todo))
    logger.info(
        "study %s: %d jobs on %d worker(s) into %s", config.name, len(todo), n_jobs, out_dir
    )
    bar = tqdm(total=len(todo), desc=f"simulate {config.name}", disable=not progress)
    failures: list[dict[str, Any]] = []

    def failed(label: str, seed: int, exc: Exception) -> None:
        logger.error("strategy %s, seed %d failed: %s: %s", label, seed, type(exc).__name__, exc)
        failures.append({"strategy": label, "seed": seed, "error": f"{type(exc).__name__}: {exc}"})

    try:
        if n_jobs == 1:
            for label, seed in todo:
                try:
                    run_job(config, label, seed, out_dir, round_callback)
                except Exception as exc:  # one failing strategy must not stop the study
                    failed(label, seed, exc)
                bar.update()
        else:
            if round_callback is not None:
                raise ValidationError("round_callback needs jobs=1")
            with ProcessPoolExecutor(n_jobs, mp_context=get_context("spawn")) as pool:
                futures = {
                    pool.submit(_job_worker, config.as_dict(), label, seed, str(out_dir)): (
                        label,
                        seed,
                    )
                    for label, seed in todo
                }
                for future in as_completed(futures):
                    try:
                        future.result()
                    except Exception as exc:
                        failed(*futures[future], exc)
                    bar.update()
    finally:
        bar.close()
        study["failures"] = failures
        (out_dir / "study.json").write_text(json.dumps(study, indent=2))
        write_table(collect_rows(config, out_dir), out_dir / "results.csv")
    return out_dir / "results.csv"


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

    ``out_dir`` defaults to ``runs/<study name>``. ``command`` is the command line recorded in the
    report (default: the equivalent ``raresift simulate`` call).
    """
    from raresift.simulate.report import write_report

    config = load_config(config_path)
    out_dir = Path(out_dir) if out_dir is not None else Path("runs") / config.name
    if command is None:
        command = f"raresift simulate {config_path} --out {out_dir}"
        if jobs:
            command += f" --jobs {jobs}"
        if only:
            command += f" --only {','.join(only)}"
    results = run_study(config, out_dir, resume=resume, jobs=jobs, progress=progress,
                        command=command, only=only)  # fmt: skip
    return write_report(results, out_dir)
