"""A three-step runbook whose steps and undos log what they do to ``tmp_path/log``:
what the rollback, resume and backend tests read to see what ran, in which order."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pathlib import Path

    from tests.conftest import Result


def saga_runbook(
    tmp_path: Path,
    *,
    name: str = "release",
    lock: str = "app",
    fail: bool = False,
    slow: bool = False,
    checked: bool = False,
) -> str:
    """``slow``: step two waits for ``tmp_path/go``; ``fail``: step three exits 3;
    ``checked``: a precondition (drills compare it)."""
    log = tmp_path / "log"
    middle = (
        f"while [ ! -e {tmp_path}/go ]; do sleep 0.1; done; echo do-two >> {log}"
        if slow
        else f"echo do-two >> {log}"
    )
    gate = (
        f"preconditions:\n          - id: writable\n            run: test -w {tmp_path}"
        if checked
        else ""
    )
    return f"""
        version: 1
        name: {name}
        lock: {lock}
        params:
          tag: {{type: string, default: a}}
        {gate}
        steps:
          - id: one
            run: echo do-one-{{{{ params.tag }}}} >> {log}
            undo: echo undo-one-{{{{ params.tag }}}} >> {log}
          - id: two
            run: {middle}
            undo: echo undo-two >> {log}
          - id: three
            run: {"exit 3" if fail else f"echo do-three >> {log}"}
            undo: echo undo-three >> {log}
    """


def logged(tmp_path: Path) -> list[str]:
    path = tmp_path / "log"
    return path.read_text().split() if path.exists() else []


def run_id_of(result: Result) -> str:
    """The run id a run prints on its first line."""
    return result.stderr.split(", run ", 1)[1].split(")", 1)[0]
