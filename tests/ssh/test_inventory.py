"""Inventories: loading with path:line:col diagnostics, value checks that keep
options and shell out of connections, patterns, ssh_config merge."""

from __future__ import annotations

import json
import textwrap

import pytest

from runbook_engine.errors import InventoryError
from runbook_engine.spec.inventory import Inventory, is_valid_address, load_inventory

pytestmark = pytest.mark.ssh

_FLEET = """\
version: 1
defaults: {user: deploy, port: 22, known_hosts: known_hosts, keepalive: 2s}
hosts:
  web1: {address: 10.0.0.11, vars: {role: primary}}
  web2: {address: 10.0.0.12, port: 2222}
  db1:  {address: db.internal, user: admin, connect_timeout: 250ms}
  ctl:  {connection: local}
  cycle-host:
groups:
  web: [web1, web2]
  all_app: [web, db1, cycle-host]
vars: {app_dir: /srv/app, role: none}
"""


def _write(tmp_path, text: str, name: str = "inventory.yaml"):
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


@pytest.fixture
def fleet(tmp_path) -> Inventory:
    (tmp_path / "ssh_config").write_text("")
    return load_inventory(_write(tmp_path, _FLEET))


def test_hosts_get_defaults_overrides_and_merged_vars(fleet, tmp_path):
    web1, web2, db1 = (fleet.hosts[n] for n in ("web1", "web2", "db1"))
    assert (web1.user, web1.port, web2.port, db1.user) == ("deploy", 22, 2222, "admin")
    assert db1.connect_timeout == 0.25 and web1.connect_timeout == 10.0
    assert web1.keepalive == 2.0
    assert web1.known_hosts == str(tmp_path / "known_hosts")  # relative to the file
    assert dict(web1.vars) == {"app_dir": "/srv/app", "role": "primary"}
    assert fleet.hosts["ctl"].is_local
    assert fleet.hosts["cycle-host"].address == "cycle-host"
    assert web1.lock_dir == "~/.local/state/runbook/locks"


def test_patterns_resolve_in_order_without_duplicates(fleet):
    def names(pattern, limit=None):
        return [h.name for h in fleet.resolve(pattern, limit)]

    assert names("web*") == ["web1", "web2"]
    assert names(["db1", "web", "web1"]) == ["db1", "web1", "web2"]
    assert names("all_app") == ["web1", "web2", "db1", "cycle-host"]
    assert names("all_app", limit="web2,db1") == ["web2", "db1"]
    assert names("local") == ["local"]
    assert fleet.resolve("local")[0].is_local


def test_a_pattern_matching_nothing_is_an_error_naming_it(fleet):
    with pytest.raises(InventoryError, match=r"'wbe1'.*did you mean 'web1'"):
        fleet.resolve(["web2", "wbe1"])
    with pytest.raises(InventoryError, match="--limit"):
        fleet.resolve("web", limit="db1")


def test_without_inventory_only_local_exists():
    inventory = Inventory.local()
    assert [h.name for h in inventory.resolve("local")] == ["local"]
    with pytest.raises(InventoryError, match="use -i"):
        inventory.resolve("web1")


def test_hostile_values_are_refused_with_positions(tmp_path):
    path = _write(
        tmp_path,
        """\
        version: 1
        hosts:
          a: {address: "-oProxyCommand=touch /tmp/pwned"}
          b: {address: "host;reboot", user: deploy}
          c: {address: ok.example, user: "root -oX"}
          d: {address: ok.example, port: 70000}
        """,
    )
    with pytest.raises(InventoryError) as caught:
        load_inventory(path)
    lines = sorted(d.line for d in caught.value.diagnostics)
    assert lines == [3, 4, 5, 6]
    assert any("-oProxyCommand" in str(d) for d in caught.value.diagnostics)


def test_semantic_problems_are_all_reported_with_positions(tmp_path):
    path = _write(
        tmp_path,
        """\
        version: 1
        hosts:
          a: {address: "bad..name"}
          web1: {}
          local: {connection: ssh}
        groups:
          g: [a, wbe1]
          web1: [a]
        """,
    )
    with pytest.raises(InventoryError) as caught:
        load_inventory(path)
    text = [str(d) for d in caught.value.diagnostics]
    assert any(t.startswith(f"{path}:3:") and "bad..name" in t for t in text)
    assert any(t.startswith(f"{path}:5:") and "reserved" in t for t in text)
    assert any(t.startswith(f"{path}:7:") and "did you mean 'web1'" in t for t in text)
    assert any(t.startswith(f"{path}:8:") and "name of a host" in t for t in text)


def test_addresses():
    for good in ("10.0.0.1", "::1", "fe80::1", "db.internal", "web-1.example.com."):
        assert is_valid_address(good), good
    for bad in ("-oProxyCommand=x", "a b", "a;b", "$(id)", "", "[::1]", "a..b"):
        assert not is_valid_address(bad), bad


def test_ssh_config_fills_what_the_inventory_leaves_out(tmp_path):
    config = _write(
        tmp_path,
        """\
        Host web1
            HostName 192.0.2.10
            User fromconfig
            Port 2200
            IdentityFile ~/.ssh/from_config
        Host web2
            HostName 192.0.2.11
            Port 2201
        """,
        "ssh_config",
    )
    path = _write(
        tmp_path,
        f"""\
        version: 1
        defaults: {{ssh_config: {config}}}
        hosts:
          web1: {{}}
          web2: {{port: 22, user: inv}}
        """,
    )
    inventory = load_inventory(path)
    web1, web2 = inventory.hosts["web1"], inventory.hosts["web2"]
    assert (web1.address, web1.user, web1.port) == ("192.0.2.10", "fromconfig", 2200)
    assert web1.identity_file is not None and web1.identity_file.endswith("from_config")
    assert (web2.address, web2.user, web2.port) == ("192.0.2.11", "inv", 22)


def test_missing_explicit_ssh_config_is_an_error(tmp_path):
    path = _write(
        tmp_path,
        """\
        version: 1
        defaults: {ssh_config: does-not-exist}
        hosts: {a: {}}
        """,
    )
    with pytest.raises(InventoryError) as caught:
        load_inventory(path)
    assert "does not exist" in str(caught.value.diagnostics[0])


def _problems(tmp_path, text: str, name: str = "inventory.yaml") -> list[str]:
    path = _write(tmp_path, text, name)
    with pytest.raises(InventoryError) as caught:
        load_inventory(path)
    return [f"{d.line}:{d.col}: {d.message}" for d in caught.value.diagnostics]


def test_every_host_and_group_problem_is_reported_in_one_pass(tmp_path):
    found = _problems(
        tmp_path,
        """\
        version: 1
        defaults: {user: "deploy me", known_hosts: -oUserKnownHostsFile=/x}
        hosts:
          a: {address: "10.0.0.1;reboot", colour: red}
          b: {address: ok.example, port: "22"}
          c: {identity_file: "~/keys/id;rm -rf ~"}
          d: {proxy_jump: "$(touch /tmp/pwned)"}
          e: {lock_dir: "/tmp/`id`"}
          f: {user: "-oProxyCommand=x"}
          g: {known_hosts: "~/kh\\nHost *"}
        groups:
          web: [a, wbe1]
          x: [y]
          y: [x]
        """,
    )
    allowed_path = (
        "use a path that does not start with '-' and has no whitespace, quotes,"
        " ';', '$(', backticks or control characters"
    )
    user = (
        "a POSIX user name (letters, digits, '_', '.', '-', not starting with '-'"
        " or a digit)"
    )
    assert found == [
        f"2:18: 'defaults.user' must be {user}, got 'deploy me'",
        "2:44: defaults: known_hosts '-oUserKnownHostsFile=/x' has a leading '-';"
        f" {allowed_path}",
        "4:16: host 'a': 'address' must be a host name (letters, digits, '-', '_',"
        " '.') or an IP address, got '10.0.0.1;reboot'",
        "4:35: host 'a': unknown key 'colour'",
        "5:34: host 'b': 'port' must be an integer, not the string '22'",
        f"6:22: host 'c': identity_file '~/keys/id;rm -rf ~' has ';'; {allowed_path}",
        "7:19: host 'd': proxy_jump '$(touch /tmp/pwned)' has '$('; use inventory"
        " host names or [user@]host[:port], separated by commas",
        "8:17: host 'e': lock_dir '/tmp/`id`' has a backtick; " + allowed_path,
        f"9:13: host 'f': 'user' must be {user}, got '-oProxyCommand=x'",
        "10:20: host 'g': known_hosts '~/kh\\nHost *' has a newline or control"
        f" character; {allowed_path}",
        "12:12: group 'web': unknown host or group 'wbe1'",
        "14:7: group 'y': groups contain each other in a loop (x -> y -> x); a group"
        " cannot contain itself",
    ]


def test_a_group_cycle_is_a_validate_error(runbook_cli, tmp_path):
    path = _write(
        tmp_path,
        """\
        # yaml-language-server: $schema=../schemas/inventory.schema.json
        version: 1
        hosts: {h: {}}
        groups:
          a: [b, h]
          b: [a]
        """,
    )
    result = runbook_cli("validate", str(path), "--format", "json")
    assert result.code == 2
    (row,) = json.loads(result.stdout)
    assert (row["line"], row["column"]) == (6, 7)
    assert "loop (a -> b -> a)" in row["message"]


def test_the_inventory_problems_come_out_of_validate_as_text_and_json(
    runbook_cli, tmp_path
):
    path = _write(
        tmp_path,
        """\
        version: 1
        hosts:
          a: {address: "-oProxyCommand=x"}
          b: {user: "x y", port: 0}
        """,
    )
    text = runbook_cli("validate", str(path))
    assert text.code == 2
    lines = text.stdout.splitlines()
    assert [line.split(": ", 1)[0] for line in lines] == [
        f"{path}:3:16",
        f"{path}:4:13",
        f"{path}:4:26",
    ]
    rows = json.loads(runbook_cli("validate", str(path), "--format", "json").stdout)
    assert [(r["line"], r["column"]) for r in rows] == [(3, 16), (4, 13), (4, 26)]


def test_values_from_ssh_config_follow_the_same_rules(tmp_path):
    config = _write(
        tmp_path,
        """\
        Host a
            HostName 10.0.0.1;reboot
        Host b
            User -oProxyCommand=x
        Host c
            IdentityFile "/keys/my key"
        Host d
            ProxyJump $(id)
        """,
        "ssh_config",
    )
    found = _problems(
        tmp_path,
        f"""\
        version: 1
        defaults: {{ssh_config: {config}}}
        hosts: {{a: {{}}, b: {{}}, c: {{}}, d: {{}}}}
        """,
    )
    assert [f.split(": ", 2)[1:] for f in found] == [
        ["host 'a'", "ssh_config HostName '10.0.0.1;reboot' has ';'; use a host name"
         " (letters, digits, '-', '_', '.') or an IP address"],
        ["host 'b'", "ssh_config User '-oProxyCommand=x' has a leading '-'; use a"
         " POSIX user name (letters, digits, '_', '.', '-', not starting with '-' or"
         " a digit)"],
        ["host 'c'", "ssh_config IdentityFile '/keys/my key' has whitespace; use a"
         " path that does not start with '-' and has no whitespace, quotes, ';',"
         " '$(', backticks or control characters"],
        ["host 'd'", "ssh_config ProxyJump '$(id)' has '$('; use inventory host"
         " names or [user@]host[:port], separated by commas"],
    ]  # fmt: skip
    assert [f.split(":")[0] for f in found] == ["3", "3", "3", "3"]


def test_proxy_jump_chains_are_followed_recursively(tmp_path):
    config = _write(
        tmp_path,
        """\
        Host bastion.example
            ProxyJump gate@gate.example:2200
        """,
        "ssh_config",
    )
    inventory = load_inventory(
        _write(
            tmp_path,
            f"""\
            version: 1
            defaults: {{ssh_config: {config}, user: deploy}}
            hosts:
              app: {{address: 10.0.0.5, proxy_jump: mid}}
              mid: {{address: 10.0.0.4, proxy_jump: edge}}
              edge: {{address: 10.0.0.3, proxy_jump: bastion.example}}
              multi: {{address: 10.0.0.6, proxy_jump: "edge,mid"}}
            """,
        )
    )

    def route(name: str) -> list[str]:
        hops, host = [], inventory.hosts[name].jump
        while host is not None:
            hops.append(f"{host.user}@{host.address}:{host.port}")
            host = host.jump
        return hops

    assert route("app") == [
        "deploy@10.0.0.4:22",
        "deploy@10.0.0.3:22",
        "deploy@bastion.example:22",
        "gate@gate.example:2200",
    ]
    # several hops: the first keeps its own chain, the next is reached through it
    assert route("multi") == [
        "deploy@10.0.0.4:22",
        "deploy@10.0.0.3:22",
        "deploy@bastion.example:22",
        "gate@gate.example:2200",
    ]


def test_a_proxy_jump_loop_is_refused_naming_the_chain(tmp_path):
    config = _write(
        tmp_path,
        """\
        Host one.example
            ProxyJump two.example
        Host two.example
            ProxyJump one.example
        """,
        "ssh_config",
    )
    found = _problems(
        tmp_path,
        f"""\
        version: 1
        defaults: {{ssh_config: {config}}}
        hosts:
          a: {{address: 10.0.0.1, proxy_jump: b}}
          b: {{address: 10.0.0.2, proxy_jump: a}}
          c: {{address: 10.0.0.3, proxy_jump: one.example}}
          d: {{address: 10.0.0.4, proxy_jump: d}}
        """,
    )
    assert found == [
        "5:38: host 'b': proxy_jump goes round in a loop (a -> b -> a); a jump host"
        " cannot be reached through itself",
        "6:38: host 'c': proxy_jump goes round in a loop (c -> one.example ->"
        " two.example -> one.example); a jump host cannot be reached through itself",
        "7:38: host 'd': proxy_jump goes round in a loop (d -> d); a jump host cannot"
        " be reached through itself",
    ]


def test_yaml_11_readings_in_inventory_vars_say_to_quote(tmp_path):
    found = _problems(
        tmp_path,
        """\
        version: 1
        hosts:
          a: {vars: {python: 3.10, debug: off, port: 8080}}
        vars: {mode: 0644, yes: 1}
        """,
    )
    assert found == [
        "3:22: host 'a': 'vars.python' is ambiguous: YAML read the unquoted 3.10 as"
        " the number 3.1; write '3.10' in quotes for text, or 3.1 for a number",
        "3:35: host 'a': 'vars.debug' is ambiguous: YAML read the unquoted off as the"
        " boolean false; write 'off' in quotes for text, or false for a boolean",
        "4:14: 'vars.mode' is ambiguous: YAML read the unquoted 0644 as the number"
        " 420; write '0644' in quotes for text, or 420 for a number",
        "4:20: keys must be strings: YAML read the unquoted yes as the boolean true;"
        " write 'yes' in quotes",
    ]


def test_reading_an_inventory_never_runs_match_exec_from_ssh_config(
    tmp_path, monkeypatch
):
    """paramiko runs `Match exec "cmd"` while looking a host up: a repository's
    ssh_config would run code in CI from `validate` or `plan`."""
    ran = tmp_path / "ran"
    block = f'Match exec "touch {ran}"\n    User evil\nHost web1\n    Port 2200\n'
    config = _write(tmp_path, block, "ssh_config")
    explicit = _write(
        tmp_path,
        f"version: 1\ndefaults: {{ssh_config: {config}}}\nhosts:\n  web1: {{}}\n",
    )
    with pytest.raises(InventoryError) as caught:
        load_inventory(explicit)
    assert f"{config}:1: `Match exec` runs a command" in str(
        caught.value.diagnostics[0]
    )
    # the operator's own ~/.ssh/config: read, its Match exec blocks match nothing
    home = tmp_path / "home"
    (home / ".ssh").mkdir(parents=True)
    (home / ".ssh" / "config").write_text(block)
    monkeypatch.setenv("HOME", str(home))
    implicit = _write(tmp_path, "version: 1\nhosts:\n  web1: {}\n", "implicit.yaml")
    web1 = load_inventory(implicit).hosts["web1"]
    assert web1.port == 2200 and web1.user != "evil"
    assert not ran.exists()
