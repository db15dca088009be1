"""A rollback target's labelled outcomes per slice, kept up to date from the label log.

After a promotion names a rollback target, the pipeline reads the target's ``(correct, labelled)``
per slice over the hour before the promotion, and again every minute while labels of the target's
last predictions keep arriving (``Pipeline.load_targets``). Each read of
:func:`~monitor.store.alerts.slices_outcomes` scans all of that hour's rows: 61 full scans per
promotion. :class:`TargetOutcomes` scans once, then adds what changed since: the label log's
changes (``label_change``, ids in commit order) of the target's predictions in the range, each
taking its old label out and putting its new one in, per slice, with the same SQL membership
expressions as the scan. The counts equal a fresh scan's (a test checks it after every write).
An erasure since the last read (a new ``erasure_receipt``, written in the erasure's transaction)
makes the next read scan again, so erased rows stop counting. Retention never deletes rows these
reads can still ask for (``keep_s`` of ``monitor.app.retention_policy`` covers them).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import Engine, func, select

from monitor.snapshot import AGGREGATE
from monitor.store.alerts import _dt, outcomes_at, slice_members
from monitor.store.failures import STORE_FAILURES, store_error
from monitor.store.tables import erasure_receipt, inference_log, label_change

Key = tuple[str, tuple[str, ...], float, float]
_NEWEST = select(
    select(func.coalesce(func.max(label_change.c.id), 0)).scalar_subquery(),
    select(func.coalesce(func.max(erasure_receipt.c.id), 0)).scalar_subquery(),
)


class TargetOutcomes:
    """``(model_id, slices, since, until) -> {slice: (correct, labelled)}``, as
    :func:`~monitor.store.alerts.slices_outcomes` returns, at the cost of the label changes since
    the last call with the same arguments (of a fresh scan when rows were erased since). At most
    ``max_held`` argument sets are kept (the oldest is forgotten first; a forgotten one is scanned
    again when asked)."""

    def __init__(self, engine: Engine, max_held: int = 64) -> None:
        if max_held < 1:
            raise ValueError("max_held must be >= 1")
        self._engine = engine
        self.max_held = max_held
        self._held: dict[Key, tuple[int, int, dict[str, list[int]]]] = {}  # label log id, receipt id, counts
        self.scans = 0  # full scans made (the rest were updates from the label log)

    def __call__(
        self, model_id: str, slices: Sequence[str], since: float, until: float
    ) -> Mapping[str, tuple[int, int]]:
        key = (model_id, tuple(slices), float(since), float(until))
        try:
            with self._engine.connect() as conn:
                if conn.dialect.name == "postgresql":
                    conn = conn.execution_options(isolation_level="REPEATABLE READ")
                with conn.begin():  # the newest ids and the counts of one committed state
                    newest, erased = conn.execute(_NEWEST).one()
                    held = self._held.pop(key, None)
                    if held is None or held[1] != erased:  # never read, or rows erased since
                        self.scans += 1
                        counts = {s: list(v) for s, v in outcomes_at(conn, model_id, slices, since, until).items()}
                    else:
                        seq, _, counts = held
                        self._apply(conn, key, seq, newest, counts)
        except STORE_FAILURES as e:
            raise store_error("reading the rollback target's outcomes", e) from e
        self._held[key] = (newest, erased, counts)
        while len(self._held) > self.max_held:
            del self._held[next(iter(self._held))]
        return {s: (c[0], c[1]) for s, c in counts.items()}

    @staticmethod
    def _apply(conn: Any, key: Key, after: int, until_id: int, counts: dict[str, list[int]]) -> None:
        """The label changes with ``after < id <= until_id`` of the key's predictions, into ``counts``."""
        if until_id <= after:
            return
        model_id, slices, since, until = key
        lc, il = label_change.c, inference_log.c
        members = [m.label(f"m{i}") for i, m in enumerate(slice_members(slices)) if m is not None]
        query = (
            select(lc.old, lc.new, *members)
            .join_from(label_change, inference_log, il.request_id == lc.request_id)
            .where(lc.id > after, lc.id <= until_id, lc.model_id == model_id, il.model_id == model_id,
                   il.served_at >= _dt(since), il.served_at <= _dt(until))
            .order_by(lc.id)
        )
        for row in conn.execute(query):
            old = None if row.old is None else row.old.get("was_correct")
            new = row.new.get("was_correct")
            if old is None and new is None:
                continue
            inside = iter(row[2:])
            for s in slices:
                if s != AGGREGATE and not next(inside):
                    continue
                c = counts[s]
                if old is not None:
                    c[0] -= int(bool(old))
                    c[1] -= 1
                if new is not None:
                    c[0] += int(bool(new))
                    c[1] += 1
