"""Runs over SSH to several real sshd hosts: fan-out, trust, batches, locks."""

from __future__ import annotations

import pytest

from tests.conftest import audit_records

pytestmark = [pytest.mark.e2e, pytest.mark.ssh]


def test_multi_step_runbook_on_three_hosts(
    runbook_cli, write_runbook, fleet, state_dir
):
    inventory = fleet.inventory()
    rb = write_runbook("""
        version: 1
        name: fanout
        hosts: web
        steps:
          - id: whoami
            run: echo "{{ host.name }} in $HOME"
          - id: write
            env: {GREETING: "it's $HOME; \\"quoted\\""}
            run: printf '%s' "$GREETING" > greeting.txt
          - id: read
            argv: [cat, greeting.txt]
          - id: check
            assert:
              - steps.read.stdout.startswith("it's $HOME; ")
              - steps.read.stdout.endswith('"quoted"')
    """)
    result = runbook_cli("run", str(rb), "-i", str(inventory), "--output", "json")
    assert result.code == 0, result.output
    summary = result.json()
    assert summary["hosts"] == {"web0": "changed", "web1": "changed", "web2": "changed"}
    assert len(summary["steps"]) == 12
    for index in range(3):
        assert (
            fleet.home(index) / "greeting.txt"
        ).read_text() == 'it\'s $HOME; "quoted"'
        assert (
            f"web{index} | whoami | web{index} in {fleet.home(index)}" in result.stderr
        )
    connected = [r for r in audit_records(state_dir) if r["event"] == "host.connected"]
    assert {r["host"] for r in connected} == {"web0", "web1", "web2"}
    assert all(r["facts"]["host_key"].startswith("SHA256:") for r in connected)


def test_unknown_host_key_is_refused_then_accepted_with_the_flag(
    runbook_cli, write_runbook, fleet, state_dir
):
    inventory = fleet.inventory("unknown.yaml", known=False)
    rb = write_runbook("""
        version: 1
        name: trust
        hosts: web0
        steps:
          - id: touch
            run: touch trusted-marker
    """)
    refused = runbook_cli("run", str(rb), "-i", str(inventory))
    assert refused.code == 4, refused.output  # refused before anything ran
    assert "--accept-new-host-keys" in refused.stderr and "SHA256:" in refused.stderr
    assert not (fleet.home(0) / "trusted-marker").exists()
    accepted = runbook_cli(
        "run", str(rb), "-i", str(inventory), "--accept-new-host-keys"
    )
    assert accepted.code == 0, accepted.output
    assert (fleet.home(0) / "trusted-marker").exists()
    notices = [
        r
        for r in audit_records(state_dir)
        if r["event"] == "notice" and r["kind"] == "hostkey.accepted"
    ]
    assert len(notices) == 1
    assert (
        fleet.servers[0].host_key_fingerprint
        in (fleet.directory / "empty_known_hosts").read_text()
        or str(fleet.servers[0].port)
        in (fleet.directory / "empty_known_hosts").read_text()
    )


def test_an_untrusted_host_in_a_later_batch_stops_the_run_before_any_batch(
    runbook_cli, write_runbook, fleet
):
    """Host keys are checked for every host before anything runs: web1's unknown
    key is a no-go, not a failure after web0's batch has changed it."""
    inventory = fleet.inventory("half.yaml")
    empty = fleet.directory / "empty_known_hosts"
    empty.write_text("")
    web1 = fleet.servers[1]
    text = inventory.read_text().replace(
        f"  {web1.name}: {{address: 127.0.0.1, port: {web1.port}}}",
        f"  {web1.name}: {{address: 127.0.0.1, port: {web1.port}, known_hosts: {empty}}}",
    )
    inventory.write_text(text)
    rb = write_runbook("""
        version: 1
        name: rolling
        hosts: web0,web1
        serial: 1
        steps:
          - id: touch
            run: touch rolled-marker
            undo: rm -f rolled-marker
    """)
    result = runbook_cli("run", str(rb), "-i", str(inventory))
    assert result.code == 4, result.output
    assert "is unknown" in result.stderr and web1.name in result.stderr
    assert "rolling back" not in result.stderr
    assert not (fleet.home(0) / "rolled-marker").exists()


def test_serial_batches_run_in_order_with_a_gate(
    runbook_cli, write_runbook, fleet, tmp_path
):
    inventory = fleet.inventory()
    log = tmp_path / "order.log"
    rb = write_runbook(f"""
        version: 1
        name: rolling
        hosts: web
        serial: [1, 2]
        batch_gate:
          - id: gate
            local: true
            run_once: true
            run: echo gate >> {log}
        steps:
          - id: one
            local: true
            run: echo {{{{ host.name }}}}-one >> {log}
          - id: two
            local: true
            run: echo {{{{ host.name }}}}-two >> {log}
    """)
    result = runbook_cli("run", str(rb), "-i", str(inventory))
    assert result.code == 0, result.output
    assert "batch plan: [1] web0  [2] web1, web2" in result.stderr
    lines = log.read_text().split()
    assert lines[:3] == ["web0-one", "web0-two", "gate"]
    assert sorted(lines[3:5]) == ["web1-one", "web2-one"] and sorted(lines[5:]) == [
        "web1-two",
        "web2-two",
    ]


def test_max_fail_percentage_lets_the_run_go_on_and_rolls_back_failed_hosts(
    runbook_cli, write_runbook, fleet
):
    inventory = fleet.inventory()
    rb = write_runbook("""
        version: 1
        name: tolerant
        hosts: web
        max_fail_percentage: 40
        steps:
          - id: mark
            run: touch tolerant-mark
            undo: rm -f tolerant-mark
          - id: flaky
            run: test {{ host.name }} != web1
          - id: after
            run: touch tolerant-after
    """)
    result = runbook_cli("run", str(rb), "-i", str(inventory), "--output", "json")
    assert result.code == 1, result.output
    summary = result.json()
    assert summary["status"] == "rolled_back"
    assert summary["hosts"]["web1"] == "failed"
    assert (fleet.home(0) / "tolerant-after").exists() and (
        fleet.home(2) / "tolerant-after"
    ).exists()
    assert not (
        fleet.home(1) / "tolerant-mark"
    ).exists()  # the failed host was rolled back
    assert (fleet.home(0) / "tolerant-mark").exists()


def test_remote_lock_held_by_another_run_is_exit_4_before_any_step(
    runbook_cli, write_runbook, fleet, tmp_path
):
    inventory = fleet.inventory()
    lock_dir = fleet.home(1) / ".local/state/runbook/locks/deploy.lock"
    lock_dir.mkdir(parents=True)
    (lock_dir / "owner.json").write_text(
        '{"run_id": "other-run", "operator": "alice@elsewhere", "host": "elsewhere", "pid": 1,'
        ' "since": "2026-11-25T10:00:00Z"}'
    )
    rb = write_runbook(f"""
        version: 1
        name: locked
        hosts: web
        lock: deploy
        steps:
          - id: touch
            local: true
            run: touch {tmp_path}/ran-{{{{ host.name }}}}
    """)
    try:
        result = runbook_cli("run", str(rb), "-i", str(inventory))
    finally:
        (lock_dir / "owner.json").unlink()
        lock_dir.rmdir()
    assert result.code == 4, result.output
    assert "alice@elsewhere" in result.stderr and "other-run" in result.stderr
    assert not list(tmp_path.glob("ran-*"))
    # our own locks were released on the other hosts and the controller
    assert not (fleet.home(0) / ".local/state/runbook/locks/deploy.lock").exists()
    again = runbook_cli("run", str(rb), "-i", str(inventory))
    assert again.code == 0, again.output


def test_failure_rolls_back_every_changed_host_in_reverse_order(
    runbook_cli, write_runbook, fleet
):
    inventory = fleet.inventory()
    rb = write_runbook("""
        version: 1
        name: fleet_saga
        hosts: web
        steps:
          - id: one
            run: echo do-one >> saga.log
            undo: echo undo-one >> saga.log
          - id: two
            run: echo do-two >> saga.log
            undo: echo undo-two >> saga.log
          - id: three
            run: echo do-three >> saga.log; test {{ host.name }} != web1
            undo: echo undo-three >> saga.log
          - id: four
            run: echo do-four >> saga.log
    """)
    for index in range(3):
        (fleet.home(index) / "saga.log").unlink(missing_ok=True)
    result = runbook_cli("run", str(rb), "-i", str(inventory), "--output", "json")
    assert result.code == 1, result.output
    assert result.json()["status"] == "rolled_back"
    for index in range(3):
        log = (fleet.home(index) / "saga.log").read_text().split()
        if index == 1:  # the failed host: its failed step has no undo_on_failure
            assert log == ["do-one", "do-two", "do-three", "undo-two", "undo-one"]
        else:
            assert log == [
                "do-one",
                "do-two",
                "do-three",
                "undo-three",
                "undo-two",
                "undo-one",
            ]
    scoped = runbook_cli(
        "run", str(rb), "-i", str(inventory), "--rollback-scope", "failed"
    )
    assert scoped.code == 1
    assert (fleet.home(0) / "saga.log").read_text().split()[-1] == "do-three"


def test_sshd_dying_mid_step_makes_its_outcome_unknown(
    runbook_cli, write_runbook, fleet, tmp_path
):
    import threading
    import time

    from tests.support.sshd import SSHServer

    doomed = SSHServer(
        tmp_path / "doomed", [fleet.key.public_line], name="doomed"
    ).start()
    try:
        known = tmp_path / "known_hosts"
        known.write_text(doomed.known_hosts_line() + "\n")
        inventory = tmp_path / "inventory.yaml"
        inventory.write_text(
            "# yaml-language-server: $schema=../../schemas/inventory.schema.json\nversion: 1\n"
            f"defaults: {{user: root, identity_file: {fleet.key.path}, known_hosts: {known}}}\n"
            f"hosts:\n  doomed: {{address: 127.0.0.1, port: {doomed.port}}}\n"
        )
        rb = write_runbook("""
            version: 1
            name: doomed
            hosts: doomed
            steps:
              - id: long
                run: echo started; sleep 20
        """)
        threading.Timer(1.5, doomed.kill).start()
        started = time.monotonic()
        result = runbook_cli("run", str(rb), "-i", str(inventory), "--output", "json")
        assert time.monotonic() - started < 15  # not the step's own 20 s
        summary = result.json()
        assert [s["status"] for s in summary["steps"]] == ["unknown"]
        assert result.code == 1 and summary["status"] == "rolled_back"
        assert "outcome unknown" in result.stderr
    finally:
        doomed.stop()


def test_a_host_that_is_down_fails_its_step_with_a_one_line_cause(
    runbook_cli, write_runbook, fleet, tmp_path
):
    import socket

    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        closed = probe.getsockname()[1]
    up = fleet.servers[0]
    path = tmp_path / "down.yaml"
    path.write_text(
        "# yaml-language-server: $schema=../../schemas/inventory.schema.json\nversion: 1\n"
        f"defaults: {{user: root, identity_file: {fleet.key.path}, known_hosts: {fleet.known_hosts}}}\n"
        f"hosts:\n  web0: {{address: 127.0.0.1, port: {up.port}}}\n"
        f"  down: {{address: 127.0.0.1, port: {closed}}}\n"
    )
    rb = write_runbook("""
        version: 1
        name: partial
        hosts: [web0, down]
        max_fail_percentage: 50
        steps:
          - id: touch
            run: touch partial-marker
            retries: {attempts: 2, delay: 100ms}
    """)
    result = runbook_cli("run", str(rb), "-i", str(path), "--output", "json")
    summary = result.json()
    assert summary["hosts"]["down"] == "failed" and summary["hosts"]["web0"] != "failed"
    assert "refused" in result.stderr.lower()
    assert "Traceback" not in result.stderr
    down = next(s for s in summary["steps"] if s["host"] == "down")
    assert down["attempts"] == 2  # a refused connection is a connect failure: retried
    assert (fleet.home(0) / "partial-marker").exists()


def test_copy_and_template_over_ssh_report_changed_only_when_different(
    runbook_cli, write_runbook, fleet, tmp_path
):
    inventory = fleet.inventory()
    (tmp_path / "app.conf.j2").write_text(
        "host={{ host.name }} port={{ params.port }}\n"
    )
    rb = write_runbook("""
        version: 1
        name: files_over_ssh
        hosts: web
        params:
          port: {type: integer, default: 8080}
        steps:
          - id: conf
            template: {src: app.conf.j2, dest: app.conf, mode: "0600"}
    """)
    first = runbook_cli("run", str(rb), "-i", str(inventory), "--output", "json")
    assert first.code == 0, first.output
    assert {s["status"] for s in first.json()["steps"]} == {"changed"}
    for index in range(3):
        conf = fleet.home(index) / "app.conf"
        assert conf.read_text() == f"host=web{index} port=8080\n"
        assert conf.stat().st_mode & 0o777 == 0o600
    again = runbook_cli("run", str(rb), "-i", str(inventory), "--output", "json")
    assert {s["status"] for s in again.json()["steps"]} == {"ok"}
    other = runbook_cli(
        "run",
        str(rb),
        "-i",
        str(inventory),
        "-e",
        "port=9090",
        "--limit",
        "web1",
        "--output",
        "json",
    )
    assert [(s["host"], s["status"]) for s in other.json()["steps"]] == [
        ("web1", "changed")
    ]
    assert not [
        p for p in fleet.home(1).iterdir() if p.name.startswith(".app.conf")
    ]  # no temp left
