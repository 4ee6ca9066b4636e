"""Dependencies run one way (README, "Layout"), read from the import graph that import-linter uses
(grimp), imports inside functions included.

The units are the apps (onboarding, switchroles, billing, elevations), each subpackage of portal/
(the API, the evidence, the kernel's people, audit, notifications, web, operations and steps, the AWS
package, the sandbox's moto extensions, the management commands) and portal's own modules, which
count as one unit (the project and the auditors' workspace). Migrations are history and left out.
"""

from __future__ import annotations

import ast
import functools
import tomllib
from dataclasses import dataclass
from pathlib import Path

import grimp
import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("portal", "onboarding", "switchroles", "billing", "elevations")




@dataclass(frozen=True)
class Import:
    importer: str
    imported: str
    line: int
    kind: str  # "module", "function" (inside a def) or "type-checking" (under `if TYPE_CHECKING:`)
    in_app_ready: bool  # inside an AppConfig.ready(), where Django wants apps to fill their registries


def unit_of(module: str) -> str:
    parts = module.split(".")
    if parts[0] != "portal" or len(parts) == 1:
        return parts[0]
    if parts[1] == "aws" or (ROOT / "portal" / parts[1]).is_dir():  # the AWS package is one unit, always
        return f"portal.{parts[1]}"
    return "portal"


def _source_path(module: str) -> Path:
    base = ROOT.joinpath(*module.split("."))
    return base / "__init__.py" if base.is_dir() else base.with_suffix(".py")


@functools.cache
def _import_kinds(module: str) -> dict[int, tuple[str, bool]]:
    """Line number of each import statement in ``module`` -> (kind, inside AppConfig.ready())."""
    kinds: dict[int, tuple[str, bool]] = {}

    def visit(node: ast.AST, kind: str, in_ready: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.Import | ast.ImportFrom):
                kinds[child.lineno] = (kind, in_ready)
            elif isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
                visit(child, "function", in_ready or getattr(child, "name", "") == "ready")
            elif isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test):
                for statement in child.body:
                    visit(ast.Module(body=[statement], type_ignores=[]), "type-checking" if kind == "module"
                          else kind, in_ready)
                for statement in child.orelse:
                    visit(ast.Module(body=[statement], type_ignores=[]), kind, in_ready)
            else:
                visit(child, kind, in_ready)

    visit(ast.parse(_source_path(module).read_text()), "module", False)
    return kinds


@functools.cache
def imports_between_units() -> tuple[Import, ...]:
    graph = grimp.build_graph(*PACKAGES, exclude_type_checking_imports=False, cache_dir=None)
    found = []
    for importer in sorted(graph.modules):
        if ".migrations" in importer:
            continue
        for imported in sorted(graph.find_modules_directly_imported_by(importer)):
            if unit_of(importer) == unit_of(imported):
                continue
            for detail in graph.get_import_details(importer=importer, imported=imported):
                kind, in_ready = _import_kinds(importer).get(detail["line_number"], ("module", False))
                found.append(Import(importer, imported, detail["line_number"], kind, in_ready))
    return tuple(found)


def _cycle(edges: dict[str, set[str]]) -> list[str]:
    """One cycle of units, or [] (depth-first search)."""
    state: dict[str, int] = {}
    path: list[str] = []

    def walk(unit: str) -> list[str]:
        state[unit] = 1
        path.append(unit)
        for nxt in sorted(edges.get(unit, ())):
            if state.get(nxt) == 1:
                return [*path[path.index(nxt):], nxt]
            if nxt not in state and (found := walk(nxt)):
                return found
        state[unit] = 2
        path.pop()
        return []

    for unit in sorted(edges):
        if unit not in state and (found := walk(unit)):
            return found
    return []


def _described(imports: list[Import]) -> str:
    return "\n".join(f"{i.importer}:{i.line} -> {i.imported} ({i.kind})" for i in imports)


def test_the_units_import_each_other_without_a_cycle() -> None:
    # Given every import between two units, at module level or inside a function
    runtime = [i for i in imports_between_units() if i.kind != "type-checking"]
    edges: dict[str, set[str]] = {}
    for i in runtime:
        edges.setdefault(unit_of(i.importer), set()).add(unit_of(i.imported))
    # Then no unit reaches itself again
    cycle = _cycle(edges)
    on_the_cycle = [i for i in runtime if any(
        (unit_of(i.importer), unit_of(i.imported)) == pair for pair in zip(cycle, cycle[1:], strict=False))]
    assert cycle == [], f"Import cycle {' -> '.join(cycle)}:\n{_described(on_the_cycle)}"


def test_no_import_between_units_hides_inside_a_function() -> None:
    # Given the imports between two units made inside a function body
    hidden = [i for i in imports_between_units() if i.kind == "function" and not i.in_app_ready]
    # Then there are none: an import between units is at the top of the module, where it is seen.
    # (An AppConfig.ready() fills registries of the units below and must import late; inside one
    # unit, a task module and the services that enqueue it may import each other late.)
    assert hidden == [], f"Imports between units inside functions:\n{_described(hidden)}"


def test_type_checking_imports_between_units_only_name_models() -> None:
    # Given the imports between units made only for the type checker
    typing_only = [i for i in imports_between_units() if i.kind == "type-checking"]
    # Then each names models (the tables already point there through foreign keys), nothing else
    assert [i for i in typing_only if not i.imported.endswith(".models")] == []


def _lint_contracts() -> list[dict[str, object]]:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    return list(config["tool"]["importlinter"]["contracts"])


def _layered_units() -> set[str]:
    layers = next(c for c in _lint_contracts() if c["type"] == "layers")["layers"]
    assert isinstance(layers, list)
    named = set()
    for layer in layers:
        for part in layer.replace("|", ":").split(":"):
            named.add(part.strip().strip("()"))
    return named


def _portal_children() -> set[str]:
    children = set()
    for path in (ROOT / "portal").iterdir():
        if path.name.startswith(("_", ".")) or path.name == "migrations":
            continue
        if path.is_dir() and (path / "__init__.py").exists():
            children.add(f"portal.{path.name}")
        elif path.suffix == ".py":
            children.add(f"portal.{path.stem}")
    return children


@pytest.mark.parametrize("package", ["onboarding", "switchroles", "billing", "elevations"])
def test_every_app_has_its_place_in_the_layers(package: str) -> None:
    # Given the layers contract `make lint` checks
    # Then each app is in it (an app left out would be checked against nothing)
    assert package in _layered_units()


def test_every_module_and_subpackage_of_portal_has_its_place_in_the_layers() -> None:
    # Given portal's modules and subpackages on disk
    # Then each is in one layer of the contract, so a new module is placed, not left unchecked
    assert sorted(_portal_children() - _layered_units()) == []
