"""Publishes drift events to Kafka from the ``drift_event`` outbox, keyed by model id, ``acks=all``.

``flush_outbox(engine, now)`` sends the unpublished rows oldest first, waits for each
acknowledgement and only then marks the row published. A failure (broker down, timeout) leaves the
rest queued and backs off exponentially; the next call after the back-off tries again, so an
outage delays events but never loses them. Delivery is at least once: consumers deduplicate on
``event_id``.

Examples
--------
>>> # pub = KafkaDriftPublisher("127.0.0.1:9092", "drift-events")
>>> # pub.flush_outbox(engine, now=time.time())  # every evaluation
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from typing import Any

import msgspec
from kafka import KafkaProducer
from kafka.errors import KafkaError
from sqlalchemy import Engine

from monitor.alerts.errors import PublishError
from monitor.store.alerts import mark_published, unpublished_events

_encode = msgspec.json.Encoder().encode


class KafkaDriftPublisher:
    """At-least-once publisher of the drift event outbox.

    ``client_kwargs`` are passed to ``KafkaProducer`` (security settings); ``retry_initial_s``,
    ``retry_max_s`` and ``retry_multiplier`` shape the back-off between failed flushes.
    """

    def __init__(
        self,
        bootstrap_servers: str,
        topic: str = "drift-events",
        client_kwargs: Mapping[str, Any] | None = None,
        retry_initial_s: float = 0.5,
        retry_max_s: float = 30.0,
        retry_multiplier: float = 2.0,
        send_timeout_s: float = 10.0,
        batch_size: int = 500,
    ) -> None:
        if retry_initial_s <= 0 or retry_max_s < retry_initial_s or retry_multiplier < 1:
            raise ValueError("need 0 < retry_initial_s <= retry_max_s and retry_multiplier >= 1")
        self.bootstrap_servers = bootstrap_servers
        self.topic = topic
        self.client_kwargs = dict(client_kwargs or {})
        self.retry_initial_s = retry_initial_s
        self.retry_max_s = retry_max_s
        self.retry_multiplier = retry_multiplier
        self.send_timeout_s = send_timeout_s
        self.batch_size = batch_size
        self._producer: KafkaProducer | None = None
        self._delay = 0.0
        self._next_attempt = float("-inf")
        self._published_total = 0
        self._failures_total = 0

    @property
    def published_total(self) -> int:
        return self._published_total

    @property
    def failures_total(self) -> int:
        return self._failures_total

    @property
    def next_attempt_at(self) -> float:
        return self._next_attempt

    def _connect(self) -> KafkaProducer:
        if self._producer is None:
            timeout_ms = int(self.send_timeout_s * 1000)
            self._producer = KafkaProducer(
                bootstrap_servers=self.bootstrap_servers,
                acks="all",
                max_block_ms=timeout_ms,
                request_timeout_ms=timeout_ms,
                delivery_timeout_ms=timeout_ms + 1000,
                **self.client_kwargs,
            )
        return self._producer

    def publish(self, event: Mapping[str, Any]) -> None:
        """Send one event and wait for the acknowledgement; raises :class:`PublishError`."""
        try:
            future = self._connect().send(self.topic, key=str(event["model_id"]).encode(), value=_encode(dict(event)))
            future.get(timeout=self.send_timeout_s + 1)
        except KafkaError as e:
            self._reset()
            raise PublishError(f"publishing a drift event failed ({type(e).__name__})") from e

    def flush_outbox(self, engine: Engine, now: float) -> int:
        """Publish unpublished outbox rows (unless backing off); returns how many were acknowledged."""
        if now < self._next_attempt:
            return 0
        sent = 0
        while True:
            rows = unpublished_events(engine, self.batch_size)
            if not rows:
                break
            done: list[str] = []
            try:
                for event_id, _model_id, payload in rows:
                    self.publish(payload)
                    done.append(event_id)
            except PublishError:
                mark_published(engine, done, now)
                sent += len(done)
                self._published_total += len(done)
                self._failures_total += 1
                self._delay = min(
                    self.retry_max_s,
                    self.retry_initial_s if self._delay == 0 else self._delay * self.retry_multiplier,
                )
                self._next_attempt = now + self._delay
                return sent
            mark_published(engine, done, now)
            sent += len(done)
            self._published_total += len(done)
            if len(rows) < self.batch_size:
                break
        self._delay = 0.0
        self._next_attempt = float("-inf")
        return sent

    def _reset(self) -> None:
        if self._producer is not None:
            with contextlib.suppress(Exception):  # a broken client must not mask the publish error
                self._producer.close(timeout=1)
            self._producer = None

    def close(self) -> None:
        self._reset()
