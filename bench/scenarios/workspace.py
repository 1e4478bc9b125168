"""Where a scenario writes its files, with the sizes and (if started) the fleet and
the PostgreSQL server."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pathlib import Path

    from bench.fleet import Fleet
    from bench.model import Sizes
    from tests.support.postgres import PostgresServer


@dataclass(frozen=True, slots=True, kw_only=True)
class Workspace:
    root: Path
    sizes: Sizes
    fleet: Fleet | None
    postgres: PostgresServer | None = None

    def directory(self, scenario: str) -> Path:
        path = self.root / "scenarios" / scenario
        path.mkdir(parents=True, exist_ok=True)
        return path

    def require_fleet(self) -> Fleet:
        if self.fleet is None:
            raise RuntimeError("this scenario needs sshd, but no fleet was started")
        return self.fleet

    def require_postgres(self) -> PostgresServer:
        if self.postgres is None:
            raise RuntimeError("this scenario needs PostgreSQL, but none was started")
        return self.postgres
