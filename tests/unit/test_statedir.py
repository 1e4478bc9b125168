"""The state dir is ours alone: 0700/0600 whatever the umask, no symlinks, no FIFOs,
nobody else's files."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from runbook_engine.errors import ExitCode, StateDirError
from runbook_engine.statedir import (
    default_state_dir,
    ensure_state_dir,
    open_private_file,
)

REPO = Path(__file__).resolve().parents[2]
NOBODY = 65534


@pytest.fixture
def open_umask() -> object:
    old = os.umask(0)
    yield
    os.umask(old)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.lstat().st_mode)


def _foreign_dir(tmp_path: Path) -> Path:
    """A directory owned by another user (chown when root, else the root dir)."""
    if os.geteuid() != 0:
        return Path("/")
    path = tmp_path / "theirs"
    path.mkdir()
    os.chown(path, NOBODY, NOBODY)
    return path


def test_state_dir_env_var_wins(tmp_path: Path) -> None:
    env = {"RUNBOOK_STATE_DIR": str(tmp_path / "s"), "XDG_STATE_HOME": "/x"}
    assert default_state_dir(env) == tmp_path / "s"


def test_state_dir_follows_xdg_state_home() -> None:
    assert default_state_dir({"XDG_STATE_HOME": "/var/x"}) == Path("/var/x/runbook")


def test_state_dir_ignores_relative_xdg_and_defaults_to_home() -> None:
    expected = Path.home() / ".local/state/runbook"
    assert default_state_dir({"XDG_STATE_HOME": "rel"}) == expected
    assert default_state_dir({}) == expected


@pytest.mark.usefixtures("open_umask")
def test_state_dir_is_created_0700_under_umask_000(tmp_path: Path) -> None:
    path = ensure_state_dir(tmp_path / "a" / "state")
    assert path.is_dir()
    assert _mode(path) == 0o700


def test_existing_state_dir_with_loose_mode_is_tightened(tmp_path: Path) -> None:
    path = tmp_path / "state"
    path.mkdir()
    path.chmod(0o755)  # world-writable is refused (below)
    ensure_state_dir(path)
    assert _mode(path) == 0o700


def test_symlinked_state_dir_is_refused_with_path_and_cause(tmp_path: Path) -> None:
    real = tmp_path / "real"
    real.mkdir(mode=0o755)
    link = tmp_path / "state"
    link.symlink_to(real)
    with pytest.raises(StateDirError) as caught:
        ensure_state_dir(link)
    assert caught.value.exit_code == ExitCode.NO_GO
    assert str(link) in str(caught.value)
    assert "symlink" in str(caught.value)
    assert _mode(real) == 0o755  # not touched through the link


def test_state_dir_that_is_a_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "state"
    path.write_text("x")
    with pytest.raises(StateDirError, match="not a directory"):
        ensure_state_dir(path)


def test_state_dir_owned_by_someone_else_is_refused(tmp_path: Path) -> None:
    path = _foreign_dir(tmp_path)
    before = _mode(path)
    with pytest.raises(StateDirError, match="owned by uid") as caught:
        ensure_state_dir(path)
    assert str(path) in str(caught.value)
    assert _mode(path) == before


def test_a_shared_directory_like_tmp_is_refused_and_left_as_it_is(
    tmp_path: Path,
) -> None:
    """`--state-dir /tmp` as root must not make /tmp 0700 for everyone."""
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o1777)
    with pytest.raises(StateDirError, match="others may write to") as caught:
        ensure_state_dir(shared)
    assert caught.value.exit_code == ExitCode.NO_GO
    assert _mode(shared) == 0o1777
    ensure_state_dir(shared / "runbook")  # a directory of its own inside it: fine
    assert _mode(shared / "runbook") == 0o700


@pytest.mark.usefixtures("open_umask")
def test_private_file_is_created_0600_under_umask_000(tmp_path: Path) -> None:
    path = tmp_path / "f"
    os.close(open_private_file(path, os.O_WRONLY | os.O_CREAT, append=True))
    assert _mode(path) == 0o600


def test_existing_private_file_with_loose_mode_is_tightened(tmp_path: Path) -> None:
    path = tmp_path / "f"
    path.write_text("x")
    path.chmod(0o644)
    os.close(open_private_file(path, os.O_RDONLY))
    assert _mode(path) == 0o600


def test_private_file_symlink_is_refused(tmp_path: Path) -> None:
    target = tmp_path / "target"
    target.write_text("")
    link = tmp_path / "f"
    link.symlink_to(target)
    with pytest.raises(StateDirError, match="symlink"):
        open_private_file(link, os.O_WRONLY | os.O_APPEND)


def test_private_file_that_is_a_directory_is_refused(tmp_path: Path) -> None:
    with pytest.raises(StateDirError, match="a directory"):
        open_private_file(tmp_path, os.O_RDONLY)


def test_private_file_owned_by_someone_else_is_refused(tmp_path: Path) -> None:
    path = Path("/etc/passwd")
    if os.geteuid() == 0:
        path = tmp_path / "f"
        path.write_text("x")
        os.chown(path, NOBODY, NOBODY)
    with pytest.raises(StateDirError, match="owned by uid"):
        open_private_file(path, os.O_RDONLY)
    # Reading someone else's file is allowed when asked for explicitly.
    os.close(open_private_file(path, os.O_RDONLY, owner_only=False))


@pytest.mark.parametrize("flags", ["os.O_WRONLY | os.O_APPEND", "os.O_RDONLY"])
def test_fifo_is_refused_without_hanging(tmp_path: Path, flags: str) -> None:
    fifo = tmp_path / "f"
    os.mkfifo(fifo)
    code = (
        "import os, sys\n"
        "from pathlib import Path\n"
        "from runbook_engine.statedir import open_private_file\n"
        "from runbook_engine.errors import StateDirError\n"
        "try:\n"
        f"    open_private_file(Path(sys.argv[1]), {flags})\n"
        "except StateDirError as exc:\n"
        "    print(exc)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, str(fifo)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=20,
        check=True,
    )
    assert "FIFO" in done.stdout
    assert str(fifo) in done.stdout
