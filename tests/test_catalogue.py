"""The bad-input catalogue: every mistake a user can make, and the clear error it must get.

One row per case. An API row is a function of ``tmp_path`` that makes the mistake, the
:class:`~raresift.errors.RaresiftError` subclass it must raise and the words its message must
contain (case-insensitive). A CLI row is the argument list (built in ``tmp_path``) and the words of
the one line the command must print on stderr; it must exit 2 (or the row's ``exit``) with no
traceback and create nothing it was not asked to.

Labeling-session rows run against a small project (``tmp_path/p``, 300 items, three classes, 12
answers) built by :func:`_project`, with the input files it writes beside it; they live in the
one table ``SESSION_ROWS`` (name, command with ``{p}`` for the project and ``{d}`` for its
folder, the words of the error). "Nothing stored lost or changed" is checked on every file's
bytes and, for a session database, on its full SQL dump.

To add rows for a new feature, decorate a function::

    @api_case(ValidationError, "words", "the message", "must hold")
    def my_feature_rejects_x(tmp_path):
        my_feature(x)

    @cli_case("words of the stderr line")
    def my_command_rejects_y(tmp_path):
        return ["my-command", "--flag", "y"]

The function's name is the row's id (pytest shows it). Keep the setup small: the whole catalogue
runs in the default test run.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import scipy.sparse as sp

from raresift.errors import (
    BudgetError,
    ConfigError,
    CorruptFileError,
    RaresiftError,
    UnknownIdError,
    ValidationError,
)


@dataclass(frozen=True)
class ApiCase:
    make_mistake: Callable[[Path], Any]
    error: type[RaresiftError]
    words: tuple[str, ...]


@dataclass(frozen=True)
class CliCase:
    arguments: Callable[[Path], list[str]]
    words: tuple[str, ...]
    exit: int
    project: bool = False  # run against the labeling session _project builds in tmp_path/p


API_CASES: dict[str, ApiCase] = {}
CLI_CASES: dict[str, CliCase] = {}


def api_case(error: type[RaresiftError], *words: str):
    def register(fn: Callable[[Path], Any]):
        assert fn.__name__ not in API_CASES, fn.__name__
        API_CASES[fn.__name__] = ApiCase(fn, error, words)
        return fn

    return register


def cli_case(*words: str, exit: int = 2):
    def register(fn: Callable[[Path], list[str]]):
        assert fn.__name__ not in CLI_CASES, fn.__name__
        CLI_CASES[fn.__name__] = CliCase(fn, words, exit)
        return fn

    return register


# ------------------------------------------------------------------------------ shared fixtures
def _points(n=40, d=4, seed=0):
    return np.random.default_rng(seed).normal(size=(n, d)).astype(np.float32)


def _pool(n=40, d=4, seed=0, ids=None):
    from raresift.pool import Pool

    return Pool(_points(n, d, seed), ids=ids)


def _learner(labels=None, n_classes=2, strategy="entropy", candidates=None, n=60):
    from sklearn.linear_model import LogisticRegression

    from raresift.loop import ActiveLearner
    from raresift.models import SklearnModel

    if labels is None:
        from raresift.pool import Labels

        labels = Labels([0, 1, 2, 3], [0, 1, 0, 1])
    model = SklearnModel(LogisticRegression(max_iter=200), n_classes=n_classes)
    return ActiveLearner(_pool(n), model, strategy, candidates=candidates, labels=labels)


def _saved_index(tmp_path: Path, n=60):
    from raresift.index import NeighborIndex

    index = NeighborIndex("Flat", progress=False).fit(_pool(n))
    path = tmp_path / "pool.index"
    index.save(path)
    return path


def _results_csv(tmp_path: Path, text: str | bytes) -> Path:
    path = tmp_path / "results.csv"
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text)
    return path


GOOD_CSV = "strategy,seed,round,n_labeled,accuracy\nrandom,0,0,10,0.5\nrandom,0,1,20,0.6\n"


def _study_folder(tmp_path: Path, log_lines: list[str], csv_rows: int) -> Path:
    """A study folder as the runner leaves it: study.json (1 strategy, 1 seed, 2 rounds), a run
    log and a results.csv with its first ``csv_rows`` rows."""
    config = {**STUDY, "rounds": 2, "strategies": [{"label": "random"}]}
    (tmp_path / "study.json").write_text(json.dumps({"config": config, "failures": []}))
    (tmp_path / "runs").mkdir()
    (tmp_path / "runs" / "random__seed0.jsonl").write_text("\n".join(log_lines) + "\n")
    rows = [f"random,0,{r},{10 * (r + 1)},0.{5 + r}" for r in range(csv_rows)]
    return _results_csv(tmp_path, "strategy,seed,round,n_labeled,accuracy\n" + "\n".join(rows))


def _log_line(r: int) -> str:
    return json.dumps(
        {"strategy": "random", "seed": 0, "round": r, "n_labeled": 10, "batch_ids": []}
    )


STUDY = {
    "name": "catalogue",
    "seeds": [0],
    "rounds": 1,
    "budget": 5,
    "dataset": {"name": "digits", "test_per_class": 10},
    "scenario": {"kind": "standard", "labeled_per_class": 2, "unlabeled_per_class": 20},
    "model": {"kind": "logistic", "max_iter": 100},
    "strategies": ["random"],
}


def _study_with(strategy, tmp_path: Path):
    from raresift.simulate.runner import run_study

    return run_study({**STUDY, "strategies": [strategy]}, tmp_path / "out", jobs=1, progress=False)


def _study_toml(tmp_path: Path) -> Path:
    path = tmp_path / "study.toml"
    path.write_text(
        'name = "catalogue"\nseeds = [0]\nrounds = 1\nbudget = 5\n'
        '[dataset]\nname = "digits"\ntest_per_class = 10\n'
        '[scenario]\nkind = "standard"\nlabeled_per_class = 2\nunlabeled_per_class = 20\n'
        '[model]\nkind = "logistic"\nmax_iter = 100\n'
        '[[strategies]]\nname = "random"\n'
    )
    return path


# ------------------------------------------------------------------------------ ids and pools
@api_case(ValidationError, "2^63")
def uint64_ids_above_2_63(tmp_path):
    _pool(3, ids=np.array([1, 2, 2**63 + 5], dtype=np.uint64))


@api_case(ValidationError, "2^53", "as integers")
def float_ids_above_2_53(tmp_path):
    _pool(2, ids=np.array([2.0**53 + 2, 3.0]))


@api_case(ValidationError, "integers", "fractional")
def fractional_float_ids(tmp_path):
    _pool(2, ids=[0.5, 1.0])


@api_case(ValidationError, "unique", "id 1")
def duplicate_ids(tmp_path):
    _pool(3, ids=[1, 2, 1])


@api_case(ValidationError, "2 entries", "3 rows")
def ids_and_rows_disagree(tmp_path):
    _pool(3, ids=[1, 2])


@api_case(ValidationError, "NaN", "row 1")
def nan_embeddings(tmp_path):
    from raresift.pool import Pool

    Pool(np.array([[0.0, 1.0], [np.nan, 1.0]]))


@api_case(ValidationError, "different lengths")
def ragged_embeddings(tmp_path):
    from raresift.pool import Pool

    Pool([[1.0, 2.0], [3.0]])


@api_case(ValidationError, "0 features")
def pool_with_no_features(tmp_path):
    from raresift.pool import Pool

    Pool(np.zeros((5, 0), dtype=np.float32))


@api_case(ValidationError, "2-d")
def one_dimensional_embeddings(tmp_path):
    from raresift.pool import Pool

    Pool(np.ones(5))


@api_case(ValidationError, "empty")
def empty_embeddings(tmp_path):
    from raresift.pool import Pool

    Pool(np.ones((0, 3)))


@api_case(ValidationError, "numeric")
def text_embeddings(tmp_path):
    from raresift.pool import Pool

    Pool(np.array([["a", "b"]]))


@api_case(UnknownIdError, "not in the pool", "[99]")
def unknown_id(tmp_path):
    _pool(5).embeddings_of([1, 99])


# ------------------------------------------------------------------------------ labels
@api_case(ValidationError, "1-d", "(3, 1)", "ravel")
def labels_of_shape_3_by_1(tmp_path):
    from raresift.pool import Labels

    Labels([1, 2, 3], np.array([[0], [1], [0]]))


@api_case(ValidationError, "3 ids but 2 labels")
def fewer_labels_than_ids(tmp_path):
    from raresift.pool import Labels

    Labels([1, 2, 3], [0, 1])


@api_case(ValidationError, "already labeled 0", "overwrite=True")
def relabel_without_overwrite(tmp_path):
    from raresift.pool import Labels

    labels = Labels([1], [0])
    labels.add([1], [1])


@api_case(ValidationError, "non-negative")
def negative_label(tmp_path):
    from raresift.pool import Labels

    Labels([1], [-1])


@api_case(ValidationError, "integer class indices")
def fractional_label(tmp_path):
    from raresift.pool import Labels

    Labels([1], [0.5])


@api_case(ValidationError, "Labels", "dict", "(ids, labels)")
def labels_given_as_a_list(tmp_path):
    _learner(labels=[0, 1, 0, 1])


@api_case(ValidationError, "infer 1000000001 classes", "n_classes=")
def label_of_a_billion_without_n_classes(tmp_path):
    from sklearn.linear_model import LogisticRegression

    from raresift.models import SklearnModel

    SklearnModel(LogisticRegression()).fit(_points(3), [0, 1, 10**9])


@api_case(ValidationError, "label 7", "2 classes")
def seed_label_7_for_a_binary_model(tmp_path):
    from raresift.pool import Labels

    _learner(labels=Labels([0, 1, 2], [0, 1, 7]))


@api_case(ValidationError, "label 5", "2 classes")
def taught_label_out_of_range(tmp_path):
    _learner().teach([10], [5])


# ------------------------------------------------------------------------------ the loop
@api_case(ValidationError, "oracle has 3 labels", "60 pool items")
def oracle_of_the_wrong_length(tmp_path):
    _learner().run(np.array([0, 1, 0]), rounds=1, budget=2)


@api_case(BudgetError, "exceeds", "eligible")
def budget_above_the_pool(tmp_path):
    _learner().query(1000)


@api_case(BudgetError, "positive integer")
def budget_of_zero(tmp_path):
    _learner().query(0)


@api_case(BudgetError, "SEALS", "nothing is labeled yet", "seed labels")
def seals_with_no_labels(tmp_path):
    from raresift.candidates import SEALSCandidates
    from raresift.index import NeighborIndex
    from raresift.pool import Labels

    pool = _pool(60)
    candidates = SEALSCandidates(NeighborIndex("Flat", progress=False).fit(pool), k=5)
    _learner(labels=Labels(), candidates=candidates).query(5)


# ------------------------------------------------------------------------------ kernels
@api_case(ValidationError, "k = 50", "only 40 items")
def knn_kernel_k_above_n(tmp_path):
    from raresift.kernels import knn_kernel

    knn_kernel(_points(40), 50)


@api_case(ValidationError, "positive integer")
def knn_kernel_k_zero(tmp_path):
    from raresift.kernels import knn_kernel

    knn_kernel(_points(40), 0)


@api_case(ValidationError, "unknown k-NN mode", "union", "rows")
def knn_kernel_unknown_mode(tmp_path):
    from raresift.kernels import knn_kernel

    knn_kernel(_points(40), 5, mode="mutual")


@api_case(ValidationError, "unknown metric", "cosine")
def unknown_metric(tmp_path):
    from raresift.kernels import similarity

    similarity(_points(5), metric="manhattan")


@api_case(ConfigError, "NeighborIndex", "metric='manhattan'", "'cosine', 'dot', 'euclidean'")
def neighbor_index_with_an_unknown_metric(tmp_path):
    from raresift.index import NeighborIndex

    NeighborIndex(metric="manhattan")


@api_case(ConfigError, "SEALSCandidates", "NeighborIndex", "check_pool")
def seals_over_an_index_that_cannot_check_its_pool(tmp_path):
    from raresift.candidates import SEALSCandidates

    class SearchOnly:  # searches, but cannot tell whether it was built over this pool
        def neighbors(self, ids, k, pool=None):
            return np.zeros((len(ids), k), dtype=np.int64)

    SEALSCandidates(SearchOnly())


@api_case(ValidationError, "square")
def non_square_data_kernel(tmp_path):
    from raresift.kernels import DenseKernel

    DenseKernel(np.ones((3, 4)))


# ------------------------------------------------------------------------------ submodular
@api_case(ValidationError, "every candidate gains 0", "shifted cosine")
def facility_location_on_an_all_negative_kernel(tmp_path):
    from raresift.submodular import select

    select("fl", 3, data_kernel=-np.ones((10, 10)) - np.eye(10))


@api_case(ValidationError, "symmetric", "(K + K.T) / 2")
def graph_cut_on_an_asymmetric_kernel(tmp_path):
    from raresift.submodular import make_objective

    make_objective("gc", data_kernel=np.triu(np.ones((6, 6))))


@api_case(ValidationError, "symmetric")
def graph_cut_on_a_one_directional_knn_kernel(tmp_path):
    from raresift.submodular import make_objective

    make_objective("gc", _points(40), kernel="sparse", k=3, knn_mode="rows")


@api_case(ValidationError, "positive semi-definite")
def log_determinant_on_a_sparse_kernel(tmp_path):
    from raresift.kernels import SparseKernel
    from raresift.submodular import make_objective

    make_objective("logdet", data_kernel=SparseKernel(sp.eye(5, format="csr")))


@api_case(ValidationError, "indefinite", "eta = 0 with nu = 1", "larger lambda_")
def log_determinant_cmi_on_an_indefinite_joint_kernel(tmp_path):
    from raresift.submodular import select

    rng = np.random.default_rng(0)
    X, Q, P = (rng.normal(size=(m, 4)).astype(np.float32) for m in (6, 3, 4))
    select("logdetcmi", 5, "naive", data=X, query=Q, conditioning=P, eta=0.0, nu=1.0, lambda_=0.5)


@api_case(ConfigError, "unknown objective", "flqmi")
def unknown_objective(tmp_path):
    from raresift.submodular import make_objective

    make_objective("flqmx", _points(5))


@api_case(ConfigError, "unknown optimizer", "lazy")
def unknown_optimizer(tmp_path):
    from raresift.submodular import select

    select("fl", 2, optimizer="greedyish", data=_points(10))


@api_case(ValidationError, "non-empty query set", "'fl'")
def smi_without_a_query_set(tmp_path):
    from raresift.submodular import make_objective

    make_objective("flvmi", _points(10), query=np.empty((0, 4)))


@api_case(ValidationError, "eta must be finite")
def negative_eta(tmp_path):
    from raresift.submodular import make_objective

    make_objective("flqmi", _points(10), query=_points(2), eta=-1)


# ------------------------------------------------------------------------------ scores
@api_case(ValidationError, "2-d", "average MC samples")
def entropy_of_3d_probabilities(tmp_path):
    from raresift.strategies.uncertainty import entropy_scores

    entropy_scores(np.full((4, 3, 2), 0.5))


@api_case(ValidationError, "not probabilities", "sums to 3", "softmax")
def margin_of_logits(tmp_path):
    from raresift.strategies.uncertainty import margin_scores

    margin_scores(np.array([[0.5, 0.5], [1.0, 2.0]]))


@api_case(ValidationError, "NaN")
def least_confidence_of_nan(tmp_path):
    from raresift.strategies.uncertainty import least_confidence_scores

    least_confidence_scores(np.array([[np.nan, 0.5]]))


# ------------------------------------------------------------------------------ the index
@api_case(ValidationError, "another pool", "other vectors")
def index_attached_to_other_vectors(tmp_path):
    from raresift.index import NeighborIndex

    NeighborIndex("Flat", progress=False).fit(_pool(60)).attach(_pool(60, seed=1))


@api_case(ValidationError, "another pool", "100 items, not 300")
def index_over_100_of_300_rows_loaded_for_the_pool(tmp_path):
    from raresift.index import NeighborIndex
    from raresift.pool import Pool

    x = _points(300)
    NeighborIndex("Flat", progress=False).fit(Pool(x[:100])).save(tmp_path / "part.index")
    NeighborIndex.load(tmp_path / "part.index", pool=Pool(x))


@api_case(ValidationError, "another pool", "other ids")
def seals_started_on_another_pool(tmp_path):
    from raresift.candidates import SEALSCandidates
    from raresift.index import NeighborIndex
    from raresift.pool import Labels, Pool

    x = _points(60)
    index = NeighborIndex("Flat", progress=False).fit(Pool(x))
    SEALSCandidates(index, k=5).start(Pool(x, ids=np.arange(60) + 1000), Labels([1000], [1]))


@api_case(CorruptFileError, "checksum", "garbled")
def index_file_with_garbled_bytes(tmp_path):
    from raresift.index import NeighborIndex

    path = _saved_index(tmp_path)
    data = bytearray(path.read_bytes())
    data[-100] ^= 0xFF  # one flipped byte in the stored vectors
    path.write_bytes(bytes(data))
    NeighborIndex.load(path)


@api_case(CorruptFileError, "JSON list", "rebuild")
def index_settings_that_are_a_list(tmp_path):
    from raresift.index import NeighborIndex

    path = _saved_index(tmp_path)
    Path(f"{path}.json").write_text("[1, 2]")
    NeighborIndex.load(path)


@api_case(CorruptFileError, "lack", "ntotal")
def index_settings_lacking_keys(tmp_path):
    from raresift.index import NeighborIndex

    path = _saved_index(tmp_path)
    meta = json.loads(Path(f"{path}.json").read_text())
    del meta["ntotal"]
    Path(f"{path}.json").write_text(json.dumps(meta))
    NeighborIndex.load(path)


@api_case(ValidationError, "does not exist", "create it first")
def index_saved_into_a_missing_folder(tmp_path):
    from raresift.index import NeighborIndex

    NeighborIndex("Flat", progress=False).fit(_pool(20)).save(tmp_path / "nope" / "x.index")


@api_case(ValidationError, "no saved index")
def index_loaded_from_nowhere(tmp_path):
    from raresift.index import NeighborIndex

    NeighborIndex.load(tmp_path / "missing.index")


@api_case(ValidationError, "k must be a positive integer", "-1")
def neighbors_with_negative_k(tmp_path):
    from raresift.index import NeighborIndex

    NeighborIndex("Flat", progress=False).fit(_pool(20)).neighbors([0], k=-1)


@api_case(ConfigError, "Faiss cannot build", "NoSuchIndex")
def bad_faiss_factory_string(tmp_path):
    from raresift.index import NeighborIndex

    NeighborIndex("NoSuchIndex", progress=False).fit(_pool(20))


# ------------------------------------------------------------------------------ results and reports
@api_case(CorruptFileError, "not UTF-8")
def results_that_are_not_utf8(tmp_path):
    from raresift.simulate.stats import read_table

    read_table(_results_csv(tmp_path, b"strategy,seed\n\xff\xfe,1\n"))


@api_case(CorruptFileError, "results.csv:2", "'accuracy'", "not a number")
def results_with_a_non_numeric_cell(tmp_path):
    from raresift.simulate.stats import read_table

    read_table(_results_csv(tmp_path, GOOD_CSV.replace("0.5", "high")))


@api_case(CorruptFileError, "lacks the column", "strategy")
def results_without_a_strategy_column(tmp_path):
    from raresift.simulate.stats import read_table

    read_table(_results_csv(tmp_path, "seed,round,n_labeled\n0,0,10\n"))


@api_case(ValidationError, "does not exist", "raresift simulate")
def results_that_do_not_exist(tmp_path):
    from raresift.simulate.stats import read_table

    read_table(tmp_path / "results.csv")


@api_case(ValidationError, "too few seeds", "at least 3")
def penalty_matrix_from_two_seeds(tmp_path):
    from raresift.simulate.stats import penalty_matrix

    rows = [
        {"strategy": s, "seed": k, "round": r, "n_labeled": 10 * r, "accuracy": 0.5 + 0.1 * r}
        for s in ("a", "b")
        for k in (0, 1)
        for r in (0, 1)
    ]
    penalty_matrix(rows, "accuracy")


@api_case(CorruptFileError, "lacks rows", "random seed 0 rounds 2", "rebuild")
def truncated_results_beside_a_study_design(tmp_path):
    from raresift.simulate.report import write_report

    write_report(_study_folder(tmp_path, [_log_line(r) for r in range(3)], csv_rows=2))


@api_case(CorruptFileError, "study.json is not valid JSON")
def corrupt_study_json(tmp_path):
    from raresift.simulate.report import write_report

    results = _results_csv(tmp_path, GOOD_CSV)
    (tmp_path / "study.json").write_text('{"config": ')
    write_report(results)


@api_case(CorruptFileError, "not a study description")
def study_json_that_is_a_list(tmp_path):
    from raresift.simulate.report import write_report

    results = _results_csv(tmp_path, GOOD_CSV)
    (tmp_path / "study.json").write_text("[]")
    write_report(results)


@api_case(CorruptFileError, "config lacks", "seeds")
def study_json_lacking_keys(tmp_path):
    from raresift.simulate.report import write_report

    results = _results_csv(tmp_path, GOOD_CSV)
    (tmp_path / "study.json").write_text(json.dumps({"config": {"rounds": 1}}))
    write_report(results)


@api_case(ValidationError, "is a file", "--out")
def report_folder_under_a_file(tmp_path):
    from raresift.simulate.report import write_report

    (tmp_path / "afile").write_text("")
    write_report(_results_csv(tmp_path, GOOD_CSV), tmp_path / "afile" / "report")


@api_case(ValidationError, "JSON list, not a round record")
def run_log_line_that_is_not_an_object(tmp_path):
    from raresift.simulate.joblog import read_log

    (tmp_path / "job.jsonl").write_text(_log_line(0) + "\n[1, 2]\n" + _log_line(1) + "\n")
    read_log(tmp_path / "job.jsonl")


@api_case(ValidationError, "not a JSON line")
def run_log_garbled_in_the_middle(tmp_path):
    from raresift.simulate.joblog import read_log

    (tmp_path / "job.jsonl").write_text(_log_line(0) + "\n{garbage\n" + _log_line(1) + "\n")
    read_log(tmp_path / "job.jsonl")


@api_case(ValidationError, "skips a round")
def run_log_skipping_a_round(tmp_path):
    from raresift.simulate.joblog import read_log

    (tmp_path / "job.jsonl").write_text(_log_line(0) + "\n" + _log_line(2) + "\n")
    read_log(tmp_path / "job.jsonl")


# ------------------------------------------------------------------------------ studies
@api_case(ConfigError, "is a folder", "TOML")
def study_config_that_is_a_folder(tmp_path):
    from raresift.simulate.config import load_config

    load_config(tmp_path)


@api_case(ConfigError, "not UTF-8")
def study_config_that_is_not_utf8(tmp_path):
    from raresift.simulate.config import load_config

    (tmp_path / "s.toml").write_bytes(b'name = "\xff"\n')
    load_config(tmp_path / "s.toml")


@api_case(ConfigError, "not valid TOML")
def study_config_that_is_not_toml(tmp_path):
    from raresift.simulate.config import load_config

    (tmp_path / "s.toml").write_text("name = = 1\n")
    load_config(tmp_path / "s.toml")


@api_case(ConfigError, "does not exist")
def study_config_that_does_not_exist(tmp_path):
    from raresift.simulate.config import load_config

    load_config(tmp_path / "none.toml")


@api_case(ConfigError, "jobs must be a positive number", "0")
def study_with_zero_jobs(tmp_path):
    from raresift.simulate.runner import run_study

    run_study(STUDY, tmp_path, jobs=0, progress=False)


@api_case(ConfigError, "unknown strategy 'entrpy'", "entropy")
def study_with_an_unknown_strategy(tmp_path):
    _study_with("entrpy", tmp_path)


@api_case(ConfigError, "strategy 'fl'", "cannot run", "nope")
def study_strategy_with_a_typo_in_its_params(tmp_path):
    _study_with({"name": "fl", "params": {"nope": 1}}, tmp_path)


@api_case(ConfigError, "strategy 'entropy'", "cannot run", "NoSuchIndex")
def study_strategy_with_a_bad_factory_string(tmp_path):
    _study_with(
        {"name": "entropy", "candidates": {"kind": "seals", "index": "NoSuchIndex"}}, tmp_path
    )


@api_case(ConfigError, "strategy 'fl'", "cannot run", "optimizer", "fastest")
def study_strategy_with_a_bad_optimizer(tmp_path):
    _study_with({"name": "fl", "params": {"optimizer": "fastest"}}, tmp_path)


@api_case(ConfigError, "strategy 'bald'", "cannot run")
def study_runs_bald_on_a_logistic_model(tmp_path):
    _study_with("bald", tmp_path)


@api_case(ConfigError, "unlabeled items", "lower rounds or budget")
def study_with_an_impossible_budget(tmp_path):
    from raresift.simulate.runner import run_study

    run_study({**STUDY, "rounds": 50, "budget": 100}, tmp_path, jobs=1, progress=False)


@api_case(CorruptFileError, "study.json is not valid JSON")
def study_resumed_over_a_corrupt_study_json(tmp_path):
    from raresift.simulate.runner import run_study

    (tmp_path / "study.json").write_text("{not json")
    run_study(STUDY, tmp_path, jobs=1, progress=False)


@api_case(ValidationError, "is a file", "--out")
def demo_into_an_existing_file(tmp_path):
    from raresift.demo import run_demo

    (tmp_path / "taken").write_text("")
    run_demo(tmp_path / "taken", dataset="mnist5k")


@pytest.mark.parametrize("name", sorted(API_CASES))
def test_api_case(name, tmp_path):
    case = API_CASES[name]
    with pytest.raises(RaresiftError) as info:
        case.make_mistake(tmp_path)
    assert isinstance(info.value, case.error), f"{type(info.value).__name__}: {info.value}"
    message = str(info.value).lower()
    missing = [w for w in case.words if w.lower() not in message]
    assert not missing, f"{missing} not in: {info.value}"


# ------------------------------------------------------------------------------ labeling sessions
SESSION_N = 300
CLASSES = ["cat", "dog", "eel"]
SESSION_FILES = {
    "unknown_id.csv": "id,label\n1,cat\n100000,dog\n",
    "unknown_class.csv": "id,label\n1,cat\n2,cow\n",
    "empty.csv": "",
    "header_only.csv": "id,label\n",
    "no_id_column.csv": "item,label\n1,cat\n",
    "no_answer_column.csv": "id,colour\n1,red\n",
    "conflict.csv": "id,label\n5,cat\n5,dog\n",
    "empty_id.csv": "id,label\n,cat\n",
    "two_label_columns.csv": "id,label,label\n1,cat,dog\n",
    "not_json.json": "{not json",
    "ls_not_list.json": json.dumps({"id": 1}),
    "ls_unannotated.json": json.dumps([{"id": 1, "data": {"raresift_id": 3}}]),
    "ls_nested.json": "[" * 100_000 + "]" * 100_000,
    "ls_odd_shapes.json": json.dumps([{"data": [1], "annotations": 5}, 7]),
    "bad_jsonl.jsonl": '{"id": 1, "label": "cat"}\n[1, 2]\n',
    "items.csv": "id,text\na,x\na,y\n",
    "dup_columns.csv": "id,note,note\n1,a,b\n2,c,d\n3,e,f\n",
    "vectors.csv": 'id,embedding\n1,"1 2 3"\n2,"1 2"\n',
    "texts.csv": "id,body\n1,hello\n2,\n",
    "texts.jsonl": '{"id": 1, "body": "hello"}\n{"id": 2, "body": 42}\n',
}


def _project(tmp_path: Path) -> Path:
    """A session ``tmp_path/p`` over 300 bare embeddings (``tmp_path/emb.npy``, ids are row
    numbers), classes cat / dog / eel, 12 answers; and the input files of the session rows."""
    from raresift.session import Session

    rng = np.random.default_rng(0)
    np.save(tmp_path / "emb.npy", rng.normal(size=(SESSION_N, 6)).astype(np.float32))
    s = Session.create(tmp_path / "p", embeddings=tmp_path / "emb.npy", classes=CLASSES,
                       progress=False)  # fmt: skip
    s.answer_many([(i, CLASSES[i % 3]) for i in range(12)])
    s.close()
    for name, text in SESSION_FILES.items():
        (tmp_path / name).write_text(text)
    (tmp_path / "latin1.csv").write_bytes("id,label\n1,cat\n2,dög\n".encode("latin-1"))
    np.savez(tmp_path / "two.npz", a=np.ones((3, 2)), b=np.ones((3, 2)))
    np.save(tmp_path / "three.npy", np.ones((3, 2), np.float32))
    (tmp_path / "mine").mkdir()
    np.save(tmp_path / "mine" / "embeddings.npy", np.ones((3, 2)))  # a user's file of that name
    np.save(tmp_path / "flat.npy", np.ones(5, np.float32))
    bad = np.ones((4, 3), np.float32)
    bad[2, 1] = np.inf
    np.save(tmp_path / "nan.npy", bad)
    return tmp_path / "p"


def _damage(tmp_path: Path, sql: str) -> None:
    import sqlite3

    conn = sqlite3.connect(tmp_path / "p" / "session.db")
    with conn:
        conn.execute(sql)
    conn.close()


def _huge_png(path: Path, side: int = 20_000) -> Path:
    """A small PNG file whose header declares ``side`` x ``side`` pixels."""
    import struct
    import zlib

    from PIL import Image

    Image.new("RGB", (4, 4)).save(path)
    data = bytearray(path.read_bytes())
    ihdr = 8 + 8  # signature, then the IHDR chunk's length and type
    data[ihdr : ihdr + 8] = struct.pack(">II", side, side)
    crc = zlib.crc32(bytes(data[ihdr - 4 : ihdr + 13]))
    data[ihdr + 13 : ihdr + 17] = struct.pack(">I", crc)
    path.write_bytes(bytes(data))
    return path


@api_case(ValidationError, "id 'a' appears on lines 2 and 3")
def duplicate_ids_in_an_item_table(tmp_path):
    from raresift.session import Session

    _project(tmp_path)
    Session.create(tmp_path / "q", embeddings=tmp_path / "two.npz", npz_key="a",
                   items=tmp_path / "items.csv", progress=False)  # fmt: skip


@api_case(ConfigError, "seals_k=-1", "positive integer")
def session_with_a_negative_seals_k(tmp_path):
    from raresift.session import Session

    np.save(tmp_path / "e.npy", _points(50))
    Session.create(tmp_path / "q", embeddings=tmp_path / "e.npy", seals_k=-1, progress=False)


@api_case(ConfigError, "model_C=-5", "> 0")
def session_with_a_negative_model_c(tmp_path):
    from raresift.session import Session

    np.save(tmp_path / "e.npy", _points(50))
    Session.create(tmp_path / "q", embeddings=tmp_path / "e.npy", model_C=-5, progress=False)


@api_case(ConfigError, "model_max_iter=0")
def session_with_zero_model_iterations(tmp_path):
    from raresift.session import Session

    np.save(tmp_path / "e.npy", _points(50))
    Session.create(tmp_path / "q", embeddings=tmp_path / "e.npy", model_max_iter=0)


@api_case(ValidationError, "last=", "more than the 12 answers")
def session_undo_more_than_recorded(tmp_path):
    from raresift.session import Session

    _project(tmp_path)
    with Session.open(tmp_path / "p") as s:
        s.undo(2**70)


# ------------------------------------------------------------------------------ the command line
@cli_case("--jobs", "positive integer", "-1")
def simulate_with_negative_jobs(tmp_path):
    return ["simulate", str(_study_toml(tmp_path)), "--jobs", "-1"]


def _touched_project(tmp_path: Path, offset: int | None) -> Path:
    """A session over a 5 MB embeddings file (more than the sampled blocks), whose file then
    got a new modification time and, at ``offset``, one byte changed in place."""
    import os

    from raresift.session import Session

    emb = tmp_path / "big.npy"
    np.save(emb, _points(20_000, 64))
    Session.create(tmp_path / "p", embeddings=emb, concept="cats", progress=False).close()
    if offset is not None:
        with open(emb, "r+b") as fh:
            fh.seek(offset)
            fh.write(b"\xff\xfe")
    st = emb.stat()
    os.utime(emb, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    return tmp_path / "p"


@cli_case("was touched since the session recorded it", "raresift verify")
def status_over_a_touched_embeddings_file(tmp_path):
    return ["status", str(_touched_project(tmp_path, None))]


@cli_case("changed since the session recorded it", "whole-file SHA-256", "restore the original")
def verify_a_file_changed_between_its_sampled_blocks(tmp_path):
    return ["verify", str(_touched_project(tmp_path, 70_000))]  # between blocks 0 and 1


@cli_case("--jobs", "positive integer", "got 0")
def simulate_with_zero_jobs(tmp_path):
    return ["simulate", str(_study_toml(tmp_path)), "--jobs", "0"]


@cli_case("is a folder")
def simulate_a_folder(tmp_path):
    return ["simulate", str(tmp_path)]


@cli_case("not UTF-8")
def simulate_a_non_utf8_config(tmp_path):
    (tmp_path / "s.toml").write_bytes(b"\xff\xfe")
    return ["simulate", str(tmp_path / "s.toml")]


@cli_case("study.json is not valid JSON")
def simulate_over_a_corrupt_study_json(tmp_path):
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "study.json").write_text("{")
    return ["simulate", str(_study_toml(tmp_path)), "--out", str(tmp_path / "out")]


@cli_case("not UTF-8")
def report_on_a_non_utf8_file(tmp_path):
    return ["report", str(_results_csv(tmp_path, b"\xff\xfe\x00"))]


@cli_case("'accuracy'", "not a number")
def report_with_a_non_numeric_cell(tmp_path):
    return ["report", str(_results_csv(tmp_path, GOOD_CSV.replace("0.6", "n/a?")))]


@cli_case("lacks the column", "strategy")
def report_without_a_strategy_column(tmp_path):
    return ["report", str(_results_csv(tmp_path, "seed,round\n0,0\n"))]


@cli_case("study.json is not valid JSON")
def report_beside_a_corrupt_study_json(tmp_path):
    results = _results_csv(tmp_path, GOOD_CSV)
    (tmp_path / "study.json").write_text("{{")
    return ["report", str(results)]


@cli_case("not a round record")
def report_over_a_run_log_line_that_is_not_an_object(tmp_path):
    return ["report", str(_study_folder(tmp_path, [_log_line(0), '"round"'], csv_rows=1))]


@cli_case("lacks rows", "rebuild")
def report_on_truncated_results(tmp_path):
    return ["report", str(_study_folder(tmp_path, [_log_line(r) for r in range(3)], csv_rows=1))]


@cli_case("is a file", "--out")
def report_out_under_a_file(tmp_path):
    (tmp_path / "afile").write_text("")
    return ["report", str(_results_csv(tmp_path, GOOD_CSV)), "--out", str(tmp_path / "afile" / "x")]


@cli_case("is a file", "--out")
def demo_out_an_existing_file(tmp_path):
    (tmp_path / "taken.txt").write_text("keep me")
    return ["demo", "--dataset", "mnist5k", "--out", str(tmp_path / "taken.txt")]


@cli_case("does not exist")
def report_on_a_missing_file(tmp_path):
    return ["report", str(tmp_path / "none.csv")]


@cli_case("invalid choice", "fashion-mnist")
def demo_with_an_unknown_dataset(tmp_path):
    return ["demo", "--dataset", "cifar"]


# (name, command with {p} for the project and {d} for its folder, the words of the error)
SESSION_ROWS = [
    ("label_an_unknown_id", "label {p} {d}/unknown_id.csv", "line 3: unknown id '100000'"),
    ("label_an_unknown_class", "label {p} {d}/unknown_class.csv",
     "line 3: answer 'cow' is not one of cat, dog, eel, skip, junk, duplicate"),
    ("label_an_empty_file", "label {p} {d}/empty.csv", "the file is empty"),
    ("label_a_header_without_rows", "label {p} {d}/header_only.csv", "no answers below"),
    ("label_a_csv_without_the_id_column", "label {p} {d}/no_id_column.csv", "no id column"),
    ("label_a_csv_without_an_answer_column", "label {p} {d}/no_answer_column.csv",
     "no answer column"),
    ("label_one_id_twice_differently", "label {p} {d}/conflict.csv",
     "line 3: id '5' is answered 'cat' on line 2, here 'dog'"),
    ("label_an_empty_id", "label {p} {d}/empty_id.csv", "line 2: the id is empty"),
    ("label_a_file_with_two_label_columns", "label {p} {d}/two_label_columns.csv",
     "column 'label' appears twice"),
    ("label_a_latin1_file_as_utf8", "label {p} {d}/latin1.csv", "not utf-8", "--encoding"),
    ("label_with_an_unknown_encoding", "label {p} {d}/latin1.csv --encoding klingon",
     "unknown encoding 'klingon'"),
    ("label_one_unknown_id", "label {p} --id 999999 --label cat", "unknown id '999999'"),
    ("label_an_id_with_an_underscore", "label {p} --id 1_0 --label cat", "unknown id '1_0'"),
    ("label_a_full_width_digit", "label {p} --id \uff13 --label cat", "unknown id '\uff13'"),
    ("label_an_unknown_class_by_id", "label {p} --id 3 --label cow", "'cow' is not one of"),
    ("label_with_neither_file_nor_id", "label {p}", "give ANSWERS.csv, or both --id"),
    ("import_a_broken_json_file", "import {p} {d}/not_json.json", "is not JSON"),
    ("import_json_that_is_no_task_list", "import {p} {d}/ls_not_list.json",
     "a Label Studio export is a JSON list of tasks"),
    ("import_tasks_without_annotations", "import {p} {d}/ls_unannotated.json",
     "no task has an annotation"),
    ("import_deeply_nested_label_studio_json", "import {p} {d}/ls_nested.json",
     "nested too deeply"),
    ("import_tasks_of_odd_shapes", "import {p} {d}/ls_odd_shapes.json",
     "task 1: not a Label Studio task", "task 2: a JSON int"),
    ("import_a_jsonl_line_that_is_no_object", "import {p} {d}/bad_jsonl.jsonl",
     "line 2: the id is empty"),
    ("import_a_missing_file", "import {p} {d}/nope.csv", "does not exist"),
    ("label_a_folder", "label {p} {d}", "is a folder"),
    ("next_like_no_ids", "next {p} --like ,,,", "--like needs item ids"),
    ("init_with_an_npz_key_for_an_npy", "init {d}/q --embeddings {d}/emb.npy --npz-key a",
     "--npz-key names an array inside an .npz"),
    ("next_with_budget_0", "next {p} --budget 0", "budget must be a positive integer"),
    ("next_with_a_budget_above_the_pool", "next {p} --budget 100000", "exceeds the 300 items"),
    ("next_with_an_unknown_strategy", "next {p} --strategy nope", "unknown strategy 'nope'"),
    ("next_with_a_strategy_that_needs_a_network", "next {p} --strategy bald",
     "needs MC-dropout samples", "logistic regression"),
    ("init_with_a_strategy_that_needs_a_network", "init {d}/q --embeddings {d}/emb.npy "
     "--strategy ibal", "needs penultimate features"),
    ("next_query_without_text_embeddings", "next {p} --query cats",
     "--query TEXT needs a session of texts"),
    ("next_like_an_unknown_id", "next {p} --like 123456", "unknown id '123456'"),
    ("undo_zero_answers", "undo {p} --last 0", "last must be a positive integer"),
    ("undo_a_huge_number_of_answers", "undo {p} --last 99999999999999999999",
     "more than the 12 answers"),
    ("export_label_studio_before_any_batch", "export {p} --format label-studio",
     "no batch yet; run raresift next first"),
    ("export_over_the_session_database", "export {p} --format csv --out {p}/session.db",
     "file of the project"),
    ("export_over_the_embeddings_the_session_reads",
     "export {p} --format jsonl --out {d}/emb.npy", "file of the project"),
    ("export_under_a_file", "export {p} --format csv --out {d}/empty.csv/x.csv", "is a file"),
    ("export_into_a_missing_folder", "export {p} --format csv --out {d}/nowhere/x.csv",
     "does not exist"),
    ("export_onto_a_folder", "export {p} --format csv --out {d}", "is a folder"),
    ("status_plot_into_a_missing_folder", "status {p} --plot {d}/nowhere/curve.png",
     "does not exist"),
    ("status_plot_over_the_session_database", "status {p} --plot {p}/session.db",
     "file of the project"),
    ("status_of_a_folder_without_a_session", "status {d}/nowhere", "no session folder"),
    ("init_over_an_existing_session", "init {p} --embeddings {d}/emb.npy",
     "already holds a session"),
    ("init_from_a_missing_file", "init {d}/q --embeddings {d}/missing.npy", "does not exist"),
    ("init_from_1d_embeddings", "init {d}/q --embeddings {d}/flat.npy", "must be 2-d"),
    ("init_from_embeddings_with_inf", "init {d}/q --embeddings {d}/nan.npy", "(first at row 2)"),
    ("init_from_an_npz_with_two_arrays", "init {d}/q --embeddings {d}/two.npz",
     "name the embeddings with --npz-key"),
    ("init_with_items_that_do_not_align",
     "init {d}/q --embeddings {d}/two.npz --npz-key a --items {d}/items.csv",
     "has 2 rows but the embeddings have 3"),
    ("init_with_duplicate_column_names", "init {d}/q --embeddings {d}/three.npy "
     "--items {d}/dup_columns.csv", "column 'note' appears twice"),
    ("init_from_ragged_vectors", "init {d}/q --embeddings {d}/vectors.csv",
     "line 3: vector of length 2, the first row has 3"),
    ("init_texts_without_a_text_column", "init {d}/q --texts {d}/texts.csv",
     "texts= needs text_column="),
    ("init_texts_with_an_empty_text", "init {d}/q --texts {d}/texts.csv --text-column body",
     "line 3: the text is empty"),
    ("init_texts_with_a_number_for_a_text", "init {d}/q --texts {d}/texts.jsonl --text-column body",
     "line 2: the text is a int, not a string"),
    ("init_with_a_reserved_class_name", "init {d}/q --embeddings {d}/emb.npy --classes a,junk",
     "are reserved answers"),
    ("init_with_a_rare_class_not_among_the_classes",
     "init {d}/q --embeddings {d}/emb.npy --classes a,b --rare-classes c", "are not among"),
    ("init_failing_deep_in_new_folders", "init {d}/new/deeper/q --embeddings {d}/nan.npy",
     "(first at row 2)"),
    ("init_failing_in_an_existing_folder", "init {d} --embeddings {d}/vectors.csv",
     "vector of length 2"),
    ("init_into_a_path_under_a_file", "init {d}/empty.csv/q --embeddings {d}/emb.npy",
     "is a file"),
    ("init_over_a_users_embeddings_file", "init {d}/mine --embeddings {d}/two.npz --npz-key a",
     "already holds embeddings.npy", "write over"),
    ("init_converting_a_users_embeddings_over_itself",
     "init {d}/mine --embeddings {d}/mine/embeddings.npy", "over itself"),
    ("init_with_a_negative_seed", "init {d}/q --embeddings {d}/emb.npy --seed -1",
     "seed=-1 is invalid"),
    ("init_with_budget_0", "init {d}/q --embeddings {d}/emb.npy --budget 0",
     "budget=0 is invalid", "positive integer"),
    ("init_with_an_index_faiss_cannot_build",
     "init {d}/q --embeddings {d}/emb.npy --candidates seals --index HNSW32xx",
     "Faiss cannot build index 'HNSW32xx'"),
    ("init_with_more_lists_than_items",
     "init {d}/q --embeddings {d}/emb.npy --candidates seals --index IVF4096,Flat",
     "4096 inverted lists for 300 items"),
    ("init_with_an_image_size_of_0", "init {d}/q --embeddings {d}/emb.npy --image-size 0",
     "image_size=0 is invalid"),
]  # fmt: skip


def _register_session_rows() -> None:
    for name, command, *words in SESSION_ROWS:

        def arguments(tmp_path, command=command):
            return command.format(p=tmp_path / "p", d=tmp_path).split()

        assert name not in CLI_CASES, name
        CLI_CASES[name] = CliCase(arguments, tuple(words), 2, project=True)


_register_session_rows()


@cli_case("more than", "pixels", "huge.png", exit=2)
def init_images_with_a_huge_png(tmp_path):
    (tmp_path / "imgs").mkdir()
    _huge_png(tmp_path / "imgs" / "huge.png")
    return ["init", str(tmp_path / "q"), "--images", str(tmp_path / "imgs")]


def _damaged(sql: str):
    def arguments(tmp_path):
        _project(tmp_path)
        _damage(tmp_path, sql)
        return ["next", str(tmp_path / "p")]

    return arguments


CLI_CASES["session_with_a_hand_damaged_config"] = CliCase(
    _damaged("UPDATE meta SET value = '{\"kind\": 3}' WHERE key = 'config'"),
    ("config", "damaged"), 2)  # fmt: skip
CLI_CASES["session_with_a_hand_damaged_budget"] = CliCase(
    _damaged("UPDATE meta SET value = json_set(value, '$.defaults.budget', 'x') "
             "WHERE key = 'config'"), ("defaults", "damaged"), 2)  # fmt: skip
CLI_CASES["session_with_a_config_that_is_not_json"] = CliCase(
    _damaged("UPDATE meta SET value = '{{' WHERE key = 'config'"), ("not JSON",), 2
)
CLI_CASES["session_with_a_hand_damaged_answer"] = CliCase(
    _damaged("UPDATE current SET value = 'cow' WHERE iid = 1"), ("answer 'cow'", "hand-edited"), 2
)
CLI_CASES["session_with_an_answer_outside_the_pool"] = CliCase(
    _damaged("UPDATE current SET iid = 99999 WHERE iid = 2"), ("item 99999", "hand-edited"), 2
)
CLI_CASES["session_with_a_hand_damaged_id_kind"] = CliCase(
    _damaged("UPDATE meta SET value = json_set(value, '$.ids', 'int') WHERE key = 'config'"),
    ("item table", "hand-edited"), 2)  # fmt: skip
CLI_CASES["session_with_a_hand_damaged_dimension"] = CliCase(
    _damaged("UPDATE meta SET value = json_set(value, '$.dim', 5) WHERE key = 'config'"),
    ("300 x 5", "300 x 6"), 2)  # fmt: skip
CLI_CASES["session_with_a_hand_damaged_version"] = CliCase(
    _damaged("UPDATE meta SET value = '\"x\"' WHERE key = 'version'"), ("version", "damaged"), 2
)


def _snapshot(root: Path) -> dict:
    """Every file's bytes, a session database by its SQL dump (its -wal / -shm aside)."""
    import sqlite3

    out = {}
    for path in sorted(root.rglob("*")):
        if path.name.endswith(("-wal", "-shm")) or path.is_dir():
            out[path] = None if path.is_dir() else "companion"
            continue
        if path.name == "session.db":
            conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
            out[path] = list(conn.iterdump())
            conn.close()
        else:
            out[path] = path.read_bytes()
    return {p: v for p, v in out.items() if v != "companion"}


@pytest.mark.parametrize("name", sorted(CLI_CASES))
def test_cli_case(name, tmp_path, capsys):
    from raresift.cli import main

    case = CLI_CASES[name]
    if case.project:
        _project(tmp_path)
    argv = case.arguments(tmp_path)
    before = _snapshot(tmp_path)
    try:
        code = main(argv)
    except SystemExit as exc:  # argparse's own usage errors
        code = exc.code
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert code == case.exit, captured.err
    assert len(lines) == 1 and lines[0].startswith("raresift: error:"), captured.err
    assert "Traceback" not in captured.err
    missing = [w for w in case.words if w.lower() not in lines[0].lower()]
    assert not missing, f"{missing} not in: {lines[0]}"
    assert _snapshot(tmp_path) == before  # nothing created, nothing already stored lost or changed


def test_the_catalogue_holds_every_case_of_issue_13():
    """The rows the bad-input issue listed are all here (renaming a row must keep it)."""
    issue_rows = {
        "uint64_ids_above_2_63", "float_ids_above_2_53", "labels_of_shape_3_by_1",
        "label_of_a_billion_without_n_classes", "seed_label_7_for_a_binary_model",
        "labels_given_as_a_list", "ragged_embeddings", "pool_with_no_features",
        "oracle_of_the_wrong_length", "seals_with_no_labels", "knn_kernel_k_above_n",
        "facility_location_on_an_all_negative_kernel", "graph_cut_on_an_asymmetric_kernel",
        "entropy_of_3d_probabilities", "margin_of_logits", "index_attached_to_other_vectors",
        "index_over_100_of_300_rows_loaded_for_the_pool", "seals_started_on_another_pool",
        "index_file_with_garbled_bytes", "index_settings_that_are_a_list",
        "index_settings_lacking_keys", "index_saved_into_a_missing_folder",
        "neighbors_with_negative_k", "truncated_results_beside_a_study_design",
        "penalty_matrix_from_two_seeds", "study_strategy_with_a_typo_in_its_params",
        "study_strategy_with_a_bad_factory_string", "study_strategy_with_a_bad_optimizer",
        "study_runs_bald_on_a_logistic_model", "run_log_line_that_is_not_an_object",
    }  # fmt: skip
    cli_rows = {
        "simulate_with_negative_jobs", "simulate_with_zero_jobs", "simulate_a_folder",
        "simulate_a_non_utf8_config", "simulate_over_a_corrupt_study_json",
        "report_on_a_non_utf8_file", "report_with_a_non_numeric_cell",
        "report_without_a_strategy_column", "report_beside_a_corrupt_study_json",
        "report_over_a_run_log_line_that_is_not_an_object", "report_out_under_a_file",
        "demo_out_an_existing_file", "report_on_truncated_results",
    }  # fmt: skip
    assert issue_rows <= set(API_CASES), issue_rows - set(API_CASES)
    assert cli_rows <= set(CLI_CASES), cli_rows - set(CLI_CASES)


def test_the_catalogue_holds_every_case_of_issue_24():
    """The session and app cases issue 24 named (the app's are in tests/test_app_api.py)."""
    issue_rows = {
        "export_over_the_session_database", "export_over_the_embeddings_the_session_reads",
        "label_an_id_with_an_underscore", "label_a_full_width_digit",
        "init_with_duplicate_column_names", "label_a_file_with_two_label_columns",
        "label_a_latin1_file_as_utf8", "init_failing_deep_in_new_folders",
        "init_failing_in_an_existing_folder", "undo_a_huge_number_of_answers",
        "import_deeply_nested_label_studio_json", "init_into_a_path_under_a_file",
        "init_with_a_negative_seed", "export_under_a_file", "status_plot_into_a_missing_folder",
        "init_images_with_a_huge_png", "session_with_a_hand_damaged_config",
        "session_with_a_hand_damaged_answer", "session_with_a_hand_damaged_version",
        "init_with_budget_0", "init_with_an_index_faiss_cannot_build",
    }  # fmt: skip
    api_rows = {"session_with_a_negative_seals_k", "session_with_a_negative_model_c"}
    assert issue_rows <= set(CLI_CASES), issue_rows - set(CLI_CASES)
    assert api_rows <= set(API_CASES), api_rows - set(API_CASES)
