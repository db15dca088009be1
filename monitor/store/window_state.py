"""The label log and the window checkpoints: what a replica needs to take a model over quickly.

**Label log** (``label_change``): every label change is written in the transaction of the label
join that made it, under the join's lock, so ids grow in commit order (a reader that sees id n sees
every smaller id). The owner of a model reads its models' changes from here after each write
(:meth:`WindowStateStore.label_changes_after`), whichever replica consumed the feedback.

**Checkpoints** (``window_checkpoint``): a model's serialized window state plus what it covers:
inference rows with ``offset < positions[partition]`` (and rows written without a partition) and
label changes with ``id <= label_seq``. :meth:`WindowStateStore.restore_reads` reads, in one
snapshot, what lies beyond: the rows after the positions and the label changes in
``(label_seq, newest]`` on covered rows.

Examples
--------
>>> from monitor.records import Label
>>> label = Label(True, 0.5, "human", 61.0, judge_model="j1")
>>> label_from_json(label_to_json(label)) == label
True
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Engine, and_, delete, func, not_, or_, select
from sqlalchemy.dialects import postgresql, sqlite

from monitor.errors import StoreError
from monitor.records import Label, LabelChange, LoggedLabelChange
from monitor.store.labels import label_from
from monitor.store.tables import inference_log, label_change, window_checkpoint
from monitor.store.times import to_datetime, to_epoch

Positions = dict[int, int]  # Kafka partition -> first offset not covered


@dataclass(frozen=True)
class StoredCheckpoint:
    model_id: str
    taken_at: float
    positions: Positions
    label_seq: int
    format: int
    state: bytes


def label_to_json(label: Label) -> dict[str, Any]:
    return {
        "was_correct": label.was_correct,
        "score": label.score,
        "source": label.source,
        "observed_at": label.observed_at,
        "judge_model": label.judge_model,
        "rubric_version": label.rubric_version,
        "failure_cluster": label.failure_cluster,
    }


def label_from_json(d: Mapping[str, Any]) -> Label:
    return label_from(d, source=d["source"], observed_at=float(d["observed_at"]))


def log_label_changes(conn: Connection, changes: Sequence[LabelChange], changed_at: float) -> None:
    """Append ``changes`` to the label log, in order (call inside the label join's transaction)."""
    if not changes:
        return
    at = to_datetime(changed_at)
    conn.execute(
        label_change.insert(),
        [
            {
                "request_id": c.request_id,
                "model_id": c.model_id,
                "served_at": to_datetime(c.served_at),
                "old": None if c.old is None else label_to_json(c.old),
                "new": label_to_json(c.new),
                "changed_at": at,
            }
            for c in changes
        ],
    )


def _covered(positions: Positions) -> Any:
    """Rows a checkpoint with these positions holds: written without a partition, or before the position."""
    c = inference_log.c
    return or_(c.partition.is_(None), *[and_(c.partition == p, c.offset < off) for p, off in positions.items()])


class WindowStateStore:
    """Reads and writes of the label log and the checkpoints (the store edge of the window state)."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    @contextmanager
    def snapshot(self) -> Iterator[Connection]:
        """One read-only transaction whose reads all see the same committed state (REPEATABLE READ
        on PostgreSQL; SQLite has one writer, the caller's own thread, in the embedded setup)."""
        with self._engine.connect() as conn:
            if conn.dialect.name == "postgresql":
                conn = conn.execution_options(isolation_level="REPEATABLE READ")
            with conn.begin():
                yield conn

    # ---- label log -----------------------------------------------------------------------------
    def newest_label_seq(self, conn: Connection | None = None) -> int:
        """Id of the newest label change (0 when there is none)."""
        query = select(func.coalesce(func.max(label_change.c.id), 0))
        if conn is not None:
            return int(conn.execute(query).scalar_one())
        with self._engine.connect() as c:
            return int(c.execute(query).scalar_one())

    def label_changes_after(
        self,
        after: int,
        model_ids: Sequence[str] | None,
        *,
        until: int | None = None,
        positions: Positions | None = None,
        conn: Connection | None = None,
        limit: int = 50_000,
    ) -> list[LoggedLabelChange]:
        """Label changes with ``after < id (<= until)`` of ``model_ids`` (None: all) in id order, at
        most ``limit``; with ``positions``, only those on rows a checkpoint with them covers."""
        lc, il = label_change.c, inference_log.c
        query = (
            select(
                lc.id, lc.request_id, lc.model_id, lc.served_at, lc.old, lc.new, il.slice, il.input_features,
                il.partition, il.offset,
            )
            .join(inference_log, il.request_id == lc.request_id)
            .where(lc.id > after)
            .order_by(lc.id)
            .limit(limit)
        )
        if until is not None:
            query = query.where(lc.id <= until)
        if model_ids is not None:
            if not model_ids:
                return []
            query = query.where(lc.model_id.in_(list(model_ids)))
        if positions is not None:
            query = query.where(_covered(positions))

        def run(c: Connection) -> list[LoggedLabelChange]:
            return [
                LoggedLabelChange(
                    int(r.id),
                    LabelChange(
                        request_id=r.request_id,
                        model_id=r.model_id,
                        served_at=to_epoch(r.served_at) or 0.0,
                        slice=dict(r.slice or {}),
                        input_features=dict(r.input_features or {}),
                        old=None if r.old is None else label_from_json(r.old),
                        new=label_from_json(r.new),
                    ),
                    None if r.partition is None else (int(r.partition), int(r.offset)),
                )
                for r in c.execute(query)
            ]

        if conn is not None:
            return run(conn)
        with self._engine.connect() as c:
            return run(c)

    def partition_ends(self, conn: Connection, partitions: Sequence[int]) -> Positions:
        """For each partition, one past the highest offset stored from it (0 when none)."""
        il = inference_log.c
        out: Positions = {}
        for p in partitions:  # one index probe per partition: max() on (partition, offset)
            top = conn.execute(select(func.max(il.offset)).where(il.partition == p)).scalar_one()
            out[p] = 0 if top is None else int(top) + 1
        return out

    def models_held_elsewhere(
        self, conn: Connection, model_ids: Sequence[str], positions: Positions, partitions: Sequence[int], since: float
    ) -> set[str]:
        """Those of ``model_ids`` whose checkpoint (with ``positions``) holds window rows of a
        partition outside ``partitions``: their state is not this replica's to take over."""
        other = {p: o for p, o in positions.items() if p not in set(partitions)}
        if not other or not model_ids:
            return set()
        il = inference_log.c
        query = (
            select(il.model_id)
            .distinct()
            .where(
                il.model_id.in_(list(model_ids)),
                il.served_at >= to_datetime(since),
                or_(*[and_(il.partition == p, il.offset < o) for p, o in other.items()]),
            )
        )
        return {r.model_id for r in conn.execute(query)}

    # ---- checkpoints ---------------------------------------------------------------------------
    def save_checkpoints(self, checkpoints: Sequence[StoredCheckpoint]) -> None:
        """Upsert one row per model, in one transaction."""
        if not checkpoints:
            return
        rows = [
            {
                "model_id": c.model_id,
                "taken_at": to_datetime(c.taken_at),
                "positions": {str(p): o for p, o in c.positions.items()},
                "label_seq": c.label_seq,
                "format": c.format,
                "state": c.state,
            }
            for c in checkpoints
        ]
        dialect = self._engine.dialect.name
        ins: Any
        if dialect == "postgresql":
            ins = postgresql.insert(window_checkpoint)
        elif dialect == "sqlite":
            ins = sqlite.insert(window_checkpoint)
        else:
            raise StoreError(f"unsupported database dialect {dialect!r}")
        stmt = ins.on_conflict_do_update(
            index_elements=["model_id"],
            set_={k: ins.excluded[k] for k in ("taken_at", "positions", "label_seq", "format", "state")},
        )
        with self._engine.begin() as conn:
            conn.execute(stmt, rows)

    def load_checkpoints(
        self, model_ids: Sequence[str], taken_since: float, conn: Connection | None = None
    ) -> dict[str, StoredCheckpoint]:
        """The checkpoints of ``model_ids`` taken at or after ``taken_since``."""
        if not model_ids:
            return {}
        w = window_checkpoint.c
        query = select(window_checkpoint).where(
            w.model_id.in_(list(model_ids)), w.taken_at >= to_datetime(taken_since)
        )

        def run(c: Connection) -> dict[str, StoredCheckpoint]:
            return {
                r.model_id: StoredCheckpoint(
                    r.model_id,
                    to_epoch(r.taken_at) or 0.0,
                    {int(p): int(o) for p, o in (r.positions or {}).items()},
                    int(r.label_seq),
                    int(r.format),
                    bytes(r.state),
                )
                for r in c.execute(query)
            }

        if conn is not None:
            return run(conn)
        with self._engine.connect() as c:
            return run(c)

    def prune(self, label_changes_before: float, checkpoints_before: float) -> tuple[int, int]:
        """Delete label changes made before ``label_changes_before`` and checkpoints taken before
        ``checkpoints_before`` (neither can matter to a window any more); returns both counts."""
        with self._engine.begin() as conn:
            a = conn.execute(delete(label_change).where(label_change.c.changed_at < to_datetime(label_changes_before)))
            b = conn.execute(
                delete(window_checkpoint).where(window_checkpoint.c.taken_at < to_datetime(checkpoints_before))
            )
            return int(a.rowcount or 0), int(b.rowcount or 0)


def after_positions(positions: Positions) -> Any:
    """Rows a checkpoint with these positions does not hold (the complement of its coverage among
    rows with a partition)."""
    c = inference_log.c
    return and_(c.partition.is_not(None), not_(_covered(positions)))
