"""The shape of the code: one direction of dependency, no cycle, no import hidden in a function.

import-linter (``lint-imports`` in ``make test``) checks the layers of pyproject.toml; these
tests check what it does not: that no cycle is left inside a layer, that no module dodges
the layers with a function-local import, that every module has a layer, and that the
contract really fails on a wrong import.
"""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import grimp

ROOT = Path(__file__).resolve().parents[1]
BACKEND = ROOT / "backend"


def _layer_modules() -> set[str]:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]
    (layers,) = [c for c in config["contracts"] if c["type"] == "layers"]
    names: set[str] = set()
    for layer in layers["layers"]:
        for part in layer.replace("|", ":").split(":"):
            names.add("backend." + part.strip())
    return names


def _strongly_connected(graph: grimp.ImportGraph, modules: set[str]) -> list[set[str]]:
    """Tarjan's algorithm over the direct imports between ``modules``."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[set[str]] = []

    def visit(module: str) -> None:
        index[module] = low[module] = len(index)
        stack.append(module)
        on_stack.add(module)
        for target in graph.find_modules_directly_imported_by(module) & modules:
            if target not in index:
                visit(target)
                low[module] = min(low[module], low[target])
            elif target in on_stack:
                low[module] = min(low[module], index[target])
        if low[module] == index[module]:
            component = set()
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.add(member)
                if member == module:
                    break
            found.append(component)

    for module in sorted(modules):
        if module not in index:
            visit(module)
    return found


def test_no_import_cycle_between_our_modules() -> None:
    graph = grimp.build_graph("backend")
    modules = {m for m in graph.modules if m.startswith("backend")}
    # a package's __init__ importing its own children is not a cycle of concern
    cycles = [c for c in _strongly_connected(graph, modules) if len(c) > 1]
    assert cycles == []


def test_no_function_local_import_of_our_modules() -> None:
    offenders = []
    for path in BACKEND.rglob("*.py"):
        tree = ast.parse(path.read_text(), str(path))
        for func in ast.walk(tree):
            if not isinstance(func, ast.FunctionDef | ast.AsyncFunctionDef):
                continue
            for node in ast.walk(func):
                module = (node.module if isinstance(node, ast.ImportFrom)
                          else node.names[0].name if isinstance(node, ast.Import) else None)
                if module and module.split(".")[0] == "backend":
                    offenders.append(f"{path.relative_to(ROOT)}:{node.lineno} {module}")
    assert offenders == []


def test_every_module_has_a_layer() -> None:
    layered = _layer_modules()
    graph = grimp.build_graph("backend")
    unplaced = sorted(
        m for m in graph.modules
        if m.count(".") >= 1 and m not in ("backend.scripts", "backend.services")
        and not any(m == layer or m.startswith(layer + ".") for layer in layered))
    assert unplaced == []


def test_the_layers_contract_fails_on_an_upward_import(tmp_path: Path) -> None:
    """Make the contract break on purpose: a privacy module importing the routes."""
    shutil.copytree(BACKEND, tmp_path / "backend", symlinks=True)
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    lint = [str(Path(sys.executable).parent / "lint-imports"), "--no-cache"]
    clean = subprocess.run(lint, cwd=tmp_path, capture_output=True, text=True,
                           env={"PYTHONPATH": str(tmp_path), "PATH": "/usr/bin:/bin"})
    assert clean.returncode == 0, clean.stdout + clean.stderr
    hashing = tmp_path / "backend" / "services" / "privacy" / "hashing.py"
    hashing.write_text(hashing.read_text() + "\nfrom backend.routes import health  # wrong\n")
    broken = subprocess.run(lint, cwd=tmp_path, capture_output=True, text=True,
                            env={"PYTHONPATH": str(tmp_path), "PATH": "/usr/bin:/bin"})
    assert broken.returncode == 1
    assert "backend.services.privacy.hashing -> backend.routes.health" in broken.stdout
