"""Create topics before consuming (Tansu and clusters without auto-create need this)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Mapping
from typing import Any

from kafka import KafkaAdminClient
from kafka.admin import NewTopic
from kafka.errors import KafkaError, TopicAlreadyExistsError

from monitor.ingest.errors import TopicSetupError


def ensure_topics(
    bootstrap_servers: str,
    topics: Iterable[str],
    partitions: int = 1,
    client_kwargs: Mapping[str, Any] | None = None,
    replication_factor: int = 1,
) -> list[str]:
    """Create the topics that do not exist yet; return the names created."""
    try:
        admin = KafkaAdminClient(bootstrap_servers=bootstrap_servers, **dict(client_kwargs or {}))
    except KafkaError as e:
        raise TopicSetupError(f"cannot reach the broker to create topics ({type(e).__name__})") from e
    try:
        existing = set(admin.list_topics())
        missing = [t for t in dict.fromkeys(topics) if t not in existing]
        if missing:
            new = [NewTopic(t, partitions, replication_factor) for t in missing]
            with contextlib.suppress(TopicAlreadyExistsError):  # a concurrent creator won the race
                admin.create_topics(new)
        return missing
    except KafkaError as e:
        raise TopicSetupError(f"topic creation failed ({type(e).__name__})") from e
    finally:
        admin.close()
