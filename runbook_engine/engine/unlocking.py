"""``runbook unlock``: break a lock on the controller or on hosts, and audit it.

The controller's lock is the store's: a lock file (broken here when stale, or with
``--force RUN_ID``), or a database lock, which frees itself when its holder's
connection closes and so is never broken: ``unlock`` names its holder instead.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..errors import InputError
from ..record.audit import utc_now
from ..spec.inventory import load_inventory
from .locks import RemoteLock, RunLock, break_lock
from .request import new_run_id, operator_name

if TYPE_CHECKING:
    from collections.abc import Sequence
    from pathlib import Path

    from .locks import LockHolder
    from .store import StateStore


def unlock_locks(
    name: str,
    *,
    inventory: Path | None,
    hosts: Sequence[str],
    force: str | None,
    store: StateStore,
    accept_new_host_keys: bool,
) -> list[str]:
    """Break lock ``name`` on the controller (no ``hosts``) or on inventory hosts;
    each lock broken is in the audit log before the next one is tried."""
    if hosts and inventory is None:
        raise InputError("--host needs -i INVENTORY")
    if not hosts:
        targets = [("controller", store.controller_lock(name))]
    else:
        assert inventory is not None
        targets = _host_locks(name, inventory, hosts, accept_new_host_keys)
    run_id, operator = new_run_id(), operator_name()
    lines: list[str] = []
    log = None
    try:
        for seq, (where, lock) in enumerate(targets, start=1):
            holder = break_lock(lock, force=force)
            if holder is None:
                lines.append(f"lock {name!r} on {where} is not held")
                continue
            log = log or store.open_audit(run_id)
            log.append([_broken(run_id, seq, name, where, holder, operator, force)])
            lines.append(
                f"broke lock {name!r} on {where}"
                f" (held by {holder.operator}, run {holder.run_id})"
            )
    finally:
        if log is not None:
            log.close()
    return lines


def _broken(
    run_id: str,
    seq: int,
    name: str,
    where: str,
    holder: LockHolder,
    operator: str,
    force: str | None,
) -> dict[str, object]:
    return {
        "ts": utc_now(),
        "run_id": run_id,
        "seq": seq,
        "event": "lock.broken",
        "lock": name,
        "where": where,
        "holder": holder.to_json(),
        "operator": operator,
        "forced": force is not None,
    }


def _host_locks(
    name: str, inventory: Path, hosts: Sequence[str], accept_new_host_keys: bool
) -> list[tuple[str, RunLock]]:
    from ..transports.pool import open_transport

    targets: list[tuple[str, RunLock]] = []
    for host in load_inventory(inventory).resolve(list(hosts)):
        transport = open_transport(
            host, accept_new_host_keys=accept_new_host_keys, passphrase=None
        )
        lock = RemoteLock(
            transport, name, lock_dir=host.lock_dir, inventory=str(inventory)
        )
        targets.append((host.name, lock))
    return targets
