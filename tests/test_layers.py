"""Imports run one way: loop -> strategies -> candidates -> index -> pool; no strategy imports
Faiss; the kernels and the submodular engine reach k-NN search only through raresift.index."""

import ast
import subprocess
import sys
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "raresift"
# each layer and the raresift modules it must never import (at any depth of its own code)
FORBIDDEN = {
    "strategies": ("raresift.loop", "raresift.index", "raresift.simulate", "faiss"),
    "candidates.py": ("raresift.loop", "raresift.strategies", "raresift.simulate", "faiss"),
    "index.py": ("raresift.loop", "raresift.strategies", "raresift.candidates"),
    "density.py": ("raresift.loop", "raresift.strategies", "raresift.candidates", "faiss"),
    # one k-NN path: the kernels search through raresift.index, never with their own Faiss/torch
    "kernels.py": ("raresift.loop", "raresift.strategies", "raresift.candidates", "faiss", "torch"),
    "submodular": ("raresift.loop", "raresift.strategies", "raresift.index", "faiss", "torch"),
}


def imported_modules(path: Path) -> set[str]:
    """Every module a file imports, at top level or inside functions (TYPE_CHECKING included
    only when it is not guarded, since guarded imports never run)."""
    tree = ast.parse(path.read_text())
    guarded = {
        id(node)
        for block in ast.walk(tree)
        if isinstance(block, ast.If) and "TYPE_CHECKING" in ast.unparse(block.test)
        for node in ast.walk(block)
    }
    names = set()
    for node in ast.walk(tree):
        if id(node) in guarded:
            continue
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.add(node.module)
    return names


@pytest.mark.parametrize("layer", sorted(FORBIDDEN))
def test_layer_imports_nothing_above_it(layer):
    files = sorted((SRC / layer).rglob("*.py")) if (SRC / layer).is_dir() else [SRC / layer]
    for path in files:
        for module in imported_modules(path):
            for banned in FORBIDDEN[layer]:
                assert not (module == banned or module.startswith(banned + ".")), (
                    f"{path.relative_to(SRC)} imports {module}"
                )


def test_importing_the_strategies_loads_no_faiss():
    code = (
        "import sys, raresift.strategies, raresift.candidates; "
        "print(sorted(m for m in ('faiss', 'raresift.index') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
