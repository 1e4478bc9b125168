"""Run one step (or one undo) on one host: ``when``, rendering, the action, retries,
``until`` / ``failed_when`` / ``changed_when``. Returns a ``StepResult``; never raises
for an outcome."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from .. import render
from ..actions import ActionEnv, Approver, handler_for
from ..actions.outcome import Outcome
from ..errors import RenderError
from ..record.events import EventSink, Status, StepRetry
from ..record.results import StepResult, parse_json
from ..spec.model import Action, Phase, Retries, Step, Undo
from ..transports.output import LiveCallback, StepOutput
from .retries import run_with_retries

if TYPE_CHECKING:
    import threading
    from pathlib import Path

    from ..secrets import Masker
    from ..transports.base import Transport
    from .hosts import ContextBuilder, HostState

LiveFactory = Callable[[str, str], LiveCallback | None]
Announce = Callable[[str, str, str], None]


def _quiet(command: str) -> None:
    pass


def _where(step: Step) -> str:
    """How render errors name a step: its id and where it is written."""
    return f"step {step.id!r} ({step.pos.path}:{step.pos.line})"


class Stepper:
    def __init__(
        self,
        *,
        contexts: ContextBuilder,
        masker: Masker,
        sink: EventSink,
        approver: Approver,
        live: LiveFactory,
        local_transport: Transport,
        base_dir: Path,
        announce: Announce | None = None,
    ) -> None:
        self.contexts = contexts
        self.masker = masker
        self.sink = sink
        self.approver = approver
        self.live = live
        self.local_transport = local_transport
        self.base_dir = base_dir
        self.announce = announce  # (host, step label, command) as a command starts

    def run_step(
        self, step: Step, host: HostState, cancel: threading.Event
    ) -> StepResult:
        started = time.time()
        clock = time.monotonic()
        try:
            context = self.contexts.context(host, step.scope)
            if step.when is not None and not render.evaluate(
                step.when, context, f"{_where(step)} when"
            ):
                return self._result(
                    step,
                    host,
                    Outcome(status=Status.SKIPPED, message="when is false"),
                    1,
                    started,
                    clock,
                )
            outcome, attempts = self._attempts(step, host, context, cancel)
        except RenderError as exc:
            outcome, attempts = (
                Outcome(status=Status.FAILED, message=str(exc), retryable=False),
                1,
            )
        return self._result(step, host, outcome, attempts, started, clock)

    def run_undo(
        self, step: Step, undo: Undo, host: HostState, cancel: threading.Event
    ) -> StepResult:
        started = time.time()
        clock = time.monotonic()
        try:
            context = self.contexts.context(host, step.scope)
            outcome = self._once(
                step,
                undo.action,
                host,
                context,
                cancel,
                env=undo.env,
                cwd=undo.cwd,
                timeout=undo.timeout,
                label=f"{step.id} undo",
            )
        except RenderError as exc:
            outcome = Outcome(status=Status.FAILED, message=str(exc))
        return self._result(step, host, outcome, 1, started, clock)

    def _attempts(
        self,
        step: Step,
        host: HostState,
        context: dict[str, Any],
        cancel: threading.Event,
    ) -> tuple[Outcome, int]:
        policy: Retries = step.retries

        def attempt(number: int) -> tuple[Outcome, bool]:
            outcome = self._once(
                step,
                step.action,
                host,
                context,
                cancel,
                env=step.env,
                cwd=step.cwd,
                timeout=step.timeout,
                label=step.id,
            )
            outcome = self._judge(step, context, outcome)
            until_ok = True
            if policy.until and outcome.status.succeeded:
                until_ok = bool(
                    self._evaluate_self(step, context, outcome, policy.until, "until")
                )
            if not until_ok and number >= policy.attempts:
                outcome = replace(
                    outcome,
                    status=Status.FAILED,
                    message=(
                        f"until `{policy.until}` still false after {number} attempts"
                    ),
                )
            return outcome, until_ok

        def on_retry(number: int, cause: str, delay: float) -> None:
            self.sink.emit(
                StepRetry(
                    step=step.id,
                    host=host.name,
                    attempt=number,
                    cause=self.masker.mask(cause),
                    next_delay_ms=int(delay * 1000),
                )
            )
            self.sink.barrier()

        return run_with_retries(policy, attempt, on_retry, cancel)

    def _once(
        self,
        step: Step,
        action: Action,
        host: HostState,
        context: dict[str, Any],
        cancel: threading.Event,
        *,
        env: Mapping[str, str],
        cwd: str | None,
        timeout: float | None,
        label: str,
    ) -> Outcome:
        renderer = render.Renderer(context, _where(step))
        rendered_env = {k: renderer.text_of(v, f"env.{k}") for k, v in env.items()}
        rendered_cwd = None if cwd is None else renderer.text(cwd, "cwd")
        action_env = ActionEnv(
            step=step,
            host=host.name,
            transport=self.local_transport if step.local else host.transport,
            renderer=renderer,
            output=StepOutput(
                self.masker.mask,
                self.live(host.name, label),
                secret_margin=self.masker.longest,
            ),
            cancel=cancel,
            timeout=timeout,
            env=rendered_env,
            cwd=rendered_cwd,
            base_dir=self.base_dir,
            approver=self.approver,
            announce=self._announcer(host.name, label),
        )
        try:
            return handler_for(action.kind)(action, action_env)
        except RenderError as exc:
            return Outcome(status=Status.FAILED, message=str(exc), retryable=False)

    def _announcer(self, host: str, label: str) -> Callable[[str], None]:
        announce = self.announce
        if announce is None:
            return _quiet
        mask = self.masker.mask
        return lambda command: announce(host, label, mask(command))

    def _judge(self, step: Step, context: dict[str, Any], outcome: Outcome) -> Outcome:
        if outcome.interrupted or outcome.connection_lost:
            return outcome
        json_value = (
            outcome.json if outcome.json is not None else parse_json(outcome.stdout)
        )
        outcome = replace(outcome, json=json_value)
        if step.failed_when is not None and outcome.status is not Status.SKIPPED:
            failed = bool(
                self._evaluate_self(
                    step, context, outcome, step.failed_when, "failed_when"
                )
            )
            if failed:
                return replace(
                    outcome,
                    status=Status.FAILED,
                    message=f"failed_when `{step.failed_when}` is true",
                )
            if not outcome.status.succeeded:
                outcome = replace(outcome, status=Status.CHANGED, message=None)
        if step.changed_when is not None and outcome.status.succeeded:
            changed = bool(
                self._evaluate_self(
                    step, context, outcome, step.changed_when, "changed_when"
                )
            )
            outcome = replace(outcome, status=Status.CHANGED if changed else Status.OK)
        elif outcome.status is Status.CHANGED and (
            step.safe or step.phase is Phase.PRECONDITIONS
        ):
            outcome = replace(outcome, status=Status.OK)  # checks only read
        return outcome

    def _evaluate_self(
        self,
        step: Step,
        context: dict[str, Any],
        outcome: Outcome,
        expression: str,
        what: str,
    ) -> Any:
        """Evaluate with ``steps.<this step>`` bound to this attempt's outcome."""
        attempt = _result_of(step, "", outcome)
        steps = dict(context["steps"])
        steps[step.local_id] = attempt.view()
        renderer = render.Renderer({**context, "steps": steps}, _where(step))
        return renderer.evaluate(expression, what)

    def _result(
        self,
        step: Step,
        host: HostState,
        outcome: Outcome,
        attempts: int,
        started: float,
        clock: float,
    ) -> StepResult:
        mask = self.masker.mask
        return replace(
            _result_of(step, host.name, outcome),
            json=self.masker.mask_data(outcome.json),
            message=None if outcome.message is None else mask(outcome.message),
            command=None if outcome.command is None else bounded(mask(outcome.command)),
            attempts=attempts,
            started_at=started,
            duration=time.monotonic() - clock,
        )


COMMAND_HEAD = 2048  # characters of a long command kept for display and the audit
COMMAND_TAIL = 1024


def bounded(command: str) -> str:
    """A command as records keep it: whole up to 4 KiB, else its head and tail with
    its length and SHA-256 between (a failed command must never write megabytes
    into the audit log)."""
    if len(command) <= COMMAND_HEAD + COMMAND_TAIL + 1024:
        return command
    digest = hashlib.sha256(command.encode()).hexdigest()
    cut = len(command) - COMMAND_HEAD - COMMAND_TAIL
    return (
        f"{command[:COMMAND_HEAD]}\n... [{cut} more characters; the whole command:"
        f" {len(command)} characters, sha256 {digest}] ...\n{command[-COMMAND_TAIL:]}"
    )


def _result_of(step: Step, host: str, outcome: Outcome) -> StepResult:
    """The result an outcome makes of a step on a host (not yet masked or timed)."""
    return StepResult(
        step_id=step.id,
        host=host,
        phase=step.phase.value,
        status=outcome.status,
        rc=outcome.rc,
        stdout=outcome.stdout,
        stderr=outcome.stderr,
        json=outcome.json,
        http_status=outcome.http_status,
        message=outcome.message,
        command=outcome.command,
        set_vars=dict(outcome.set_vars),
        interrupted=outcome.interrupted,
        transfer=outcome.transfer,
    )
