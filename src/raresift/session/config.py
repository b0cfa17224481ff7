"""The one validated configuration of a session, built and checked at ``init``.

:class:`SessionConfig` checks every option of ``raresift init`` / :meth:`Session.create` in the
parameter contract of :mod:`raresift.params` before any file is read or written, so a bad flag
fails at ``init`` with one line, never rounds later. :meth:`SessionConfig.index_plan` builds the
Faiss index a factory string names (refusing a string Faiss cannot build), reads its number of
inverted lists from the built index, and says whether the search parameters must be
calibrated for it (a string the user chose gets its own ``nprobe`` / ``efSearch``, not the
default's). :func:`check_stored` reads a stored config back and reports hand damage as a
:class:`~raresift.session.errors.SessionCorruptError`.

>>> SessionConfig(budget=0)
Traceback (most recent call last):
...
raresift.errors.ConfigError: raresift init: budget=0 is invalid; it must be a positive integer
>>> from dataclasses import astuple
>>> astuple(SessionConfig().index_plan(10_000, 8))[:4]
('Flat', '', 0, False)
>>> astuple(SessionConfig().index_plan(200_000, 8))[:4]
('IVF1789,Flat', 'nprobe=16', 1789, False)
>>> SessionConfig().index_plan(10**7, 8).factory
'IVF4096,SQ8'
>>> large = SessionConfig().index_plan(10**8, 8)
>>> large.factory, large.calibrate, large.on_disk, large.max_scan
('IVF65536_HNSW32,SQ8', True, True, 100000)
>>> astuple(SessionConfig(index="IVF64,Flat").index_plan(3_000, 8))[:4]
('IVF64,Flat', '', 64, True)
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from raresift.errors import ConfigError, ValidationError
from raresift.params import Instance, Interval, Options, Parameterized, invalid
from raresift.session.errors import SessionCorruptError

ENGINES = ("local", "ray")  # where rounds run
CANDIDATE_NAMES = ("all", "seals", "random")
SMALL_POOL = 50_000  # up to here every item is a candidate; above, SEALS with an index
MAX_DEFAULT_LISTS = 4096  # inverted lists of the default index beyond 10^6 items
LARGE_POOL = 20_000_000  # from here on: lists on disk and the default below
LARGE_LISTS = 65_536  # the large default's lists (an HNSW coarse quantiser finds them)
MAX_SCAN = 100_000  # codes one query of the large default scans at most (its calibration cap)
RECALL_TARGET = 0.95  # recall@10 a user's own index string is calibrated to reach
MAX_SEED = 2**63 - 1
SPECIAL = ("skip", "junk", "duplicate")  # answers that are no class: never trained on


class LocalEngine:
    """Where a session's rounds run: here, in this process. An engine is asked for the index
    SEALS searches and the strategy that selects; the Ray engine
    (:class:`raresift.distributed.engine.RayEngine`, wired by the :class:`Session` facade for
    ``engine="ray"``) sends both to a cluster. The session floor never imports it."""

    name = "local"

    def index(self, project, index):
        return index

    def strategy(self, strategy, progress: bool):
        return strategy


@dataclass(frozen=True)
class IndexPlan:
    """The SEALS index of a session: factory string, search parameters, number of inverted
    lists (0: not an IVF index), whether to calibrate the search parameters once built, whether
    the inverted lists live on disk (a sharded build, :func:`raresift.index.
    build_sharded_index`) and the calibration's cap on the codes a query scans."""

    factory: str
    search_params: str
    nlist: int
    calibrate: bool
    on_disk: bool = False
    max_scan: int | None = None


class SessionConfig(Parameterized):
    """The options of a new session, each checked once, here (see ``raresift init --help``)."""

    parameter_constraints = {
        "kind": [Options("concept", "classes")],
        "strategy": [Instance(str, None)],
        "strategy_params": [Instance(dict, None)],
        "candidates": [Options(*CANDIDATE_NAMES), Instance(None)],
        "budget": [Interval(int, 1, None)],
        "index": [Instance(str, None)],
        "index_search": [Instance(str, None)],
        "seals_k": [Interval(int, 1, None)],
        "seed": [Interval(int, 0, MAX_SEED)],
        "engine": [Options(*ENGINES)],
        "address": [Instance(str, None)],
        "image_size": [Instance(None), Interval(int, 32, 4096)],
        "model_C": [Interval(float, 0, None, "neither")],
        "model_max_iter": [Interval(int, 1, None)],
    }

    def __init__(
        self,
        kind: str = "concept",
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
    ):
        self.kind = kind
        self.strategy = strategy
        self.strategy_params = strategy_params
        self.candidates = candidates
        self.budget = budget
        self.index = index
        self.index_search = index_search
        self.seals_k = seals_k
        self.seed = seed
        self.engine = engine
        self.address = address
        self.image_size = image_size
        self.model_C = model_C
        self.model_max_iter = model_max_iter

    def check_parameters(self) -> None:
        from raresift.params import check_parameters

        values = {k: v for k, v in vars(self).items() if not k.startswith("_")}
        check_parameters("raresift init", values, self.all_constraints())
        if self.index is not None and not self.index.strip():
            raise invalid("raresift init", "index", self.index, "a Faiss factory string")
        if self.address is not None and self.engine != "ray":
            raise ConfigError("address= names a Ray cluster; it needs engine='ray'")
        if self.strategy is not None:
            from raresift.strategies import strategy_names

            if self.strategy not in strategy_names():
                raise ConfigError(f"unknown strategy {self.strategy!r}; see raresift strategies")
        self.strategy_params = check_strategy_params(self.strategy_params, self.kind)
        if self.strategy is not None:
            check_session_strategy(
                self.strategy, self.strategy_params.get(self.strategy), self.kind
            )

    def index_plan(self, n: int, dim: int) -> IndexPlan:
        """The index for ``n`` items of ``dim`` features: the user's factory string or the
        default for the pool size, built by Faiss now (a string it cannot build is refused at
        ``init``), its number of lists read from the built index."""
        import faiss

        from raresift.index import _make_faiss_index, ivf_nlist

        if self.index is not None:
            factory = self.index.strip()
        elif n <= SMALL_POOL:
            factory = "Flat"
        elif n >= LARGE_POOL:  # two-level k-means, an HNSW quantiser (docs/scale.md)
            factory = f"IVF{LARGE_LISTS}_HNSW32,SQ8"
        elif n <= 1_000_000:
            factory = f"IVF{ivf_nlist(n)},Flat"
        else:  # at most MAX_DEFAULT_LISTS: k-means on 40 rows a list stays quick at init
            factory = f"IVF{min(ivf_nlist(n), MAX_DEFAULT_LISTS)},SQ8"
        built = _make_faiss_index(factory, dim)
        ivf = faiss.try_extract_index_ivf(built)
        nlist = 0 if ivf is None else int(ivf.nlist)
        if nlist and nlist > n:
            raise ConfigError(
                f"index {factory!r} has {nlist} inverted lists for {n} items; use at most "
                f"{max(1, n // 39)} (for example IVF{ivf_nlist(n)},Flat) or Flat"
            )
        on_disk = bool(nlist) and n >= LARGE_POOL
        if self.index_search is not None:
            _check_search_params(built, factory, self.index_search)
            return IndexPlan(factory, self.index_search, nlist, False, on_disk)
        if self.index is None and n >= LARGE_POOL:  # calibrated, within MAX_SCAN a query
            return IndexPlan(factory, "", nlist, True, on_disk, MAX_SCAN)
        if self.index is None:  # the default string: its measured default search parameters
            return IndexPlan(factory, "nprobe=16" if nlist else "", nlist, False)
        calibrate = nlist > 0 or "HNSW" in factory
        return IndexPlan(factory, "", nlist, calibrate, on_disk)

    def as_dict(self) -> dict[str, Any]:
        return {k: v for k, v in vars(self).items() if not k.startswith("_")}


def session_model_provides(kind: str = "logistic") -> frozenset[str]:
    """The capabilities of the model a session fits (:data:`raresift.models.base.CAPABILITIES`):
    what a strategy may ask of it."""
    from sklearn.linear_model import LogisticRegression

    from raresift.models import SklearnModel
    from raresift.models.base import model_provides

    if kind != "logistic":
        raise ConfigError(f"unknown session model kind {kind!r}")
    return model_provides(SklearnModel(LogisticRegression(), n_classes=2))


def check_session_strategy(
    name: str, params: dict[str, Any] | None = None, kind: str = "concept"
) -> None:
    """Ask the strategy (built with ``params``) what it needs of the model; refuse it up front
    when the session's model cannot give it (a network's dropout, penultimate features or
    Fisher scores), instead of at the first round."""
    from raresift.models.base import CAPABILITIES
    from raresift.strategies.rare import session_strategy

    strategy = session_strategy(name, kind=kind, positive=[1], params=params)
    missing = sorted(strategy.requires() - session_model_provides())
    if missing:
        raise ConfigError(
            f"strategy {name!r} needs {'; '.join(CAPABILITIES[c] for c in missing)}: a neural "
            "network trained on the raw items, and a session fits logistic regression on the "
            "embeddings, so use entropy, margin, mlp, information-density, badge, coreset or a "
            "SIMILAR function such as flqmi"
        )


def check_strategy_params(params: Any, kind: str = "concept") -> dict[str, dict[str, Any]]:
    """``strategy_params`` checked: names of strategies, parameters they accept."""
    if params is None:
        return {}
    if not isinstance(params, dict):
        raise ValidationError("strategy_params must map strategy names to parameter dicts")
    from raresift.strategies import strategy_names
    from raresift.strategies.rare import session_strategy

    out = {}
    for name, values in params.items():
        if name not in strategy_names():
            raise ConfigError(f"strategy_params names unknown strategy {name!r}")
        if not isinstance(values, dict):
            raise ValidationError(f"strategy_params[{name!r}] must be a dict of parameters")
        session_strategy(name, kind=kind, positive=[1], params=values)  # bad ones raise now
        out[str(name)] = dict(values)
    return out


def _check_search_params(index, factory: str, params: str) -> None:
    import faiss

    if not params:
        return
    try:
        faiss.ParameterSpace().set_index_parameters(index, params)
    except RuntimeError as exc:
        raise ConfigError(
            f"bad index search parameters {params!r} for {factory!r}: "
            f"{str(exc).strip().splitlines()[-1]}"
        ) from None


# the stored config: each key and what its value must be (a hand-edited store is refused)
_STORED = {
    "kind": lambda v: v in ("concept", "classes"),
    "n_items": lambda v: _int(v) and v >= 1,
    "dim": lambda v: _int(v) and v >= 1,
    "embeddings": lambda v: isinstance(v, dict) and isinstance(v.get("path"), str),
    "ids": lambda v: v in ("row", "int", "str"),
    "engine": lambda v: v in ENGINES,
    "seed": lambda v: _int(v) and 0 <= v <= MAX_SEED,
    "model": lambda v: (
        isinstance(v, dict)
        and _number(v.get("C"))
        and v["C"] > 0
        and _int(v.get("max_iter"))
        and v["max_iter"] >= 1
    ),
    "defaults": lambda v: (
        isinstance(v, dict)
        and isinstance(v.get("strategy"), str)
        and v.get("candidates") in CANDIDATE_NAMES
        and _int(v.get("budget"))
        and v["budget"] >= 1
    ),
    "index": lambda v: (
        isinstance(v, dict)
        and isinstance(v.get("factory"), str)
        and isinstance(v.get("search_params"), str)
        and isinstance(v.get("path"), str)
    ),
    "seals_k": lambda v: _int(v) and v >= 1,
    "stop_set": lambda v: isinstance(v, list) and all(_int(i) for i in v),
}


def _int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def check_stored(config: Any, where: str) -> dict[str, Any]:
    """The config read from a session database, or :class:`SessionCorruptError` naming the
    first damaged value."""
    if not isinstance(config, dict):
        raise SessionCorruptError(
            f"{where}: the stored config is not a JSON object (hand-edited?); restore the "
            "database from a backup"
        )
    for key, ok in _STORED.items():
        if key not in config or not ok(config[key]):
            shown = repr(config.get(key, "<missing>"))[:80]
            raise SessionCorruptError(
                f"{where}: the stored config value {key}={shown} is damaged (hand-edited?); "
                "restore the database from a backup"
            )
    kind_ok = (
        isinstance(config.get("classes"), list) and len(config["classes"]) >= 2
        if config["kind"] == "classes"
        else isinstance(config.get("concept"), str)
    )
    if not kind_ok:
        raise SessionCorruptError(
            f"{where}: the stored config's classes / concept are damaged (hand-edited?); "
            "restore the database from a backup"
        )
    bad = [i for i in config["stop_set"] if not 0 <= i < config["n_items"]]
    if bad:
        raise SessionCorruptError(
            f"{where}: the stored stop set names item {bad[0]}, outside 0..{config['n_items'] - 1} "
            "(hand-edited?); restore the database from a backup"
        )
    return config
