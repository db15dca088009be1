"""Publishes drift events to Kafka, keyed by model id, ``acks=all``.

The sink only publishes: :meth:`KafkaDriftPublisher.publish_pending` sends events handed to it
(the pipeline reads them from the ``drift_event`` outbox, see
:func:`monitor.pipeline.publish_outbox`) oldest first, waits for each acknowledgement and returns
the ids acknowledged; the caller marks those published. A failure (broker down, timeout) stops the
batch and backs off exponentially (:meth:`ready` says when to try again), so an outage delays
events but never loses them. Delivery is at least once: consumers deduplicate on ``event_id``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping, Sequence
from typing import Any

import msgspec
from kafka import KafkaProducer
from kafka.errors import KafkaError

from monitor.alerts.errors import PublishError

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

    def ready(self, now: float) -> bool:
        """False while backing off after a failure."""
        return now >= self._next_attempt

    def publish_pending(self, pending: Sequence[tuple[str, Mapping[str, Any]]], now: float) -> list[str]:
        """Publish ``(event_id, event)`` pairs in order until one fails; returns the ids acknowledged.
        A failure starts (or lengthens) the back-off; a full success ends it."""
        done: list[str] = []
        try:
            for event_id, payload in pending:
                self.publish(payload)
                done.append(event_id)
        except PublishError:
            self._failures_total += 1
            self._delay = min(
                self.retry_max_s,
                self.retry_initial_s if self._delay == 0 else self._delay * self.retry_multiplier,
            )
            self._next_attempt = now + self._delay
        else:
            self._delay = 0.0
            self._next_attempt = float("-inf")
        self._published_total += len(done)
        return done

    def _reset(self) -> None:
        if self._producer is not None:
            with contextlib.suppress(Exception):  # a broken client must not mask the publish error
                self._producer.close(timeout=1)
            self._producer = None

    def close(self) -> None:
        self._reset()
