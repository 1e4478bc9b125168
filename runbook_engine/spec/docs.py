"""``runbook docs``: a runbook as a Markdown page for reviewers, and a directory of
runbooks as one page each plus an ``index.md``.

A page holds the title and description, the params, the secret *names* (never a
value: nothing is read), the preconditions as a go/no-go checklist, every phase as a
table, and a Mermaid flowchart of the main and rollback paths. Pages are a pure
function of the runbook files, so a test can check that committed pages are current.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..markdown import code, plain, prose
from ..units import format_duration
from .model import (
    HOST_ACTIONS,
    OnFailure,
    Phase,
)

if TYPE_CHECKING:
    from collections.abc import Iterable
    from pathlib import Path

    from .model import Action, Runbook, Step

INDEX = "index.md"
_TABLE_PHASES = (
    (Phase.STEPS, "Steps"),
    (Phase.VERIFY, "Verify"),
    (Phase.BATCH_GATE, "Batch gate"),
    (Phase.ROLLBACK, "Rollback"),
    (Phase.FINALLY, "Finally"),
)
_MAX_ACTION = 120


def _short(text: str, limit: int = _MAX_ACTION) -> str:
    lines = text.strip().splitlines() or [""]
    first = lines[0] + (" …" if len(lines) > 1 else "")
    return first if len(first) <= limit else first[: limit - 1] + "…"


def describe_action(action: Action) -> str:
    """One line saying what an action does, templates as written."""
    return _short(action.describe())


def _own_timeout(step: Step) -> str:
    """A step's timeout when it is not its runbook's default."""
    if step.timeout is None or step.timeout == step.scope.timeout:
        return ""
    return format_duration(step.timeout)


def _hosts(runbook: Runbook) -> str:
    hosts = runbook.hosts
    return hosts if isinstance(hosts, str) else ", ".join(hosts)


def _where(step: Step, runbook: Runbook) -> str:
    if step.local or step.action.kind not in HOST_ACTIONS:
        where = "control machine"
    else:
        where = _hosts(runbook)
    return f"{where} (once)" if step.run_once else where


def _retries(step: Step) -> str:
    retries = step.retries
    if retries.attempts <= 1:
        return ""
    text = f"{retries.attempts} attempts"
    if retries.delay:
        text += f", delay {format_duration(retries.delay)}"
        if retries.backoff != 1:
            text += f" x{retries.backoff:g}"
    if retries.until:
        text += f", until {retries.until}"
    return text


def _on_failure(step: Step, runbook: Runbook) -> str:
    if step.on_failure is not None:
        return step.on_failure.value
    if step.phase in (Phase.STEPS, Phase.VERIFY):
        return f"{runbook.on_failure.value} (default)"
    return ""


def _step_row(step: Step, runbook: Runbook) -> str:
    undo = describe_action(step.undo.action) if step.undo else ""
    name = prose(step.name or "")
    if step.when:
        name += f" (when {code(step.when)})"
    cells = [
        code(step.id),
        name,
        plain(_where(step, runbook)),
        code(describe_action(step.action)),
        code(undo),
        plain(_retries(step)),
        plain(_own_timeout(step)),
        plain(_on_failure(step, runbook)),
    ]
    return "| " + " | ".join(cells) + " |"


def _phase_table(steps: tuple[Step, ...], runbook: Runbook) -> list[str]:
    header = [
        "id",
        "name",
        "where",
        "action",
        "undo",
        "retries",
        "timeout",
        "on_failure",
    ]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return [*lines, *(_step_row(step, runbook) for step in steps), ""]


def _params(runbook: Runbook) -> list[str]:
    if not runbook.params:
        return []
    lines = [
        "## Params",
        "",
        "| name | type | default | required | description |",
        "|---|---|---|---|---|",
    ]
    for decl in runbook.params.values():
        default = code(_literal(decl.default)) if decl.has_default else ""
        kind = plain(decl.type)
        if decl.enum:
            kind += f" (one of {', '.join(code(_literal(v)) for v in decl.enum)})"
        if decl.pattern:
            kind += f" matching {code(decl.pattern)}"
        required = "yes" if decl.required and not decl.has_default else "no"
        lines.append(
            f"| {code(decl.name)} | {kind} | {default} | {required}"
            f" | {prose(decl.description or '')} |"
        )
    return [*lines, ""]


def _literal(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return "null" if value is None else str(value)


def _secrets(runbook: Runbook) -> list[str]:
    if not runbook.secrets:
        return []
    lines = [
        "## Secrets",
        "",
        "Names and sources only; values are never read here.",
        "",
    ]
    for name, source in runbook.secrets.items():
        where = source.describe() if hasattr(source, "describe") else ""
        lines.append(f"- {code(name)}: from {plain(where)}")
    return [*lines, ""]


def _checklist(runbook: Runbook) -> list[str]:
    steps = runbook.steps_of(Phase.PRECONDITIONS)
    if not steps:
        return []
    lines = [
        "## Go / no-go checklist",
        "",
        "Every check must pass before anything changes.",
        "",
    ]
    for step in steps:
        lines.append(
            f"- [ ] **{prose(step.title)}** ({code(step.id)}):"
            f" {code(describe_action(step.action))}"
        )
    return [*lines, ""]


def _summary(runbook: Runbook) -> list[str]:
    facts = [f"hosts: {code(_hosts(runbook))}"]
    if runbook.serial:
        facts.append(f"serial: {code(', '.join(map(str, runbook.serial)))}")
    if runbook.lock:
        facts.append(f"lock: {code(runbook.lock)}")
    facts.append(f"on failure: {code(runbook.on_failure.value)}")
    if runbook.max_fail_percentage:
        facts.append(f"max fail: {runbook.max_fail_percentage:g}%")
    return [f"Source: {code(runbook.path)} · " + " · ".join(facts), ""]


def render_docs(runbook: Runbook) -> str:
    """The Markdown page of one runbook."""
    lines = [f"# {plain(runbook.name)}", ""]
    if runbook.description:
        lines += [prose(runbook.description.strip(), cell=False), ""]
    lines += (
        _summary(runbook) + _params(runbook) + _secrets(runbook) + _checklist(runbook)
    )
    for phase, title in _TABLE_PHASES:
        steps = runbook.steps_of(phase)
        if steps:
            lines += [f"## {title}", "", *_phase_table(steps, runbook)]
    lines += ["## Flow", "", "```mermaid", *flowchart(runbook), "```", ""]
    return "\n".join(lines).rstrip("\n") + "\n"


# -- the flowchart -----------------------------------------------------------------


def _label(text: str) -> str:
    """A Mermaid node label in quotes, with its special characters as entities."""
    escaped = text.replace("#", "#35;").replace('"', "#quot;")
    escaped = escaped.replace("<", "#lt;").replace(">", "#gt;")
    return f'"{escaped}"'


def _node(step: Step) -> str:
    return _label(f"{step.id}: {step.name}" if step.name else step.id)


def _chain(lines: list[str], start: str, ids: list[str]) -> str:
    previous = start
    for node in ids:
        lines.append(f"  {previous} --> {node}")
        previous = node
    return previous


def flowchart(runbook: Runbook) -> list[str]:
    """Mermaid lines: go/no-go, the main path, and the rollback path (undos of the
    state-changing steps in reverse, then the rollback phase), both into finally."""
    lines = ["flowchart TD", '  start(["start"])']
    ids: dict[str, str] = {}
    for index, step in enumerate(runbook.all_steps()):
        ids[step.id] = f"s{index}"
        lines.append(f"  s{index}[{_node(step)}]")
    pre = [ids[s.id] for s in runbook.steps_of(Phase.PRECONDITIONS)]
    main = [ids[s.id] for p in (Phase.STEPS, Phase.VERIFY) for s in runbook.steps_of(p)]
    last = _chain(lines, "start", pre)
    if pre:
        lines += [
            '  gate{"go / no-go"}',
            f"  {last} --> gate",
            '  nogo(["stop: nothing changed"])',
        ]
        lines.append("  gate -- no-go --> nogo")
        last = "gate"
    end_main = _chain(lines, last, main) if main else last
    finally_ids = [ids[s.id] for s in runbook.steps_of(Phase.FINALLY)]
    lines.append('  done(["end"])')
    first_finally = finally_ids[0] if finally_ids else "done"
    lines.append(f"  {end_main} --> {first_finally}")
    if finally_ids:
        lines.append(f"  {_chain(lines, finally_ids[0], finally_ids[1:])} --> done")
    lines += _rollback_path(runbook, ids, main, first_finally)
    return lines


def _rollback_path(
    runbook: Runbook, ids: dict[str, str], main: list[str], after: str
) -> list[str]:
    body = [*runbook.steps_of(Phase.STEPS), *runbook.steps_of(Phase.VERIFY)]
    undos = [step for step in reversed(body) if step.undo is not None]
    rollback = [ids[s.id] for s in runbook.steps_of(Phase.ROLLBACK)]
    rolls_back = runbook.on_failure is OnFailure.ROLLBACK or any(
        s.on_failure is OnFailure.ROLLBACK for s in body
    )
    if not main or not rolls_back:
        return []
    lines = ['  failed{{"a step failed: roll back"}}']
    lines += [f"  {node} -. fails .-> failed" for node in main]
    nodes = []
    for index, step in enumerate(undos):
        lines.append(f"  u{index}[{_label('undo ' + step.id)}]")
        nodes.append(f"u{index}")
    last = _chain(lines, "failed", nodes + rollback)
    lines.append(f"  {last} --> {after}")
    lines += [f"  style u{i} stroke-dasharray: 4 3" for i in range(len(undos))]
    return lines


# -- files -------------------------------------------------------------------------


def _runbook_files(paths: Iterable[Path]) -> list[Path]:
    from .checking import expand_paths, kind_of

    return [path for path in expand_paths(paths) if kind_of(path)[0] == "runbook"]


def _page_names(runbooks: list[Runbook]) -> list[str]:
    """``<name>.md``, or ``<name>-<file stem>.md`` when two runbooks share a name."""
    counts: dict[str, int] = {}
    for runbook in runbooks:
        counts[runbook.name] = counts.get(runbook.name, 0) + 1
    names = []
    for runbook in runbooks:
        stem = runbook.path.rsplit("/", 1)[-1].rsplit(".", 1)[0]
        unique = counts[runbook.name] == 1 or stem == runbook.name
        names.append(f"{runbook.name}.md" if unique else f"{runbook.name}-{stem}.md")
    return names


def render_index(runbooks: list[Runbook], pages: list[str]) -> str:
    lines = [
        "# Runbooks",
        "",
        "| runbook | description | hosts | source |",
        "|---|---|---|---|",
    ]
    for runbook, page in zip(runbooks, pages, strict=True):
        summary = ((runbook.description or "").strip().splitlines() or [""])[0]
        lines.append(
            f"| [{plain(runbook.name)}]({page}) | {prose(summary)}"
            f" | {code(_hosts(runbook))} | {code(runbook.path)} |"
        )
    return "\n".join(lines) + "\n"


def write_docs(paths: Iterable[Path], output: Path) -> list[Path]:
    """Write the docs of the runbooks in ``paths`` (files or directories) and return
    the files written. ``output`` is one Markdown file when a single runbook file is
    given and ``output`` is not an existing directory; otherwise it is a directory
    that gets one page per runbook plus ``index.md``. Raises ``InputError`` for an
    invalid runbook (nothing is written then)."""
    from .build import load_runbook

    paths = list(paths)
    files = _runbook_files(paths)
    runbooks = [load_runbook(path) for path in files]
    single = len(paths) == 1 and paths[0].is_file() and not output.is_dir()
    if single and len(runbooks) == 1:
        output.parent.mkdir(parents=True, exist_ok=True)
        output.write_text(render_docs(runbooks[0]), encoding="utf-8")
        return [output]
    output.mkdir(parents=True, exist_ok=True)
    pages = _page_names(runbooks)
    written = []
    for runbook, page in zip(runbooks, pages, strict=True):
        (output / page).write_text(render_docs(runbook), encoding="utf-8")
        written.append(output / page)
    (output / INDEX).write_text(render_index(runbooks, pages), encoding="utf-8")
    return [*written, output / INDEX]
