"""The modules import each other in one direction: no cycle, no import hidden in a function to
dodge one, no private helper borrowed from another module.

The imports are read from the source with ``ast`` (nothing is imported), every kind counted:
at the top of a module, under ``if TYPE_CHECKING:``, and inside functions. A cycle means two
modules that cannot be read one after the other; the README's module map lists them in an
order where each module imports only modules above it.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("minitransformer", "viz")
#: The command line imports viz and the model loaders inside the command that needs them, so
#: that ``minitransformer train`` does not load matplotlib: imports kept lazy on purpose.
LAZY_IMPORTS_ALLOWED = {"minitransformer.cli"}


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {
    module_name(path): path
    for package in PACKAGES
    for path in sorted((ROOT / package).rglob("*.py"))
}


def imported_modules(node: ast.AST) -> list[tuple[str, str]]:
    """The package modules an import statement imports, as (module, name) pairs: ``from a.b
    import c`` is module ``a.b.c`` when that is a module, else module ``a.b`` (name ``c``)."""
    if isinstance(node, ast.Import):
        return [(alias.name, "") for alias in node.names if alias.name in MODULES]
    if not isinstance(node, ast.ImportFrom) or node.module not in MODULES:
        return []
    found = []
    for alias in node.names:
        submodule = f"{node.module}.{alias.name}"
        found.append((submodule, "") if submodule in MODULES else (node.module, alias.name))
    return found


def imports_of(module: str) -> dict[str, list[tuple[str, str, bool]]]:
    """Each package module ``module`` imports -> [(name imported, where, inside a function)]."""
    tree = ast.parse(MODULES[module].read_text(encoding="utf-8"))
    in_function = {
        id(inner)
        for fn in ast.walk(tree)
        if isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef))
        for inner in ast.walk(fn)
    }
    found: dict[str, list[tuple[str, str, bool]]] = {}
    for node in ast.walk(tree):
        for target, name in imported_modules(node):
            if target != module:
                where = f"{MODULES[module].relative_to(ROOT)}:{node.lineno}"
                found.setdefault(target, []).append((name, where, id(node) in in_function))
    return found


GRAPH = {module: imports_of(module) for module in MODULES}


def find_cycle(graph: dict[str, dict[str, list]]) -> list[str] | None:
    """A cycle of the graph as a list of modules (the first repeated at the end), or None."""
    state: dict[str, str] = {}  # "open" while on the path, "done" after

    def visit(module: str, path: list[str]) -> list[str] | None:
        state[module] = "open"
        for target in graph[module]:
            if state.get(target) == "open":
                return path[path.index(target) :] + [target]
            if target not in state and (cycle := visit(target, [*path, target])):
                return cycle
        state[module] = "done"
        return None

    for module in graph:
        if module not in state and (cycle := visit(module, [module])):
            return cycle
    return None


def test_the_import_graph_has_no_cycle():
    assert find_cycle(GRAPH) is None, " -> ".join(find_cycle(GRAPH) or [])


def test_find_cycle_finds_one():
    """The check above would catch the cycle the encoder, backprop and checkpoint once made."""
    graph = {
        "encoder": {"backprop": [], "checkpoint": []},
        "backprop": {"encoder": []},
        "checkpoint": {"encoder": []},
    }
    assert find_cycle(graph) == ["encoder", "backprop", "encoder"]
    assert find_cycle({"a": {"b": []}, "b": {}}) is None


@pytest.mark.parametrize("module", sorted(set(MODULES) - LAZY_IMPORTS_ALLOWED))
def test_modules_import_at_the_top(module):
    inside = [
        f"{where} imports {target}"
        for target, uses in GRAPH[module].items()
        for _, where, in_function in uses
        if in_function
    ]
    assert not inside, f"imports inside functions (move them to the top): {inside}"


def test_no_private_name_is_imported_from_another_module():
    private = [
        f"{where} imports {target}.{name}"
        for module, targets in GRAPH.items()
        for target, uses in targets.items()
        for name, where, _ in uses
        if name.startswith("_")
    ]
    assert not private, f"make these helpers public, or keep them in their module: {private}"


def test_the_model_core_does_not_import_the_tokenizer():
    """The encoder reads a tokenizer's batch by what it holds (``inputs.is_token_batch``)."""
    for module in ("minitransformer.encoder", "minitransformer.backprop", "minitransformer.inputs"):
        assert "minitransformer.tokenizer" not in GRAPH[module], module


def readme_module_lists() -> dict[str, str]:
    """The README's module map: each folder (``"minitransformer/testing"``) -> its list, the text
    from the line that names the folder to the next folder's."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme[readme.index("## Layout and module map") :]
    section = section[: section.index("\n## ", 1)]
    folders = sorted({str(path.parent.relative_to(ROOT)) for path in MODULES.values()})
    starts = {folder: section.index(f"\n`{folder}/`,") for folder in folders}
    ends = sorted(starts.values()) + [len(section)]
    return {f: section[i : ends[ends.index(i) + 1]] for f, i in starts.items()}


def test_the_readme_module_map_lists_every_module():
    """The README's module map names every file of the packages, in its own folder's list (a
    name such as ``attention.py`` in one folder's list does not count for another's)."""
    lists = readme_module_lists()
    missing = [
        str(path.relative_to(ROOT))
        for path in MODULES.values()
        if path.name != "__init__.py"
        and f"`{path.name}`" not in lists[str(path.parent.relative_to(ROOT))]
    ]
    assert not missing, f"add these files to the README's module map: {missing}"
