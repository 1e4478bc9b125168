#!/usr/bin/env python3
"""Build the example service's release artefacts from one source tree.

    python examples/service/build.py [--out DIR] [VERSION ...]

A release is `src/` (the code every release shares) with the release directories
laid over it in version order: 1.1.0 is src + releases/1.0.0 + releases/1.1.0, so
each `releases/<version>/` holds only what that release changed (VERSION,
SCHEMA_VERSION, its migrations, the modules it replaced, its tests). Each release
is written as `DIR/example-service-<version>.tar.gz` (one top-level directory
`<version>/`), and `DIR/SHA256SUMS` lists every artefact in the format of
`sha256sum -c`.

The archives are deterministic: entries sorted, mtime fixed, owner 0:0 without
names, modes 0755/0644, gzip header without name or time. The same sources give
the same bytes and the same checksums. Default DIR: examples/service/dist. Exit
codes: 0 built, 1 a release is inconsistent, 2 bad usage. Standard library only.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import io
import os
import re
import sys
import tarfile
from pathlib import Path

SERVICE_DIR = Path(__file__).resolve().parent
SOURCE = SERVICE_DIR / "src"
RELEASES = SERVICE_DIR / "releases"
SUMS = "SHA256SUMS"
MTIME = 1_767_225_600  # 2026-01-01T00:00:00Z, for every entry
_SKIPPED_PARTS = {"__pycache__", "dist", ".pytest_cache"}
_MIGRATION = re.compile(r"^(\d{4})_[a-z0-9_]+\.(up|down)\.sql$")


class BuildError(Exception):
    """A release cannot be built as it stands."""


def artefact_name(version: str) -> str:
    return f"example-service-{version}.tar.gz"


def _version_key(version: str) -> tuple[int, ...]:
    return tuple(int(part) for part in version.split("."))


def known_versions() -> list[str]:
    """Every release directory, oldest first."""
    names = [p.name for p in RELEASES.iterdir() if (p / "VERSION").is_file()]
    return sorted(names, key=_version_key)


def _files(tree: Path) -> dict[str, Path]:
    found = {}
    for path in tree.rglob("*"):
        relative = path.relative_to(tree)
        skipped = _SKIPPED_PARTS & set(relative.parts) or path.suffix == ".pyc"
        if path.is_file() and not skipped:
            found[relative.as_posix()] = path
    return found


def release_files(version: str) -> dict[str, Path]:
    """Relative path -> source file of one release: src, then each overlay."""
    known = known_versions()
    if version not in known:
        raise BuildError(f"no release {version!r} in {RELEASES} ({', '.join(known)})")
    layers = [SOURCE] + [RELEASES / v for v in known[: known.index(version) + 1]]
    files: dict[str, Path] = {}
    for layer in layers:
        files.update(_files(layer))
    _check(version, files)
    return dict(sorted(files.items()))


def _check(version: str, files: dict[str, Path]) -> None:
    declared = files["VERSION"].read_text(encoding="utf-8").strip()
    if declared != version:
        raise BuildError(f"releases/{version}/VERSION says {declared!r}")
    schema = int(files["SCHEMA_VERSION"].read_text(encoding="utf-8"))
    found: dict[int, set[str]] = {}
    for name in files:
        match = _MIGRATION.match(name.removeprefix("migrations/"))
        if name.startswith("migrations/") and match:
            found.setdefault(int(match[1]), set()).add(match[2])
    if sorted(found) != list(range(1, schema + 1)):
        raise BuildError(
            f"{version}: migrations {sorted(found)} do not match"
            f" SCHEMA_VERSION {schema}"
        )
    if any(directions != {"up", "down"} for directions in found.values()):
        raise BuildError(f"{version}: every migration needs an .up and a .down file")


def _entry(
    name: str, *, size: int = 0, mode: int = 0o644, is_dir: bool = False
) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = tarfile.DIRTYPE if is_dir else tarfile.REGTYPE
    info.size = size
    info.mode = 0o755 if is_dir else mode
    info.mtime = MTIME
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    return info


def archive_bytes(version: str) -> bytes:
    """The .tar.gz of one release, byte for byte the same on every build."""
    files = release_files(version)
    members: dict[str, Path | None] = {version: None}
    for name, path in files.items():
        parts = name.split("/")
        for depth in range(1, len(parts)):
            members["/".join([version, *parts[:depth]])] = None
        members[f"{version}/{name}"] = path
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        for name, path in sorted(members.items()):
            if path is None:
                tar.addfile(_entry(name, is_dir=True))
                continue
            data = path.read_bytes()
            mode = 0o755 if path.stat().st_mode & 0o111 else 0o644
            tar.addfile(_entry(name, size=len(data), mode=mode), io.BytesIO(data))
    packed = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=packed, mtime=0) as gz:
        gz.write(raw.getvalue())
    return packed.getvalue()


def _write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_bytes(data)
    tmp.replace(path)


def read_sums(path: Path) -> dict[str, str]:
    """file name -> sha256 hex, from a SHA256SUMS file (missing: empty)."""
    sums = {}
    if path.is_file():
        for line in path.read_text(encoding="utf-8").splitlines():
            digest, _, name = line.partition("  ")
            if name:
                sums[name.lstrip("*")] = digest
    return sums


def build(out: Path, versions: list[str]) -> dict[str, str]:
    """Write the artefacts and SHA256SUMS into `out`; file name -> sha256."""
    out.mkdir(parents=True, exist_ok=True)
    sums = read_sums(out / SUMS)
    built = {}
    for version in versions:
        data = archive_bytes(version)
        name = artefact_name(version)
        _write_atomic(out / name, data)
        built[name] = sums[name] = hashlib.sha256(data).hexdigest()
    lines = "".join(f"{digest}  {name}\n" for name, digest in sorted(sums.items()))
    _write_atomic(out / SUMS, lines.encode())
    return built


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="build.py", description="build release artefacts and SHA256SUMS"
    )
    parser.add_argument("versions", nargs="*", help="default: every release")
    parser.add_argument("--out", type=Path, default=SERVICE_DIR / "dist")
    args = parser.parse_args(argv)
    try:
        versions = args.versions or known_versions()
        built = build(args.out.absolute(), versions)
    except (BuildError, OSError, ValueError) as exc:
        print(f"build failed: {exc}", file=sys.stderr)
        return 1
    for name, digest in built.items():
        print(f"{digest}  {args.out.absolute() / name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
