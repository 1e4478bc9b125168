"""The keepalive monitor's judgement, on stand-ins for connections (pure logic: the
real silent partition, against a frozen sshd, is in tests/ssh/test_ssh_failures.py).

A connection is lost when the host does not answer; never because our own process
was too slow to send the probe or to read the answer."""

from __future__ import annotations

import threading
import time

import pytest

from runbook_engine.transports.keepalive import KeepaliveMonitor, Watched

INTERVAL = 0.05


class Silent(Watched):
    """A connection that has heard nothing for a long time."""

    def __init__(self, *, probed: float | None, pending: bool = False) -> None:
        self.heard = time.monotonic() - 100
        self.probed = probed
        self.pending = pending
        self.lost = threading.Event()
        self.reason = ""

    def last_heard(self) -> float:
        return self.heard

    def unanswered_since(self) -> float | None:
        return self.probed

    def input_pending(self) -> bool:
        return self.pending

    def is_open(self) -> bool:
        return not self.lost.is_set()

    def declare_lost(self, reason: str) -> None:
        self.reason = reason
        self.lost.set()


@pytest.fixture
def monitor():
    watching = KeepaliveMonitor()
    yield watching
    watching.close()


def test_silence_after_an_unanswered_probe_is_a_lost_connection(monitor):
    target = Silent(probed=time.monotonic() - 100)
    monitor.watch(target, INTERVAL)
    assert target.lost.wait(10)
    assert "no answer to SSH keepalives for 0.15s" in target.reason


def test_a_probe_we_never_sent_blames_nobody_until_it_goes_unanswered(monitor):
    target = Silent(probed=None)  # our starved reader thread had not sent it yet
    monitor.watch(target, INTERVAL)
    assert not target.lost.wait(20 * INTERVAL)
    target.probed = time.monotonic()  # sent now: the host has two intervals
    assert target.lost.wait(10)


def test_an_answer_waiting_unread_keeps_the_connection(monitor):
    target = Silent(probed=time.monotonic() - 100, pending=True)
    monitor.watch(target, INTERVAL)
    assert not target.lost.wait(20 * INTERVAL)
    target.pending = False  # ...and once nothing is waiting after all
    assert target.lost.wait(10)


def _monitor_threads() -> int:
    return sum(t.name == "ssh-keepalive" for t in threading.enumerate())


def test_a_closed_monitor_watches_nothing_and_starts_no_thread():
    before = _monitor_threads()
    watching = KeepaliveMonitor()
    watching.close()
    target = Silent(probed=time.monotonic() - 100)
    watching.watch(target, INTERVAL)
    assert not target.lost.wait(10 * INTERVAL)
    assert _monitor_threads() == before
