"""``reference_profile``: versioned reference profiles per model, body as JSON, with a content hash.

Saving is idempotent per content: if the model's latest profile has the same ``content_hash`` it is
returned unchanged; otherwise the profile is stored as the next version. Functions take a SQLAlchemy
``Engine`` (PostgreSQL or SQLite); driver errors are wrapped in :class:`StoreError` without row data.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Column, DateTime, Engine, Index, Integer, String, Table, func, insert, select
from sqlalchemy.exc import IntegrityError

from monitor.errors import StoreError
from monitor.stats.errors import ProfileError
from monitor.stats.profile import ReferenceProfile
from monitor.store.base import JSONType, metadata
from monitor.store.failures import STORE_FAILURES, store_error

reference_profile = Table(
    "reference_profile",
    metadata,
    Column("id", String(64), nullable=False),
    Column("model_id", String(512), primary_key=True),
    Column("version", Integer, primary_key=True),
    Column("content_hash", String(64), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("source", String(32), nullable=False),
    Column("body", JSONType, nullable=False),
    Index("ix_reference_profile_id", "id"),
)


def _from_row(row: Any) -> ReferenceProfile:
    body = row.body
    try:
        if isinstance(body, str | bytes):
            return ReferenceProfile.from_json(body)
        return ReferenceProfile.from_dict(dict(body))
    except ProfileError as e:
        raise StoreError("stored reference profile is unreadable") from e


def save_profile(engine: Engine, profile: ReferenceProfile, source: str | None = None) -> ReferenceProfile:
    """Store ``profile`` as the model's next version (or return the latest if its content is equal)."""
    src = source or profile.source
    for _attempt in range(3):
        try:
            with engine.begin() as conn:
                c = reference_profile.c
                latest = conn.execute(
                    select(c.version, c.content_hash, c.body)
                    .where(reference_profile.c.model_id == profile.model_id)
                    .order_by(reference_profile.c.version.desc())
                    .limit(1)
                ).first()
                if latest is not None and latest.content_hash == profile.content_hash:
                    return _from_row(latest)
                version = 1 if latest is None else int(latest.version) + 1
                stored = replace(profile, version=version, source=src)
                conn.execute(
                    insert(reference_profile).values(
                        id=stored.id,
                        model_id=stored.model_id,
                        version=version,
                        content_hash=stored.content_hash,
                        created_at=datetime.fromtimestamp(stored.created_at, tz=UTC),
                        source=src,
                        body=stored.to_dict(),
                    )
                )
                return stored
        except IntegrityError:
            continue  # a concurrent writer took this version number; read again
        except STORE_FAILURES as e:
            raise store_error("saving a reference profile", e) from e
    raise StoreError("saving a reference profile failed (version conflict)")


def latest_profile(engine: Engine, model_id: str) -> ReferenceProfile | None:
    try:
        with engine.connect() as conn:
            row = conn.execute(
                select(reference_profile.c.body)
                .where(reference_profile.c.model_id == model_id)
                .order_by(reference_profile.c.version.desc())
                .limit(1)
            ).first()
    except STORE_FAILURES as e:
        raise store_error("loading a reference profile", e) from e
    return None if row is None else _from_row(row)


def _newest(*columns: Any) -> Any:
    """``columns`` of every model's newest profile (the highest version)."""
    newest = (
        select(reference_profile.c.model_id, func.max(reference_profile.c.version).label("version"))
        .group_by(reference_profile.c.model_id)
        .subquery()
    )
    c = reference_profile.c
    return select(c.model_id, *columns).join(
        newest, (c.model_id == newest.c.model_id) & (c.version == newest.c.version)
    )


def latest_hashes(engine: Engine) -> dict[str, str]:
    """The content hash of every model's newest profile (a small query: what changed is loaded
    by :func:`latest_profile`)."""
    try:
        with engine.connect() as conn:
            rows = conn.execute(_newest(reference_profile.c.content_hash)).all()
    except STORE_FAILURES as e:
        raise store_error("reading the reference profile versions", e) from e
    return {str(r.model_id): str(r.content_hash) for r in rows}


def latest_profiles(engine: Engine) -> dict[str, ReferenceProfile]:
    """The newest profile of every model that has one."""
    try:
        with engine.connect() as conn:
            rows = conn.execute(_newest(reference_profile.c.body)).all()
    except STORE_FAILURES as e:
        raise store_error("loading reference profiles", e) from e
    return {str(r.model_id): _from_row(r) for r in rows}
