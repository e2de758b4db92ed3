"""Database: engine (WAL pragmas), models, Alembic migrations, backups."""

from daytrading.db.engine import make_engine
from daytrading.db.migrate import upgrade

__all__ = ["make_engine", "upgrade"]
