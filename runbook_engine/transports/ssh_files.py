"""File transfer over SSH (paramiko): SFTP, or exec channels where sshd has no SFTP.

``open_file_transfer`` asks once per connection for the ``sftp`` subsystem; when
the server refuses it (hardened hosts run sshd without one) or it does not start,
the connection gets ``ExecFiles`` instead. Both implement the primitives of
``files.FileTransfer``, so the rules (no rewrite when equal, 0600 temp beside the
destination, atomic rename, mode kept, temp removed on failure) are the same code.

The exec fallback runs short POSIX sh scripts through ``ssh_exec.CommandRunner``:
``ls -dLn`` for the mode and size, ``cat`` to read, ``chmod``, ``rm``, and for a
write one script that creates the temp file (umask 077, noclobber), prints
``ready``, and only then receives the bytes, raw, on its stdin (``cat >"$tmp"``),
checks their count, sets the mode and renames. File contents are never on a command
line; paths are quoted with ``shlex.quote``. Why raw bytes behind a ``ready`` line
rather than right after the script or base64: dash (Debian's ``/bin/sh``) reads
its script from a pipe in blocks, so bytes sent right behind the script would be
swallowed by the shell instead of reaching ``cat``; waiting until the script speaks
costs one round trip and keeps the stream raw, without base64's third more bytes
and without needing a ``base64`` tool (not POSIX). A dropped connection ends
``cat`` early, the byte count differs, and the script's exit trap removes the temp.
"""

from __future__ import annotations

import contextlib
import errno
import os
import posixpath
import shlex
import stat
from typing import TYPE_CHECKING

import paramiko

from ..errors import ConnectError, ConnectionLostError
from .files import TEMP_MODE, FileStat, FileTransfer, Unlinked, temp_name
from .ssh_wire import NETWORK_ERRORS

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    from .ssh_connect import SSHConnection
    from .ssh_exec import CommandRunner, ScriptResult

_PID = "echo $$\n"  # CommandRunner.run_script reads the pid line first
_STAT = """\
p={path}
[ -e "$p" ] || {{ echo absent; exit 0; }}
if [ -f "$p" ]; then k=file; elif [ -d "$p" ]; then k=dir; else k=other; fi
l=$(LC_ALL=C ls -dLn -- "$p") || exit 1
set -f; set -- $l
echo "$k $1 $5"
"""
_READ = "cat -- {path}\n"
_CHMOD = "chmod {mode:04o} -- {path}\n"
_UNLINK = """\
p={path}
if [ ! -e "$p" ] && [ ! -L "$p" ]; then echo absent; exit 0; fi
if [ -d "$p" ] && [ ! -L "$p" ]; then echo dir; exit 0; fi
rm -f -- "$p" || exit 1
echo removed
"""
# one function, called by the last line: the shell has read every byte of the
# script before the payload is sent (after "ready")
_REPLACE = """\
p={path}; t={temp}
w() {{
  umask 077
  set -C
  : > "$t" || exit 1
  set +C
  trap 'rm -f -- "$t"' EXIT
  trap 'exit 1' HUP INT TERM PIPE
  echo ready
  cat > "$t" || exit 1
  n=$(wc -c < "$t") || exit 1
  [ $n -eq {size} ] || {{ echo "received $n of {size} bytes" >&2; exit 1; }}
  chmod {mode:04o} -- "$t" || exit 1
  if [ -d "$p" ]; then echo "$p: Is a directory" >&2; exit 1; fi
  mv -f -- "$t" "$p" || exit 1
}}
w
"""
_SMALL_TIMEOUT = 60.0  # stat, chmod, rm: a host that takes longer is in trouble
# strerror texts as the remote tools print them (glibc's, as ours), to errno;
# dash words a missing directory its own way
_ERRNO_BY_TEXT = {
    **{os.strerror(code): code for code in sorted(errno.errorcode)},
    "Directory nonexistent": errno.ENOENT,
}


def open_file_transfer(
    connection: SSHConnection, runner: CommandRunner, home: Callable[[], str]
) -> FileTransfer:
    """SFTP when the server offers it, else exec channels (connection open)."""
    where = connection.host.name
    channel = connection.open_session()
    try:
        channel.invoke_subsystem("sftp")
        sftp = paramiko.SFTPClient(channel)
    except NETWORK_ERRORS as exc:
        channel.close()
        if not connection.is_open():
            raise ConnectError(
                f"{connection.where}: cannot start SFTP: {connection.cause(exc)}"
            ) from exc
        return ExecFiles(runner, where=where, home=home)
    return SFTPFiles(sftp, connection, where=where, home=home)


def _resolve(path: str, home: Callable[[], str]) -> str:
    return path if posixpath.isabs(path) else posixpath.join(home(), path)


class SFTPFiles(FileTransfer):
    method = "sftp"

    def __init__(
        self,
        sftp: paramiko.SFTPClient,
        connection: SSHConnection,
        *,
        where: str,
        home: Callable[[], str],
    ) -> None:
        self._sftp = sftp
        self._connection = connection
        self.where = where
        self._home = home

    def _resolve(self, path: str) -> str:
        return _resolve(path, self._home)

    @contextlib.contextmanager
    def _errors(self, target: str, doing: str) -> Iterator[None]:
        try:
            yield
        except NETWORK_ERRORS as exc:
            if isinstance(exc, OSError) and exc.errno and self._connection.is_open():
                raise self.os_error(exc.errno, target, exc.strerror) from exc
            raise ConnectionLostError(
                f"{self._connection.where}: connection lost while {doing} {target} "
                f"({self._connection.cause(exc)}); {target} is unchanged"
            ) from exc

    def _stat(self, target: str) -> FileStat | None:
        try:
            attrs = self._sftp.stat(target)
        except FileNotFoundError:
            return None
        mode = attrs.st_mode or 0
        return FileStat(
            regular=stat.S_ISREG(mode),
            directory=stat.S_ISDIR(mode),
            mode=stat.S_IMODE(mode),
            size=attrs.st_size or 0,
        )

    def _read(self, target: str, size: int) -> bytes:
        with self._sftp.open(target, "rb") as handle:
            handle.prefetch(size)
            return bytes(handle.read())

    def _chmod(self, target: str, mode: int) -> None:
        self._sftp.chmod(target, mode)

    def _replace(self, target: str, data: bytes, mode: int) -> None:
        temp = temp_name(target)
        try:
            with self._sftp.open(temp, "wx") as handle:
                handle.chmod(TEMP_MODE)  # before any byte lands
                handle.set_pipelined(True)
                handle.write(data)
            self._sftp.chmod(temp, mode)
            self._sftp.posix_rename(temp, target)
        except BaseException:
            with contextlib.suppress(*NETWORK_ERRORS):
                self._sftp.remove(temp)
            raise

    def _unlink(self, target: str) -> Unlinked:
        try:
            attrs = self._sftp.lstat(target)
        except FileNotFoundError:
            return "absent"
        if stat.S_ISDIR(attrs.st_mode or 0):
            return "directory"
        self._sftp.remove(target)
        return "removed"

    def close(self) -> None:
        with contextlib.suppress(*NETWORK_ERRORS):
            self._sftp.close()


class ExecFiles(FileTransfer):
    method = "exec"

    def __init__(
        self, runner: CommandRunner, *, where: str, home: Callable[[], str]
    ) -> None:
        self._runner = runner
        self.where = where
        self._home = home

    def _resolve(self, path: str) -> str:
        return _resolve(path, self._home)

    def _run(
        self,
        target: str,
        script: str,
        *,
        timeout: float | None = _SMALL_TIMEOUT,
        payload: bytes | None = None,
    ) -> bytes:
        """Run a file script; its stdout when it succeeded, else ``OSError``."""
        result = self._runner.run_script(
            _PID + script, timeout=timeout, payload=payload
        )
        if result.rc != 0:
            raise self._failure(target, result)
        return result.stdout

    def _failure(self, target: str, result: ScriptResult) -> OSError:
        lines = result.stderr.decode(errors="replace").strip().splitlines()
        last = lines[-1] if lines else f"exit status {result.rc}"
        found = [text for text in _ERRNO_BY_TEXT if text in last]
        if not found:
            return OSError(errno.EIO, f"{self.where}: {target}: {last}")
        code = _ERRNO_BY_TEXT[max(found, key=len)]
        return self.os_error(code, target)

    def _stat(self, target: str) -> FileStat | None:
        out = self._run(target, _STAT.format(path=shlex.quote(target)))
        fields = out.decode(errors="replace").split()
        if fields[:1] == ["absent"]:
            return None
        if len(fields) != 3:
            raise OSError(errno.EIO, f"{self.where}: {target}: cannot read its mode")
        kind, perms, size = fields
        return FileStat(
            regular=kind == "file",
            directory=kind == "dir",
            mode=parse_ls_mode(perms),
            size=int(size) if size.isdigit() else 0,
        )

    def _read(self, target: str, size: int) -> bytes:
        return self._run(target, _READ.format(path=shlex.quote(target)), timeout=None)

    def _chmod(self, target: str, mode: int) -> None:
        self._run(target, _CHMOD.format(mode=mode, path=shlex.quote(target)))

    def _replace(self, target: str, data: bytes, mode: int) -> None:
        script = _REPLACE.format(
            path=shlex.quote(target),
            temp=shlex.quote(temp_name(target)),
            size=len(data),
            mode=mode,
        )
        self._run(target, script, timeout=None, payload=data)

    def _unlink(self, target: str) -> Unlinked:
        out = self._run(target, _UNLINK.format(path=shlex.quote(target))).strip()
        if out == b"dir":
            return "directory"
        return "removed" if out == b"removed" else "absent"


_PERMISSION_BITS = (0o400, 0o200, 0o100, 0o40, 0o20, 0o10, 0o4, 0o2, 0o1)


def parse_ls_mode(perms: str) -> int:
    """The permission bits of an ``ls -l`` mode field (``-rwsr-x--T``)."""
    bits = perms[1:10]
    if len(bits) != 9:
        raise ValueError(f"not an ls mode field: {perms!r}")
    mode = 0
    for char, bit in zip(bits, _PERMISSION_BITS, strict=True):
        if char not in "-ST":
            mode |= bit
    specials = ((2, "sS", 0o4000), (5, "sS", 0o2000), (8, "tT", 0o1000))
    for index, chars, bit in specials:
        if bits[index] in chars:
            mode |= bit
    return mode
