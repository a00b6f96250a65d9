"""Migrations: applied in order to an empty database, once, each in its own transaction."""

from __future__ import annotations

from importlib import resources

from journeyman.orchestrator.storage import connect, migrate


def shipped() -> list[str]:
    folder = resources.files("journeyman.orchestrator.storage").joinpath("migrations")
    return sorted(entry.name for entry in folder.iterdir() if entry.name.endswith(".sql"))


async def test_an_empty_database_gets_every_migration_in_order_and_only_once(
    empty_database_url: str,
) -> None:
    conn = await connect(empty_database_url)
    try:
        assert await migrate(conn) == shipped()
        assert await migrate(conn) == []
        recorded = await conn.fetch("SELECT version, name FROM schema_migrations ORDER BY version")
        assert [r["name"] for r in recorded] == shipped()
        assert [r["version"] for r in recorded] == [int(name[:4]) for name in shipped()]
    finally:
        await conn.close()


async def test_each_test_database_starts_migrated(database_url: str) -> None:
    conn = await connect(database_url)
    try:
        assert await migrate(conn) == []
        assert await conn.fetchval("SELECT count(*) FROM deliveries") == 0
    finally:
        await conn.close()
