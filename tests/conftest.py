"""Shared test setup: one thread for BLAS, OpenMP and torch, and the real-data skip helper.

On a small machine shared with other processes, multi-threaded BLAS and torch spin against each
other: small sklearn and torch jobs ran 2-5x slower with the default threads on 2 cores (and
forward passes up to 18x under load). The variables are set before numpy, torch or Faiss load
in this process, and child processes (CLI tests, study workers) inherit them.
"""

import os

for _variable in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_variable] = "1"

import numpy as np  # noqa: E402
import pytest  # noqa: E402
from threadpoolctl import threadpool_limits  # noqa: E402

from raresift.errors import DatasetNotInstalledError  # noqa: E402

# for BLAS libraries loaded before this file (a plugin importing numpy first)
threadpool_limits(1)


def pytest_configure(config):
    import sys

    if "torch" in sys.modules:  # else torch reads OMP_NUM_THREADS when it loads
        sys.modules["torch"].set_num_threads(1)


def pytest_collection_modifyitems(config, items):
    """Tests marked ``label_studio`` run first: under ``-n 2`` one worker starts Label Studio
    and runs them while the other works through the rest, instead of both waiting at the end."""
    items.sort(key=lambda item: item.get_closest_marker("label_studio") is None)


@pytest.fixture(scope="session", autouse=True)
def embeddings_cache(tmp_path_factory):
    """Labeling sessions cache embeddings per user (``~/.cache/raresift/embeddings``); the tests
    share one temporary cache instead, so they neither read nor fill the user's."""
    folder = tmp_path_factory.mktemp("embeddings-cache")
    before = os.environ.get("RARESIFT_EMBEDDINGS_CACHE")
    os.environ["RARESIFT_EMBEDDINGS_CACHE"] = str(folder)
    yield folder
    if before is None:
        del os.environ["RARESIFT_EMBEDDINGS_CACHE"]
    else:
        os.environ["RARESIFT_EMBEDDINGS_CACHE"] = before


@pytest.fixture
def rng():
    return np.random.default_rng(0)


def load_or_skip(loader, *args, **kwargs):
    """Load a real data set, or skip naming the install command (CI runs `make data` first)."""
    try:
        return loader(*args, **kwargs)
    except DatasetNotInstalledError as exc:
        pytest.skip(str(exc))
