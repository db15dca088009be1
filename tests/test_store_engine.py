"""SQLite connection settings of ``make_engine``: WAL and a busy timeout everywhere; a durable
file syncs at ``NORMAL``, a throw-away one (``slicewatch replay``'s) not at all."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import text

from monitor.store.engine import make_engine

SYNCHRONOUS = {0: "OFF", 1: "NORMAL", 2: "FULL", 3: "EXTRA"}


@pytest.mark.parametrize(("throwaway", "want"), [(False, "NORMAL"), (True, "OFF")])
def test_sqlite_pragmas(tmp_path: Path, throwaway: bool, want: str) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'a.db'}", throwaway=throwaway)
    with engine.connect() as conn:
        assert SYNCHRONOUS[conn.execute(text("PRAGMA synchronous")).scalar_one()] == want
        assert conn.execute(text("PRAGMA journal_mode")).scalar_one() == "wal"
        assert conn.execute(text("PRAGMA busy_timeout")).scalar_one() == 30000
    engine.dispose()


def test_replay_builds_its_store_as_a_throwaway(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import monitor.app as app
    from monitor.config import Settings

    seen: list[bool] = []
    real = app.open_database

    def spy(*args, throwaway: bool = False, **kw):  # type: ignore[no-untyped-def]
        seen.append(throwaway)
        return real(*args, throwaway=throwaway, **kw)

    monkeypatch.setattr(app, "open_database", spy)
    events = tmp_path / "none.jsonl"
    events.write_text("")
    app.replay(Settings(), events, None, None, tmp_path / "out.jsonl")
    assert seen == [True]
