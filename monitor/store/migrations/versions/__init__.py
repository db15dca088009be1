"""Alembic revision files, one per schema step (``0001_ingest``, ``0002_...``)."""
