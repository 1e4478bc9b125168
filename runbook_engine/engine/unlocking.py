"""``runbook unlock``: break a lock on the controller or on hosts, and audit it."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..errors import InputError
from ..record.audit import AuditLog, key_from_env, utc_now
from ..spec.inventory import load_inventory
from ..statedir import ensure_state_dir
from .locks import LocalLock, RemoteLock, break_lock
from .request import new_run_id, operator_name

if TYPE_CHECKING:
    from collections.abc import Sequence
    from pathlib import Path


def unlock_locks(
    name: str,
    *,
    inventory: Path | None,
    hosts: Sequence[str],
    force: str | None,
    state_dir: Path,
    accept_new_host_keys: bool,
) -> list[str]:
    ensure_state_dir(state_dir)
    run_id = new_run_id()
    operator = operator_name()
    lines: list[str] = []
    records: list[dict[str, object]] = []
    if hosts and inventory is None:
        raise InputError("--host needs -i INVENTORY")
    targets: list[tuple[str, object]] = []
    if not hosts:
        targets.append(("controller", LocalLock(state_dir, name)))
    else:
        from ..transports.pool import open_transport

        assert inventory is not None
        loaded = load_inventory(inventory)
        for host in loaded.resolve(list(hosts)):
            transport = open_transport(
                host, accept_new_host_keys=accept_new_host_keys, passphrase=None
            )
            targets.append(
                (
                    host.name,
                    RemoteLock(
                        transport,
                        name,
                        lock_dir=host.lock_dir,
                        inventory=str(inventory),
                    ),
                )
            )
    for where, lock in targets:
        holder = break_lock(lock, force=force)  # type: ignore[arg-type]
        if holder is None:
            lines.append(f"lock {name!r} on {where} is not held")
            continue
        lines.append(
            f"broke lock {name!r} on {where}"
            f" (held by {holder.operator}, run {holder.run_id})"
        )
        records.append(
            {
                "ts": utc_now(),
                "run_id": run_id,
                "seq": len(records) + 1,
                "event": "lock.broken",
                "lock": name,
                "where": where,
                "holder": holder.to_json(),
                "operator": operator,
                "forced": force is not None,
            }
        )
    if records:
        log = AuditLog.open(state_dir, key=key_from_env(), run_id=run_id)
        try:
            log.append(records)
        finally:
            log.close()
    return lines
