"""``slicewatch reference build``: a reference profile from a file or from the model's logged rows,
stored (versioned, with its content hash) in ``reference_profile``. An edge: reads files and the DB;
:func:`monitor.app.reference` wires it."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from pathlib import Path

import polars as pl
from sqlalchemy import Engine

from monitor.stats.errors import ProfileError
from monitor.stats.profile import ReferenceProfile
from monitor.stats.profile_builder import build_profile, build_profile_from_log
from monitor.store import profiles as profile_store
from monitor.store import retention
from monitor.store.repository import Repository


@dataclass(frozen=True)
class ProfileOptions:
    """What a profile covers and how finely (the ``stats`` settings of the same names)."""

    features: list[str] | None
    numeric_bins: int
    top_k_categories: int
    protected_slices: dict[str, list[str]]


def load_reference_file(path: str | Path) -> pl.DataFrame:
    """Read a Parquet, CSV or JSONL (NDJSON) reference file with polars."""
    p = Path(path)
    suffix = p.suffix.lower()
    try:
        if suffix in (".parquet", ".pq"):
            return pl.read_parquet(p)
        if suffix == ".csv":
            return pl.read_csv(p)
        if suffix in (".jsonl", ".ndjson", ".json"):
            return pl.read_ndjson(p)
    except (OSError, pl.exceptions.PolarsError) as e:
        raise ProfileError(f"cannot read reference file {p.name} ({type(e).__name__})") from e
    raise ProfileError(f"unsupported reference file type {suffix!r} (use .parquet, .csv or .jsonl)")


def build_reference(
    db: Engine,
    model_id: str,
    options: ProfileOptions,
    *,
    from_file: Path | None = None,
    since: float | None = None,
    until: float | None = None,
    now: float | None = None,
) -> ReferenceProfile:
    """Build, store and return the profile; raises ``ProfileError`` when there is nothing to build from."""
    kwargs = {**asdict(options), "created_at": time.time() if now is None else now}
    if from_file is not None:
        profile = build_profile(load_reference_file(from_file), model_id, **kwargs)
    else:
        assert since is not None and until is not None
        # retention keeps the rows being read (a hold) until they are
        with retention.hold(db, f"reference build {model_id}", since, kwargs["created_at"]):
            rows = Repository(db).load_rows([model_id], since, until)
        if not rows:
            raise ProfileError(f"no rows of {model_id} in inference_log in that time range")
        profile = build_profile_from_log(rows, model_id, **kwargs)
    return profile_store.save_profile(db, profile, source="file" if from_file else "log")
