"""Load a runbook file into the model: YAML -> schema -> semantic checks -> model,
with includes loaded the same way and expanded in place.

Raises ``InputError`` carrying every diagnostic of every file involved.
"""

from __future__ import annotations

import hashlib
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..diagnostics import Diagnostic
from ..errors import InputError
from ..secrets import SecretSource
from ..units import parse_duration
from .loader import Document, read_yaml
from .model import (
    DEFAULT_TIMEOUT,
    IncludeAction,
    OnFailure,
    Phase,
    Runbook,
    Scope,
    Step,
    parse_action,
    parse_param,
    parse_retries,
    parse_serial,
    parse_undo,
)
from .schema import validate_document
from .validate import check_document

if TYPE_CHECKING:
    from collections.abc import Mapping

# phases of an included runbook that are expanded in place of the include step
_INCLUDED_PHASES = ("preconditions", "steps")
_MAX_INCLUDE_DEPTH = 8
_SHAPE = "a runbook is a mapping with version, name and steps"


def load_runbook(path: str | Path) -> Runbook:
    builder = _Builder()
    runbook = builder.build_root(Path(path))
    errors = [d for d in builder.diagnostics if d.severity == "error"]
    if errors or runbook is None:
        raise InputError(f"{path}: invalid runbook", builder.diagnostics)
    return runbook


def check_runbook(path: str | Path, doc: Document | None = None) -> list[Diagnostic]:
    """Every diagnostic for one runbook file (and its includes); [] when valid.
    ``doc`` is the file already loaded, if the caller has it."""
    builder = _Builder()
    builder.build_root(Path(path), doc)
    return builder.diagnostics


class _Builder:
    def __init__(self) -> None:
        self.diagnostics: list[Diagnostic] = []
        self.secrets: dict[str, SecretSource] = {}
        self.secret_origin: dict[str, str] = {}
        self.includes: list[str] = []

    def _load(
        self, path: Path, stack: tuple[Path, ...], doc: Document | None = None
    ) -> Document | None:
        """Read and check one file; the document when it is sound enough to build.
        Every check runs on what is sound: a schema problem does not hide the
        semantic ones, and the includes of a broken file are still checked."""
        try:
            doc = doc or read_yaml(path, shape=_SHAPE)
        except InputError as exc:
            self.diagnostics.extend(
                exc.diagnostics or [Diagnostic(str(path), 1, 1, str(exc))]
            )
            return None
        problems = _merge(list(doc.problems), validate_document(doc, "runbook"))
        semantic = check_document(doc.data, doc.positions, doc.text)
        found = _merge(problems, semantic)
        self.diagnostics.extend(sorted(found, key=lambda d: (d.line, d.col)))
        if problems:
            self._check_includes_only(doc, stack)
            return None
        return doc

    def _check_includes_only(self, doc: Document, stack: tuple[Path, ...]) -> None:
        """The files a broken runbook includes, checked on their own."""
        for phase in Phase:
            steps = doc.data.get(phase.value)
            for index, raw in enumerate(steps if isinstance(steps, list) else []):
                if isinstance(raw, dict) and isinstance(raw.get("include"), str):
                    target = self._include_target(doc, phase, index, raw, stack)
                    if target is not None:
                        self._load(target, (*stack, target))

    def build_root(
        self, path: Path, preloaded: Document | None = None
    ) -> Runbook | None:
        doc = self._load(path, (path.resolve(),), preloaded)
        if doc is None:
            return None
        data = doc.data
        scope = _scope(doc, prefix="", with_={}, parent=None)
        phases = self._phases(doc, scope, stack=(path.resolve(),))
        if phases is None:
            return None
        hosts = data.get("hosts", "local")
        return Runbook(
            name=data["name"],
            description=data.get("description"),
            path=str(path),
            sha256=hashlib.sha256(doc.text.encode("utf-8")).hexdigest(),
            params=scope.params,
            secrets=dict(self.secrets),
            vars=dict(data.get("vars") or {}),
            hosts=hosts if isinstance(hosts, str) else tuple(hosts),
            lock=data.get("lock"),
            serial=parse_serial(data.get("serial")),
            max_fail_percentage=float(data.get("max_fail_percentage", 0)),
            on_failure=OnFailure(data.get("on_failure", "rollback")),
            phases=phases,
            scope=scope,
            includes=tuple(self.includes),
        )

    def _phases(
        self, doc: Document, scope: Scope, stack: tuple[Path, ...]
    ) -> dict[Phase, tuple[Step, ...]] | None:
        self._collect_secrets(doc)
        phases: dict[Phase, tuple[Step, ...]] = {}
        ok = True
        for phase in Phase:
            steps: list[Step] = []
            for index, raw in enumerate(doc.data.get(phase.value) or []):
                if "include" in raw:
                    expanded = self._include(doc, phase, index, raw, scope, stack)
                    ok = ok and expanded is not None
                    steps.extend(expanded or ())
                else:
                    steps.append(_step(doc, phase, index, raw, scope))
            phases[phase] = tuple(steps)
        return phases if ok else None

    def _include(
        self,
        doc: Document,
        phase: Phase,
        index: int,
        raw: Mapping[str, Any],
        scope: Scope,
        stack: tuple[Path, ...],
    ) -> list[Step] | None:
        action = parse_action(raw)
        assert isinstance(action, IncludeAction)
        target = self._include_target(doc, phase, index, raw, stack)
        if target is None:
            return None
        child = self._load(target, (*stack, target))
        if child is None:
            return None
        self.includes.append(str(target))
        child_scope = _scope(
            child,
            prefix=f"{scope.prefix}{raw['id']}.",
            with_=action.with_,
            parent=scope,
        )
        self._check_with(doc, phase, index, action, child_scope)
        phases = self._phases(child, child_scope, (*stack, target))
        if phases is None:
            return None
        return [
            _replace_phase(step, phase)
            for name in _INCLUDED_PHASES
            for step in phases[Phase(name)]
        ]

    def _include_target(
        self,
        doc: Document,
        phase: Phase,
        index: int,
        raw: Mapping[str, Any],
        stack: tuple[Path, ...],
    ) -> Path | None:
        """The included file, or None (and a diagnostic) when it is missing or
        would make a cycle."""
        written = str(raw["include"])
        target: Path = (Path(doc.path).parent / written).resolve()
        pos = doc.positions.value((phase.value, index, "include"))
        where = f"step {raw.get('id')!r}"
        if not target.is_file():
            self.diagnostics.append(
                Diagnostic.at(pos, f"{where}: included file {written!r} does not exist")
            )
            return None
        if target in stack or len(stack) >= _MAX_INCLUDE_DEPTH:
            chain = " -> ".join(p.name for p in (*stack, target))
            self.diagnostics.append(
                Diagnostic.at(pos, f"{where}: include cycle: {chain}")
            )
            return None
        return target

    def _check_with(
        self,
        doc: Document,
        phase: Phase,
        index: int,
        action: IncludeAction,
        scope: Scope,
    ) -> None:
        for name in action.with_:
            if name not in scope.params:
                pos = doc.positions.key((phase.value, index, "with", name))
                self.diagnostics.append(
                    Diagnostic.at(pos, f"include {action.path!r} has no param {name!r}")
                )
        for name, decl in scope.params.items():
            if decl.required and not decl.has_default and name not in action.with_:
                pos = doc.positions.value((phase.value, index, "include"))
                self.diagnostics.append(
                    Diagnostic.at(
                        pos, f"include {action.path!r} needs param {name!r} in `with`"
                    )
                )

    def _collect_secrets(self, doc: Document) -> None:
        for name, spec in (doc.data.get("secrets") or {}).items():
            command = spec.get("command")
            source = SecretSource(
                name=name,
                env=spec.get("env"),
                file=spec.get("file"),
                command=None if command is None else tuple(command),
                optional=bool(spec.get("optional", False)),
                cwd=str(Path(doc.path).resolve().parent),
            )
            known = self.secrets.get(name)
            if known is not None and known != source:
                pos = doc.positions.key(("secrets", name))
                self.diagnostics.append(
                    Diagnostic.at(
                        pos,
                        f"secret {name!r} is declared differently in"
                        f" {self.secret_origin[name]}",
                    )
                )
                continue
            self.secrets[name] = source
            self.secret_origin[name] = doc.path


def _scope(
    doc: Document, *, prefix: str, with_: Mapping[str, Any], parent: Scope | None
) -> Scope:
    data = doc.data
    inherited = DEFAULT_TIMEOUT if parent is None else parent.timeout
    timeout = data.get("timeout")
    return Scope(
        prefix=prefix,
        runbook_name=data["name"],
        path=doc.path,
        params={n: parse_param(n, p) for n, p in (data.get("params") or {}).items()},
        vars=dict(data.get("vars") or {}),
        with_=dict(with_),
        parent=parent,
        timeout=inherited if timeout is None else parse_duration(timeout),
    )


def _step(
    doc: Document, phase: Phase, index: int, raw: Mapping[str, Any], scope: Scope
) -> Step:
    timeout = raw.get("timeout")
    step_timeout = scope.timeout if timeout is None else parse_duration(timeout)
    on_failure = raw.get("on_failure")
    return Step(
        id=f"{scope.prefix}{raw['id']}",
        local_id=raw["id"],
        name=raw.get("name"),
        description=raw.get("description"),
        action=parse_action(raw),
        when=_condition(raw.get("when")),
        local=bool(raw.get("local", False)),
        run_once=bool(raw.get("run_once", False)),
        env=dict(raw.get("env") or {}),
        cwd=raw.get("cwd"),
        timeout=step_timeout,
        retries=parse_retries(raw.get("retries")),
        undo=parse_undo(raw.get("undo"), default_timeout=step_timeout),
        undo_on_failure=bool(raw.get("undo_on_failure", False)),
        on_failure=None if on_failure is None else OnFailure(on_failure),
        ignore_errors=bool(raw.get("ignore_errors", False)),
        failed_when=_condition(raw.get("failed_when")),
        changed_when=_condition(raw.get("changed_when")),
        safe=bool(raw.get("safe", False)),
        phase=phase,
        pos=doc.positions.value((phase.value, index)),
        scope=scope,
    )


def _condition(value: str | bool | None) -> str | None:
    """``changed_when: false`` is the expression ``false``."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return value


def _replace_phase(step: Step, phase: Phase) -> Step:
    return replace(step, phase=phase)


def _merge(first: list[Diagnostic], later: list[Diagnostic]) -> list[Diagnostic]:
    """``first`` and the diagnostics of ``later`` at places ``first`` does not
    already explain (one message per place: a key the loader dropped is not also
    "unknown"), without repeats."""
    taken = {(d.line, d.col) for d in first}
    kept = [d for d in later if (d.line, d.col) not in taken]
    return list(dict.fromkeys([*first, *kept]))
