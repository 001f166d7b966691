"""Persistent state in PostgreSQL (asyncpg) or SQLite (aiosqlite), SQLAlchemy Core.

- ``writer.HealthStore``: every write (balances per watcher cycle, prices per round, health
  per engine cycle, positions), one transaction each, idempotent; ``load_state`` to resume.
- ``queries.StoreQueries``: the reads the API and the MQTT publisher need.
- ``migrate``: Alembic from code (``crossmargin migrate``) and the start-up schema check.
- ``schema`` (tables), ``types`` (exact columns on both dialects), ``rows`` (what is written),
  ``records`` (what is read), ``cycle``/``listing_writes``/``chain_state``/``price_rounds``/
  ``bulk`` (the set-based SQL), ``cycle_transactions`` (an engine cycle's write cut into
  transactions).

Kept free of imports: ``daemon.config.model`` imports ``daemon.store.urls`` without SQLAlchemy.
"""
