"""Inventories: loading with path:line:col diagnostics, value checks that keep
options and shell out of connections, patterns, ssh_config merge."""

from __future__ import annotations

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
  all_app: [web, db1]
  loop_a: [loop_b, db1]
  loop_b: [loop_a, cycle-host]
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
    assert names("all_app") == ["web1", "web2", "db1"]
    assert names("all_app", limit="web2,db1") == ["web2", "db1"]
    assert names("loop_a") == ["cycle-host", "db1"]  # a cycle of groups is safe
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
