"""``runbook validate --strict``: lint rules reviewers care about, as warnings.

Runs on a runbook that already validated. Each rule has an id, a message saying what
to do, and can be silenced on one step with ``# runbook: ignore[RB003]`` (several:
``ignore[RB001,RB003]``) on the step's ``- id:`` line or on the line before it; for
the runbook-wide rules (RB005, RB006) the comment goes on the ``hosts:`` line or the
line before. Only the runbook's own steps are linted; an included file is linted
when it is validated itself.

Reads templates through ``jinja2.nodes`` (the AST of ``render.parse_template``),
the one other module besides ``engine/render.py`` that touches jinja2.
"""

from __future__ import annotations

import itertools
import re
from typing import TYPE_CHECKING, Any

from jinja2 import nodes

from .. import render
from ..diagnostics import Diagnostic, Position
from ..errors import InputError
from .model import (
    HOST_ACTIONS,
    ApproveAction,
    ArgvAction,
    HttpAction,
    OnFailure,
    Phase,
    RunAction,
)

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

    from .inventory import Inventory
    from .loader import Document
    from .model import Action, Runbook, Step

RULES: dict[str, str] = {
    "RB001": "state-changing step without `undo` in a runbook that rolls back",
    "RB002": "param or var rendered into a `run:` shell command without `| quote`",
    "RB003": "`approve` without a `timeout`",
    "RB004": "`http` check without retries right after a (re)start",
    "RB005": "`hosts:` pattern that matches nothing in the inventory given with -i",
    "RB006": "`serial` missing on a runbook that targets more than one host",
    "RB007": "secret rendered into a command line instead of passed through `env`",
}

_IGNORE = re.compile(r"#\s*runbook:\s*ignore\[([A-Za-z0-9_,\s]+)\]")
_RESTART = re.compile(r"(?<![a-z])(re)?start", re.IGNORECASE)
_SHELL_SAFE = re.compile(r"^[A-Za-z0-9_.,:/@%+=-]*$")
_GLOB = frozenset("*?[")
# filters whose result cannot carry shell syntax
_SAFE_FILTERS = frozenset({"quote", "int", "float", "length", "count", "abs", "round"})
_SAFE_TYPES = frozenset({"integer", "number", "boolean"})


def lint_runbook(path: Path, inventory: Path | None = None) -> list[Diagnostic]:
    """Warnings for one valid runbook (nothing when it does not load)."""
    from .build import load_runbook
    from .loader import load_yaml

    try:
        runbook = load_runbook(path)
        doc = load_yaml(path)
    except InputError:
        return []
    linter = _Linter(runbook, doc, _load_inventory(inventory))
    found = linter.run()
    return [d for d in found if not _ignored(d, linter.lines)]


def _load_inventory(path: Path | None) -> Inventory | None:
    if path is None:
        return None
    from .inventory import load_inventory

    try:
        return load_inventory(path)
    except InputError:
        return None  # `validate -i` reports the inventory's own errors


def _ignored(diagnostic: Diagnostic, lines: list[str]) -> bool:
    for number in (diagnostic.line, diagnostic.line - 1):
        if 1 <= number <= len(lines):
            match = _IGNORE.search(lines[number - 1])
            if match and diagnostic.code in re.split(r"[\s,]+", match.group(1).upper()):
                return True
    return False


class _Linter:
    def __init__(self, runbook: Runbook, doc: Document, inventory: Inventory | None):
        self.runbook = runbook
        self.doc = doc
        self.inventory = inventory
        self.lines = doc.text.splitlines()
        self.found: list[Diagnostic] = []
        self.own = [s for s in runbook.all_steps() if not s.scope.prefix]

    def warn(self, pos: Position, code: str, message: str) -> None:
        self.found.append(Diagnostic.at(pos, message, severity="warning", code=code))

    def run(self) -> list[Diagnostic]:
        body = [s for s in self.own if s.phase in (Phase.STEPS, Phase.VERIFY)]
        for step in self.own:
            self.missing_undo(step)
            self.unquoted(step)
            self.approve_timeout(step)
            self.secret_on_command_line(step)
        for previous, step in itertools.pairwise(body):
            self.http_after_restart(previous, step)
        self.hosts()
        return sorted(self.found, key=lambda d: (d.line, d.col, d.code or ""))

    # -- RB001 ----------------------------------------------------------------------

    def missing_undo(self, step: Step) -> None:
        if step.phase is not Phase.STEPS or step.undo is not None or step.safe:
            return
        if step.action.kind not in HOST_ACTIONS:
            return
        if self.runbook.on_failure is not OnFailure.ROLLBACK:
            return
        self.warn(
            step.pos,
            "RB001",
            f"step {step.id!r} changes state ({step.action.kind}) but has no `undo`:"
            " a rollback cannot compensate it (add `undo:`, or `safe: true` if it"
            " only reads)",
        )

    # -- RB002 ----------------------------------------------------------------------

    def unquoted(self, step: Step) -> None:
        for where, source in _shell_commands(step):
            for ref in _unquoted_refs(source):
                if self.is_risky(ref):
                    self.warn(
                        step.pos,
                        "RB002",
                        f"step {step.id!r}: {ref} is rendered into the {where} shell"
                        f" command without `| quote` (write `{{{{ {ref} | quote }}}}`)",
                    )

    def is_risky(self, ref: str) -> bool:
        root, _, name = ref.partition(".")
        if root == "params":
            decl = self.runbook.params.get(name)
            if decl is None:
                return True
            if decl.type in _SAFE_TYPES:
                return False
            return not (decl.enum and all(_SHELL_SAFE.match(str(v)) for v in decl.enum))
        value = self.runbook.vars.get(name)
        if isinstance(value, int | float) and not isinstance(value, bool):
            return False
        plain = isinstance(value, str) and not render.is_template(value)
        return not (plain and _SHELL_SAFE.match(str(value)))

    # -- RB003 ----------------------------------------------------------------------

    def approve_timeout(self, step: Step) -> None:
        action = step.action
        if isinstance(action, ApproveAction) and action.timeout is None:
            self.warn(
                step.pos,
                "RB003",
                f"approve step {step.id!r} has no timeout: an unattended prompt holds"
                " the lock for ever (use `approve: {message: ..., timeout: 30m}`)",
            )

    # -- RB004 ----------------------------------------------------------------------

    def http_after_restart(self, previous: Step, step: Step) -> None:
        if not isinstance(step.action, HttpAction) or step.retries.attempts > 1:
            return
        texts = [previous.id, previous.name or "", _command_text(previous.action)]
        if not any(_RESTART.search(text) for text in texts):
            return
        self.warn(
            step.pos,
            "RB004",
            f"http check {step.id!r} runs right after {previous.id!r} (re)starts"
            " something, without retries: a service that is still starting fails it"
            " (add `retries: {attempts: 10, delay: 1s}`)",
        )

    # -- RB005, RB006 -----------------------------------------------------------------

    def hosts(self) -> None:
        hosts = self.runbook.hosts
        patterns = [hosts] if isinstance(hosts, str) else list(hosts)
        paths: list[tuple[str | int, ...]] = (
            [("hosts",)]
            if isinstance(hosts, str)
            else [("hosts", i) for i in range(len(hosts))]
        )
        count = 0
        for pattern, path in zip(patterns, paths, strict=True):
            count += self.match_count(pattern, self.doc.positions.value(path))
        many = (
            count > 1
            or not isinstance(hosts, str)
            or any(_GLOB & set(p) or "," in p for p in patterns)
        )
        if self.runbook.serial is None and many and patterns != ["local"]:
            self.warn(
                self.doc.positions.value(("hosts",)),
                "RB006",
                "this runbook targets more than one host but has no `serial`: every"
                " host changes at once (add `serial: 1` or a percentage)",
            )

    def match_count(self, pattern: str, pos: Position) -> int:
        """Hosts ``pattern`` matches in the inventory (RB005 when none)."""
        if self.inventory is None or render.is_template(pattern):
            return 0
        try:
            return len(self.inventory.resolve(pattern))
        except InputError as exc:
            self.warn(pos, "RB005", f"hosts: {exc}")
            return 0

    # -- RB007 ----------------------------------------------------------------------

    def secret_on_command_line(self, step: Step) -> None:
        for where, source in _command_templates(step):
            try:
                _, refs = render.references(source, expression=False)
            except render.TemplateSyntaxError:
                continue
            for root, name in sorted(refs):
                if root != "secrets":
                    continue
                self.warn(
                    step.pos,
                    "RB007",
                    f"step {step.id!r}: secret {name!r} is rendered into the {where}"
                    " command line, where `ps` and logs on the host can see it; pass it"
                    f" through `env:` (`env: {{TOKEN: '{{{{ secrets.{name} }}}}'}}`)"
                    " and use $TOKEN",
                )


# -- templates ---------------------------------------------------------------------


def _shell_commands(step: Step) -> Iterator[tuple[str, str]]:
    """(where, source) of the step's ``run:`` commands: its action and its undo."""
    if isinstance(step.action, RunAction):
        yield "`run:`", step.action.command
    if step.undo is not None and isinstance(step.undo.action, RunAction):
        yield "`undo:`", step.undo.action.command


def _command_templates(step: Step) -> Iterator[tuple[str, str]]:
    """(where, source) of everything that ends up on a command line."""
    yield from _shell_commands(step)
    for where, action in (("`argv:`", step.action), ("`undo:`", _undo_action(step))):
        if isinstance(action, ArgvAction):
            for arg in action.argv:
                yield where, arg


def _undo_action(step: Step) -> Action | None:
    return None if step.undo is None else step.undo.action


def _command_text(action: Action) -> str:
    if isinstance(action, RunAction):
        return action.command
    if isinstance(action, ArgvAction):
        return " ".join(action.argv)
    return ""


def _unquoted_refs(source: str) -> list[str]:
    """``params.x`` / ``vars.y`` printed by ``{{ ... }}`` without a safe filter."""
    if not render.is_template(source):
        return []
    try:
        tree = render.parse_template(source)
    except render.TemplateSyntaxError:
        return []
    found: list[str] = []
    for output in tree.find_all(nodes.Output):
        for expr in output.nodes:
            if isinstance(expr, nodes.TemplateData) or _is_filtered_safe(expr):
                continue
            found += [ref for ref in _refs(expr) if ref not in found]
    return found


def _is_filtered_safe(expr: Any) -> bool:
    while isinstance(expr, nodes.Filter):
        if expr.name in _SAFE_FILTERS:
            return True
        expr = expr.node
    return False


def _refs(expr: nodes.Node) -> list[str]:
    refs: list[str] = []
    for node in [expr, *expr.find_all((nodes.Getattr, nodes.Getitem))]:
        if not isinstance(node, nodes.Getattr | nodes.Getitem):
            continue
        base = node.node
        if not isinstance(base, nodes.Name) or base.name not in ("params", "vars"):
            continue
        if isinstance(node, nodes.Getattr):
            refs.append(f"{base.name}.{node.attr}")
        elif isinstance(node.arg, nodes.Const) and isinstance(node.arg.value, str):
            refs.append(f"{base.name}.{node.arg.value}")
    return refs


def describe_rules() -> str:
    """The rules as a Markdown table (for the README and ``--help``)."""
    lines = ["| id | rule |", "|---|---|"]
    lines += [f"| {code} | {text} |" for code, text in RULES.items()]
    return "\n".join(lines)
