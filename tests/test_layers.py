"""The package's layers: a module imports only modules of its own rank or below, and no two
modules import each other (directly or through others), lazy imports inside functions
included."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "rdam"

# rank of each top-level part of the package (docs: README "Layout")
RANKS = {
    "errors": 0,
    "threads": 0.5,
    "quiet": 0.5,
    "scalars": 0.5,
    "models": 1,
    "data": 2,
    "checkpoint": 3,
    "runtime": 3.5,
    "export": 4,
    "config": 4,
    "training": 5,
    "evaluation": 5,
    "inference": 6,
    "explain": 7,
    "stream": 7,
    "demo": 7,
    "serve": 8,
    "cli": 9,
}


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> set[str]:
    """rdam modules imported anywhere in the file (``import rdam`` alone is the package root)."""
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module.startswith("rdam.") or node.module == "rdam":
                out.add(node.module)
        elif isinstance(node, ast.Import):
            out.update(a.name for a in node.names if a.name.startswith("rdam."))
    return out


def _part(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else None


GRAPH = {_module_name(p): _imports(p) for p in PACKAGE.rglob("*.py")}


def test_every_part_of_the_package_has_a_rank():
    parts = {_part(m) for m in GRAPH} - {None}
    assert parts <= set(RANKS), sorted(parts - set(RANKS))


@pytest.mark.parametrize("module", sorted(GRAPH))
def test_no_module_imports_a_higher_layer(module):
    own = _part(module)
    if own is None:
        return  # rdam/__init__.py: lazy re-exports for the user
    higher = sorted(
        target
        for target in GRAPH[module]
        if _part(target) is not None and RANKS[_part(target)] > RANKS[own]
    )
    assert higher == [], f"{module} (rank {RANKS[own]}) imports {higher}"


def test_no_import_cycles_between_parts():
    """Parts of one rank side by side (training, evaluation; runtime, export ...) never
    import each other, and nothing forms a cycle through several parts."""
    edges = {
        (_part(m), _part(t))
        for m, targets in GRAPH.items()
        for t in targets
        if _part(m) and _part(t) and _part(m) != _part(t)
    }
    same_rank = sorted((a, b) for a, b in edges if RANKS[a] == RANKS[b])
    assert same_rank == [], same_rank
    # with every edge pointing down (the test above) and none sideways, no cycle is possible
    assert all(RANKS[a] > RANKS[b] for a, b in edges)


def test_pyav_is_imported_only_to_read_a_video():
    """Training on images, prediction setup and the CLI import no PyAV: it comes with the video
    reader the first time a video is opened (rdam.data.video), so a machine without it (such as
    a GPU image) can still train on a folder of images."""
    import subprocess
    import sys

    code = (
        "import sys; import rdam, rdam.cli, rdam.inference, rdam.training.train, "
        "rdam.evaluation.evaluate, rdam.data.video as v; assert 'av' not in sys.modules; "
        "v.VideoReader; assert 'av' in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
