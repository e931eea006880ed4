"""The package's layers: every import, lazy ones included, runs downhill, and nothing imports in a cycle.

Each subpackage may import only the layers listed for it in ``ALLOWED`` (and its own modules). Adapters and the SB3
trainer are reached by name through :mod:`oversight_rl.engine.plugins`, which is not an import.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BELOW_ENGINE = {"envs", "core", "rundir", "_version"}
ALLOWED = {
    "envs": set(),
    "_version": set(),
    "core": {"envs"},
    "rundir": {"_version", "core.methods"},
    "engine": BELOW_ENGINE,
    "adapters": BELOW_ENGINE | {"engine"},
    "sb3": BELOW_ENGINE | {"engine"},
    "experiments": BELOW_ENGINE | {"engine"},
    "analysis": {"envs", "rundir", "core.methods", "_version"},
    "study": BELOW_ENGINE | {"engine", "experiments", "analysis"},
    "__init__": {"_version"},
}
EXCEPTIONS = {
    ("oversight_rl.analysis.figures.pictures", "oversight_rl.engine.deploy"): "pictures draw a trained policy's moves",
}
"""Imports allowed against the rules, each with its reason: drawing behaviour needs the policy, loaded from its run
directory by the one loader."""
SHIMS = {"config": "engine.config", "launch": "engine.launch", "methods": "core.methods", "losses": "core.losses"}
"""Top-level modules that re-export a moved one for one release, each allowed its target only."""


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def package_modules() -> dict[str, Path]:
    paths = [*(ROOT / "oversight_rl").rglob("*.py"), *(ROOT / "envs").rglob("*.py")]
    return {module_name(path): path for path in paths}


def imports_of(path: Path, modules: dict[str, Path]) -> set[str]:
    """Every package module ``path`` imports, at any depth of its code (a name imported from a package that is a
    module of its own counts as that module)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module)
            found |= {f"{node.module}.{alias.name}" for alias in node.names}
    return {name for name in found if name in modules}


def layer(module: str) -> str:
    """``envs``, ``_version``, ``__init__`` (the package root), a shim's own name, or the subpackage."""
    if module == "oversight_rl":
        return "__init__"
    return module.split(".")[0] if module.startswith("envs") else module.split(".")[1]


def allowed(importer: str, imported: str) -> bool:
    """Whether module ``importer`` may import module ``imported`` under the layer rules. No module imports the
    package root, whose public names resolve lazily from the layers below it."""
    if imported == "oversight_rl":
        return False
    if (importer, imported) in EXCEPTIONS:
        return True
    here, there = layer(importer), layer(imported)
    if here == there:
        return True
    if here in SHIMS:
        return imported == f"oversight_rl.{SHIMS[here]}"
    target = imported.removeprefix("oversight_rl.")
    return any(there == rule or target == rule or target.startswith(rule + ".") for rule in ALLOWED[here])


def wrong_way_imports() -> list[str]:
    modules = package_modules()
    return sorted(
        f"{importer} imports {imported}"
        for importer, path in modules.items()
        for imported in imports_of(path, modules)
        if not allowed(importer, imported)
    )


def import_cycles() -> list[list[str]]:
    """Strongly connected groups of more than one module in the import graph (Tarjan's algorithm)."""
    modules = package_modules()
    graph = {name: imports_of(path, modules) - {name} for name, path in modules.items()}
    index, low, stack, on_stack, cycles = {}, {}, [], set(), []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in graph[node]:
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            group = []
            while not group or group[-1] != node:
                group.append(stack.pop())
                on_stack.discard(group[-1])
            if len(group) > 1:
                cycles.append(sorted(group))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return cycles


def test_every_import_runs_downhill():
    assert wrong_way_imports() == []


def test_no_module_imports_in_a_cycle():
    assert import_cycles() == []


def test_no_top_level_module_but_the_root_the_version_and_the_shims():
    top = {path.stem for path in (ROOT / "oversight_rl").glob("*.py")}
    assert top == {"__init__", "_version", *SHIMS}


@pytest.mark.parametrize(
    ("importer", "imported"),
    [
        ("oversight_rl.core.losses", "oversight_rl.engine.population"),  # the core reaching up into the engine
        ("oversight_rl.experiments.sweep", "oversight_rl.analysis.stats"),  # orchestration reading analysis
        ("oversight_rl.engine.trainer", "oversight_rl.adapters.wandb"),  # the engine importing an adapter
        ("oversight_rl.engine.launch", "oversight_rl.sb3.train"),
        ("oversight_rl.analysis.figures.plots", "oversight_rl.engine.references"),  # analysis reaching the engine
        ("oversight_rl.rundir.files", "oversight_rl"),  # the run directory importing the package root
        ("envs.diamond_ghost", "oversight_rl.core.labels"),
    ],
)
def test_the_rules_forbid_wrong_way_imports(importer, imported):
    assert not allowed(importer, imported)


@pytest.mark.parametrize(
    ("importer", "imported"),
    [
        ("oversight_rl.engine.trainer", "oversight_rl.core.losses"),
        ("oversight_rl.rundir.gather", "oversight_rl.core.methods"),
        ("oversight_rl.study.regenerate", "oversight_rl.analysis.figures.plots"),
        ("oversight_rl.engine.trainer", "oversight_rl.engine.collect"),
        ("oversight_rl.config", "oversight_rl.engine.config"),
    ],
)
def test_the_rules_allow_downhill_imports(importer, imported):
    assert allowed(importer, imported)


@pytest.mark.parametrize("module", ["oversight_rl", "oversight_rl.analysis.stats"])
def test_light_modules_load_no_torch(module):
    code = f"import sys, {module}; print('torch' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    assert result.stdout.strip() == "False"


def test_the_old_module_paths_still_import_the_moved_names():
    from oversight_rl import config, launch, losses, methods
    from oversight_rl.core import losses as core_losses
    from oversight_rl.core import methods as core_methods
    from oversight_rl.engine import config as engine_config
    from oversight_rl.engine import launch as engine_launch

    assert config.TrainConfig is engine_config.TrainConfig and launch.train_population is engine_launch.train_population
    assert methods.get_method is core_methods.get_method and losses.routed_loss is core_losses.routed_loss
