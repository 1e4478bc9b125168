"""`runbook validate --strict` lint rules RB001-RB007: each fires where a reviewer
would comment, points at the step, and is silenced by `# runbook: ignore[...]`."""

from __future__ import annotations

import textwrap
from typing import TYPE_CHECKING

from runbook_engine.spec.lint import RULES, describe_rules, lint_runbook

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

    from runbook_engine.diagnostics import Diagnostic

HEADER = "# yaml-language-server: $schema=../schemas/runbook.schema.json\nversion: 1\n"


def lint(tmp_path: Path, body: str, inventory: str | None = None) -> list[Diagnostic]:
    path = tmp_path / "rb.yaml"
    path.write_text(HEADER + textwrap.dedent(body).lstrip())
    inv = None
    if inventory is not None:
        inv = tmp_path / "inventory.yaml"
        inv.write_text(textwrap.dedent(inventory).lstrip())
    return lint_runbook(path, inv)


def codes(found: list[Diagnostic]) -> list[tuple[str | None, int]]:
    return [(d.code, d.line) for d in found]


def test_clean_runbook_has_no_warnings(tmp_path: Path) -> None:
    found = lint(
        tmp_path,
        """
        name: clean
        params:
          version: {type: string, default: "1.0.0"}
        steps:
          - id: deploy
            run: echo deploying {{ params.version | quote }}
            undo: echo undo {{ params.version | quote }}
          - id: look
            run: ls /
            safe: true
        """,
    )
    assert found == []


def test_rb001_state_change_without_undo_only_when_the_runbook_rolls_back(
    tmp_path: Path,
) -> None:
    body = """
        name: rb
        {on_failure}
        steps:
          - id: first
            run: touch /tmp/x
          - id: check
            assert: ["1 == 1"]
        """
    found = lint(tmp_path, body.format(on_failure=""))
    assert codes(found) == [("RB001", 6)]
    assert found[0].severity == "warning"
    assert "step 'first' changes state (run) but has no `undo`" in found[0].message
    assert lint(tmp_path, body.format(on_failure="on_failure: abort")) == []


def test_rb002_param_or_var_in_run_without_quote(tmp_path: Path) -> None:
    found = lint(
        tmp_path,
        """
        name: rb
        params:
          version: {type: string, default: "1.0"}
          workers: {type: integer, default: 2}
          env: {type: string, enum: [staging, production], default: staging}
        vars:
          base: /srv/app
          dir: "/srv/app/{{ params.version }}"
        steps:
          - id: deploy
            run: >-
              cd {{ vars.base }} && echo {{ params.workers }} {{ params.env }}
              {{ params.version | quote }} {{ vars.dir }} {{ params['version'] }}
            undo: rm -rf {{ vars.dir | quote }}
        """,
    )
    messages = [d.message for d in found if d.code == "RB002"]
    assert len(messages) == 2
    assert (
        "vars.dir is rendered into the `run:` shell command without `| quote`"
        in messages[0]
    )
    assert "params.version" in messages[1]
    assert all(d.line == 12 for d in found if d.code == "RB002")


def test_rb003_approve_without_timeout(tmp_path: Path) -> None:
    found = lint(
        tmp_path,
        """
        name: rb
        steps:
          - id: ask
            approve: Go ahead?
          - id: ask_bounded
            approve: {message: Go ahead?, timeout: 10m}
        """,
    )
    assert codes(found) == [("RB003", 5)]


def test_rb004_http_check_without_retries_right_after_a_restart(tmp_path: Path) -> None:
    found = lint(
        tmp_path,
        """
        name: rb
        steps:
          - id: restart_app
            run: systemctl restart app
            undo: systemctl restart app
          - id: health
            http: {url: "http://127.0.0.1:9/health"}
          - id: start_worker
            name: Bring the worker up
            argv: [systemctl, start, worker]
            undo: systemctl stop worker
          - id: health_again
            http: {url: "http://127.0.0.1:9/health"}
            retries: {attempts: 10, delay: 1s}
        """,
    )
    assert codes(found) == [("RB004", 8)]
    assert "'health' runs right after 'restart_app'" in found[0].message


def test_rb005_and_rb006_with_an_inventory(tmp_path: Path) -> None:
    inventory = """
        version: 1
        hosts:
          web1: {address: 127.0.0.1}
          web2: {address: 127.0.0.1}
        groups:
          web: [web1, web2]
        """
    found = lint(
        tmp_path,
        """
        name: rb
        hosts: [web, db1]
        steps:
          - id: look
            run: "true"
            safe: true
        """,
        inventory,
    )
    assert [d.code for d in found] == ["RB006", "RB005"]
    assert "no host or group matches 'db1'" in found[1].message
    assert (found[1].line, found[1].col) == (4, 14)
    single = lint(
        tmp_path,
        """
        name: rb
        hosts: web
        serial: 1
        steps:
          - id: look
            run: "true"
            safe: true
        """,
        inventory,
    )
    assert single == []


def test_rb006_glob_or_list_without_inventory(tmp_path: Path) -> None:
    found = lint(
        tmp_path,
        """
        name: rb
        hosts: "web*"
        steps:
          - id: look
            run: "true"
            safe: true
        """,
    )
    assert codes(found) == [("RB006", 4)]


def test_rb007_secret_on_the_command_line_not_in_env(tmp_path: Path) -> None:
    found = lint(
        tmp_path,
        """
        name: rb
        secrets:
          token: {env: TOKEN}
        steps:
          - id: call
            argv: [curl, -H, "Authorization: {{ secrets.token }}", "http://x"]
            safe: true
          - id: fine
            run: 'curl -H "Authorization: $TOKEN" http://x'
            env: {TOKEN: "{{ secrets.token }}"}
            safe: true
        """,
    )
    assert codes(found) == [("RB007", 7)]
    assert (
        "secret 'token' is rendered into the `argv:` command line" in found[0].message
    )


def test_ignore_comment_on_the_id_line_or_the_line_before(tmp_path: Path) -> None:
    found = lint(
        tmp_path,
        """
        name: rb
        hosts: [a, b]  # runbook: ignore[RB006]
        steps:
          - id: one  # runbook: ignore[RB001]
            run: touch /tmp/one
          # runbook: ignore[RB003, RB001]
          - id: two
            run: touch /tmp/two
          - id: three
            approve: ok?
        """,
    )
    assert codes(found) == [("RB003", 11)]


def test_strict_validate_prints_github_warnings_and_fails(
    runbook_cli: Callable[..., object], tmp_path: Path
) -> None:
    path = tmp_path / "rb.yaml"
    path.write_text(HEADER + "name: rb\nsteps:\n  - id: ask\n    approve: ok?\n")
    strict = runbook_cli("validate", "--strict", "--format", "github", str(path))
    assert strict.code == 2  # type: ignore[attr-defined]
    assert (
        f"::warning file={path},line=5,col=5,title=RB003::approve step 'ask'"
        in strict.stdout  # type: ignore[attr-defined]
    )
    assert "(use `approve: {message: ..., timeout: 30m}`) [RB003]" in strict.stdout  # type: ignore[attr-defined]
    relaxed = runbook_cli("validate", str(path))
    assert relaxed.code == 0  # type: ignore[attr-defined]


def test_every_rule_is_documented() -> None:
    table = describe_rules()
    assert [f"RB00{i}" for i in range(1, 8)] == list(RULES)
    assert all(f"| {code} |" in table for code in RULES)


# -- pre-commit hook and CI example ---------------------------------------------


def test_pre_commit_hook_runs_strict_validate_on_yaml_files(tmp_path: Path) -> None:
    import re
    import subprocess
    import sys
    from pathlib import Path as RealPath

    import yaml

    root = RealPath(__file__).resolve().parents[2]
    text = (root / ".pre-commit-hooks.yaml").read_text()
    assert text.startswith("# yaml-language-server: $schema=")
    (hook,) = yaml.safe_load(text)
    assert hook["id"] == "runbook-validate"
    assert hook["entry"] == "runbook validate --strict"
    assert hook["language"] == "python"
    files = re.compile(hook["files"])
    assert files.search("runbooks/release.yaml") and files.search("ops/runbooks/b.yml")
    assert files.search("inventory.yaml") and files.search("deploy/inventory-prod.yml")
    # every file it is given is checked: another tool's YAML must not be given
    assert not files.search(".github/workflows/ci.yml") and not files.search("a/b.yml")
    assert not files.search("report.json")
    path = tmp_path / "rb.yaml"
    path.write_text(HEADER + "name: rb\nsteps:\n  - id: ask\n    approve: ok?\n")
    argv = [
        sys.executable,
        "-m",
        "runbook_engine",
        *hook["entry"].split()[1:],
        str(path),
    ]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert "[RB003]" in done.stdout


def test_github_actions_example_validates_and_posts_the_plan() -> None:
    from pathlib import Path as RealPath

    import yaml

    root = RealPath(__file__).resolve().parents[2]
    text = (root / "examples" / "ci" / "github-actions.yml").read_text()
    assert text.startswith("# yaml-language-server: $schema=")
    workflow = yaml.safe_load(text)
    assert "pull_request" in workflow[True]  # YAML 1.1 reads the key `on` as true
    runs = [s.get("run", "") for s in workflow["jobs"]["review"]["steps"]]
    assert "runbook validate --strict --format github runbooks/" in runs
    plan = next(r for r in runs if "runbook plan" in r)
    assert (
        "runbook plan runbooks/release.yaml -e version=1.1.0 --format markdown" in plan
    )
    assert '>> "$GITHUB_STEP_SUMMARY"' in plan
