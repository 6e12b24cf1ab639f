"""The shape of the code: adapters stay behind the port, and ``src/`` has no import cycle.

Imports are read with ``ast`` (also those under ``TYPE_CHECKING`` and inside functions: a cycle
hidden from the interpreter is still a cycle for the reader).
"""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[2] / "src"
PACKAGES = ("minio_manager", "minio_manager_cli")
ADAPTERS = ("minio_manager.objectstore.minio", "minio_manager.objectstore.awsiam")
PORT_PACKAGE = "minio_manager.objectstore"


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    return {
        _module_name(p): p for package in PACKAGES for p in sorted((SRC / package).rglob("*.py"))
    }


def _imports(module: str, path: Path, known: set[str]) -> set[str]:
    """Our modules that ``module`` imports (``from a import b`` counts ``a.b`` if a module)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            names = [base, *(f"{base}.{alias.name}" for alias in node.names)]
        else:
            continue
        found |= {name for name in names if name in known and name != module}
    return found


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    known = set(modules)
    return {name: _imports(name, path, known) for name, path in modules.items()}


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One cycle per strongly connected component with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph[node]):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component: list[str] = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_the_graph_is_read() -> None:
    """Guards the two tests below against passing on an empty or misread graph."""
    graph = _graph()
    assert "minio_manager.objectstore.port" in graph
    assert "minio_manager.objectstore.port" in graph["minio_manager.provisioning.users"]
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_no_module_outside_the_port_imports_an_adapter() -> None:
    offenders = sorted(
        f"{module} imports {target}"
        for module, targets in _graph().items()
        for target in targets
        if target in ADAPTERS
        and not module.startswith(PORT_PACKAGE + ".")
        and module != PORT_PACKAGE
    )
    assert offenders == []


def test_src_has_no_import_cycle() -> None:
    assert _cycles(_graph()) == []
