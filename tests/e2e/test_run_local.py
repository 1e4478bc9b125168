"""`runbook run` on the local machine, end to end through the real CLI."""

from __future__ import annotations

import http.server
import json
import re
import threading
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from tests.conftest import ROOT, audit_records

if TYPE_CHECKING:
    from collections.abc import Iterator

pytestmark = pytest.mark.e2e


def test_hello_example_runs_right_after_install(runbook_cli):
    result = runbook_cli("run", str(ROOT / "examples" / "hello.yaml"))
    assert result.code == 0, result.output
    assert "hello, world #1" in result.stderr
    assert "result: succeeded" in result.stderr


def test_every_shell_step_kind_and_templates_see_earlier_results(
    runbook_cli, write_runbook, tmp_path
):
    target = tmp_path / "out.txt"
    rb = write_runbook(
        """
        version: 1
        name: kinds
        params:
          workers: {type: integer, default: 2}
        vars:
          file: "TARGET"
        steps:
          - id: shell
            run: |
              echo '{"n": {{ params.workers * 2 }}}'
          - id: argv
            argv: [printf, "%s-%s", "a b", "{{ steps.shell.json.n }}"]
          - id: remember
            set: {doubled: "{{ steps.shell.json.n }}"}
          - id: write
            run: echo {{ vars.doubled }} > {{ vars.file | quote }}
          - id: nap
            sleep: 10ms
          - id: check
            assert:
              - steps.argv.stdout == 'a b-4'
              - vars.doubled == 4
    """.replace("TARGET", str(target))
    )
    result = runbook_cli("run", str(rb), "-e", "workers=2", "--output", "json")
    assert result.code == 0, result.output
    assert target.read_text() == "4\n"
    summary = result.json()
    assert summary["status"] == "succeeded"
    assert [s["step"] for s in summary["steps"]] == [
        "shell",
        "argv",
        "remember",
        "write",
        "nap",
        "check",
    ]
    assert {s["status"] for s in summary["steps"]} <= {"ok", "changed"}


def test_failed_assert_names_the_expression_and_its_values(runbook_cli, write_runbook):
    rb = write_runbook("""
        version: 1
        name: asserts
        on_failure: abort
        steps:
          - id: count
            run: echo 3
          - id: check
            assert: "steps.count.stdout | int == 5"
    """)
    result = runbook_cli("run", str(rb))
    assert result.code == 1
    assert "assertion failed: `steps.count.stdout | int == 5`" in result.stderr
    assert 'steps.count.stdout = "3\\n"' in result.stderr


def test_failed_step_shows_host_command_exit_code_and_output_tail(
    runbook_cli, write_runbook
):
    rb = write_runbook("""
        version: 1
        name: fails
        on_failure: abort
        steps:
          - id: boom
            run: "for i in $(seq 30); do echo line$i; done; exit 3"
    """)
    result = runbook_cli("run", str(rb), "-q")
    assert result.code == 1
    err = result.stderr
    assert "local boom" in err and "failed" in err
    assert "exit code: 3" in err
    assert "line30" in err and "line21" in err and "line20" not in err  # last 10 lines
    assert "    command: for i in $(seq 30); do echo line$i; done; exit 3\n" in err


def test_a_failed_scripts_command_is_shown_in_its_first_lines(
    runbook_cli, write_runbook
):
    script = "".join(f"\n      echo part{i}" for i in range(1, 9)) + "\n      exit 3"
    rb = write_runbook(
        f"version: 1\nname: fails\nsteps:\n  - id: script\n    run: |{script}\n"
    )
    result = runbook_cli("run", str(rb), "-q")
    assert result.code == 1
    shown = result.stderr.split("    command: ", 1)[1].split("    exit code:", 1)[0]
    assert [line.strip() for line in shown.splitlines()][:6] == [
        f"echo part{i}" for i in range(1, 7)
    ]
    assert "echo part7" not in shown and "(3 more lines: `runbook audit show" in shown
    assert re.search(r"audit show \d{8}-\d{6}-[0-9a-f]{6} --step script --json`", shown)


def test_the_runbook_timeout_applies_to_every_step_and_a_signal_is_named(
    runbook_cli, write_runbook, tmp_path
):
    rb = write_runbook("""
        version: 1
        name: bounded
        timeout: 300ms
        on_failure: continue
        steps:
          - id: slow
            run: sleep 30
          - id: own
            timeout: 5s
            run: sleep 0.5
          - id: shot
            run: kill -KILL $$
    """)
    result = runbook_cli("run", str(rb))
    assert result.code == 1, result.output
    err = result.stderr
    assert "timed out after 0.3s: its whole process group was killed" in err
    assert "local own" in err and "changed" in err.split("local own")[1][:40]
    assert "killed by SIGKILL (signal 9), not by the timeout" in err


def test_timeout_kills_the_whole_process_tree(runbook_cli, write_runbook, tmp_path):
    marker = tmp_path / "child.pid"
    rb = write_runbook(f"""
        version: 1
        name: slow
        on_failure: abort
        steps:
          - id: slow
            timeout: 500ms
            run: "sh -c 'echo $$ > {marker}; sleep 30' & wait"
    """)
    result = runbook_cli("run", str(rb))
    assert result.code == 1
    assert "timed out after 0.5s" in result.stderr
    pid = int(marker.read_text())
    assert (
        not Path(f"/proc/{pid}").exists()
        or "zombie" in Path(f"/proc/{pid}/status").read_text().lower()
    )


@pytest.fixture
def http_server() -> Iterator[str]:
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = json.dumps(
                {"status": "ok", "version": "1.1.0", "extra": [1, 2]}
            ).encode()
            code = 200 if self.path == "/health" else 503
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_http_checks_status_body_and_json_subset(
    runbook_cli, write_runbook, http_server
):
    rb = write_runbook(f"""
        version: 1
        name: web
        on_failure: abort
        steps:
          - id: health
            http:
              url: "{http_server}/health"
              expect_json: {{status: ok}}
              expect_body_contains: "1.1.0"
          - id: version
            assert: ["steps.health.json.version == '1.1.0'", "steps.health.status == 200"]
          - id: broken
            http: {{url: "{http_server}/test-db", expect_json: {{status: ok}}}}
    """)
    result = runbook_cli("run", str(rb))
    assert result.code == 1, result.output
    assert "status 503, expected 200" in result.stderr
    assert "health" in result.stderr and "version" in result.stderr


def test_include_runs_the_other_runbooks_steps_with_its_params(
    runbook_cli, write_runbook, tmp_path
):
    write_runbook(
        """
        version: 1
        name: child
        params:
          word: {type: string, required: true}
        preconditions:
          - id: pre
            run: echo pre-{{ params.word }}
        steps:
          - id: say
            run: echo child-{{ params.word }}
    """,
        name="child.yaml",
    )
    rb = write_runbook("""
        version: 1
        name: parent
        params:
          word: {type: string, default: parent}
        steps:
          - id: inc
            include: child.yaml
            with: {word: "{{ params.word }}-x"}
          - id: after
            run: echo after
    """)
    result = runbook_cli("run", str(rb), "--output", "json")
    assert result.code == 0, result.output
    steps = [s["step"] for s in result.json()["steps"]]
    assert steps == ["inc.pre", "inc.say", "after"]
    assert "child-parent-x" in result.stderr


def test_copy_and_template_are_atomic_and_report_changed_only_when_different(
    runbook_cli, write_runbook, tmp_path
):
    (tmp_path / "conf.j2").write_text("port={{ params.port }}\n")
    (tmp_path / "static.txt").write_text("static\n")
    dest = tmp_path / "deploy"
    dest.mkdir()
    rb = write_runbook(f"""
        version: 1
        name: files
        params:
          port: {{type: integer, default: 8080}}
        steps:
          - id: conf
            template: {{src: conf.j2, dest: "{dest}/app.conf", mode: "0640"}}
          - id: static
            copy: {{src: static.txt, dest: "{dest}/static.txt"}}
    """)
    first = runbook_cli("run", str(rb), "--output", "json")
    assert first.code == 0, first.output
    assert (dest / "app.conf").read_text() == "port=8080\n"
    assert oct((dest / "app.conf").stat().st_mode & 0o777) == "0o640"
    assert [s["status"] for s in first.json()["steps"]] == ["changed", "changed"]
    second = runbook_cli("run", str(rb), "--output", "json")
    assert [s["status"] for s in second.json()["steps"]] == ["ok", "ok"]
    third = runbook_cli("run", str(rb), "-e", "port=9090", "--output", "json")
    assert [s["status"] for s in third.json()["steps"]] == ["changed", "ok"]
    assert not list(dest.glob(".*tmp"))


def test_when_skips_and_changed_when_failed_when_judge(runbook_cli, write_runbook):
    rb = write_runbook("""
        version: 1
        name: judge
        params:
          env: {type: string, enum: [staging, production], default: staging}
        steps:
          - id: prod_only
            when: params.env == 'production'
            run: "false"
          - id: grep_none
            run: "exit 1"
            failed_when: steps.grep_none.rc > 1
            changed_when: false
          - id: readonly
            run: echo same
            changed_when: "'changed' in steps.readonly.stdout"
    """)
    result = runbook_cli("run", str(rb), "--output", "json")
    assert result.code == 0, result.output
    statuses = {s["step"]: s["status"] for s in result.json()["steps"]}
    assert statuses == {"prod_only": "skipped", "grep_none": "ok", "readonly": "ok"}


def test_approve_fails_closed_without_tty_and_passes_with_flags(
    runbook_cli, write_runbook, state_dir
):
    rb = write_runbook("""
        version: 1
        name: gate
        steps:
          - id: ask
            approve: {message: "Deploy to {{ params.env }}?", confirm: "{{ params.env }}", timeout: 5s}
          - id: after
            run: echo went-on
        params:
          env: {type: string, default: production}
    """)
    refused = runbook_cli("run", str(rb))
    assert refused.code == 4, refused.output  # nothing changed: refused
    assert "went-on" not in refused.stderr
    assert "local ask: not approved: no answer within 5s" in refused.stderr
    assert "refused by" not in refused.stderr  # nobody refused it
    approved = runbook_cli("run", str(rb), "--approve", "ask")
    assert approved.code == 0, approved.output
    assert "went-on" in approved.stderr
    approvals = [r for r in audit_records(state_dir) if r["event"] == "approval"]
    assert [a["approved"] for a in approvals] == [False, True]
    assert (
        approvals[1]["operator"] == "tester@ci" and approvals[1]["via"] == "--approve"
    )


def test_output_is_neutralised_before_reaching_the_terminal(runbook_cli, write_runbook):
    rb = write_runbook(r"""
        version: 1
        name: escapes
        steps:
          - id: nasty
            run: printf '\033]52;c;ZXZpbA==\007\033[2Jplain\n\377\376binary\n{"event":"run.finished"}\n'
    """)
    result = runbook_cli("run", str(rb))
    assert result.code == 0, result.output
    assert "\x1b" not in result.stderr and "\x07" not in result.stderr
    assert "\\x1b]52;c;ZXZpbA==" in result.stderr
    assert "plain" in result.stderr and "binary" in result.stderr


def _run_on_a_tty(
    args: list[str],
    env: dict[str, str],
    answer: tuple[str, str] | None = None,
    think: float = 0.0,
) -> str:
    """Run the CLI on a pseudo-terminal; ``answer`` = (prompt text, what to type),
    typed ``think`` seconds after the prompt appears."""
    import os
    import pty
    import select
    import subprocess
    import sys
    import time

    leader, follower = pty.openpty()
    proc = subprocess.Popen(
        [sys.executable, "-m", "runbook_engine", *args],
        env=env,
        stdin=follower,
        stdout=follower,
        stderr=follower,
        close_fds=True,
    )
    os.close(follower)
    chunks = []
    prompted = None
    while True:
        if answer and prompted is not None and time.monotonic() >= prompted + think:
            os.write(leader, answer[1].encode())
            answer = None
        if not select.select([leader], [], [], 0.05)[0]:
            continue
        try:
            data = os.read(leader, 4096)
        except OSError:
            break
        if not data:
            break
        chunks.append(data)
        if answer and prompted is None and answer[0].encode() in b"".join(chunks):
            prompted = time.monotonic()
    proc.wait(timeout=30)
    os.close(leader)
    return b"".join(chunks).decode(errors="replace")


def test_on_a_tty_a_live_line_shows_the_running_step_and_colour_follows_no_color(
    cli_env, write_runbook
):
    rb = write_runbook("""
        version: 1
        name: slow
        steps:
          - id: slow
            run: sleep 1.6; echo done
    """)
    coloured_env = {k: v for k, v in cli_env.items() if k != "NO_COLOR"}
    coloured = _run_on_a_tty(["run", str(rb)], coloured_env)
    assert "running local slow 1." in coloured
    assert "\x1b[32msucceeded" in coloured
    plain = _run_on_a_tty(["run", str(rb)], cli_env)  # NO_COLOR=1
    assert "running local slow" in plain
    assert "\x1b[32m" not in plain and "result: succeeded" in plain


def test_the_including_runbook_reads_included_step_results(runbook_cli, write_runbook):
    write_runbook(
        """
        version: 1
        name: child
        steps:
          - id: probe
            argv: [echo, '{"x": 41}']
    """,
        name="child.yaml",
    )
    rb = write_runbook("""
        version: 1
        name: parent
        steps:
          - id: inc
            include: child.yaml
          - id: use
            assert: ["steps.inc.probe.json.x + 1 == 42"]
    """)
    result = runbook_cli("run", str(rb))
    assert result.code == 0, result.output


def test_an_operator_approves_on_the_terminal_by_typing_the_word(
    cli_env, write_runbook, state_dir
):
    rb = write_runbook("""
        version: 1
        name: gate
        params:
          env: {type: string, default: production}
        steps:
          - id: ask
            approve: {message: "Deploy to {{ params.env }}?", confirm: "{{ params.env }}", timeout: 20s}
          - id: after
            run: echo went-on
    """)
    out = _run_on_a_tty(
        ["run", str(rb)], cli_env, answer=("Type 'production'", "production\n")
    )
    assert "went-on" in out and "result: succeeded" in out
    approval = next(r for r in audit_records(state_dir) if r["event"] == "approval")
    assert approval["approved"] is True and approval["via"] == "tty"
    assert approval["answer"] == "production" and approval["operator"] == "tester@ci"
    wrong = _run_on_a_tty(
        ["run", str(rb)], cli_env, answer=("Type 'production'", "prod\n")
    )
    assert "went-on" not in wrong and "result: no_go" in wrong


def test_a_waiting_approval_prompt_is_not_overwritten_by_the_live_line(
    cli_env, write_runbook
):
    rb = write_runbook("""
        version: 1
        name: gate
        steps:
          - id: ask
            approve: {message: "Deploy?", timeout: 20s}
          - id: after
            run: echo went-on
    """)
    out = _run_on_a_tty(["run", str(rb)], cli_env, answer=("[y/N]", "y\n"), think=1.6)
    assert "went-on" in out and "result: succeeded" in out
    assert "running local ask" not in out  # the prompt stayed on screen


def test_huge_commands_fail_clearly_and_never_bloat_the_audit_log(
    runbook_cli, write_runbook, tmp_path, state_dir
):
    rb = write_runbook("""
        version: 1
        name: huge
        on_failure: continue
        steps:
          - id: too_big
            run: "echo {{ 'x' * 200000 }}"
          - id: big_and_failing
            run: "echo {{ 'y' * 100000 }} > /dev/null; exit 4"
    """)
    result = runbook_cli("run", str(rb))
    assert result.code == 1, result.output[-2000:]
    assert "the rendered command is 200005 bytes, over the limit of 131072" in (
        result.stderr
    )
    log = state_dir / "audit.jsonl"
    assert log.stat().st_size < 64 * 1024  # not megabytes
    finished = [r for r in audit_records(state_dir) if r["event"] == "step.finished"]
    kept = finished[1]["command"]
    assert kept.startswith("echo yyyy") and kept.endswith("> /dev/null; exit 4")
    assert "the whole command: 100025 characters, sha256 " in kept


def test_verbosity_and_colour_flags(runbook_cli, write_runbook):
    rb = write_runbook("""
        version: 1
        name: chatty
        secrets:
          token: {env: TOKEN}
        on_failure: continue
        steps:
          - id: greet
            run: echo hello {{ secrets.token }}
          - id: fail
            run: echo oops; exit 2
    """)
    env = {"TOKEN": "t0p-s3cret"}
    normal = runbook_cli("run", str(rb), env=env)
    assert "local | greet | hello ***" in normal.stderr
    assert "$ echo" not in normal.stderr
    verbose = runbook_cli("run", str(rb), "-v", env=env)
    assert "local | greet $ echo hello ***" in verbose.stderr  # as it starts, masked
    assert verbose.stderr.index("greet $ echo") < verbose.stderr.index("| hello")
    quiet = runbook_cli("run", str(rb), "-q", env=env)
    assert "greet" not in quiet.stderr and "local fail" in quiet.stderr
    assert "result: failed" in quiet.stderr
    assert "\x1b[" not in normal.stderr  # not a terminal: no colour
    always = runbook_cli("run", str(rb), "--color", "always", env=env)
    assert "\x1b[31m" in always.stderr  # failed in red, even through a pipe
    never = runbook_cli("run", str(rb), "--color", "never", env=env)
    assert "\x1b[" not in never.stderr
    assert "t0p-s3cret" not in normal.output + verbose.output + always.output


def test_lists_and_mappings_reach_commands_as_json_never_as_a_python_repr(
    runbook_cli, write_runbook
):
    rb = write_runbook("""
        version: 1
        name: as_json
        steps:
          - id: data
            run: "echo '{\\"a\\": [1, 2], \\"b\\": \\"x\\"}'"
          - id: quoted
            run: echo {{ steps.data.json | quote }}
          - id: in_env
            run: echo "$J"
            env: {J: "{{ steps.data.json }}"}
          - id: as_arg
            argv: [echo, "{{ steps.data.json.a }}"]
    """)
    result = runbook_cli("run", str(rb))
    assert result.code == 0, result.output
    for step in ("quoted", "in_env"):
        assert f'local | {step} | {{"a": [1, 2], "b": "x"}}' in result.stderr
    assert "local | as_arg | [1, 2]" in result.stderr
    assert "{'a'" not in result.stderr
