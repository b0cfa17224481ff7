"""The test session runs single-threaded (tests/conftest.py), and so do the workers it starts."""

import subprocess
import sys

from threadpoolctl import threadpool_info


def test_blas_openmp_and_torch_use_one_thread():
    import torch

    assert torch.get_num_threads() == 1
    assert {pool["num_threads"] for pool in threadpool_info()} == {1}


def test_child_processes_inherit_one_thread():
    code = "import torch, numpy; print(torch.get_num_threads())"
    assert (
        subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).stdout == "1\n"
    )
