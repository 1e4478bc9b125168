"""The physical floors, run as child processes so they are timed like the tools.

Self-contained on purpose (stdlib and paramiko only, no ``bench`` imports) so its own
start-up is the interpreter plus what the floor needs. Each sub-command prints one
JSON line of inner timings (seconds) that the harness adds to the results.

    python bench/floors.py spawn-fsync --steps 200 --dir DIR
    python bench/floors.py ssh-exec --steps 50 --key K --known-hosts KH HOST:PORT...
    python bench/floors.py drain-local --bytes 300000000
    python bench/floors.py drain-ssh --bytes 300000000 --key K --known-hosts KH H:P
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import socket
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

OUR_DEPENDENCIES = ("paramiko", "jinja2", "yaml", "jsonschema", "click", "tenacity")
_CHUNK = 64 * 1024


def big_output_command(size: int) -> str:
    """One line of ``size`` bytes of 'x' (the worst case for line buffering)."""
    return f"head -c {size} /dev/zero | tr '\\0' 'x'"


def spawn_fsync(steps: int, directory: Path) -> dict[str, float]:
    """The local floor of a durable engine: import our deps, then per step spawn
    ``sh -c true`` and append + fsync one small record."""
    started = time.perf_counter()
    for module in OUR_DEPENDENCIES:  # the same import cost an engine pays
        importlib.import_module(module)
    imported = time.perf_counter()
    fd = os.open(directory / "floor.log", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    spawn_s = fsync_s = 0.0
    try:
        for index in range(steps):
            t0 = time.perf_counter()
            subprocess.run(["sh", "-c", "true"], check=True)
            t1 = time.perf_counter()
            os.write(fd, f'{{"step": {index}, "status": "ok"}}\n'.encode())
            os.fsync(fd)
            spawn_s += t1 - t0
            fsync_s += time.perf_counter() - t1
    finally:
        os.close(fd)
    loop = time.perf_counter() - imported
    return {
        "import_s": imported - started,
        "loop_s": loop,
        "per_step_ms": 1000 * loop / max(steps, 1),
        "spawn_ms": 1000 * spawn_s / max(steps, 1),
        "fsync_ms": 1000 * fsync_s / max(steps, 1),
    }


def _connect(address: str, key: str, known_hosts: str) -> Any:
    import paramiko

    host, port = address.rsplit(":", 1)
    sock = socket.create_connection((host, int(port)), timeout=10)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    client = paramiko.SSHClient()
    client.load_host_keys(known_hosts)
    client.set_missing_host_key_policy(paramiko.RejectPolicy())
    client.connect(
        host,
        port=int(port),
        username="root",
        key_filename=key,
        sock=sock,
        look_for_keys=False,
        allow_agent=False,
        timeout=10,
    )
    return client


def _exec_true(client: Any, steps: int) -> list[float]:
    durations = []
    for _ in range(steps):
        started = time.perf_counter()
        _stdin, stdout, _stderr = client.exec_command("true")
        status = stdout.channel.recv_exit_status()
        durations.append(time.perf_counter() - started)
        if status != 0:
            raise RuntimeError(f"'true' exited {status}")
    return durations


def ssh_exec(
    addresses: list[str], steps: int, key: str, known_hosts: str
) -> dict[str, float]:
    """The SSH floor: one open paramiko transport per host (TCP_NODELAY), ``steps``
    exec channels of ``true`` on each, one thread per host."""
    started = time.perf_counter()
    import paramiko  # noqa: F401  (timed apart from connecting)

    imported = time.perf_counter()
    errors: list[BaseException] = []
    connect_times: list[float] = []
    loop_times: list[float] = []
    exec_times: list[float] = []

    def one_host(address: str) -> None:
        try:
            t0 = time.perf_counter()
            client = _connect(address, key, known_hosts)
            t1 = time.perf_counter()
            exec_times.extend(_exec_true(client, steps))
            loop_times.append(time.perf_counter() - t1)
            connect_times.append(t1 - t0)
            client.close()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=one_host, args=(a,)) for a in addresses]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]
    return {
        "import_s": imported - started,
        "all_s": time.perf_counter() - started,
        "connect_s": max(connect_times),
        "loop_s": max(loop_times),
        "per_exec_ms": 1000 * max(loop_times) / max(steps, 1),
        "median_exec_ms": 1000 * statistics.median(exec_times),
    }


def _drain(read: Any) -> int:
    total = 0
    while chunk := read(_CHUNK):
        total += len(chunk)
    return total


def drain_local(size: int) -> dict[str, float]:
    """Read a command's ``size`` bytes of output through a pipe and drop them."""
    started = time.perf_counter()
    process = subprocess.Popen(
        ["sh", "-c", big_output_command(size)], stdout=subprocess.PIPE
    )
    assert process.stdout is not None
    total = _drain(process.stdout.read)
    if process.wait() != 0 or total != size:
        raise RuntimeError(f"read {total} bytes, exit {process.returncode}")
    return {"drain_s": time.perf_counter() - started}


def drain_ssh(address: str, size: int, key: str, known_hosts: str) -> dict[str, float]:
    """The same over one paramiko channel (TCP_NODELAY), 64 KiB reads."""
    client = _connect(address, key, known_hosts)
    started = time.perf_counter()  # connected: drain_s is the output alone
    _stdin, stdout, _stderr = client.exec_command(big_output_command(size))
    total = _drain(stdout.channel.recv)
    status = stdout.channel.recv_exit_status()
    client.close()
    if status != 0 or total != size:
        raise RuntimeError(f"read {total} bytes, exit {status}")
    return {"drain_s": time.perf_counter() - started}


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="floor", required=True)
    spawn = sub.add_parser("spawn-fsync")
    spawn.add_argument("--steps", type=int, required=True)
    spawn.add_argument("--dir", type=Path, required=True)
    for name in ("ssh-exec", "drain-ssh"):
        ssh = sub.add_parser(name)
        ssh.add_argument("--key", required=True)
        ssh.add_argument("--known-hosts", required=True)
        ssh.add_argument("addresses", nargs="+", metavar="HOST:PORT")
        if name == "ssh-exec":
            ssh.add_argument("--steps", type=int, required=True)
        else:
            ssh.add_argument("--bytes", type=int, required=True)
    drain = sub.add_parser("drain-local")
    drain.add_argument("--bytes", type=int, required=True)
    return parser


def main(argv: list[str]) -> int:
    args = _parser().parse_args(argv)
    if args.floor == "spawn-fsync":
        result = spawn_fsync(args.steps, args.dir)
    elif args.floor == "ssh-exec":
        result = ssh_exec(args.addresses, args.steps, args.key, args.known_hosts)
    elif args.floor == "drain-local":
        result = drain_local(args.bytes)
    else:
        result = drain_ssh(args.addresses[0], args.bytes, args.key, args.known_hosts)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
