"""Where a scenario writes its files, with the sizes and (if started) the fleet."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pathlib import Path

    from bench.fleet import Fleet
    from bench.model import Sizes


@dataclass(frozen=True, slots=True, kw_only=True)
class Workspace:
    root: Path
    sizes: Sizes
    fleet: Fleet | None

    def directory(self, scenario: str) -> Path:
        path = self.root / "scenarios" / scenario
        path.mkdir(parents=True, exist_ok=True)
        return path

    def require_fleet(self) -> Fleet:
        if self.fleet is None:
            raise RuntimeError("this scenario needs sshd, but no fleet was started")
        return self.fleet
