"""The package's layout rules: studies stand alone, the core is generic, no import circles, one training loop."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "derm_nb"
# The faces that gather every study through the registry: the command line (every study's split scheme
# for `derm-nb data`), the workload behind `derm-nb bench --estimate` (every study's passes) and the
# runner (the `full` profile starts from every study's paper card).
FACE = {"derm_nb.cli", "derm_nb.book_workload", "derm_nb.runner"}


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path) -> set[str]:
    """Every derm_nb module `path` imports (at any depth, including imports inside functions)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("derm_nb"):
            found.add(node.module)
            found.update(f"{node.module}.{a.name}" for a in node.names)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("derm_nb"))
    return found


MODULES = {module_name(p): p for p in PACKAGE.rglob("*.py")}
GRAPH = {name: {m for m in imports(path) if m in MODULES and m != name} for name, path in MODULES.items()}


def study_of(module: str) -> str | None:
    match = re.match(r"derm_nb\.studies\.(study\d{3})", module)
    return match.group(1) if match else None


def test_the_graph_sees_the_studies():
    studies = {study_of(m) for m in MODULES} - {None}
    assert studies == {"study000", "study001", "study002", "study003", "study004"}
    assert "derm_nb.train" in GRAPH["derm_nb.studies.study002.training"]  # the reader finds real edges


@pytest.mark.parametrize("module", sorted(m for m in MODULES if study_of(m)))
def test_a_study_imports_no_other_study(module):
    others = {study_of(m) for m in GRAPH[module]} - {None, study_of(module)}
    assert not others, f"{module} imports {sorted(others)}"
    assert "derm_nb.studies" not in GRAPH[module], f"{module} imports the studies registry"


@pytest.mark.parametrize("module", sorted(m for m in MODULES if not m.startswith("derm_nb.studies") and m not in FACE))
def test_the_core_imports_no_study(module):
    bad = sorted(m for m in GRAPH[module] if m.startswith("derm_nb.studies"))
    assert not bad, f"core module {module} imports {bad}"


def test_no_import_circles():
    state: dict[str, str] = {}

    def visit(node: str, trail: list[str]) -> None:
        state[node] = "open"
        for nxt in sorted(GRAPH[node]):
            if state.get(nxt) == "open":
                raise AssertionError("import circle: " + " -> ".join(trail[trail.index(nxt):] + [nxt]))
            if nxt not in state:
                visit(nxt, trail + [nxt])
        state[node] = "done"

    for module in sorted(GRAPH):
        if module not in state:
            visit(module, [module])


def optimiser_steps(source: str) -> set[str]:
    """The functions (dotted, nested ones too) that call `<optimiser>.step()`: a call of `.step()` on a name
    or attribute that says optimiser (`optimizer`, `optim`, `opt`), wherever it sits, loop or not."""
    found: set[str] = set()

    def visit(node: ast.AST, where: tuple[str, ...]) -> None:
        for child in ast.iter_child_nodes(node):
            inner = where + (child.name,) if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)) else where
            if (isinstance(child, ast.Call) and isinstance(child.func, ast.Attribute) and child.func.attr == "step"
                    and re.fullmatch(r"opt\w*", ast.unparse(child.func.value).split(".")[-1], re.IGNORECASE)):
                found.add(".".join(where) or "<module>")
            visit(child, inner)

    visit(ast.parse(source), ())
    return found


# Optimiser steps outside the engine, each with why: timing probes that take one step on random inputs, so
# `bench` can time a model's training step; no model they touch is trained for a result.
TIMING_PROBES = {"bench.py": {"model_speed.train_step"}, "studies/study004/mil.py": {"train_step.step"}}


def test_one_training_loop_in_the_package():
    """Every optimiser step lives in train.py's epoch loop, but the named timing probes."""
    steps = {str(p.relative_to(PACKAGE)): found for p in sorted(PACKAGE.rglob("*.py"))
             if (found := optimiser_steps(p.read_text()))}
    assert steps == {"train.py": {"_train_one_epoch"}, **TIMING_PROBES}, steps


def test_the_optimiser_step_finder_can_fail():
    hand_loop = ("def fit(model, opt):\n    for epoch in range(3):\n        for batch in data:\n"
                 "            loss(model(batch)).backward()\n            opt.step()\n")
    assert optimiser_steps(hand_loop) == {"fit"}
    assert optimiser_steps("while True:\n    self.optimizer.step()\n") == {"<module>"}
    assert optimiser_steps("scheduler.step()\nepoch.step()\n") == set()


def test_circle_detector_can_fail():
    GRAPH["derm_nb.artifacts"].add("derm_nb.train")  # train imports artifacts: a circle
    try:
        with pytest.raises(AssertionError, match="import circle"):
            test_no_import_circles()
    finally:
        GRAPH["derm_nb.artifacts"].discard("derm_nb.train")
