import numpy as np
import pytest

from raresift.errors import DatasetNotInstalledError


@pytest.fixture
def rng():
    return np.random.default_rng(0)


def load_or_skip(loader, *args, **kwargs):
    """Load a real data set, or skip naming the install command (CI runs `make data` first)."""
    try:
        return loader(*args, **kwargs)
    except DatasetNotInstalledError as exc:
        pytest.skip(str(exc))
