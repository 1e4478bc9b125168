from __future__ import annotations

import shutil
import tempfile
import unittest
from pathlib import Path

import support
from database import connect, schema_version
from migrator import MigrationError, discover, migrate, split_statements
from release import load_release


def _tables(db: Path) -> set[str]:
    conn = connect(db)
    try:
        rows = conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
        return {row[0] for row in rows}
    finally:
        conn.close()


class MigratorTest(unittest.TestCase):
    def setUp(self) -> None:
        self.tmp = Path(tempfile.mkdtemp())
        self.addCleanup(shutil.rmtree, self.tmp)
        self.release = load_release()
        self.migrations = discover(self.release.migrations_dir)

    def test_release_migrations_are_numbered_up_to_schema_version(self) -> None:
        self.assertEqual(
            sorted(self.migrations), list(range(1, len(self.migrations) + 1))
        )
        self.assertEqual(max(self.migrations), self.release.schema_version)

    def test_up_then_down_to_zero_leaves_only_the_bookkeeping_table(self) -> None:
        db = support.migrated_db(self.tmp)
        conn = connect(db)
        try:
            self.assertEqual(schema_version(conn), self.release.schema_version)
            report = migrate(conn, 0, self.migrations)
            self.assertEqual(report.to_version, 0)
        finally:
            conn.close()
        self.assertEqual(_tables(db), {"schema_migrations"})

    def test_migrating_to_the_current_version_does_nothing(self) -> None:
        conn = connect(support.migrated_db(self.tmp))
        try:
            report = migrate(conn, self.release.schema_version, self.migrations)
        finally:
            conn.close()
        self.assertEqual(report.steps, ())

    def test_unknown_target_is_refused_without_changes(self) -> None:
        conn = connect(support.migrated_db(self.tmp))
        try:
            with self.assertRaisesRegex(MigrationError, "knows migrations up to"):
                migrate(conn, 99, self.migrations)
            self.assertEqual(schema_version(conn), self.release.schema_version)
        finally:
            conn.close()

    def test_down_uses_the_sql_stored_when_the_file_is_gone(self) -> None:
        conn = connect(support.migrated_db(self.tmp))
        try:
            last = self.release.schema_version
            older = {v: m for v, m in self.migrations.items() if v < last}
            migrate(conn, last - 1, older)
            self.assertEqual(schema_version(conn), last - 1)
        finally:
            conn.close()

    def test_failing_migration_changes_nothing(self) -> None:
        broken = self.tmp / "broken"
        shutil.copytree(self.release.migrations_dir, broken)
        last = self.release.schema_version
        (broken / f"{last + 1:04d}_bad.up.sql").write_text(
            "CREATE TABLE t (x);\nSELECT * FROM no_such_table;\n"
        )
        (broken / f"{last + 1:04d}_bad.down.sql").write_text("DROP TABLE t;\n")
        conn = connect(support.migrated_db(self.tmp))
        try:
            with self.assertRaisesRegex(MigrationError, "no_such_table"):
                migrate(conn, last + 1, discover(broken))
            self.assertEqual(schema_version(conn), last)
        finally:
            conn.close()
        self.assertNotIn("t", _tables(self.tmp / "app.db"))

    def test_split_statements_keeps_semicolons_in_strings(self) -> None:
        sql = "-- note\nINSERT INTO t VALUES ('a;b');\nDROP TABLE t;\n-- end\n"
        self.assertEqual(
            split_statements(sql),
            ["-- note\nINSERT INTO t VALUES ('a;b');", "DROP TABLE t;"],
        )


if __name__ == "__main__":
    unittest.main()
