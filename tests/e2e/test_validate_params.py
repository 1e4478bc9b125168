"""Bad input gets `file:line:col: message` and exit 2, and nothing runs."""

from __future__ import annotations

import json

import pytest

from tests.conftest import audit_records

pytestmark = pytest.mark.e2e

PARAMS_RB = """
version: 1
name: typed
params:
  version: {type: string, required: true, pattern: '^\\d+\\.\\d+\\.\\d+$'}
  workers: {type: integer, default: 2}
  ratio: {type: number, default: 0.5}
  dry: {type: boolean, default: false}
  env: {type: string, enum: [staging, production], default: staging}
steps:
  - id: show
    run: touch ran-{{ params.workers }}-{{ params.dry }}
"""


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ([], "missing required param 'version'"),
        (
            ["-e", "version=1.2.3", "-e", "workers=abc"],
            "param 'workers': must be an integer, got 'abc'",
        ),
        (["-e", "version=1.2"], "does not match the pattern"),
        # $ is the end of the text, as in JSON Schema (Python's takes a final \n)
        (["-e", "version=1.2.3\n"], "'1.2.3\\n' does not match the pattern"),
        (["-e", "version=1.2.٣"], "does not match the pattern"),  # \d is ASCII
        (
            ["-e", "version=1.2.3", "-e", "workers=1_000"],
            "param 'workers': must be an integer, got '1_000'",
        ),
        (
            ["-e", "version=1.2.3", "-e", "workers=99999999999999999999"],
            "param 'workers': 99999999999999999999 is out of range",
        ),
        (["-e", "version=1.2.3", "-e", "ratio=1e400"], "inf is not a finite number"),
        (
            ["-e", "version=1.2.3", "-e", "verison=2"],
            "unknown param 'verison' (did you mean 'version'?)",
        ),
        (
            ["-e", "version=1.2.3", "-e", "env=prod"],
            "must be one of 'staging', 'production'",
        ),
        (["-e", "version=1.2.3", "-e", "dry=maybe"], "must be a boolean"),
        (["-e", "oops"], "expected key=value"),
    ],
)
def test_bad_params_exit_2_naming_the_param(
    runbook_cli, write_runbook, tmp_path, args, message
):
    rb = write_runbook(PARAMS_RB)
    result = runbook_cli("run", str(rb), *args)
    assert result.code == 2, result.output
    assert message in result.stderr
    assert "Traceback" not in result.output
    assert not list(tmp_path.glob("ran-*"))


def test_params_are_coerced_to_their_declared_types(
    runbook_cli, write_runbook, tmp_path
):
    rb = write_runbook(PARAMS_RB)
    result = runbook_cli(
        "run", str(rb), "-e", "version=1.2.3", "-e", "workers=3", "-e", "dry=yes"
    )
    assert result.code == 0, result.output
    assert (tmp_path / "ran-3-True").exists()


def test_params_file_yaml(runbook_cli, write_runbook, tmp_path):
    rb = write_runbook(PARAMS_RB)
    params = tmp_path / "p.yaml"
    params.write_text("version: '2.0.0'\nworkers: 5\n")
    result = runbook_cli("run", str(rb), "--params-file", str(params))
    assert result.code == 0, result.output
    assert (tmp_path / "ran-5-False").exists()


SEMANTIC = """\
version: 1
name: semantic
params:
  version: {type: string, default: '1.0.0'}
steps:
  - id: first
    run: echo {{ params.verison }}
  - id: second
    run: echo {{ steps.third.stdout }}
  - id: third
    run: echo {{ steps.nope.rc }} {{ secrets.token }}
  - id: first
    run: echo {% if %}
  - id: inc
    include: missing.yaml
"""


def test_semantic_errors_all_reported_with_positions(runbook_cli, write_runbook):
    rb = write_runbook(SEMANTIC)
    result = runbook_cli("validate", str(rb), "--format", "json")
    assert result.code == 2
    found = {(d["line"], d["column"], d["message"]) for d in json.loads(result.stdout)}
    path = str(rb)
    assert (
        7,
        10,
        "step 'first': unknown param params.verison (did you mean 'version'?)",
    ) in found
    assert (
        9,
        10,
        "step 'second': steps.third is used before step 'third' runs",
    ) in found
    assert any(
        line == 11 and "unknown step steps.nope" in msg for line, _, msg in found
    )
    assert any(
        line == 11 and "unknown secret secrets.token" in msg for line, _, msg in found
    )
    assert any(
        line == 12 and "duplicate step id 'first' (first used at line 6)" in msg
        for line, _, msg in found
    )
    assert any(line == 13 and "template syntax error" in msg for line, _, msg in found)
    assert any(
        line == 15 and "included file 'missing.yaml' does not exist" in msg
        for line, _, msg in found
    )
    text = runbook_cli("validate", str(rb))
    assert f"{path}:7:10: step 'first': unknown param params.verison" in text.stdout
    github = runbook_cli("validate", str(rb), "--format", "github")
    assert "::error file=" in github.stdout and ",line=7,col=10::" in github.stdout


def test_include_cycle_is_refused(runbook_cli, write_runbook):
    write_runbook(
        "version: 1\nname: a\nsteps:\n  - id: b\n    include: b.yaml\n", name="a.yaml"
    )
    rb = write_runbook(
        "version: 1\nname: b\nsteps:\n  - id: a\n    include: a.yaml\n", name="b.yaml"
    )
    result = runbook_cli("validate", str(rb))
    assert result.code == 2
    assert "include cycle: b.yaml -> a.yaml -> b.yaml" in result.stdout


def test_broken_runbook_never_runs_and_never_tracebacks(
    runbook_cli, write_runbook, tmp_path
):
    rb = write_runbook(
        "version: 1\nname: x\nsteps:\n  - id: a\n    run: touch ran\n    retires: 3\n"
    )
    result = runbook_cli("run", str(rb))
    assert result.code == 2
    assert "unknown key 'retires' (did you mean 'retries'?)" in result.stderr
    assert ":6:5:" in result.stderr
    assert not (tmp_path / "ran").exists()
    assert "Traceback" not in result.output


def test_validate_directory_and_valid_files_exit_0(runbook_cli):
    from tests.conftest import ROOT

    result = runbook_cli("validate", str(ROOT / "examples" / "hello.yaml"))
    assert result.code == 0, result.output
    assert "1 file(s) checked: 0 error(s)" in result.stderr


def test_plan_renders_without_running(runbook_cli, write_runbook, tmp_path, state_dir):
    rb = write_runbook("""
        version: 1
        name: planned
        params:
          version: {type: string, default: '1.1.0'}
        steps:
          - id: probe
            safe: true
            run: echo 7
          - id: unpack
            run: touch {{ params.version }}-unpacked
            undo: rm -f {{ params.version }}-unpacked
          - id: later
            run: echo {{ steps.probe.stdout | trim }} {{ steps.unpack.rc }}
    """)
    result = runbook_cli("plan", str(rb))
    assert result.code == 0, result.output
    assert "touch 1.1.0-unpacked" in result.stdout
    assert "undo: rm -f 1.1.0-unpacked" in result.stdout
    # nothing runs, not even the safe probe: its output is unknown
    assert "echo <steps.probe.stdout> <steps.unpack.rc>" in result.stdout
    assert "safe: not run (--probe runs it)" in result.stdout
    assert not list(tmp_path.glob("*-unpacked"))
    assert not (state_dir / "audit.jsonl").exists()
    md = runbook_cli("plan", str(rb), "--format", "markdown")
    assert "| steps | `unpack` |" in md.stdout


def test_plan_shows_what_an_included_runbooks_steps_will_give(
    runbook_cli, write_runbook
):
    write_runbook(
        """
        version: 1
        name: child
        steps:
          - id: artifact
            argv: [echo, '{"sha": "abc"}']
    """,
        name="child.yaml",
    )
    rb = write_runbook("""
        version: 1
        name: parent
        steps:
          - id: preflight
            include: child.yaml
          - id: use
            run: echo {{ steps.preflight.artifact.json.sha }} {{ steps.preflight.artifact.stdout.split() }}
          - id: each
            run: "{% for line in steps.use.stdout.splitlines() %}echo {{ line }};{% endfor %}"
    """)
    result = runbook_cli("plan", str(rb))
    assert result.code == 0, result.output
    assert "cannot render" not in result.stdout
    assert (
        "echo <steps.preflight.artifact.json.sha> <steps.preflight.artifact.stdout.split()>"
        in result.stdout
    )
    assert "echo <steps.use.stdout.splitlines()[*]>;" in result.stdout


def test_plan_reads_no_secret_and_runs_no_secret_command(
    runbook_cli, write_runbook, tmp_path, monkeypatch
):
    """A pull request's runbook in CI: its secret commands are the PR author's."""
    monkeypatch.delenv("PLAN_PW", raising=False)
    rb = write_runbook("""
        version: 1
        name: planned
        secrets:
          tok: {command: [sh, -c, "touch secret-command-ran; echo abcdefgh"]}
          pw: {env: PLAN_PW}
        steps:
          - id: use
            run: deploy --token {{ secrets.tok }} --password {{ secrets.pw }}
    """)
    result = runbook_cli("plan", str(rb))
    assert result.code == 0, result.output  # PLAN_PW need not be set
    assert "deploy --token *** --password ***" in result.stdout
    assert not (tmp_path / "secret-command-ran").exists()
    leak = write_runbook(
        "version: 1\nname: leak\nsecrets:\n  pw: {env: PLAN_PW}\nsteps:\n"
        "  - id: a\n    run: echo {{ env.PLAN_PW }}\n",
        name="leak.yaml",
    )
    printed = runbook_cli("plan", str(leak), env={"PLAN_PW": "hunter2-supersecret"})
    assert printed.code == 0 and "echo ***" in printed.stdout, printed.output
    assert "hunter2" not in printed.output  # a secret's variable is still masked
    probed = runbook_cli("plan", str(rb), "--probe")
    assert (
        probed.code == 2 and "environment variable PLAN_PW is not set" in probed.stderr
    )
    assert (tmp_path / "secret-command-ran").exists()  # --probe reads the secrets


def test_plan_probe_runs_only_safe_steps_and_audits_them(
    runbook_cli, write_runbook, tmp_path, state_dir
):
    rb = write_runbook("""
        version: 1
        name: planned
        steps:
          - id: probe
            safe: true
            run: echo 7 && touch probed
          - id: unpack
            run: touch unpacked
          - id: later
            run: echo {{ steps.probe.stdout | trim }}
    """)
    result = runbook_cli("plan", str(rb), "--probe")
    assert result.code == 0, result.output
    assert "echo 7" in result.stdout.split("later on local")[1]
    assert "safe: probed, ok" in result.stdout
    assert (tmp_path / "probed").exists() and not (tmp_path / "unpacked").exists()
    records = audit_records(state_dir)
    assert records[0]["event"] == "run.started" and records[0]["mode"] == "plan"
    probes = [r for r in records if r["event"] == "step.finished"]
    assert [(r["step"], r["status"]) for r in probes] == [("probe", "ok")]
    assert records[-1]["event"] == "run.finished"
    listed = runbook_cli("audit", "list")
    assert " plan " in listed.stdout


def test_schema_command_prints_the_packaged_schema(runbook_cli):
    result = runbook_cli("schema")
    assert result.code == 0
    schema = json.loads(result.stdout)
    assert schema["$schema"].endswith("2020-12/schema")


def test_params_file_problems_point_at_their_line(runbook_cli, write_runbook, tmp_path):
    rb = write_runbook(PARAMS_RB)
    params = tmp_path / "p.yaml"
    params.write_text(
        "version: '1.2.3'\nworkers: many\nverison: x\nenv: 1.10\nratio: 2.5e3\n"
    )
    result = runbook_cli(
        "run", str(rb), "--params-file", str(params), "-e", "dry=maybe"
    )
    assert result.code == 2
    assert (
        f"{params}:2:10: param 'workers': must be of type integer, got 'many'"
        in result.stderr
    )
    assert (
        f"{params}:4:6: param 'env': must be text, but YAML reads what is written"
        " there as the number 1.1: put it in quotes" in result.stderr
    )
    assert (  # YAML 1.1 wants a sign in the exponent
        f"{params}:5:8: param 'ratio': must be of type number, got the text '2.5e3':"
        " write it unquoted as 2500.0" in result.stderr
    )
    lines = [
        line for line in result.stderr.splitlines() if line.startswith(str(params))
    ]
    assert [line.split(":")[1] for line in lines] == ["2", "3", "4", "5"]  # in order
    for written, read in (("010", 8), ("0x10", 16), ("1_000", 1000)):
        params.write_text(f"version: '1.2.3'\nworkers: {written}\n")
        octal = runbook_cli("run", str(rb), "--params-file", str(params))
        assert octal.code == 2, octal.output
        assert (
            f"param 'workers': {written} is not written as a plain integer: YAML reads"
            f" it as {read}" in octal.stderr
        )
    assert (
        f"{params}:3:1: unknown param 'verison' (did you mean 'version'?)"
        in result.stderr
    )
    assert "error: param 'dry': must be a boolean" in result.stderr
    assert not list(tmp_path.glob("ran-*"))


def test_the_readmes_yaml_examples_are_valid(runbook_cli, tmp_path):
    import re

    from tests.conftest import ROOT

    blocks = re.findall(r"```yaml\n(.*?)```", (ROOT / "README.md").read_text(), re.S)
    assert len(blocks) >= 2  # the annotated runbook and the inventory
    paths = []
    for index, block in enumerate(blocks):
        path = tmp_path / f"example{index}.yaml"
        path.write_text(block)
        paths.append(str(path))
    result = runbook_cli("validate", *paths)
    assert result.code == 0, result.output
    assert f"{len(blocks)} file(s) checked: 0 error(s)" in result.stderr


def test_the_github_actions_example_never_probes_a_pull_requests_runbooks():
    from tests.conftest import ROOT

    workflow = (ROOT / "examples" / "ci" / "github-actions.yml").read_text()
    assert "runbook plan" in workflow and "--probe" not in workflow


def test_validate_with_a_broken_or_missing_inventory_fails(runbook_cli, tmp_path):
    from tests.conftest import ROOT

    hello = str(ROOT / "examples" / "hello.yaml")
    missing = runbook_cli("validate", "-i", str(tmp_path / "nosuch.yaml"), hello)
    assert missing.code == 2 and "nosuch.yaml:1:1: cannot read file" in missing.output
    bad = tmp_path / "fleet.yaml"
    bad.write_text('version: 1\nhosts:\n  a: {address: "-oProxyCommand=x"}\n')
    broken = runbook_cli("validate", "-i", str(bad), "--strict", hello)
    assert broken.code == 2 and "fleet.yaml:3:" in broken.output


def test_a_param_default_must_pass_its_own_checks(runbook_cli, write_runbook):
    rb = write_runbook(
        "version: 1\nname: pd\nparams:\n"
        "  a: {type: string, default: zzz, pattern: '^\\d+$'}\n"
        "  b: {type: string, enum: [x, y], default: z}\n"
        "steps:\n  - id: s\n    run: 'true'\n"
    )
    result = runbook_cli("validate", str(rb))
    assert result.code == 2, result.output
    assert f"{rb}:4:30: param 'a': its default 'zzz' does not match" in result.stdout
    assert f"{rb}:5:44: param 'b': its default must be one of 'x', 'y'" in result.stdout
