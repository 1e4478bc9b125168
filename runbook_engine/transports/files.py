"""Moving whole files to and from a host: the ``FileTransfer`` contract, its rules,
and the local implementation.

The rules live here once, in ``FileTransfer``'s three public methods, built on a
handful of primitives each implementation provides (stat, read, chmod, replace,
unlink). Implementations: ``LocalFiles`` below (``"local"``), and over SSH
``ssh_files.SFTPFiles`` (``"sftp"``) and ``ssh_files.ExecFiles`` (``"exec"``, for
servers without the SFTP subsystem).

- ``write_file(path, data, mode)``: nothing is written when content and mode are
  already so (``changed=False``); only the mode is changed when only the mode
  differs; otherwise the bytes go to a temp file in the destination directory,
  created with mode 0600 before any byte lands (the content may be secret), which
  is then given its final mode and renamed over ``path`` (atomic: a reader sees
  the old file or the new one, never half of one). The final mode is ``mode`` when
  given, else the existing file's, else 0644. On failure the temp file is removed.
  A destination that exists but is not a regular file is refused before anything is
  sent. Symlinks are followed for the comparison and replaced by the rename.
- ``read_file(path)``: the content and mode, None when absent, ``OSError`` for
  something that is not a regular file.
- ``remove_file(path)``: True when something was removed; a directory is refused.

Relative paths are resolved by each implementation (over SSH: against the remote
``$HOME``; locally: against the working directory). Filesystem errors are
``OSError`` whose message names the host and the path; a dropped connection is
``errors.ConnectionLostError``. Knows nothing of runbooks or steps.
"""

from __future__ import annotations

import abc
import contextlib
import errno
import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from collections.abc import Iterator

DEFAULT_MODE = 0o644
TEMP_MODE = 0o600
Unlinked = Literal["removed", "absent", "directory"]


@dataclass(frozen=True, slots=True, kw_only=True)
class WriteResult:
    """``changed``: content or mode differed (and now do not); ``method``: how the
    file travelled, ``"sftp"``, ``"exec"`` or ``"local"``."""

    changed: bool
    method: str


@dataclass(frozen=True, slots=True, kw_only=True)
class RemoteFile:
    data: bytes
    mode: int  # permission bits, as ``stat.S_IMODE`` gives them


@dataclass(frozen=True, slots=True, kw_only=True)
class FileStat:
    """What a primitive ``stat`` found at a path (symlinks followed)."""

    regular: bool
    directory: bool
    mode: int
    size: int


def temp_name(target: str) -> str:
    """A fresh temp file name beside ``target`` (same directory, so the final
    rename stays on one filesystem and is atomic)."""
    directory, _, name = target.rpartition("/")
    return f"{directory}/.{name}.runbook-{os.urandom(4).hex()}.tmp"


class FileTransfer(abc.ABC):
    """Whole-file transfer to one host. ``where`` names the host in messages."""

    method: str
    where: str

    def write_file(self, path: str, data: bytes, mode: int | None) -> WriteResult:
        target = self._resolve(path)
        current = self._regular(target, "writing")
        with self._errors(target, "writing"):
            if current is not None and self._same(target, current, data):
                if mode is None or mode == current.mode:
                    return WriteResult(changed=False, method=self.method)
                self._chmod(target, mode)
                return WriteResult(changed=True, method=self.method)
            final = mode if mode is not None else (current or _NEW).mode
            self._replace(target, data, final)
        return WriteResult(changed=True, method=self.method)

    def read_file(self, path: str) -> RemoteFile | None:
        target = self._resolve(path)
        current = self._regular(target, "reading")
        if current is None:
            return None
        with self._errors(target, "reading"):
            data = self._read(target, current.size)
        return RemoteFile(data=data, mode=current.mode)

    def remove_file(self, path: str) -> bool:
        target = self._resolve(path)
        with self._errors(target, "removing"):
            found = self._unlink(target)
        if found == "directory":
            raise self.os_error(errno.EISDIR, target)
        return found == "removed"

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release what the transfer holds (an SFTP session)."""

    def _regular(self, target: str, doing: str) -> FileStat | None:
        """What is at ``target``: None, or a regular file (else ``OSError``)."""
        with self._errors(target, doing):
            current = self._stat(target)
        if current is not None and not current.regular:
            raise self._not_regular(target, current)
        return current

    def _same(self, target: str, current: FileStat, data: bytes) -> bool:
        return current.size == len(data) and self._read(target, current.size) == data

    def _not_regular(self, target: str, current: FileStat) -> OSError:
        if current.directory:
            return self.os_error(errno.EISDIR, target)
        return OSError(errno.EINVAL, f"{self.where}: {target}: not a regular file")

    def os_error(self, code: int, target: str, reason: str | None = None) -> OSError:
        """``OSError`` of the errno's own class, naming the host and the path."""
        return OSError(code, f"{self.where}: {target}: {reason or os.strerror(code)}")

    # -- primitives ---------------------------------------------------------------
    @abc.abstractmethod
    def _resolve(self, path: str) -> str:
        """The absolute path ``path`` means on the host."""

    @contextlib.contextmanager
    def _errors(self, target: str, doing: str) -> Iterator[None]:
        """Map the implementation's errors (default: none to map)."""
        yield

    @abc.abstractmethod
    def _stat(self, target: str) -> FileStat | None:
        """None when nothing is there (a dangling symlink counts as nothing)."""

    @abc.abstractmethod
    def _read(self, target: str, size: int) -> bytes:
        """The whole content (``size``: what ``_stat`` said, a read-ahead hint)."""

    @abc.abstractmethod
    def _chmod(self, target: str, mode: int) -> None: ...

    @abc.abstractmethod
    def _replace(self, target: str, data: bytes, mode: int) -> None:
        """Temp file (0600) beside ``target``, the data, ``mode``, rename; the temp
        file is removed on any failure."""

    @abc.abstractmethod
    def _unlink(self, target: str) -> Unlinked:
        """Remove a file or symlink (not followed); a directory is left alone."""


_NEW = FileStat(regular=True, directory=False, mode=DEFAULT_MODE, size=0)


class LocalFiles(FileTransfer):
    """Files on the control machine (the data is fsynced before the rename)."""

    method = "local"

    def __init__(self, where: str = "local") -> None:
        self.where = where

    def _resolve(self, path: str) -> str:
        return str(Path(path).absolute())

    @contextlib.contextmanager
    def _errors(self, target: str, doing: str) -> Iterator[None]:
        try:
            yield
        except OSError as exc:  # name the destination, not our temp file
            if not exc.errno:
                raise
            raise self.os_error(exc.errno, target, exc.strerror) from exc

    def _stat(self, target: str) -> FileStat | None:
        try:
            info = Path(target).stat()
        except FileNotFoundError:
            return None
        return FileStat(
            regular=stat.S_ISREG(info.st_mode),
            directory=stat.S_ISDIR(info.st_mode),
            mode=stat.S_IMODE(info.st_mode),
            size=info.st_size,
        )

    def _read(self, target: str, size: int) -> bytes:
        return Path(target).read_bytes()

    def _chmod(self, target: str, mode: int) -> None:
        Path(target).chmod(mode)

    def _replace(self, target: str, data: bytes, mode: int) -> None:
        temp = Path(temp_name(target))
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, TEMP_MODE)
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            temp.chmod(mode)
            temp.replace(target)
        except BaseException:
            temp.unlink(missing_ok=True)
            raise

    def _unlink(self, target: str) -> Unlinked:
        path = Path(target)
        if path.is_dir() and not path.is_symlink():
            return "directory"
        try:
            path.unlink()
        except FileNotFoundError:
            return "absent"
        return "removed"
