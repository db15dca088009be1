"""Reference profiles: building (file, frame, log rows), JSON round-trip, hash, and the store table."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from monitor.reference import load_reference_file
from monitor.stats.errors import ProfileError
from monitor.stats.profile import ReferenceProfile
from monitor.stats.profile_builder import build_profile, build_profile_from_log
from monitor.store import profiles as store
from monitor.store.engine import make_engine
from monitor.store.migrate import upgrade
from tests.stats_fixtures import StreamSpec, make_batch, to_rows


def reference_frame(n: int = 4000, seed: int = 0) -> pl.DataFrame:
    rng = np.random.default_rng(seed)
    return pl.DataFrame({
        "x": rng.normal(size=n),
        "c": rng.choice(["a", "b", "c", "d"], n, p=[0.4, 0.3, 0.2, 0.1]),
        "flag": rng.random(n) < 0.3,
        "language": rng.choice(["en", "es"], n, p=[0.9, 0.1]),
        "output": rng.choice(["yes", "no"], n),
        "confidence": rng.random(n),
        "tokens_in": rng.integers(1, 5000, n),
        "was_correct": rng.random(n) < 0.9,
    })


def test_profile_counts_match_numpy():
    df = reference_frame()
    p = build_profile(df, "m1", numeric_bins=10, top_k_categories=2, protected_slices={"language": ["es"]})
    kinds = {f.name: f.kind for f in p.features}
    assert kinds == {"c": "categorical", "flag": "boolean", "language": "categorical", "x": "numeric",
                     "tokens_in": "numeric"}
    x = df["x"].to_numpy()
    spec = p.feature("x")
    assert spec is not None
    assert np.allclose(spec.edges, np.quantile(x, np.linspace(0, 1, 11)))
    counts = p.aggregate.feature_counts("x")
    hist, _ = np.histogram(x, bins=np.asarray(spec.edges))
    assert counts[1:-2].tolist() == hist.tolist() and counts[0] == 0 and counts[-1] == 0
    cat = p.feature("c")
    assert cat is not None and cat.categories == ("a", "b") and cat.vocabulary == ("c", "d")
    vc = df["c"].value_counts()
    other = int(vc.filter(pl.col("c").is_in(["c", "d"]))["count"].sum())
    assert p.aggregate.feature_counts("c").tolist() == [int((df["c"] == "a").sum()), int((df["c"] == "b").sum()),
                                                        other, 0, 0]
    es = df.filter(pl.col("language") == "es")
    assert p.slices["language=es"].n == es.height
    assert p.slices["language=es"].accuracy == pytest.approx(es["was_correct"].mean())
    assert p.aggregate.accuracy == pytest.approx(df["was_correct"].mean())
    assert p.aggregate.coverage() == 1.0 and p.labelled


def test_json_round_trip_and_hash():
    p = build_profile(reference_frame(), "m1")
    q = ReferenceProfile.from_json(p.to_json())
    assert q == p and q.content_hash == p.content_hash and q.id == p.id
    assert build_profile(reference_frame(), "m1").content_hash == p.content_hash  # deterministic
    assert build_profile(reference_frame(seed=1), "m1").content_hash != p.content_hash
    assert build_profile(reference_frame(), "m2").id != p.id
    tampered = p.to_dict()
    tampered["labelled"] = False
    with pytest.raises(ProfileError):
        ReferenceProfile.from_dict(tampered)
    with pytest.raises(ProfileError):
        ReferenceProfile.from_json("{not json")


@pytest.mark.parametrize("suffix", [".parquet", ".csv", ".jsonl"])
def test_load_reference_file(tmp_path, suffix):
    df = reference_frame(500)
    path = tmp_path / f"ref{suffix}"
    {".parquet": df.write_parquet, ".csv": df.write_csv, ".jsonl": df.write_ndjson}[suffix](path)
    p = build_profile(load_reference_file(path), "m1")
    assert p.aggregate.n == 500
    assert p.aggregate.feature_counts("x").sum() == 500


def test_unsupported_or_missing_file(tmp_path):
    with pytest.raises(ProfileError):
        load_reference_file(tmp_path / "x.txt")
    with pytest.raises(ProfileError):
        load_reference_file(tmp_path / "missing.parquet")
    with pytest.raises(ProfileError):
        build_profile(reference_frame(0), "m1")


def test_input_features_struct_column_and_log_rows():
    rng = np.random.default_rng(2)
    events, labels = make_batch(rng, StreamSpec(), 1000, 0.0, 600.0)
    rows = to_rows(events, labels)
    from_log = build_profile_from_log(rows, "m1")
    frame = pl.DataFrame(rows).drop("lineage")
    from_frame = build_profile(frame, "m1")
    assert from_log.aggregate.feature_counts("x0").tolist() == from_frame.aggregate.feature_counts("x0").tolist()
    assert from_log.aggregate.accuracy == pytest.approx(np.mean([lc.new.was_correct for lc in labels]))
    with pytest.raises(ProfileError):
        build_profile_from_log(rows, "other-model")


def _store_round_trip(url: str) -> None:
    upgrade(url)
    db = make_engine(url)
    p1 = build_profile(reference_frame(), "m1", created_at=100.0)
    s1 = store.save_profile(db, p1, source="file")
    assert s1.version == 1 and s1.source == "file"
    assert store.save_profile(db, p1).version == 1  # same content: no new version
    p2 = build_profile(reference_frame(seed=5), "m1", created_at=200.0)
    assert store.save_profile(db, p2, source="log").version == 2
    store.save_profile(db, build_profile(reference_frame(), "m2"))
    latest = store.latest_profile(db, "m1")
    assert latest is not None and latest.content_hash == p2.content_hash and latest.version == 2
    assert store.latest_profile(db, "nope") is None
    everything = store.latest_profiles(db)
    assert set(everything) == {"m1", "m2"} and everything["m1"].version == 2
    db.dispose()


@pytest.mark.integration
def test_store_on_postgres(pg_url):
    _store_round_trip(pg_url)


def test_store_on_sqlite(tmp_path):
    _store_round_trip(f"sqlite:///{tmp_path}/p.db")
