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
    "yaml": {"spec/reader.py"},
    "jsonschema": {"spec/schema.py"},
    "jinja2": {"render.py", "sandbox.py", "spec/lint.py"},
    # the ssh* family of transports/ (connection, auth, wire, exec, files) and the
    # ssh_config parser of the inventory
    "paramiko": {
        "transports/ssh.py",
        "transports/ssh_auth.py",
        "transports/ssh_connect.py",
        "transports/ssh_exec.py",
        "transports/ssh_files.py",
        "transports/ssh_wire.py",
        "spec/sshconfig.py",
    },
    "tenacity": {"engine/retries.py"},
    "click": {
        "cli/__init__.py",
        "cli/app.py",
        "cli/runs.py",
        "cli/review.py",
        "cli/records.py",
        "cli/team.py",
        "cli/reporting.py",
    },
    # the database backend only; psycopg_pool is in the postgres extra but unused
    "psycopg": {"engine/pgdb.py"},
    "psycopg_pool": set(),
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


_NO_DRIVER = """
import sys
from runbook_engine.cli import main
sys.argv = ["runbook", *sys.argv[1:]]
try:
    main()
except SystemExit as exc:
    code = exc.code
loaded = sorted(m for m in sys.modules if m.split(".")[0] in ("psycopg", "psycopg_pool"))
print(code, loaded)
"""


def test_the_file_default_never_loads_the_database_driver(tmp_path):
    """A local run, the audit commands and --version with the file backend do not
    import psycopg (its import alone costs ~0.2 s)."""
    import os
    import subprocess
    import sys

    book = tmp_path / "rb.yaml"
    book.write_text(
        "version: 1\nname: local\nlock: l\nsteps:\n  - id: s\n    run: 'true'\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("RUNBOOK_")}
    env["RUNBOOK_STATE_DIR"] = str(tmp_path / "state")
    for args in (["run", str(book)], ["audit", "verify"], ["--version"]):
        done = subprocess.run(
            [sys.executable, "-c", _NO_DRIVER, *args],
            capture_output=True, text=True, env=env, cwd=tmp_path, check=False,
        )  # fmt: skip
        assert done.stdout.split("\n")[-2] in ("0 []", "None []"), (
            args,
            done.stdout,
            done.stderr,
        )


# inventory values that reach a connection or a remote script
INVENTORY_FIELDS = {
    "address",
    "user",
    "port",
    "identity_file",
    "proxy_jump",
    "known_hosts",
    "ssh_config",
    "lock_dir",
}
_SSH_PROGRAMS = {"ssh", "scp", "sftp", "rsync", "ssh-keyscan"}
_SPAWNERS = {"run", "Popen", "call", "check_call", "check_output", "system", "popen"}
_SHELL_SYNTAX = ("\n", "&&", "||", "$", "`", "export ", "cd ", "mkdir ", "|", " > ")


def _calls(tree: ast.AST):
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else None
            if name is None and isinstance(func, ast.Name):
                name = func.id
            yield name, node


def _first_word(node: ast.Call) -> str | None:
    if not node.args:
        return None
    first = node.args[0]
    if isinstance(first, ast.List | ast.Tuple) and first.elts:
        first = first.elts[0]
    if isinstance(first, ast.Constant) and isinstance(first.value, str):
        return first.value.split()[0] if first.value.split() else None
    return None


def test_no_code_path_runs_an_ssh_or_scp_program():
    # connections go through paramiko with values as data, never an ssh command
    # line where an inventory value could become an option (-oProxyCommand=...)
    found = []
    for path in PACKAGE.rglob("*.py"):
        for name, call in _calls(ast.parse(path.read_text())):
            word = _first_word(call)
            if name in _SPAWNERS and word and word.rsplit("/", 1)[-1] in _SSH_PROGRAMS:
                found.append(f"{path.relative_to(PACKAGE)}:{call.lineno}")
            if name in _SPAWNERS and any(
                kw.arg == "shell"
                and isinstance(kw.value, ast.Constant)
                and kw.value.value is True
                for kw in call.keywords
            ):
                found.append(f"{path.relative_to(PACKAGE)}:{call.lineno} shell=True")
    assert found == []


def _field_of(node: ast.AST) -> str | None:
    if isinstance(node, ast.Attribute):
        return node.attr if node.attr in INVENTORY_FIELDS else None
    if isinstance(node, ast.Name):
        return node.id if node.id in INVENTORY_FIELDS else None
    return None


def test_inventory_values_reach_shell_text_only_through_quoting():
    # an f-string that reads like shell may embed an inventory value only through
    # a call (shlex.quote, or a helper built on it), never as it is
    found = []
    for path in PACKAGE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.JoinedStr):
                continue
            text = "".join(
                part.value for part in node.values if isinstance(part, ast.Constant)
            )
            if not any(marker in text for marker in _SHELL_SYNTAX):
                continue
            for part in node.values:
                if isinstance(part, ast.FormattedValue) and _field_of(part.value):
                    found.append(f"{path.relative_to(PACKAGE)}:{node.lineno}")
    assert found == []


def test_the_quoting_invariant_would_see_an_unquoted_field():
    bad = ast.parse('script = f"cd {host.lock_dir} && ls"')
    joined = next(n for n in ast.walk(bad) if isinstance(n, ast.JoinedStr))
    assert any(
        isinstance(p, ast.FormattedValue) and _field_of(p.value) == "lock_dir"
        for p in joined.values
    )
    call = next(c for _, c in _calls(ast.parse("subprocess.run(['ssh', host])")))
    assert _first_word(call) == "ssh"
