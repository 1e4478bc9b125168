"""Where a run keeps its state, and how files in it are opened safely.

Owns the state dir's location (``$RUNBOOK_STATE_DIR``, else
``${XDG_STATE_HOME:-~/.local/state}/runbook``), its creation with mode 0700 whatever
the umask, and ``open_private_file``: the one way to open a file in it (no symlinks,
no FIFOs or devices, no files owned by someone else, mode 0600). What goes into the
files (audit records, locks, run state) belongs to their own modules.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import TYPE_CHECKING

from .errors import StateDirError

if TYPE_CHECKING:
    from collections.abc import Mapping

DIR_MODE = 0o700
FILE_MODE = 0o600


def default_state_dir(environ: Mapping[str, str] | None = None) -> Path:
    """``$RUNBOOK_STATE_DIR``, else ``$XDG_STATE_HOME/runbook`` (an absolute
    ``XDG_STATE_HOME`` only, as the XDG spec says), else ``~/.local/state/runbook``."""
    env = os.environ if environ is None else environ
    explicit = env.get("RUNBOOK_STATE_DIR", "")
    if explicit:
        return Path(explicit).expanduser()
    xdg = env.get("XDG_STATE_HOME", "")
    if xdg and Path(xdg).is_absolute():
        return Path(xdg) / "runbook"
    return Path.home() / ".local" / "state" / "runbook"


def ensure_state_dir(path: Path) -> Path:
    """Create ``path`` (and missing parents) so that it is a directory of ours with
    mode 0700, tightening the mode of an existing one. Refuses, with
    ``StateDirError`` naming the path and the cause, a symlink, something that is
    not a directory, or a directory owned by another user. Returns ``path``."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        _make_dir(path)
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError as exc:
        raise StateDirError(_dir_refusal(path, exc)) from exc
    try:
        _check_owned_dir(path, fd)
    finally:
        os.close(fd)
    return path


def open_private_file(
    path: Path, flags: int, *, owner_only: bool = True, append: bool = False
) -> int:
    """Open ``path`` without following a symlink and return the file descriptor.

    ``flags`` are ``os.O_*`` access/creation flags; ``O_NOFOLLOW`` and
    ``O_CLOEXEC`` are always added, ``O_APPEND`` when ``append``. A file we create
    gets mode 0600 whatever the umask; an existing one of ours that is looser is
    tightened. A FIFO, device, directory, or (with ``owner_only``) a file owned by
    another user is refused with ``StateDirError``. FIFOs are opened non-blocking, so
    a FIFO planted at ``path`` never hangs us."""
    flags |= os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK
    if append:
        flags |= os.O_APPEND
    try:
        fd = os.open(path, flags, FILE_MODE)
    except OSError as exc:
        raise StateDirError(_file_refusal(path, exc)) from exc
    try:
        _check_private_file(path, fd, owner_only=owner_only)
        os.set_blocking(fd, True)
    except BaseException:
        os.close(fd)
        raise
    return fd


def _make_dir(path: Path) -> None:
    try:
        path.mkdir(mode=DIR_MODE)
    except FileExistsError:
        return
    # mkdir's mode is filtered by the umask; chmod is not.
    path.chmod(DIR_MODE, follow_symlinks=False)


def _check_owned_dir(path: Path, fd: int) -> None:
    info = os.fstat(fd)
    if info.st_uid != os.geteuid():
        raise StateDirError(
            f"state dir {path}: owned by uid {info.st_uid}, not by us "
            f"(uid {os.geteuid()}); refusing to use it (choose another with "
            "--state-dir or RUNBOOK_STATE_DIR)"
        )
    mode = stat.S_IMODE(info.st_mode)
    if mode & (stat.S_IWOTH | stat.S_ISVTX):  # /tmp, a shared drop directory
        raise StateDirError(
            f"state dir {path}: a directory others may write to (mode {mode:o});"
            " runbook would make it private (0700) and lock them out: give a"
            " directory of its own, e.g. a new one inside it"
        )
    if mode != DIR_MODE:  # our own directory, as the umask left it: made private
        try:
            os.fchmod(fd, DIR_MODE)
        except OSError as exc:
            raise StateDirError(_dir_refusal(path, exc)) from exc


def _check_private_file(path: Path, fd: int, *, owner_only: bool) -> None:
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode):
        raise StateDirError(
            f"{path}: not a regular file ({_kind(info.st_mode)}); refusing to use it"
        )
    if owner_only and info.st_uid != os.geteuid():
        raise StateDirError(
            f"{path}: owned by uid {info.st_uid}, not by us (uid {os.geteuid()}); "
            "refusing to use it"
        )
    if owner_only and stat.S_IMODE(info.st_mode) & ~FILE_MODE:
        try:
            os.fchmod(fd, FILE_MODE)
        except OSError as exc:
            raise StateDirError(_file_refusal(path, exc)) from exc


def _dir_refusal(path: Path, exc: OSError) -> str:
    if path.is_symlink():
        return f"state dir {path}: is a symlink; refusing to follow it"
    if path.exists() and not path.is_dir():
        return f"state dir {path}: exists and is not a directory"
    return f"state dir {path}: {exc.strerror or exc}"


def _file_refusal(path: Path, exc: OSError) -> str:
    try:
        mode = os.lstat(path).st_mode
    except OSError:
        return f"{path}: cannot open: {exc.strerror or exc}"
    if stat.S_ISLNK(mode):
        return f"{path}: is a symlink; refusing to follow it"
    if not stat.S_ISREG(mode):
        return f"{path}: not a regular file ({_kind(mode)}); refusing to use it"
    return f"{path}: cannot open: {exc.strerror or exc}"


def _kind(mode: int) -> str:
    kinds = {
        stat.S_ISFIFO: "a FIFO",
        stat.S_ISDIR: "a directory",
        stat.S_ISCHR: "a character device",
        stat.S_ISBLK: "a block device",
        stat.S_ISSOCK: "a socket",
    }
    for check, name in kinds.items():
        if check(mode):
            return name
    return "not a regular file"
