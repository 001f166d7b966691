"""Alembic migrations of the crossmargin store (PostgreSQL and SQLite), shipped in the wheel:
``daemon.store.migrate`` finds them through ``importlib.resources``."""
