"""Taking models over after a partition assignment, from checkpoints, and taking the checkpoints.

A replica assigned a partition must hold, for every model on it, the window state a replica that
had read the partition from the start would hold. :meth:`Takeover.restore` gets there in one read
snapshot of the database:

* a model with a usable checkpoint (taken within the window, same layout) loads it and replays only
  the rows after the checkpoint's positions, then the label changes logged after its ``label_seq``
  on rows it already held;
* any other model replays all of its window's rows (the rows carry their labels).

Either way the model then holds every label change up to the snapshot's newest id
(:meth:`~monitor.pipeline.Pipeline.floor`), and the pipeline's positions are the partitions' ends in
the snapshot. :meth:`Takeover.checkpoint` serializes the state under the pipeline's lock (so state,
positions and ``label_seq`` agree) and writes it after releasing it.
"""

from __future__ import annotations

import logging
import zlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from monitor.drift.checkpoint import FORMAT
from monitor.drift.engine import DriftEngine
from monitor.pipeline import Pipeline
from monitor.stats.window import window_bounds
from monitor.store.repository import Repository
from monitor.store.window_state import Positions, StoredCheckpoint, WindowStateStore

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TakeoverStats:
    models: int
    from_checkpoint: int
    rows_replayed: int
    label_changes_applied: int


class Takeover:
    def __init__(
        self,
        *,
        engine: DriftEngine,
        pipeline: Pipeline,
        repository: Repository,
        store: WindowStateStore,
        bucket_seconds: float,
        window_buckets: int,
        label_chunk: int = 50_000,
    ) -> None:
        self.engine = engine
        self.pipeline = pipeline
        self.repository = repository
        self.store = store
        self.bucket_seconds = float(bucket_seconds)
        self.window_buckets = int(window_buckets)
        self.label_chunk = label_chunk

    def window_start(self, now: float) -> float:
        """Start of the oldest bucket of the window at ``now``: older rows are in no window."""
        return window_bounds(now, self.bucket_seconds, self.window_buckets)[0]

    # ---- restore ---------------------------------------------------------------------------------
    def restore(self, models: Sequence[str], partitions: Sequence[int], now: float) -> TakeoverStats:
        """Rebuild the state of ``models`` (on ``partitions``) from checkpoints and the store; the
        caller holds :attr:`Pipeline.feed_lock` and :attr:`Pipeline.lock`."""
        since = self.window_start(now)
        rows = changes = from_checkpoint = 0
        with self.store.snapshot() as conn:
            newest = self.store.newest_label_seq(conn)
            stored = self.store.load_checkpoints(models, since, conn)
            self.engine.reset_models(list(models))
            groups: dict[tuple[tuple[tuple[int, int], ...], int], list[str]] = {}
            for m, cp in stored.items():
                key = (tuple(sorted(cp.positions.items())), cp.label_seq)
                if cp.format == FORMAT:
                    groups.setdefault(key, []).append(m)
            for key, group in list(groups.items()):
                # a model whose events were spread over partitions (a producer not keying by model
                # id) may hold rows of partitions another replica owns now: replay those models
                elsewhere = self.store.models_held_elsewhere(conn, group, dict(key[0]), partitions, since)
                kept = [m for m in group if m not in elsewhere and self._load(m, stored[m].state)]
                if kept:
                    groups[key] = kept
                else:
                    del groups[key]
            restored = {m for ms in groups.values() for m in ms}
            full = [m for m in models if m not in restored]
            for chunk in self.repository.iter_window_rows(full, partitions, since, now + 1, conn=conn):
                self.engine.replay(chunk, now)
                rows += len(chunk)
            for (pos, seq), group in groups.items():
                positions: Positions = dict(pos)
                for chunk in self.repository.iter_window_rows(
                    group, partitions, since, now + 1, after=positions, conn=conn
                ):
                    self.engine.replay(chunk, now)
                    rows += len(chunk)
                after = seq
                while after < newest:
                    got = self.store.label_changes_after(
                        after, group, until=newest, positions=positions, conn=conn, limit=self.label_chunk
                    )
                    if not got:
                        break
                    self.engine.observe([], [x.change for x in got], now)
                    changes += len(got)
                    after = got[-1].seq
                from_checkpoint += len(group)
            self.pipeline.floor(models, newest)
            self.pipeline.positions = self.store.partition_ends(conn, partitions)
        return TakeoverStats(len(models), from_checkpoint, rows, changes)

    def _load(self, model_id: str, state: bytes) -> bool:
        try:
            return self.engine.restore(model_id, zlib.decompress(state))
        except zlib.error:
            return False

    # ---- checkpoint ------------------------------------------------------------------------------
    def checkpoint(self, now: float, models: Iterable[str] | None = None) -> int:
        """Write the checkpoints of ``models`` (None: every model with a window); returns how many."""
        with self.pipeline.lock:
            positions = dict(self.pipeline.positions)
            taken = [
                (m, self.pipeline.covered_seq(m), blob)
                for m in (self.engine.models if models is None else models)
                if (blob := self.engine.checkpoint(m)) is not None
            ]
        self.store.save_checkpoints(
            [StoredCheckpoint(m, now, positions, seq, FORMAT, zlib.compress(blob, 1)) for m, seq, blob in taken]
        )
        return len(taken)

    def prune(self, now: float) -> tuple[int, int]:
        """Drop label changes and checkpoints no window can need: older than two window lengths
        (a checkpoint is used only within one, and the changes after it within the next)."""
        span = self.bucket_seconds * self.window_buckets
        return self.store.prune(now - 2 * span, now - span)
