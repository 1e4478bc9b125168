"""The runbook model: frozen dataclasses built from schema-valid data only.

``build_runbook`` trusts the schema (types and shapes are already checked) and
``spec/validate.py`` does the semantic checks. Includes are expanded here, statically,
so plan, docs, resume and drills see one flat list of steps per phase; an included
step's id is ``<include id>.<its id>`` and it renders in its own ``Scope``.
"""

from __future__ import annotations

import enum
import json
import shlex
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from ..units import format_duration, parse_duration

if TYPE_CHECKING:
    from collections.abc import Mapping

    from ..diagnostics import Position


class OnFailure(enum.StrEnum):
    ROLLBACK = "rollback"
    ABORT = "abort"
    CONTINUE = "continue"


class Phase(enum.StrEnum):
    PRECONDITIONS = "preconditions"
    STEPS = "steps"
    VERIFY = "verify"
    BATCH_GATE = "batch_gate"
    ROLLBACK = "rollback"
    FINALLY = "finally"


# -- actions -----------------------------------------------------------------------


class Show(Protocol):
    """How ``describe`` shows the templates of an action: as written (docs) or
    rendered as far as possible (plan)."""

    def text(self, source: str) -> str: ...

    def value(self, value: Any) -> str: ...


class _AsWritten:
    def text(self, source: str) -> str:
        return source

    def value(self, value: Any) -> str:
        return value if isinstance(value, str) else json.dumps(value, default=str)


AS_WRITTEN: Show = _AsWritten()


@dataclass(frozen=True, slots=True, kw_only=True)
class RunAction:
    kind = "run"
    command: str

    def describe(self, show: Show = AS_WRITTEN) -> str:
        return show.text(self.command).strip()


@dataclass(frozen=True, slots=True, kw_only=True)
class ArgvAction:
    kind = "argv"
    argv: tuple[str, ...]

    def describe(self, show: Show = AS_WRITTEN) -> str:
        return shlex.join(show.text(arg) for arg in self.argv)


@dataclass(frozen=True, slots=True, kw_only=True)
class HttpAction:
    kind = "http"
    url: str
    method: str = "GET"
    headers: Mapping[str, str] = field(default_factory=dict)
    body: str | None = None
    json: Any = None
    has_json: bool = False
    expect_status: tuple[int, ...] = (200,)
    expect_body_contains: str | None = None
    expect_json: Any = None
    has_expect_json: bool = False
    timeout: float = 10.0

    def describe(self, show: Show = AS_WRITTEN) -> str:
        expect = "/".join(str(status) for status in self.expect_status)
        return f"http {self.method} {show.text(self.url)} (expect {expect})"


@dataclass(frozen=True, slots=True, kw_only=True)
class AssertAction:
    kind = "assert"
    expressions: tuple[str, ...]

    def describe(self, show: Show = AS_WRITTEN) -> str:
        return "assert " + " and ".join(self.expressions)


@dataclass(frozen=True, slots=True, kw_only=True)
class ApproveAction:
    kind = "approve"
    message: str
    confirm: str | None = None
    timeout: float | None = None

    def describe(self, show: Show = AS_WRITTEN) -> str:
        confirm = f" (type {show.value(self.confirm)!r})" if self.confirm else ""
        return f"approve: {show.text(self.message)}{confirm}"


@dataclass(frozen=True, slots=True, kw_only=True)
class SetAction:
    kind = "set"
    values: Mapping[str, Any]

    def describe(self, show: Show = AS_WRITTEN) -> str:
        values = ", ".join(f"vars.{k}={show.value(v)}" for k, v in self.values.items())
        return f"set {values}"


@dataclass(frozen=True, slots=True, kw_only=True)
class SleepAction:
    kind = "sleep"
    seconds: float

    def describe(self, show: Show = AS_WRITTEN) -> str:
        return f"sleep {format_duration(self.seconds)}"


@dataclass(frozen=True, slots=True, kw_only=True)
class CopyAction:
    kind = "copy"
    src: str
    dest: str
    mode: str | None = None

    def describe(self, show: Show = AS_WRITTEN) -> str:
        mode = f" mode {self.mode}" if self.mode else ""
        return f"{self.kind} {show.text(self.src)} -> {show.text(self.dest)}{mode}"


@dataclass(frozen=True, slots=True, kw_only=True)
class TemplateAction:
    kind = "template"
    src: str
    dest: str
    mode: str | None = None

    def describe(self, show: Show = AS_WRITTEN) -> str:
        mode = f" mode {self.mode}" if self.mode else ""
        return f"{self.kind} {show.text(self.src)} -> {show.text(self.dest)}{mode}"


@dataclass(frozen=True, slots=True, kw_only=True)
class IncludeAction:
    """Kept on the include marker step for docs and plan; its steps are expanded."""

    kind = "include"
    path: str
    with_: Mapping[str, Any]

    def describe(self, show: Show = AS_WRITTEN) -> str:
        return f"include {self.path}"


Action = (
    RunAction
    | ArgvAction
    | HttpAction
    | AssertAction
    | ApproveAction
    | SetAction
    | SleepAction
    | CopyAction
    | TemplateAction
    | IncludeAction
)
ACTION_KEYS = (
    "run",
    "argv",
    "http",
    "assert",
    "approve",
    "set",
    "sleep",
    "include",
    "copy",
    "template",
)
DEFAULT_TIMEOUT = (
    3600.0  # seconds: a step that sets no timeout in a runbook that sets none
)
# actions that touch a host (the others are evaluated on the control machine)
HOST_ACTIONS = frozenset({"run", "argv", "copy", "template"})

MAX_COMMAND_BYTES = 128 * 1024
"""Linux's ``MAX_ARG_STRLEN``: the most bytes one argument of ``execve`` may take,
its terminating NUL included. A ``run:`` command (one argument of ``sh -c``) or an
``argv`` item must be shorter, in UTF-8; see :func:`fits_in_one_argument`."""


def fits_in_one_argument(text: str) -> bool:
    """Whether ``text`` can be one argument of a program (under MAX_COMMAND_BYTES)."""
    return len(text.encode("utf-8", errors="surrogateescape")) < MAX_COMMAND_BYTES


# -- steps -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class Retries:
    attempts: int = 1
    delay: float = 0.0
    backoff: float = 1.0
    max_delay: float | None = None
    jitter: float = 0.0
    until: str | None = None
    retry_on_rc: tuple[int, ...] | None = None
    retry_on_stderr: str | None = None
    retry_on_connection_lost: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class Undo:
    action: Action
    env: Mapping[str, str] = field(default_factory=dict)
    cwd: str | None = None
    timeout: float | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class ParamDecl:
    name: str
    type: str = "string"
    required: bool = False
    default: Any = None
    has_default: bool = False
    enum: tuple[Any, ...] | None = None
    pattern: str | None = None
    description: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Scope:
    """The runbook a step comes from. The root scope has an empty prefix; an include
    makes a child scope whose params come from rendering ``with_`` in the parent."""

    prefix: str
    runbook_name: str
    path: str
    params: Mapping[str, ParamDecl]
    vars: Mapping[str, Any]
    with_: Mapping[str, Any] = field(default_factory=dict)
    parent: Scope | None = None
    timeout: float = 3600.0  # its runbook's `timeout:`, else its parent's, else 1h


@dataclass(frozen=True, slots=True, kw_only=True)
class Step:
    id: str  # full id: "<include id>.<id>" for included steps
    local_id: str  # the id as written in its own runbook
    name: str | None
    description: str | None
    action: Action
    when: str | None = None
    local: bool = False
    run_once: bool = False
    env: Mapping[str, str] = field(default_factory=dict)
    cwd: str | None = None
    timeout: float | None = None
    retries: Retries = field(default_factory=Retries)
    undo: Undo | None = None
    undo_on_failure: bool = False
    on_failure: OnFailure | None = None
    ignore_errors: bool = False
    failed_when: str | None = None
    changed_when: str | None = None
    safe: bool = False
    phase: Phase
    pos: Position
    scope: Scope

    @property
    def title(self) -> str:
        return self.name or self.id


@dataclass(frozen=True, slots=True, kw_only=True)
class Runbook:
    name: str
    description: str | None
    path: str
    sha256: str
    params: Mapping[str, ParamDecl]
    secrets: Mapping[str, Any]  # name -> SecretSource (all scopes)
    vars: Mapping[str, Any]
    hosts: str | tuple[str, ...]
    lock: str | None
    serial: tuple[int | str, ...] | None
    max_fail_percentage: float
    on_failure: OnFailure
    phases: Mapping[Phase, tuple[Step, ...]]
    scope: Scope
    includes: tuple[str, ...] = ()

    def steps_of(self, phase: Phase) -> tuple[Step, ...]:
        return self.phases.get(phase, ())

    def all_steps(self) -> list[Step]:
        return [step for phase in Phase for step in self.steps_of(phase)]

    def step(self, step_id: str) -> Step | None:
        return next((s for s in self.all_steps() if s.id == step_id), None)


# -- building from data --------------------------------------------------------------


def parse_action(data: Mapping[str, Any]) -> Action:
    """The single action in a (schema-valid) step or undo mapping."""
    if "run" in data:
        return RunAction(command=data["run"])
    if "argv" in data:
        return ArgvAction(argv=tuple(str(a) for a in data["argv"]))
    if "http" in data:
        return _http(data["http"])
    if "assert" in data:
        exprs = data["assert"]
        return AssertAction(
            expressions=(exprs,) if isinstance(exprs, str) else tuple(exprs)
        )
    if "approve" in data:
        spec = data["approve"]
        if isinstance(spec, str):
            return ApproveAction(message=spec)
        timeout = spec.get("timeout")
        return ApproveAction(
            message=spec["message"],
            confirm=spec.get("confirm"),
            timeout=None if timeout is None else parse_duration(timeout),
        )
    if "set" in data:
        return SetAction(values=dict(data["set"]))
    if "sleep" in data:
        return SleepAction(seconds=parse_duration(data["sleep"]))
    if "copy" in data:
        return CopyAction(**_file_spec(data["copy"]))
    if "template" in data:
        return TemplateAction(**_file_spec(data["template"]))
    if "include" in data:
        return IncludeAction(path=data["include"], with_=dict(data.get("with") or {}))
    raise ValueError(
        f"no action in {sorted(data)}"
    )  # the schema makes this unreachable


def _http(spec: Mapping[str, Any]) -> HttpAction:
    expect = spec.get("expect_status", 200)
    return HttpAction(
        url=spec["url"],
        method=str(spec.get("method", "GET")).upper(),
        headers=dict(spec.get("headers") or {}),
        body=spec.get("body"),
        json=spec.get("json"),
        has_json="json" in spec,
        expect_status=(expect,) if isinstance(expect, int) else tuple(expect),
        expect_body_contains=spec.get("expect_body_contains"),
        expect_json=spec.get("expect_json"),
        has_expect_json="expect_json" in spec,
        timeout=parse_duration(spec.get("timeout", 10)),
    )


def _file_spec(spec: Mapping[str, Any]) -> dict[str, Any]:
    return {"src": spec["src"], "dest": spec["dest"], "mode": spec.get("mode")}


def parse_retries(data: Mapping[str, Any] | None) -> Retries:
    if not data:
        return Retries()
    retry_on = data.get("retry_on") or {}
    max_delay = data.get("max_delay")
    rc = retry_on.get("rc")
    return Retries(
        attempts=int(data.get("attempts", 1)),
        delay=parse_duration(data.get("delay", 0)),
        backoff=float(data.get("backoff", 1)),
        max_delay=None if max_delay is None else parse_duration(max_delay),
        jitter=parse_duration(data.get("jitter", 0)),
        until=data.get("until"),
        retry_on_rc=None if rc is None else tuple(rc),
        retry_on_stderr=retry_on.get("stderr"),
        retry_on_connection_lost=bool(retry_on.get("connection_lost", False)),
    )


def parse_undo(
    data: str | Mapping[str, Any] | None, *, default_timeout: float | None = None
) -> Undo | None:
    """A step's ``undo``; without its own ``timeout`` it gets the step's."""
    if data is None:
        return None
    if isinstance(data, str):
        return Undo(action=RunAction(command=data), timeout=default_timeout)
    timeout = data.get("timeout")
    return Undo(
        action=parse_action(data),
        env=dict(data.get("env") or {}),
        cwd=data.get("cwd"),
        timeout=default_timeout if timeout is None else parse_duration(timeout),
    )


def parse_param(name: str, data: Mapping[str, Any]) -> ParamDecl:
    enum_values = data.get("enum")
    return ParamDecl(
        name=name,
        type=data.get("type", "string"),
        required=bool(data.get("required", False)),
        default=data.get("default"),
        has_default="default" in data,
        enum=None if enum_values is None else tuple(enum_values),
        pattern=data.get("pattern"),
        description=data.get("description"),
    )


def parse_serial(value: Any) -> tuple[int | str, ...] | None:
    if value is None:
        return None
    if isinstance(value, list):
        return tuple(value)
    return (value,)
