"""Commands for review: validate, plan, docs, schema."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from ..errors import ExitCode, InputError
from .app import (
    ACCEPT_KEYS_OPTION,
    AUDIT_FORWARD_OPTION,
    EXTRA_OPTION,
    INVENTORY_OPTION,
    LIMIT_OPTION,
    PARAMS_FILE_OPTION,
    STATE_DIR_OPTION,
    STATE_URL_OPTION,
    _open_store,
    _prepare,
    _request,
    cli,
)


@cli.command(short_help="Check runbooks and inventories.")
@click.argument(
    "paths", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path)
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["text", "json", "github"]),
    default="text",
    show_default=True,
    help="github: GitHub Actions annotations.",
)
@click.option("--strict", is_flag=True, help="Lint rules too; warnings fail the check.")
@click.option(
    "-i",
    "--inventory",
    type=click.Path(dir_okay=False, path_type=Path),
    envvar="RUNBOOK_INVENTORY",
    help="Check hosts: patterns against this inventory (default $RUNBOOK_INVENTORY).",
)
def validate(
    paths: tuple[Path, ...], fmt: str, strict: bool, inventory: Path | None
) -> None:
    """Check runbooks and inventories (directories are searched for *.yaml / *.yml).

    Exit 0 when every file is valid, 2 otherwise.
    """
    from ..diagnostics import format_github, format_json, format_text
    from ..spec import checking

    diagnostics, counted = checking.check_paths(
        paths, strict=strict, inventory=inventory
    )
    formatter = {"text": format_text, "json": format_json, "github": format_github}[fmt]
    if diagnostics or fmt == "json":
        click.echo(formatter(diagnostics))
    errors = sum(1 for d in diagnostics if d.severity == "error")
    warnings = len(diagnostics) - errors
    if fmt == "text":
        click.echo(
            f"{counted} file(s) checked: {errors} error(s), {warnings} warning(s)",
            err=True,
        )
    if errors or (strict and warnings):
        sys.exit(ExitCode.INVALID)


@cli.command(short_help="Print a JSON schema.")
@click.argument(
    "kind", type=click.Choice(["runbook", "inventory", "report"]), default="runbook"
)
def schema(kind: str) -> None:
    """Print the JSON schema of runbooks (default), inventories or JSON reports."""
    from importlib import resources

    text = (
        resources.files("runbook_engine")
        .joinpath(f"schemas/{kind}.schema.json")
        .read_text("utf-8")
    )
    click.echo(text, nl=not text.endswith("\n"))


@cli.command(short_help="Show what would run where; change nothing.")
@click.argument("runbook", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@EXTRA_OPTION
@PARAMS_FILE_OPTION
@INVENTORY_OPTION
@LIMIT_OPTION
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["text", "markdown"]),
    default="text",
    show_default=True,
    help="markdown: a table to paste into a pull request or a job summary.",
)
@click.option(
    "--probe",
    is_flag=True,
    help="Really run the steps marked safe: true (on their hosts), so later steps"
    " render with real values; every probe is recorded in the audit log.",
)
@ACCEPT_KEYS_OPTION
@STATE_DIR_OPTION
@STATE_URL_OPTION
@AUDIT_FORWARD_OPTION
def plan(runbook: Path, fmt: str, probe: bool, **kw: Any) -> None:
    """Show what RUNBOOK would run where, rendered as far as possible. Runs
    nothing and reads no secret (no secret command runs; each secret shows as ***):
    a value that depends on a step shows as <steps.ID.FIELD>. With --probe, the
    secrets are read and the steps marked safe: true really run (audited, mode
    plan). Never use --probe on a pull request's runbooks in CI: it would run the PR
    author's commands.

    \b
    Example:
      runbook plan runbooks/release.yaml -e version=1.1.0 --format markdown
    """
    from ..engine.planning import plan_runbook
    from ..engine.planview import format_plan

    kw.update(yes=False, approve=(), forks=20)
    request = _request(runbook, kw, mode="plan")
    prepared = _prepare(request, read_values=probe)  # a plan reads no secret

    def warn(text: str) -> None:
        click.echo(f"warning: {text}", err=True)

    if not probe:
        planned = plan_runbook(prepared, warn=warn)
    else:
        with _open_store(kw["state_dir"], kw["state_url"]) as store:
            planned = plan_runbook(prepared, store=store, probe=True, warn=warn)
    click.echo(format_plan(prepared, planned, fmt))


@cli.command(short_help="Render runbooks as Markdown for review.")
@click.argument(
    "paths", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path)
)
@click.option(
    "--output",
    "-o",
    type=click.Path(path_type=Path),
    metavar="FILE|DIR",
    help="A file (one runbook) or a directory (one page each + index.md).",
)
def docs(paths: tuple[Path, ...], output: Path | None) -> None:
    """Render runbooks as Markdown for review: params, secret names, go/no-go
    checklist, steps, rollback and a Mermaid flowchart.

    \b
    Examples:
      runbook docs runbooks/release.yaml
      runbook docs runbooks/ --output docs/runbooks/
    """
    from ..spec.build import load_runbook
    from ..spec.docs import render_docs, write_docs

    if output is None:
        if len(paths) != 1 or not paths[0].is_file():
            raise InputError("runbook docs DIR needs --output DIR")
        click.echo(render_docs(load_runbook(paths[0])), nl=False)
        return
    for written in write_docs(list(paths), output):
        click.echo(f"wrote {written}", err=True)
