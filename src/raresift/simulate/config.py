"""A study's configuration: the TOML schema, checked once when it is read.

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
                                   # momentum, weight_decay, target_accuracy; logistic: C,
                                   # max_iter, class_weight ("balanced" or {class = weight})

    [[strategies]]
    name = "flqmi"                 # any registered strategy (`raresift strategies`)
    label = "FLQMI"                # optional display name, unique
    params = { }                   # optional constructor parameters
    candidates = "all"             # optional candidate pool name, or { kind = "...", ... }
"""

from __future__ import annotations

import copy
import inspect
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from raresift.errors import ConfigError
from raresift.simulate.scenarios import BUILDERS
from raresift.submodular.objectives import OBJECTIVES, objective_without

#: SCMI strategy -> the SMI function it selects with while the conditioning set is empty (the
#: strategy does so itself, :meth:`raresift.strategies.similar.SubmodularStrategy.objective`;
#: configs and reports name it).
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
    "logistic": {"kind", "C", "max_iter", "class_weight"},
}  # fmt: skip
TOP_KEYS = {"name", "description", "seeds", "rounds", "budget", "jobs", "dataset", "scenario",
            "model", "strategies"}  # fmt: skip
DATASET_KEYS = {"name", "test_per_class", "train_subset"}
STRATEGY_KEYS = {"name", "label", "params", "candidates", "fallback"}


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
        check_known_keys(raw, TOP_KEYS, "the study")
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
        check_known_keys(dataset, DATASET_KEYS, "[dataset]")
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
        check_known_keys(scenario, allowed | {"kind"}, f"[scenario] (kind {kind!r})")
        model = _table(raw["model"], "model")
        if model.get("kind") not in MODEL_KEYS:
            raise ConfigError(
                f"[model] kind must be one of {', '.join(MODEL_KEYS)}, got {model.get('kind')!r}"
            )
        check_known_keys(model, MODEL_KEYS[model["kind"]], f"[model] (kind {model['kind']!r})")
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


def check_known_keys(table: dict, allowed: set[str], where: str) -> None:
    """Raise :class:`ConfigError` naming the keys of ``table`` outside ``allowed``."""
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
    check_known_keys(raw, STRATEGY_KEYS, f"strategies[{index}]")
    name = raw.get("name")
    if not isinstance(name, str):
        raise ConfigError(f"strategies[{index}] needs a `name`")
    params = raw.get("params", {})
    if not isinstance(params, dict):
        raise ConfigError(f"strategies[{index}].params must be a table")
    label = raw.get("label", name)
    fallback = raw.get("fallback", SCMI_FALLBACKS.get(name))
    if fallback != SCMI_FALLBACKS.get(name):
        raise ConfigError(
            f"strategies[{index}].fallback = {fallback!r}: only SCMI strategies fall back, each "
            f"to the SMI function of its family while the conditioning set is empty "
            f"({', '.join(f'{k} -> {v}' for k, v in SCMI_FALLBACKS.items())}); the strategy "
            "does that itself, so remove the key"
        )
    candidates = raw.get("candidates", "all")
    if not isinstance(candidates, (str, dict)):
        raise ConfigError(f"strategies[{index}].candidates must be a name or a table")
    return StrategySpec(name, str(label), dict(params), candidates, fallback)


def load_config(path: str | Path) -> StudyConfig:
    """Read and validate a TOML study config.

    Python 3.11+ reads TOML with the standard library; on 3.10 the ``tomli`` package is needed.
    """
    return StudyConfig.from_dict(read_toml(path))


def read_toml(path: str | Path) -> dict[str, Any]:
    """A study config file as parsed TOML (not yet validated)."""
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
    except IsADirectoryError:
        raise ConfigError(f"{path} is a folder; pass the study's TOML file") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"{path} is not UTF-8 text (byte {exc.start}); save it as UTF-8"
        ) from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path} is not valid TOML: {exc}") from None
    return raw
