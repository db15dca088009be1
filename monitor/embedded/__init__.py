"""Servers Slicewatch can start for itself: the Tansu Kafka-protocol broker (demo, tests) and a
throw-away PostgreSQL cluster (tests, benchmarks). Both listen on 127.0.0.1 only."""
