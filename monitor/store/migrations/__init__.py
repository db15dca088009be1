"""Alembic migrations of the Slicewatch store (applied by ``monitor.store.migrate.upgrade``)."""
