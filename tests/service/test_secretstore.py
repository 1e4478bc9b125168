"""examples/secretstore.py, the file-backed stand-in for Vault/pass/sops, through
its CLI: values in on stdin and out on stdout, 0600 files in a 0700 directory,
refusals for anything others could read, and the exit codes runbooks rely on."""

from __future__ import annotations

import os
import subprocess
import sys
from typing import TYPE_CHECKING

from tests.service.deployment import SERVICE_DIR

if TYPE_CHECKING:
    from pathlib import Path

STORE = SERVICE_DIR.parent / "secretstore.py"
VALUE = "s3cret-value-with spaces and ünïcode"


def store(
    directory: Path, *args: str, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "SECRET_STORE_DIR"}
    env["SECRET_STORE_DIR"] = str(directory)
    return subprocess.run(
        [sys.executable, str(STORE), *args],
        input=stdin, capture_output=True, text=True, env=env, timeout=30, check=False,
    )  # fmt: skip


def test_put_get_list_delete(tmp_path: Path) -> None:
    directory = tmp_path / "store"
    missing = store(directory, "get", "jwt_secret")
    assert (missing.returncode, missing.stdout) == (3, "")
    assert "no secret jwt_secret" in missing.stderr
    assert not directory.exists()  # reading never creates the store
    put = store(directory, "put", "jwt_secret", stdin=VALUE + "\n")
    assert (put.returncode, put.stdout) == (0, "stored jwt_secret\n")
    assert VALUE not in put.stdout + put.stderr
    assert directory.stat().st_mode & 0o777 == 0o700
    assert (directory / "jwt_secret").stat().st_mode & 0o777 == 0o600
    got = store(directory, "get", "jwt_secret")
    assert (got.returncode, got.stdout) == (
        0,
        VALUE + "\n",
    )  # one newline stripped, one added
    store(directory, "put", "b.name", stdin="x" * 40)
    assert store(directory, "list").stdout.split() == ["b.name", "jwt_secret"]
    assert store(directory, "delete", "jwt_secret").stdout == "deleted jwt_secret\n"
    assert store(directory, "delete", "jwt_secret").stdout == "absent jwt_secret\n"
    assert store(directory, "get", "jwt_secret").returncode == 3
    assert [p.name for p in directory.iterdir()] == ["b.name"]  # no temp file left


def test_refuses_what_others_could_read_or_bad_input(tmp_path: Path) -> None:
    directory = tmp_path / "store"
    store(directory, "put", "key", stdin="value-1234")
    directory.chmod(0o755)
    open_dir = store(directory, "get", "key")
    assert open_dir.returncode == 1 and "chmod 700" in open_dir.stderr
    directory.chmod(0o700)
    (directory / "key").chmod(0o644)
    open_file = store(directory, "get", "key")
    assert open_file.returncode == 1 and "chmod 600" in open_file.stderr
    assert "value-1234" not in open_file.stdout + open_file.stderr
    (directory / "key").chmod(0o600)
    (directory / "link").symlink_to(directory / "key")
    assert "symlink" in store(directory, "get", "link").stderr
    for name in ("../escape", "a/b", ".hidden", ""):
        bad = store(directory, "get", name)
        assert bad.returncode == 2 and "Traceback" not in bad.stderr, name
    empty = store(directory, "put", "key", stdin="")
    assert empty.returncode == 2 and "empty" in empty.stderr
    assert store(directory, "get", "key").stdout == "value-1234\n"


def test_generate_prints_256_random_bits_and_stores_nothing(tmp_path: Path) -> None:
    directory = tmp_path / "store"
    first = store(directory, "generate").stdout.strip()
    second = store(directory, "generate").stdout.strip()
    assert len(first) == 64 and int(first, 16) >= 0 and first != second
    assert len(store(directory, "generate", "--bytes", "16").stdout.strip()) == 32
    assert store(directory, "generate", "--bytes", "4").returncode == 2
    assert not directory.exists()
