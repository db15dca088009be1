"""Kafka ingestion edge: consumer loop, decoding, dead letters, topics."""
