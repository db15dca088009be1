"""The database edge: SQLAlchemy 2 tables, Alembic migrations, idempotent batch writes."""
