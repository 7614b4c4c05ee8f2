"""The module layering that docs/architecture.md promises, checked on the source: no import cycles, leaves stay
leaves."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import t5lab

SOURCE = Path(t5lab.__file__).parent


def _imports() -> dict[str, set[str]]:
    """Each t5lab module -> the t5lab modules it imports (anywhere in the file, lazy imports included)."""
    modules = {}
    for path in SOURCE.rglob("*.py"):
        name = ".".join(("t5lab", *path.relative_to(SOURCE).with_suffix("").parts)).removesuffix(".__init__")
        modules[name] = path
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for name, path in modules.items():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module:
                targets = [node.module, *(f"{node.module}.{alias.name}" for alias in node.names)]
            elif isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            else:
                continue
            graph[name] |= {t for t in targets if t in modules and t != name and t != "t5lab"}
    return graph


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle, as a path of module names, or None."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for target in sorted(graph[node]):
            if state.get(target) == 1:
                return stack[stack.index(target) :] + [target]
            if target not in state and (found := visit(target)):
                return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node)):
            return found
    return None


def test_no_import_cycles_between_t5lab_modules():
    graph = _imports()
    assert len(graph) > 40
    assert _cycle(graph) is None, " -> ".join(_cycle(graph) or [])
    # the checker finds a cycle when there is one
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]


def test_layering():
    graph = _imports()
    assert graph["t5lab.evaluation.metrics"] <= {"t5lab.errors"}, "metrics must never see a task"
    for module, targets in graph.items():
        if module.startswith("t5lab.data."):
            bad = {
                t
                for t in targets
                if t.startswith(("t5lab.tasks", "t5lab.training", "t5lab.sweeps", "t5lab.cli", "t5lab.config"))
            }
            assert not bad, f"{module} reaches up into {sorted(bad)}"


def test_config_and_light_commands_import_no_torch():
    code = (
        "import sys, t5lab.config, t5lab.cli, t5lab.evaluation.naming; "
        "from t5lab import pretrain, finetune, evaluate, predict; print('torch' in sys.modules)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.stdout.strip() == "False", result.stderr[-1000:]
