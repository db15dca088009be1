"""Reads for the statistics rebuild and for status: window rows, window models, promotions, counts.

Functions of a caller's connection (``Repository`` opens it and turns driver errors into store errors).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

from sqlalchemy import Connection, Select, func, or_, select

from monitor.events import PromotionEvent
from monitor.store.tables import dead_letter, inference_log, model_version, pending_label
from monitor.store.times import to_datetime, to_epoch
from monitor.store.window_state import Positions, after_positions


def _on_partitions(column: Any, partitions: Sequence[int]) -> Any:
    """Rows of these Kafka partitions, or written without one (replay)."""
    return or_(column.is_(None), column.in_(list(partitions))) if partitions else column.is_(None)


def window_models(conn: Connection, partitions: Sequence[int] | None, since: float, until: float) -> list[str]:
    """Model ids with rows served in ``[since, until)`` on ``partitions`` (None: any)."""
    c = inference_log.c
    query = select(c.model_id).distinct().where(c.served_at >= to_datetime(since), c.served_at < to_datetime(until))
    if partitions is not None:
        query = query.where(_on_partitions(c.partition, partitions))
    return sorted(r.model_id for r in conn.execute(query))


def window_rows_query(
    model_ids: Sequence[str] | None,
    partitions: Sequence[int] | None,
    since: float,
    until: float,
    after: Positions | None,
) -> Select[Any] | None:
    """The query of :func:`window_rows` (see ``Repository.iter_window_rows``); None when
    ``model_ids`` is empty (no rows)."""
    c = inference_log.c
    query = select(
        c.request_id, c.model_id, c.served_at, c.input_features, c.output, c.confidence, c.slice,
        c.lineage, c.latency_ms, c.tokens_in, c.tokens_out, c.was_correct, c.score, c.label_source,
        c.judge_model, c.rubric_version, c.failure_cluster, c.label_observed_at, c.partition, c.ingested_at,
    ).where(c.served_at >= to_datetime(since), c.served_at < to_datetime(until))
    if model_ids is not None:
        if not model_ids:
            return None
        query = query.where(c.model_id.in_(list(model_ids)))
    if partitions is not None:
        query = query.where(_on_partitions(c.partition, partitions))
    if after is not None:
        query = query.where(after_positions(after))
    return query.order_by(c.served_at, c.request_id)


def window_rows(conn: Connection, query: Select[Any], chunk_rows: int) -> Iterator[list[dict[str, Any]]]:
    """The rows of ``query`` (:func:`window_rows_query`), ``chunk_rows`` at a time (a server-side
    cursor on PostgreSQL), as dicts with times as epoch floats."""
    result = conn.execute(query.execution_options(yield_per=chunk_rows))
    for part in result.partitions():
        rows = [dict(r._mapping) for r in part]
        for row in rows:
            row["served_at"] = to_epoch(row["served_at"])
            row["label_observed_at"] = to_epoch(row["label_observed_at"])
            row["ingested_at"] = to_epoch(row["ingested_at"])
            row["slice"] = row["slice"] or {}
            row["lineage"] = row["lineage"] or {}
        yield rows


def promotions(conn: Connection, model_ids: Sequence[str] | None) -> list[PromotionEvent]:
    """Every stored promotion (of ``model_ids``; None: all), oldest first."""
    query = select(model_version).order_by(model_version.c.promoted_at, model_version.c.model_id)
    if model_ids is not None:
        query = query.where(model_version.c.model_id.in_(list(model_ids)))
    return [
        PromotionEvent(
            schema_version=1,
            model_id=r.model_id,
            promoted_at=to_datetime(to_epoch(r.promoted_at) or 0.0),
            rollback_target=r.rollback_target,
            alias=r.alias,
            traffic_fraction=r.traffic_fraction,
        )
        for r in conn.execute(query)
    ]


def counts(conn: Connection) -> dict[str, int]:
    """Row counts per ingestion table."""
    tables = (inference_log, pending_label, model_version, dead_letter)
    return {t.name: conn.execute(select(func.count()).select_from(t)).scalar_one() for t in tables}
