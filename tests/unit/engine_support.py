"""Build the engine's real parts around a runbook written in a test: the loader, the
stepper with the local transport, the executor, and a collector of the events. No
stand-ins: steps run real processes."""

from __future__ import annotations

import io
import textwrap
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from runbook_engine.engine.approval import TerminalApprover
from runbook_engine.engine.executor import Executor, RunOptions
from runbook_engine.engine.hosts import ContextBuilder, HostState, RunInfo
from runbook_engine.engine.stepper import Stepper
from runbook_engine.record.collector import Collector
from runbook_engine.record.events import MultiSink
from runbook_engine.secrets import Masker
from runbook_engine.spec.build import load_runbook
from runbook_engine.transports.local import LocalTransport

if TYPE_CHECKING:
    from pathlib import Path

    from runbook_engine.spec.model import Runbook


@dataclass
class Engine:
    runbook: Runbook
    stepper: Stepper
    collector: Collector
    sink: MultiSink

    def hosts(self, *names: str) -> list[HostState]:
        return [
            HostState(
                name=name,
                address="localhost",
                host_vars={},
                transport=LocalTransport(name),
            )
            for name in names or ("local",)
        ]

    def executor(self, hosts: list[HostState], **options: Any) -> Executor:
        return Executor(
            self.runbook,
            hosts,
            stepper=self.stepper,
            sink=self.sink,
            options=RunOptions(**options),
        )

    def events(self, name: str) -> list[dict[str, Any]]:
        return [r for r in self.collector.records if r["event"] == name]


def engine(
    tmp_path: Path,
    text: str,
    *,
    params: dict[str, Any] | None = None,
    secrets: dict[str, str] | None = None,
) -> Engine:
    path = tmp_path / "rb.yaml"
    path.write_text(textwrap.dedent(text).lstrip())
    runbook = load_runbook(path)
    masker = Masker.of(secrets or {})
    collector = Collector()
    sink = MultiSink(collector, masker=masker)
    given = {name: decl.default for name, decl in runbook.params.items()}
    stepper = Stepper(
        contexts=ContextBuilder(
            params={**given, **(params or {})},
            secrets=secrets or {},
            run=RunInfo(id="test-run", operator="tester", started_at="now"),
        ),
        masker=masker,
        sink=sink,
        approver=TerminalApprover(
            yes=False,
            approve=frozenset(),
            sink=sink,
            operator="tester",
            tty_in=io.StringIO(),
            tty_out=io.StringIO(),
        ),
        live=lambda host, step: None,
        local_transport=LocalTransport("local"),
        base_dir=tmp_path,
    )
    return Engine(runbook=runbook, stepper=stepper, collector=collector, sink=sink)
