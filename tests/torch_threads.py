"""A fixture that runs a test with one torch thread and restores the setting afterwards.

On a small machine shared with other processes, torch's default intra-op threads spin against
each other: small forward passes ran 18x slower with 2 threads than with 1 under load. Tests
that train networks use it through ``pytestmark = pytest.mark.usefixtures("one_torch_thread")``.
"""

import pytest
import torch


@pytest.fixture
def one_torch_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
