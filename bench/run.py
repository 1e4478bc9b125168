"""Entry point: ``python bench/run.py [--quick|--smoke] [--only NAME] [--reps N]``.

Starts the sshd fleet the chosen scenarios need, runs every scenario for every tool
(alternating, several repetitions), prints a Markdown table to stdout (progress goes
to stderr) and writes the JSON results. Every process it started is stopped on the
way out, also on Ctrl-C and SIGTERM. It installs nothing: the peers come from the
``bench`` extra (``pip install -e '.[bench]'``).
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
from dataclasses import asdict
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:  # ``python bench/run.py`` puts bench/ first, not /
    sys.path.insert(0, str(REPO_ROOT))

from bench import report  # noqa: E402
from bench.model import FULL, QUICK, SMOKE, Sizes  # noqa: E402
from bench.runner import run_scenario  # noqa: E402
from bench.scenarios import all_specs, select_specs  # noqa: E402
from bench.scenarios.workspace import Workspace  # noqa: E402
from bench.targets import check_lines, check_targets  # noqa: E402
from bench.tools import ansible  # noqa: E402

if TYPE_CHECKING:
    from bench.fleet import Fleet
    from bench.model import ScenarioResult
    from bench.scenarios import ScenarioSpec
    from tests.support.postgres import PostgresServer

DEFAULT_JSON = REPO_ROOT / "bench" / "results" / "latest.json"
SMOKE_JSON = REPO_ROOT / "bench" / "results" / "smoke.json"
TOOLS = ("runbook", "ansible", "ansible-raw", "pyinfra", "floor")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python bench/run.py", description=__doc__.splitlines()[0]
    )
    size = parser.add_mutually_exclusive_group()
    size.add_argument("--quick", action="store_true", help="smaller sizes, 2 reps")
    size.add_argument(
        "--smoke",
        action="store_true",
        help="tiny sizes, 1 rep, runbook and floors only",
    )
    parser.add_argument(
        "--only", action="append", default=[], metavar="SCENARIO",
        help="scenario name prefix, repeatable or comma-separated (e.g. local,fanout)",
    )  # fmt: skip
    parser.add_argument(
        "--tools", default="", help=f"comma-separated subset of {','.join(TOOLS)}"
    )
    parser.add_argument("--reps", type=int, help="repetitions (default 5, --quick 2)")
    parser.add_argument(
        "--json", type=Path, help=f"results file (default {DEFAULT_JSON})"
    )
    parser.add_argument("--list", action="store_true", help="list scenarios and exit")
    parser.add_argument(
        "--show", type=Path, metavar="JSON", help="print the table of a results file"
    )
    return parser


def _settings(args: argparse.Namespace) -> tuple[Sizes, int, set[str], Path]:
    sizes, reps = (SMOKE, 1) if args.smoke else (QUICK, 2) if args.quick else (FULL, 5)
    tools = {t for t in args.tools.split(",") if t} or (
        {"runbook", "floor"} if args.smoke else set()
    )
    unknown = tools - set(TOOLS)
    if unknown:
        raise SystemExit(f"unknown tool(s): {', '.join(sorted(unknown))}")
    default_json = SMOKE_JSON if args.smoke else DEFAULT_JSON
    return sizes, args.reps or reps, tools, args.json or default_json


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.show:
        return _show(args.show)
    sizes, reps, tools, json_path = _settings(args)
    only = [name for item in args.only for name in item.split(",") if name]
    try:
        specs = select_specs(all_specs(sizes), only)
    except ValueError as exc:
        raise SystemExit(str(exc)) from exc
    if args.list:
        print("\n".join(f"{s.name} (sshd: {s.hosts})" for s in specs))
        return 0
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    _raise_open_files_limit()
    started = dt.datetime.now(dt.UTC)
    results = _run_all(specs, sizes, reps, tools)
    meta = _meta(started, sizes, reps, tools, only)
    checks = check_targets(results, sizes)
    print("\n".join(report.table_lines(results)))
    print("\n" + "\n".join(check_lines(checks)))
    document = report.to_json(results, meta)
    document["targets"] = [asdict(check) for check in checks]
    report.write_json(json_path, document)
    print(f"\nresults: {json_path}", file=sys.stderr)
    return 0


def _show(path: Path) -> int:
    results, meta = report.read_json(path)
    sizes = Sizes(**{k: _as_tuples(v) for k, v in meta["sizes"].items()})
    print("\n".join(report.table_lines(results)))
    print("\n" + "\n".join(check_lines(check_targets(results, sizes))))
    return 0


def _as_tuples(value: Any) -> Any:
    return tuple(map(_as_tuples, value)) if isinstance(value, list) else value


def _run_all(
    specs: list[ScenarioSpec], sizes: Sizes, reps: int, tools: set[str]
) -> list[ScenarioResult]:
    root = Path(
        tempfile.mkdtemp(prefix="rbb-")
    )  # short: ansible's ControlPath lives here
    fleet: Fleet | None = None
    postgres: PostgresServer | None = None
    try:
        hosts = max((s.hosts for s in specs), default=0)
        fleet = _start_fleet(hosts, root) if hosts else None
        postgres = _start_postgres() if any(s.postgres for s in specs) else None
        workspace = Workspace(root=root, sizes=sizes, fleet=fleet, postgres=postgres)
        scratch = root / "runs"
        scratch.mkdir()
        return [
            run_scenario(spec.build(workspace), reps=reps, tools=tools, scratch=scratch)
            for spec in specs
        ]
    finally:
        ansible.stop_control_masters(root)
        if fleet is not None:
            fleet.stop()
        if postgres is not None:
            postgres.stop()
        shutil.rmtree(root, ignore_errors=True)


def _start_fleet(hosts: int, root: Path) -> Fleet:
    from bench.fleet import start_fleet  # needs tests/support only when SSH is used

    print(f"starting {hosts} sshd on 127.0.0.1", file=sys.stderr, flush=True)
    return start_fleet(hosts, root / "fleet")


def _start_postgres() -> PostgresServer:
    from tests.support.postgres import PostgresServer

    print("starting PostgreSQL (fsync on)", file=sys.stderr, flush=True)
    return PostgresServer(durable=True).start()


def _raise_open_files_limit() -> None:
    """Soft limit up to the hard one: 500 connections need a few thousand files,
    and the sshd and the measured commands inherit the limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def _exit_on_sigterm(signum: int, _frame: object) -> None:
    raise SystemExit(128 + signum)  # unwinds through the finally blocks


def _meta(
    started: dt.datetime, sizes: Sizes, reps: int, tools: set[str], only: list[str]
) -> dict[str, Any]:
    return {
        "started_utc": started.isoformat(timespec="seconds"),
        "finished_utc": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "reps": reps,
        "tools": sorted(tools) or list(TOOLS),
        "only": only,
        "sizes": {k: getattr(sizes, k) for k in sizes.__dataclass_fields__},
        "machine": {
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
            "cpu_model": _cpu_model(),
            "python": platform.python_version(),
            "openssh": _openssh_version(),
        },
        "versions": {name: _version(name) for name in _PACKAGES},
    }


_PACKAGES = ("runbook-engine", "ansible-core", "pyinfra", "paramiko", "psycopg")


def _version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def _cpu_model() -> str | None:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return None


def _openssh_version() -> str | None:
    try:
        out = subprocess.run(["ssh", "-V"], capture_output=True, text=True, check=False)
    except OSError:
        return None
    return (out.stderr or out.stdout).strip() or None


if __name__ == "__main__":
    sys.exit(main())
