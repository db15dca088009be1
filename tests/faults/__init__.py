"""Fault-injection suite: real consumer processes, real PostgreSQL, real Tansu broker (see README.md)."""
