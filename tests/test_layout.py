"""The package's layout: no import cycles (function-level imports included), physics at the
bottom, every file under the size limit."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PKG = ROOT / "xbar"
# files that model the devices and their periphery: they may import only each other
PHYSICS = {"xbar.device", "xbar.device_fields", "xbar.device_schema", "xbar.mapping", "xbar.noise_models",
           "xbar.nonideal", "xbar.periphery",
           "xbar.validation"}


def _modules() -> dict[str, Path]:
    out = {}
    for path in PKG.rglob("*.py"):
        rel = path.relative_to(ROOT).with_suffix("")
        parts = list(rel.parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


def _imports(name: str, path: Path, known: dict[str, Path]) -> set[str]:
    """Every xbar module ``name`` imports, anywhere in the file (functions included)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            if not mod.startswith("xbar"):
                continue
            subs = [f"{mod}.{a.name}" for a in node.names if f"{mod}.{a.name}" in known]
            if subs:
                found.update(subs)
            elif mod in known:
                found.add(mod)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name in known)
    found.discard(name)
    return found


def _graph() -> dict[str, set[str]]:
    known = _modules()
    return {name: _imports(name, path, known) for name, path in known.items()}


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(n: str) -> list[str] | None:
        state[n] = 1
        stack.append(n)
        for m in sorted(graph.get(n, ())):
            if state.get(m) == 1:
                return stack[stack.index(m):] + [m]
            if m not in state:
                found = visit(m)
                if found:
                    return found
        stack.pop()
        state[n] = 2
        return None

    for n in sorted(graph):
        if n not in state:
            found = visit(n)
            if found:
                return found
    return None


def test_no_import_cycles():
    graph = _graph()
    # the package root only re-exports lazily; imports of xbar.__init__ (for __version__) are leaves
    graph = {n: {m for m in deps if m != "xbar"} for n, deps in graph.items()}
    assert _cycle(graph) is None, f"import cycle: {' -> '.join(_cycle(graph))}"


def test_a_planted_cycle_is_found():
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set()}) is None


@pytest.mark.parametrize("name", sorted(PHYSICS))
def test_physics_imports_nothing_above_it(name):
    above = _graph()[name] - PHYSICS
    assert not above, f"{name} imports {sorted(above)}"


def test_files_stay_under_the_size_limit():
    long = {str(p.relative_to(ROOT)): n for p in [*PKG.rglob("*.py"), *(ROOT / "experiments").glob("*.py")]
            if (n := len(p.read_text().splitlines())) > 620}
    assert not long, f"files past ~600 lines: {long}"
