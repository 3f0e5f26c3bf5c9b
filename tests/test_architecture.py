"""The product's import graph, computed from the source: no cycle, and no module imports a higher layer.

Function-level imports count: they are how cycles hide.
"""

import ast
from pathlib import Path
from typing import Dict, List, Set

import chaosstream

ROOT = Path(chaosstream.__file__).parent

# Lower numbers are lower layers; a module may import its own layer or lower ones only.
LAYERS = {
    "chaosstream.timeutil": 0,
    "chaosstream.arguments": 0,
    "chaosstream.polling": 1,
    "chaosstream.settings": 1,
    "chaosstream.tolerances": 1,
    "chaosstream.journal.schema": 1,
    "chaosstream.clients": 2,
    "chaosstream.selection": 3,
    "chaosstream.faults": 3,
    "chaosstream.probes": 4,
    "chaosstream.actions": 4,
    "chaosstream.controls": 5,
    "chaosstream.journal": 6,
    "chaosstream.cli": 7,
    "chaosstream": 0,  # the package root: __version__ and discovery (which names activities by string)
}


def _module_name(path: Path) -> str:
    rel = path.relative_to(ROOT.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _graph() -> Dict[str, Set[str]]:
    modules: Dict[str, Path] = {
        _module_name(p): p for p in ROOT.rglob("*.py") if "sandbox" not in p.relative_to(ROOT).parts
    }
    graph: Dict[str, Set[str]] = {}
    for name, path in modules.items():
        deps: Set[str] = set()
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text())):
            targets: List[str] = []
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    base = ".".join(
                        package.split(".")[: len(package.split(".")) - node.level + 1]
                        + ([base] if base else [])
                    )
                # `from pkg import mod` depends on pkg.mod; `from mod import name` on mod
                targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base for a in node.names]
            for target in targets:
                if target in modules and target != name and not target.startswith("chaosstream.sandbox"):
                    deps.add(target)
        graph[name] = deps
    return graph


def _layer(module: str) -> int:
    best = ""
    for prefix in LAYERS:
        if prefix == "chaosstream" and module != prefix:
            continue  # the root's layer is its own module only
        if (module == prefix or module.startswith(prefix + ".")) and len(prefix) > len(best):
            best = prefix
    assert best, f"{module} has no layer in tests/test_architecture.py: add it"
    return LAYERS[best]


def test_no_import_cycle() -> None:
    graph = _graph()
    state: Dict[str, int] = {}
    stack: List[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for dep in sorted(graph[node]):
            if state.get(dep) == 1:
                cycle = stack[stack.index(dep) :] + [dep]
                raise AssertionError("import cycle: " + " -> ".join(cycle))
            if dep not in state:
                visit(dep)
        stack.pop()
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node)


def test_no_module_imports_a_higher_layer() -> None:
    graph = _graph()
    wrong = [
        f"{m} (layer {_layer(m)}) imports {d} (layer {_layer(d)})"
        for m, deps in graph.items()
        for d in deps
        # a package's __init__ re-exporting its own submodules is not an upward import
        if _layer(d) > _layer(m) and not d.startswith(m + ".")
    ]
    assert not wrong, "\n".join(sorted(wrong))


def test_only_the_kube_client_catches_kubernetes_exceptions() -> None:
    offenders = []
    for path in ROOT.rglob("*.py"):
        if "sandbox" in path.relative_to(ROOT).parts or path == ROOT / "clients" / "kube.py":
            continue
        text = path.read_text()
        if "ApiException" in text or "k8s_error" in text:
            offenders.append(str(path.relative_to(ROOT)))
    assert not offenders, f"Kubernetes errors must be translated in clients/kube.py only: {offenders}"
