"""The structure docs/architecture.md describes, checked from the sources (``ast``): no import circle, no import
that runs up a layer, one atomic writer, an ``explain`` that knows no app, apps that use datamodules' public names."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("core", "datamodules", "apps")
APP_MODULES = {"apps.graph", "apps.lra", "apps.pos", "apps.sequence", "apps.speech", "apps.vision"}
SHARED_DATA = {"datamodules", "datamodules.base", "datamodules.batching", "datamodules.paths",
               "datamodules.sequences"}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def sources() -> dict[str, Path]:
    return {module_name(p): p for package in PACKAGES for p in sorted((ROOT / package).rglob("*.py"))}


def imports(name: str, path: Path, known: set[str]) -> set[str]:
    """Project modules ``name`` imports anywhere in the file (inside functions too), resolved to known modules."""
    is_package = path.name == "__init__.py"
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = name.split(".")[: len(name.split(".")) - node.level + (1 if is_package else 0)]
                base = ".".join(anchor + ([node.module] if node.module else []))
            targets = [f"{base}.{alias.name}" for alias in node.names] + [base]
        for target in targets:
            while target and target not in known:
                target = target.rpartition(".")[0]
            if target and target != name:
                found.add(target)
    return found


@pytest.fixture(scope="module")
def graph() -> dict[str, set[str]]:
    files = sources()
    known = set(files)
    return {name: imports(name, path, known) for name, path in files.items()}


def test_no_import_circle_in_apps_datamodules_or_core(graph: dict[str, set[str]]) -> None:
    # a package's __init__ only re-exports its own modules: follow module -> module edges
    edges = {m: {t for t in ts if not (files_init(t) and m.startswith(t + "."))} for m, ts in graph.items()}
    state: dict[str, int] = {}
    cycles: list[list[str]] = []

    def visit(node: str, stack: list[str]) -> None:
        state[node] = 1
        for target in sorted(edges.get(node, ())):
            if state.get(target) == 1:
                cycles.append(stack[stack.index(target):] + [target] if target in stack else [node, target])
            elif target not in state:
                visit(target, stack + [target])
        state[node] = 2

    for node in sorted(edges):
        if node not in state:
            visit(node, [node])
    assert not cycles, f"import circles: {cycles}"


def files_init(name: str) -> bool:
    return (ROOT / Path(*name.split(".")) / "__init__.py").is_file()


def test_layers_import_downwards_only(graph: dict[str, set[str]]) -> None:
    core_up = {m: ts for m, ts in graph.items() if m.startswith("core") and any(not t.startswith("core") for t in ts)}
    assert not core_up, f"core imports apps/datamodules: {core_up}"
    data_up = {m: [t for t in ts if t.startswith("apps") and t != "apps.runs"]
               for m, ts in graph.items() if m.startswith("datamodules")}
    assert not {m: ts for m, ts in data_up.items() if ts}, "datamodules import apps (only apps.runs is allowed)"
    runs = graph["apps.runs"]
    assert not runs, f"apps/runs.py must import nothing of the project, imports {runs}"


def test_explain_imports_no_app(graph: dict[str, set[str]]) -> None:
    assert not graph["apps.explain"] & APP_MODULES
    assert not {t for t in graph["apps.explain"] if t.startswith(("apps.", "datamodules"))}
    text = (ROOT / "apps" / "explain.py").read_text()
    assert "._" not in text.replace("__", ""), "explain touches a private member"


def test_apps_use_public_names_of_datamodule_packages() -> None:
    for path in sorted((ROOT / "apps").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("datamodules"):
                parts = node.module.split(".")
                assert len(parts) <= 2, f"{path.name} imports the internal module {node.module}"
                private = [a.name for a in node.names if a.name.startswith("_")]
                assert not private, f"{path.name} imports private names {private} from {node.module}"


def test_no_datamodule_imports_another_modality(graph: dict[str, set[str]]) -> None:
    for module, targets in graph.items():
        parts = module.split(".")
        if parts[0] != "datamodules" or module in SHARED_DATA:
            continue
        own = ".".join(parts[:2])
        others = {t for t in targets if t.startswith("datamodules") and t not in SHARED_DATA
                  and not (t == own or t.startswith(own + "."))}
        assert not others, f"{module} imports another modality: {others}"


def test_one_atomic_writer_in_the_tree() -> None:
    definitions = []
    for path in sorted(ROOT.rglob("*.py")):
        if ".venv" in path.parts or "tests" in path.parts:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef) and node.name in ("write_atomic", "save_atomic"):
                definitions.append(f"{path.relative_to(ROOT)}:{node.name}")
            if isinstance(node, ast.Attribute) and node.attr == "mkstemp":
                definitions.append(f"{path.relative_to(ROOT)}:mkstemp")
    assert sorted(definitions) == ["apps/runs.py:mkstemp", "apps/runs.py:save_atomic", "apps/runs.py:write_atomic"]


def test_source_files_stay_small() -> None:
    """One concern per file: no source in apps/ or datamodules/ over 500 lines."""
    sizes = {str(p.relative_to(ROOT)): len(p.read_text().splitlines())
             for package in ("apps", "datamodules") for p in (ROOT / package).rglob("*.py")}
    assert not {p: n for p, n in sizes.items() if n > 500}
