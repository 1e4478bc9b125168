"""The store's pure parts: choosing a backend from a location, masking a database
password wherever a URL is printed, checking a URL before connecting, and telling
libpq's failures in our words (every cause we know has its own sentence)."""

from __future__ import annotations

import psycopg
import pytest

from runbook_engine.engine.filestore import FileStore
from runbook_engine.engine.pgdb import check_url, connect_failure
from runbook_engine.engine.pglock import lock_key
from runbook_engine.engine.store import (
    Grant,
    check_state_url,
    mask_url,
    open_store,
    url_password,
)
from runbook_engine.errors import InputError, ResumeError


def test_without_a_url_the_store_is_the_state_dir(tmp_path):
    store = open_store(tmp_path / "state")
    assert isinstance(store, FileStore) and store.location == str(tmp_path / "state")
    assert (
        store.audit_missing() == f"{tmp_path / 'state' / 'audit.jsonl'} does not exist"
    )
    assert store.list_runs() == [] and list(store.read_lines()) == []


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("postgresql://ops:s3cret@db/rb", "postgresql://ops:***@db/rb"),
        (
            "postgresql://ops:p%40ss@db:5433/rb?x=1",
            "postgresql://ops:***@db:5433/rb?x=1",
        ),
        (
            "postgresql://db/rb?password=s3cret&sslmode=require",
            "postgresql://db/rb?password=***&sslmode=require",
        ),
        ("error: postgresql://a:b@h/d failed", "error: postgresql://a:***@h/d failed"),
        ("postgresql://ops@db/rb", "postgresql://ops@db/rb"),
    ],
)
def test_a_password_in_a_url_is_masked(url, shown):
    assert mask_url(url) == shown


def test_the_password_of_a_url_is_found_for_the_masker():
    assert url_password("postgresql://ops:p%40ss@db/rb") == "p@ss"
    assert url_password("postgresql://db/rb?password=x1y2") == "x1y2"
    assert url_password("postgresql://ops@db/rb") is None


@pytest.mark.parametrize(
    ("url", "said"),
    [
        ("mysql://db/x", "expected a postgresql:// URL"),
        ("/var/lib/runbook", "expected a postgresql:// URL"),
    ],
)
def test_what_is_not_a_database_url_is_refused(url, said):
    with pytest.raises(InputError, match=said):
        check_state_url(url)


@pytest.mark.parametrize(
    ("url", "said"),
    [
        ("postgresql://ops:s3cret@db:port/x", "the port is not a number"),
        ("postgresql://ops:s3cret@db/x?nosuch=1", "invalid URI query parameter"),
        ("postgresql://ops:s3cret@db/x?sslmode=on", "sslmode='on' is not one of"),
    ],
)
def test_a_malformed_url_is_refused_without_its_password(url, said):
    with pytest.raises(InputError, match=said) as caught:
        check_url(url)
    assert "s3cret" not in str(caught.value)


def _error(message: str, sqlstate: str | None = None) -> psycopg.Error:
    error = psycopg.OperationalError(message)
    if sqlstate is not None:
        error.sqlstate = sqlstate  # type: ignore[misc]  # what the server would set
    return error


@pytest.mark.parametrize(
    ("message", "said"),
    [
        ('FATAL:  password authentication failed for user "ops"', "wrong password"),
        ("fe_sendauth: no password supplied", "none was given"),
        ('FATAL:  no pg_hba.conf entry for host "10.0.0.1"', "authentication failed"),
        ("server does not support SSL, but SSL was required", "does not offer it"),
        (
            'root certificate file "/root/.postgresql/root.crt" does not exist',
            "sslrootcert=FILE",
        ),
        ("SSL error: certificate verify failed", "not signed by the CA"),
        (
            'server certificate for "db" does not match host name "x"',
            "another host name",
        ),
        ('FATAL:  database "rb" does not exist', "does not exist (createdb it)"),
        (
            'connection to server at "db", port 5432 failed: Connection refused',
            "connection refused",
        ),
        (
            "failed to resolve host 'db': [Errno -2] Name or service not known",
            "cannot resolve",
        ),
        ('connection to server at "db" failed: timeout expired', "within 10s"),
        ("something else entirely", "cannot connect to db:5432: something else"),
    ],
)
def test_each_connection_failure_is_told_in_our_words(message, said):
    params = {"host": "db", "port": "5432", "user": "ops", "dbname": "rb"}
    params["connect_timeout"] = "10"
    assert said in connect_failure(_error(message), params)


def test_lock_keys_are_stable_64_bit_numbers() -> None:
    assert lock_key("app") == lock_key("app") != lock_key("app2")
    assert -(2**63) <= lock_key("app") < 2**63
    # controllers of different versions must agree on it: pinned
    assert lock_key("app") == -1825577632666924636


def test_a_grant_goes_through_its_record_unchanged():
    grant = Grant(
        run_id="20261203-101500-a1b2c3",
        step="confirm",
        approved=True,
        operator="ops@desk",
        granted_at="2026-12-03T10:15:00.000Z",
        confirm="production",
    )
    assert Grant.from_record(grant.to_record()) == grant


def test_file_grants_are_answered_once(tmp_path):
    store = FileStore(tmp_path / "state")
    first = Grant(
        run_id="20261203-101500-a1b2c3", step="ask", approved=True,
        operator="a@x", granted_at="t1",
    )  # fmt: skip
    assert store.find_grant(first.run_id, "ask") is None
    assert store.put_grant(first) is None
    second = Grant(
        run_id=first.run_id, step="ask", approved=False, operator="b@y",
        granted_at="t2",
    )  # fmt: skip
    assert store.put_grant(second) == first  # refused: the first answer stands
    assert store.find_grant(first.run_id, "ask") == first
    with pytest.raises(ResumeError):
        store.find_grant("../escape", "ask")
