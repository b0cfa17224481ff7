"""Imports run one way: loop -> strategies -> candidates -> index -> pool; no strategy imports
Faiss; the kernels and the submodular engine reach k-NN search only through raresift.index.

The product layer on top: the session floor (store <- project <- rounds / status / exchange
<- create) imports neither the Session facade nor the web app, the CLI or the Ray path; only
the facade wires the Ray engine; the app imports no CLI; the Ray path imports no facade, app or
CLI; and no import circle runs through session/. The embedders (embed.py for texts,
embed_images.py for images) sit below all of them."""

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
    "exact.py": ("raresift.loop", "raresift.strategies", "raresift.candidates", "raresift.index"),
    "sharded.py": ("raresift.loop", "raresift.strategies", "raresift.candidates"),
    "density.py": ("raresift.loop", "raresift.strategies", "raresift.candidates", "faiss"),
    # one k-NN path: the kernels search through raresift.index, never with their own Faiss/torch
    "kernels.py": ("raresift.loop", "raresift.strategies", "raresift.candidates", "faiss", "torch"),
    "submodular": ("raresift.loop", "raresift.strategies", "raresift.index", "faiss", "torch"),
    # the product layer: nothing below it reaches up into it
    "pool.py": ("raresift.session", "raresift.app", "raresift.distributed", "raresift.cli"),
    "loop.py": ("raresift.session", "raresift.app", "raresift.distributed", "raresift.cli"),
    # the embedders, side by side below every caller (session, distributed, simulate)
    "embed.py": ("raresift.session", "raresift.app", "raresift.distributed", "raresift.cli",
                 "raresift.loop", "raresift.strategies", "raresift.embed_images"),
    "embed_images.py": ("raresift.session", "raresift.app", "raresift.distributed",
                        "raresift.cli", "raresift.loop", "raresift.strategies"),
    "session": ("raresift.app", "raresift.cli"),
    "session/store.py": ("raresift.session.project", *(UPPER := (
        "raresift.session.session", "raresift.session.create", "raresift.session.rounds",
        "raresift.session.status", "raresift.session.exchange", "raresift.session.views",
        "raresift.distributed", "raresift.app", "raresift.cli"))),
    "session/config.py": ("raresift.session.project", "raresift.session.store", *UPPER),
    "session/project.py": UPPER,
    "session/rounds.py": ("raresift.session.session", "raresift.session.create",
                          "raresift.distributed", "raresift.app", "raresift.cli"),
    "session/status.py": ("raresift.session.session", "raresift.session.create",
                          "raresift.distributed", "raresift.app", "raresift.cli"),
    "session/exchange.py": ("raresift.session.session", "raresift.session.create",
                            "raresift.distributed", "raresift.app", "raresift.cli"),
    "session/create.py": ("raresift.session.session", "raresift.distributed", "raresift.app",
                          "raresift.cli"),
    "app": ("raresift.cli", "raresift.distributed"),
    "distributed": ("raresift.session.session", "raresift.session.project", "raresift.app",
                    "raresift.cli"),
}  # fmt: skip


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


def test_a_scikit_learn_session_round_loads_no_torch(tmp_path):
    """A fresh process that opens a session with a scikit-learn model and picks a batch (SEALS
    and -All, float16 embeddings: the rows a model widens) never imports torch: its import
    costs more than the round."""
    import numpy as np

    from raresift.session import Session

    np.save(tmp_path / "e.npy", np.random.default_rng(0).normal(size=(400, 8)).astype(np.float16))
    with Session.create(tmp_path / "p", embeddings=tmp_path / "e.npy", concept="x",
                        progress=False) as s:  # fmt: skip
        s.answer_many([(i, i % 2) for i in range(20)])
    code = (
        "import sys\n"
        "from raresift.session import Session\n"
        f"s = Session.open({str(tmp_path / 'p')!r})\n"
        "for candidates in ('seals', 'all'):\n"
        "    batch = s.next(budget=5, candidates=candidates, replace=True, progress=False)\n"
        "    assert batch[0].reason.startswith('most likely positive'), batch[0].reason\n"
        "print(sorted(m for m in sys.modules if m == 'torch' or m.startswith('torch.')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def _module_name(path: Path) -> str:
    parts = path.relative_to(SRC.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _edges(path: Path, modules: set[str]) -> set[str]:
    """The modules of ``modules`` that ``path`` imports, type-checking imports included (a
    circle of annotations is a circle too); ``from raresift.session import x`` counts as
    importing raresift.session.x."""
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names if a.name in modules}
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            for alias in node.names:
                sub = f"{node.module}.{alias.name}"
                out.add(sub if sub in modules else node.module)
    return out & modules - {_module_name(path)}


def test_no_import_circle_through_the_product_layer():
    """Every import (function-level ones too) of session/, app/ and distributed/ modules, as a
    graph over those modules and the package roots: it has no cycle."""
    files = [p for d in ("session", "app", "distributed") for p in (SRC / d).rglob("*.py")]
    modules = {_module_name(p) for p in files}
    graph = {_module_name(p): _edges(p, modules) for p in files}
    for package in ("raresift.session", "raresift.app", "raresift.distributed"):
        graph[package] = set()  # a package's __init__ re-exports; its submodules are the nodes
    state: dict[str, int] = {}

    def visit(node: str, trail: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph.get(node, ())):
            assert state.get(nxt) != 1, "import circle: " + " -> ".join([*trail, node, nxt])
            if nxt not in state:
                visit(nxt, [*trail, node])
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node, [])


def test_the_session_facade_is_thin():
    lines = (SRC / "session" / "session.py").read_text().count("\n")
    assert lines < 400, f"session.py has {lines} lines; move data access to project.py"


def test_all_sql_lives_in_the_store():
    for path in sorted((SRC / "session").glob("*.py")) + sorted((SRC / "app").glob("*.py")):
        if path.name == "store.py":
            continue
        text = path.read_text()
        for statement in ("SELECT ", "INSERT ", "UPDATE ", "DELETE FROM"):
            assert f'"{statement}' not in text, f"{path.relative_to(SRC)} holds SQL ({statement})"
