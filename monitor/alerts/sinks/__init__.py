"""Where alerts go: Kafka ``drift-events`` (through the ``drift_event`` outbox) and Alertmanager."""

from monitor.alerts.sinks.alertmanager import AlertmanagerSink
from monitor.alerts.sinks.kafka import KafkaDriftPublisher

__all__ = ["AlertmanagerSink", "KafkaDriftPublisher"]
