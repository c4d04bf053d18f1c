"""The package's import graph keeps its layers: no module imports a higher layer, and no two
modules import each other (directly or round a longer loop), imports inside functions included.

The layer order is written here once (low to high) and docs/architecture.md must show the same
list. A name ending in `.*` is a subpackage: its __init__ and every module in it. `__init__` is the
package's own __init__, the lazy public facade over api/train/evaluate/generate (by name strings
that ast cannot see), so it sits with api; `from . import __version__` only reads a constant
defined before __init__ imports anything, so it counts as the lowest layer.
"""

from __future__ import annotations

import ast
import functools
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "src" / "rnnkit"
LAYERS = (
    "errors",
    "config, runtime, files, distributed, presets",
    "text.*",
    "data",
    "models.*",
    "engines, evaluate, generate, score, checkpoint, modelcard, reporting",
    "train, finetune",
    "api, hub, export, __init__",
    "studies.*",
    "serve.*",
    "cli, interactive, __main__",
)
VERSION = "rnnkit.__version__"  # a pseudo-module in the lowest layer, imported by nothing


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_modules(source: str, name: str, is_package: bool, known: set[str]) -> set[str]:
    """Every rnnkit module that `source` (module `name`) imports, anywhere in the file."""
    found: set[str] = set()
    package = name if is_package else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names if alias.name.split(".")[0] == "rnnkit"}
        elif isinstance(node, ast.ImportFrom):
            base = package.rsplit(".", node.level - 1)[0] if node.level else ""
            target = ".".join(part for part in (base, node.module or "") if part)
            if target.split(".")[0] != "rnnkit":
                continue
            for alias in node.names:
                submodule = f"{target}.{alias.name}"
                if submodule in known or submodule == VERSION:
                    found.add(submodule)
                else:  # a name defined in `target` itself
                    found.add(target)
    found.discard(name)
    return found


@functools.cache  # parsed once for the tests below
def import_graph() -> dict[str, frozenset[str]]:
    files = {module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}
    known = set(files)
    return {
        name: frozenset(imported_modules(path.read_text(encoding="utf-8"), name, path.name == "__init__.py", known))
        for name, path in files.items()
    }


def layer_of(module: str, layers=LAYERS) -> int | None:
    if module == VERSION:
        return 0
    short = module.removeprefix("rnnkit.") if module != "rnnkit" else "__init__"
    for rank, line in enumerate(layers):
        for entry in (part.strip() for part in line.split(",")):
            if entry == short or (entry.endswith(".*") and (short + ".").startswith(entry[:-1])):
                return rank
    return None


def find_cycle(graph: dict[str, set[str]] | dict[str, frozenset[str]]) -> list[str] | None:
    """One import loop as a path [a, b, ..., a], or None (depth-first search, three colours)."""
    state: dict[str, str] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = "open"
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == "open":
                return stack[stack.index(nxt) :] + [nxt]
            if nxt not in state and (loop := visit(nxt)):
                return loop
        state[node] = "done"
        stack.pop()
        return None

    for node in sorted(graph):
        if node not in state and (loop := visit(node)):
            return loop
    return None


def test_every_module_has_a_layer():
    graph = import_graph()
    unplaced = sorted({m for m in graph} | {t for targets in graph.values() for t in targets})
    unplaced = [m for m in unplaced if layer_of(m) is None]
    assert not unplaced, f"modules with no layer (add them to LAYERS here and in docs/architecture.md): {unplaced}"
    stale = [
        entry
        for line in LAYERS
        for entry in (p.strip() for p in line.split(","))
        if not any(layer_of(m, (entry,)) == 0 for m in graph)
    ]
    assert not stale, f"LAYERS names modules that do not exist: {stale}"


def test_no_module_imports_a_higher_layer():
    def describe(module: str) -> str:
        return f"{module} (layer {layer_of(module)}: {LAYERS[layer_of(module)]})"

    placed = [
        (module, target)
        for module, targets in sorted(import_graph().items())
        for target in sorted(targets)
        if layer_of(module) is not None and layer_of(target) is not None
    ]  # unplaced: the test above
    upward = [
        f"{describe(module)} imports {describe(target)}"
        for module, target in placed
        if layer_of(target) > layer_of(module)
    ]
    assert not upward, "upward imports (a module may import only its own layer or lower):\n" + "\n".join(upward)


def test_no_import_cycles():
    loop = find_cycle(import_graph())
    assert loop is None, "import cycle: " + " -> ".join(loop)


def test_the_checker_sees_every_form_of_import():
    source = (
        "import rnnkit\nimport numpy\nfrom .. import __version__, config\nfrom ..errors import X\n"
        "def f():\n    from ..models.base import Scorer\n    import rnnkit.train\n"
        "    from . import tokenizer\n    from .corpora import load\n"
    )
    known = {
        "rnnkit",
        "rnnkit.config",
        "rnnkit.errors",
        "rnnkit.models.base",
        "rnnkit.train",
        "rnnkit.text",
        "rnnkit.text.tokenizer",
        "rnnkit.text.corpora",
        "rnnkit.text.prepare",
    }
    found = imported_modules(source, "rnnkit.text.prepare", False, known)
    assert found == {
        "rnnkit",
        VERSION,
        "rnnkit.config",
        "rnnkit.errors",
        "rnnkit.models.base",
        "rnnkit.train",
        "rnnkit.text.tokenizer",
        "rnnkit.text.corpora",
    }
    assert imported_modules("from . import corpora\nfrom .corpora import x\n", "rnnkit.text", True, known) == {
        "rnnkit.text.corpora"
    }
    assert layer_of("rnnkit.text.tokenizer") == 2 and layer_of("rnnkit") == layer_of("rnnkit.api")
    assert layer_of(VERSION) == 0 and layer_of("rnnkit.textual") is None
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set(), "c": {"a", "b"}}) is None


def test_docs_show_the_same_layers():
    doc = (ROOT / "docs" / "architecture.md").read_text(encoding="utf-8")
    block = re.search(r"```text layers\n(.*?)```", doc, re.S)
    assert block, "docs/architecture.md needs a ```text layers fenced block listing the layers"
    listed = tuple(re.sub(r"^\d+\.\s*", "", line).strip() for line in block.group(1).splitlines() if line.strip())
    assert listed == LAYERS, "docs/architecture.md's layer list differs from tests/test_layers.py's LAYERS"
