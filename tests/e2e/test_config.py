"""Defaults from runbook.toml and ~/.config/runbook/config.toml; flags and RUNBOOK_*
variables win over them; -e @file.yaml reads params."""

from __future__ import annotations

import json
import textwrap

import pytest

pytestmark = pytest.mark.e2e

RUNBOOK = """
    version: 1
    name: where
    params:
      who: {type: string, default: nobody}
      count: {type: integer, default: 0}
    hosts: all
    steps:
      - id: say
        run: echo "{{ host.name }} {{ params.who }} {{ params.count }}"
"""


def _inventory(path, *names):
    hosts = "".join(f"  {name}: {{connection: local}}\n" for name in names)
    path.write_text(f"version: 1\nhosts:\n{hosts}")


@pytest.fixture
def repo(tmp_path, cli_env):
    root = tmp_path / "repo"
    (root / ".git").mkdir(parents=True)
    (root / "deploy" / "runbooks").mkdir(parents=True)
    (root / "deploy" / "runbooks" / "rb.yaml").write_text(textwrap.dedent(RUNBOOK))
    _inventory(root / "deploy" / "fleet.yaml", "alpha", "beta")
    cli_env["XDG_CONFIG_HOME"] = str(tmp_path / "xdg")
    return root


def test_the_repository_file_gives_defaults_relative_to_itself(runbook_cli, repo):
    (repo / "runbook.toml").write_text(
        'inventory = "deploy/fleet.yaml"\nforks = 1\nreports = ["json:out/r.json"]\n'
    )
    result = runbook_cli("run", "runbooks/rb.yaml", cwd=repo / "deploy")
    assert result.code == 0, result.output
    assert "alpha | say | alpha nobody 0" in result.stderr
    assert "beta | say | beta nobody 0" in result.stderr
    report = json.loads((repo / "out" / "r.json").read_text())
    assert [h["name"] for h in report["hosts"]] == ["alpha", "beta"]


def test_flags_beat_variables_beat_files(runbook_cli, repo, tmp_path):
    (repo / "runbook.toml").write_text('inventory = "deploy/fleet.yaml"\n')
    _inventory(tmp_path / "env.yaml", "gamma")
    _inventory(tmp_path / "flag.yaml", "delta")
    from_env = runbook_cli(
        "run",
        "deploy/runbooks/rb.yaml",
        env={"RUNBOOK_INVENTORY": str(tmp_path / "env.yaml")},
        cwd=repo,
    )
    assert "gamma | say" in from_env.stderr and "alpha" not in from_env.stderr
    from_flag = runbook_cli(
        "run",
        "deploy/runbooks/rb.yaml",
        "-i",
        str(tmp_path / "flag.yaml"),
        env={"RUNBOOK_INVENTORY": str(tmp_path / "env.yaml")},
        cwd=repo,
    )
    assert "delta | say" in from_flag.stderr and "gamma" not in from_flag.stderr


def test_the_user_file_applies_when_the_repository_has_none(
    runbook_cli, repo, tmp_path
):
    user = tmp_path / "xdg" / "runbook"
    user.mkdir(parents=True)
    (user / "config.toml").write_text(f'inventory = "{repo}/deploy/fleet.yaml"\n')
    result = runbook_cli("run", "deploy/runbooks/rb.yaml", cwd=repo)
    assert result.code == 0 and "beta | say" in result.stderr, result.output


@pytest.mark.parametrize(
    ("text", "said"),
    [
        (
            "inventroy = 'x.yaml'\n",
            "toml:1:1: unknown key 'inventroy' (did you mean 'inventory'?)",
        ),
        (
            "color = 'auto'\nforks = 'many'\n",
            "toml:2:1: 'forks' must be a whole number, not a string",
        ),
        ("forks = 3\ncolor = [\n", "runbook.toml:2:10: Invalid value at the end"),
        ('forks = 3\ncolor = "auto\n', "runbook.toml:2:14: Illegal character"),
    ],
)
def test_a_broken_config_file_is_exit_2_naming_it(runbook_cli, repo, text, said):
    (repo / "runbook.toml").write_text(text)
    result = runbook_cli("run", "deploy/runbooks/rb.yaml", cwd=repo)
    assert result.code == 2, result.output
    assert f"{repo / 'runbook.toml'}" in result.stderr and said in result.stderr
    assert "Traceback" not in result.output


def test_params_from_a_file_with_at_and_later_values_win(runbook_cli, repo, tmp_path):
    (tmp_path / "params.yaml").write_text("who: ops\ncount: 3\n")
    result = runbook_cli(
        "run",
        str(repo / "deploy" / "runbooks" / "rb.yaml"),
        "-e",
        f"@{tmp_path / 'params.yaml'}",
        "-e",
        "count=4",
    )
    assert result.code == 0, result.output
    assert "local | say | local ops 4" in result.stderr


def test_shell_completion_script_and_completions(runbook_cli):
    script = runbook_cli(env={"_RUNBOOK_COMPLETE": "bash_source"})
    assert script.code == 0 and "_runbook_completion" in script.stdout
    words = runbook_cli(
        env={
            "_RUNBOOK_COMPLETE": "bash_complete",
            "COMP_WORDS": "runbook ro",
            "COMP_CWORD": "1",
        }
    )
    assert "plain,rollback" in words.stdout.split()
