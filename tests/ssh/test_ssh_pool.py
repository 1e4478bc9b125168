"""TransportPool and open_transport against real sshd: parallel connect, failures
per host, ProxyJump through a second sshd configured by an ssh_config alias."""

from __future__ import annotations

import os
import textwrap
import threading
import time

import pytest

from runbook_engine.errors import ConnectError
from runbook_engine.spec.inventory import load_inventory
from runbook_engine.transports.base import ExecRequest
from runbook_engine.transports.local import LocalTransport
from runbook_engine.transports.pool import TransportPool, open_transport
from runbook_engine.transports.ssh import SSHTransport

pytestmark = pytest.mark.ssh


def test_local_hosts_get_the_local_transport(make_host, servers, trusted):
    local = make_host(servers[0], trusted, connection="local", name="ctl")
    transport = open_transport(local)
    assert isinstance(transport, LocalTransport) and transport.name == "ctl"
    assert isinstance(open_transport(make_host(servers[0], trusted)), SSHTransport)


def test_connect_all_connects_in_parallel_and_reports_failures_per_host(
    make_host, servers, server_factory, trusted, run
):
    down = server_factory("down")
    down.stop()
    hosts = [make_host(s, trusted, name=f"h{i}") for i, s in enumerate(servers)]
    hosts.append(make_host(down, trusted, name="down"))
    with TransportPool() as pool:
        failures = pool.connect_all(hosts, forks=4)
        assert list(failures) == ["down"]
        assert isinstance(failures["down"], ConnectError)
        for host in hosts[:3]:
            transport = pool.get(host)
            assert pool.get(host) is transport  # one transport per host
            assert run(transport, "echo ok")[1].text() == "ok\n"


def _keepalive_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "ssh-keepalive"]


def test_a_pool_watches_every_connection_with_one_keepalive_thread(
    make_host, servers, trusted, run
):
    hosts = [
        make_host(servers[i % 3], trusted, name=f"k{i}", keepalive=0.2)
        for i in range(12)
    ]
    before = threading.active_count()
    with TransportPool() as pool:
        assert pool.connect_all(hosts, forks=12) == {}
        assert len(_keepalive_threads()) == 1
        # paramiko's reader thread per connection, plus the one monitor
        assert threading.active_count() - before <= len(hosts) + 1
        # idle for five keepalive intervals: every probe answered, none lost,
        # and no thread started per probe
        time.sleep(1.0)
        assert threading.active_count() - before <= len(hosts) + 1
        assert all(pool.get(host).connection.is_open() for host in hosts)
        for host in hosts:
            assert run(pool.get(host), "echo ok")[1].text() == "ok\n"
    assert _keepalive_threads() == []


def test_ssh_config_alias_with_proxy_jump_through_a_second_sshd(
    tmp_path, server_factory, client_key, run
):
    target, bastion = server_factory("target"), server_factory("bastion")
    known = tmp_path / "known_hosts"
    known.write_text(f"{target.known_hosts_line()}\n{bastion.known_hosts_line()}\n")
    config = tmp_path / "ssh_config"
    config.write_text(
        textwrap.dedent(f"""\
            Host app-alias
                HostName 127.0.0.1
                Port {target.port}
                ProxyJump bastion-alias
            Host bastion-alias
                HostName 127.0.0.1
                Port {bastion.port}
            """)
    )
    user = "root" if os.geteuid() == 0 else os.environ.get("USER", "root")
    inventory_file = tmp_path / "inventory.yaml"
    inventory_file.write_text(
        textwrap.dedent(f"""\
            version: 1
            defaults:
              user: {user}
              identity_file: {client_key.path}
              known_hosts: {known}
              ssh_config: {config}
            hosts:
              app: {{address: app-alias}}
            """)
    )
    host = load_inventory(inventory_file).resolve("app")[0]
    assert (host.address, host.port, host.proxy_jump) == (
        "127.0.0.1",
        target.port,
        "bastion-alias",
    )
    assert host.jump is not None and host.jump.port == bastion.port
    with TransportPool() as pool:
        transport = pool.connect(host)
        _, out = run(transport, 'echo "$HOME"')
        assert out.text().strip() == str(target.home)
        assert transport.describe()["via"] == "bastion-alias"
    assert "Accepted publickey" in bastion.log()  # the jump host was logged into
    assert "Starting session" not in bastion.log()  # ...but ran nothing itself


def test_standalone_transport_opens_its_own_jump(tmp_path, server_factory, make_host):
    target, bastion = server_factory("target"), server_factory("bastion")
    known = tmp_path / "known_hosts"
    known.write_text(f"{target.known_hosts_line()}\n{bastion.known_hosts_line()}\n")
    jump = make_host(bastion, known, name="bastion")
    host = make_host(target, known, proxy_jump="bastion", jump=jump)
    transport = open_transport(host)
    try:
        result = transport.exec(
            ExecRequest(command="true"), _Discard(), threading.Event()
        )
        assert result.rc == 0
    finally:
        transport.close()
    assert "Accepted publickey" in bastion.log()


class _Discard:
    def write(self, stream: object, data: bytes) -> None:
        pass
