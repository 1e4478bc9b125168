"""Invariants of the code base that keep it easy to change (httpx-style)."""

from __future__ import annotations

import ast
import json
from pathlib import Path

import runbook_engine

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "runbook_engine"

# each third-party library is imported in one named place, so mapping or swapping it
# stays a local change
ALLOWED_IMPORTERS = {
    "yaml": {"spec/loader.py"},
    "jsonschema": {"spec/schema.py"},
    "jinja2": {"render.py", "spec/lint.py"},
    "paramiko": {"transports/ssh.py", "spec/inventory.py"},
    "tenacity": {"engine/retries.py"},
    "click": {
        "cli/__init__.py",
        "cli/app.py",
        "cli/runs.py",
        "cli/review.py",
        "cli/records.py",
    },
}


def _imported_roots(path: Path) -> set[str]:
    roots = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            roots.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            roots.add(node.module.split(".")[0])
    return roots


def test_each_third_party_library_is_imported_in_its_named_place_only():
    found: dict[str, set[str]] = {name: set() for name in ALLOWED_IMPORTERS}
    for path in PACKAGE.rglob("*.py"):
        for root in _imported_roots(path) & set(ALLOWED_IMPORTERS):
            found[root].add(path.relative_to(PACKAGE).as_posix())
    for library, importers in found.items():
        assert importers <= ALLOWED_IMPORTERS[library], (
            f"{library} imported by {importers}"
        )


# The layers, bottom up: a module may import its own layer and the layers below it,
# never one above (an arrow running back up makes a cycle a newcomer cannot follow).
# "" is the package top level: errors, units, secrets, render, statedir.
LAYERS = ("", "spec", "transports", "record", "actions", "engine", "cli")
# top-level modules that are not foundations: the entry points
ENTRY_POINTS = {"__main__.py"}


def _layer_of(module: str) -> str:
    first = module.split(".")[0]
    return first if first in LAYERS else ""


def _package_imports(path: Path) -> set[str]:
    """Modules of runbook_engine imported by ``path``, as dotted paths from the
    package root ("spec.model", "render")."""
    relative = path.relative_to(PACKAGE).with_suffix("")
    package = list(relative.parts[:-1])  # the package the module is in
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.level > 0:
            base = package[: len(package) - (node.level - 1)]
            target = [*base, *(node.module.split(".") if node.module else [])]
            names = [alias.name for alias in node.names]
            if node.module is None:  # from .. import render
                found.update(".".join([*target, name]) for name in names)
            else:
                found.add(".".join(target))
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith(
            "runbook_engine."
        ):
            found.add(node.module.removeprefix("runbook_engine."))
    return found


def test_imports_point_down_the_layers():
    upward = []
    for path in PACKAGE.rglob("*.py"):
        if path.name in ENTRY_POINTS and path.parent == PACKAGE:
            continue
        relative = path.relative_to(PACKAGE)
        own = LAYERS.index(relative.parts[0] if len(relative.parts) > 1 else "")
        for module in _package_imports(path):
            if LAYERS.index(_layer_of(module)) > own:
                upward.append(f"{relative} imports {module}")
    assert upward == []


def test_packaged_schemas_are_byte_identical_to_the_top_level_ones():
    top = sorted(p.name for p in (ROOT / "schemas").glob("*.json"))
    packaged = sorted(p.name for p in (PACKAGE / "schemas").glob("*.json"))
    assert top == packaged and "runbook.schema.json" in top
    for name in top:
        assert (ROOT / "schemas" / name).read_bytes() == (
            PACKAGE / "schemas" / name
        ).read_bytes(), name


def _properties_without_description(node: object, where: str) -> list[str]:
    missing: list[str] = []
    if isinstance(node, dict):
        if where.rsplit(".", 1)[-1] in ("if", "then", "else"):
            return missing  # conditional blocks constrain properties documented above
        for name, sub in (node.get("properties") or {}).items():
            if isinstance(sub, dict) and "description" not in sub:
                missing.append(f"{where}.{name}")
        for key, value in node.items():
            missing += _properties_without_description(value, f"{where}.{key}")
    elif isinstance(node, list):
        for index, value in enumerate(node):
            missing += _properties_without_description(value, f"{where}[{index}]")
    return missing


def test_every_schema_property_has_a_description_for_editors():
    for path in (ROOT / "schemas").glob("*.json"):
        assert (
            _properties_without_description(json.loads(path.read_text()), path.name)
            == []
        )


def test_every_yaml_file_in_the_repo_names_its_schema_for_editors():
    skip = {".venv", "node_modules", ".git"}
    missing = []
    for path in ROOT.rglob("*.y*ml"):
        if skip & set(path.parts) or path.suffix not in (".yaml", ".yml"):
            continue
        # in the leading comment block (test cases put their `# expect:` lines first)
        lines = path.read_text(errors="replace").splitlines()
        body = next(
            (i for i, text in enumerate(lines) if not text.startswith("#")), len(lines)
        )
        head = lines[:body]
        if not any(
            line.startswith("# yaml-language-server: $schema=") for line in head
        ):
            missing.append(str(path.relative_to(ROOT)))
    assert missing == []


def test_public_api_is_sorted_and_importable():
    assert runbook_engine.__all__ == sorted(runbook_engine.__all__)
    for name in runbook_engine.__all__:
        assert hasattr(runbook_engine, name)


def test_every_step_kind_has_one_action_module_and_describes_itself():
    from runbook_engine import actions
    from runbook_engine.spec import model

    kinds = [k for k in model.ACTION_KEYS if k != "include"]  # expanded at load
    for kind in kinds:
        assert callable(actions.handler_for(kind)), kind
    for cls in model.Action.__args__:  # type: ignore[attr-defined]
        assert cls.kind in model.ACTION_KEYS
        assert "describe" in cls.__dict__, f"{cls.__name__} has no describe()"
