"""A new queue is made at the latest schema in one go (``state.schema.FRESH``); an older
one is migrated version by version. Both must give the same database: the same tables,
columns, indexes and triggers, the same meta rows and counts, and the same version."""
import re
import shutil
import sqlite3
from pathlib import Path

from hog.state import db as dbmod
from hog.state.schema import SCHEMA_VERSION
from hog.state.store import DB_NAME, Store


def normalised(sql: str) -> str:
    """``sql`` without comments, with one space where there was any, none around
    punctuation (ALTER TABLE appends its columns as ``\\n, name TYPE``)."""
    sql = re.sub(r"--[^\n]*", "", sql)
    sql = re.sub(r"\s+", " ", sql)
    return re.sub(r"\s*([(),;])\s*", r"\1", sql).strip()


def picture(path) -> dict:
    """What a database file holds, by object: its SQL and columns, meta and counts
    (``sqlite_master``: its older name, which every SQLite hog runs on knows)."""
    con = sqlite3.connect(str(path))
    try:
        objects = {name: (kind, table, normalised(sql or "")) for kind, name, table, sql
                   in con.execute("SELECT type, name, tbl_name, sql FROM sqlite_master")}
        columns = {name: con.execute(f"PRAGMA table_xinfo({name})").fetchall()
                   for name, (kind, _, _) in objects.items() if kind == "table"}
        return dict(objects=objects, columns=columns,
                    version=con.execute("PRAGMA user_version").fetchone()[0],
                    meta=sorted(con.execute("SELECT key, value FROM meta")),
                    counts=sorted(con.execute("SELECT * FROM job_counts")))
    finally:
        con.close()


def migrated_store(state_dir, monkeypatch) -> None:
    """A new queue made the long way: every migration from an empty file."""
    monkeypatch.setattr(dbmod.Database, "_empty", lambda self: False)
    Store(str(state_dir)).close()
    monkeypatch.undo()


def test_a_new_queue_gets_the_schema_every_migration_gives_an_empty_one(tmp_path,
                                                                        monkeypatch):
    fresh, migrated = tmp_path / "fresh", tmp_path / "migrated"
    fresh.mkdir()
    migrated.mkdir()
    Store(str(fresh)).close()
    migrated_store(migrated, monkeypatch)
    want, got = picture(migrated / DB_NAME), picture(fresh / DB_NAME)
    assert got["version"] == want["version"] == SCHEMA_VERSION
    assert got["objects"] == want["objects"], (
        "state.schema.FRESH differs from what MIGRATIONS make: update FRESH with the "
        "new version's changes")
    assert got["columns"] == want["columns"]
    assert (got["meta"], got["counts"]) == (want["meta"], want["counts"])


def test_a_new_queue_and_a_migrated_one_count_the_same_jobs_the_same_way(tmp_path,
                                                                         monkeypatch):
    """The counting triggers of both: the same jobs added, one ended, one removed."""
    pictures = []
    for name, make in (("fresh", lambda d: Store(str(d)).close()),
                       ("migrated", lambda d: migrated_store(d, monkeypatch))):
        state = tmp_path / name
        state.mkdir()
        make(state)
        con = sqlite3.connect(str(state / DB_NAME))
        with con:
            con.executemany("INSERT INTO jobs (id, command, added, ident, seen) "
                            "VALUES (?, 'true', 0, ?, 1)", [(i, f"k{i}") for i in range(5)])
            con.execute("UPDATE jobs SET status = 'succeeded' WHERE id = 1")
            con.execute("DELETE FROM jobs WHERE id = 2")
        con.close()
        pictures.append(picture(state / DB_NAME)["counts"])
    assert pictures[0] == pictures[1] == [("queued", 1, 3), ("succeeded", 1, 1)]


def test_a_version_1_queue_is_still_migrated_not_made_anew(tmp_path):
    """tests/data/store-v1.sqlite has tables at version 1: its rows are kept."""
    state = tmp_path / "state"
    state.mkdir()
    shutil.copyfile(Path(__file__).parent / "data" / "store-v1.sqlite", state / DB_NAME)
    Store(str(state)).close()
    con = sqlite3.connect(str(state / DB_NAME))
    try:
        assert con.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        assert con.execute("SELECT count(*) FROM jobs").fetchone()[0] == 3
    finally:
        con.close()
