"""Alembic migrations run programmatically: ``daytrading db init`` / ``db upgrade``.

The migration scripts live in ``daytrading/db/migrations`` (shipped with the
package). A database that already exists is backed up before it is migrated
(hummingbot's habit).
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine

from daytrading.db.engine import make_engine

MIGRATIONS_DIR = Path(__file__).with_name("migrations")


def alembic_config(db_path: str | Path) -> Config:
    """An Alembic config pointing at ``db_path`` and the packaged migrations."""
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.set_main_option("sqlalchemy.url", f"sqlite:///{Path(db_path)}")
    return cfg


def current_revision(engine: Engine) -> str | None:
    """The revision stamped in the database, or ``None`` for an empty database."""
    with engine.connect().execution_options(sqlite_begin="DEFERRED") as conn:
        return MigrationContext.configure(conn).get_current_revision()


def head_revision() -> str:
    """The newest revision of the packaged migrations."""
    head = ScriptDirectory.from_config(alembic_config(":memory:")).get_current_head()
    assert head is not None
    return head


def upgrade(db_path: str | Path, *, backup_dir: str | Path | None = None, keep: int = 7) -> str:
    """Bring the database at ``db_path`` to the newest schema; returns the revision.

    An existing database whose revision is behind is backed up first (online backup
    API) into ``backup_dir`` when given.
    """
    db_path = Path(db_path)
    engine = make_engine(db_path)
    try:
        rev = current_revision(engine) if db_path.exists() else None
        head = head_revision()
        if rev != head and rev is not None and backup_dir is not None:
            from daytrading.db.backup import backup_database

            backup_database(db_path, backup_dir, keep=keep, label="pre-migrate")
        if rev != head:
            cfg = alembic_config(db_path)
            with engine.begin() as conn:
                cfg.attributes["connection"] = conn
                command.upgrade(cfg, "head")
        return head
    finally:
        engine.dispose()
