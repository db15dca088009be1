"""``decode_records`` (a poll batch in three msgspec passes) against ``decode_record`` (one record at
a time): the same verdict and the same reason for every record, on the shared schema samples, on
hypothesis-made mixes of valid, mutated and broken records, and on records built to shift each
other's boundaries inside the joined array."""

from __future__ import annotations

import random
from typing import Any

import msgspec
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from monitor.events import EventKind
from monitor.ingest.decoder import DecodeFailure, decode_record, decode_records
from tests.decoder_fixtures import BASE, EVENT_DICTS, MAX_BYTES, kinds
from tests.test_schemas import SAMPLES

FAST = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def one_by_one(kind: EventKind, keys: list[bytes | None], values: list[bytes | None], max_bytes: int) -> list[Any]:
    out: list[Any] = []
    for k, v in zip(keys, values, strict=True):
        try:
            out.append(decode_record(kind, k, v, max_bytes))
        except DecodeFailure as e:
            out.append(e)
    return out


def verdict(x: Any) -> Any:
    if isinstance(x, DecodeFailure):
        return ("failure", x.stage, x.error_class, x.reason, x.path)
    return ("event", msgspec.json.encode(x))


def assert_same(kind: EventKind, keys: list[bytes | None], values: list[bytes | None], max_bytes: int) -> None:
    got = [verdict(x) for x in decode_records(kind, keys, values, max_bytes)]
    want = [verdict(x) for x in one_by_one(kind, keys, values, max_bytes)]
    assert got == want


def test_every_schema_sample_gets_the_same_verdict_and_reason_in_a_batch() -> None:
    rng = random.Random(5)
    for kind in ("inference", "feedback", "promotion"):
        samples = [raw for _, k, raw, _ in SAMPLES if k == kind]
        assert len(samples) > 10
        for _ in range(5):  # shuffled and repeated, so both the joined path and the splits run
            values: list[bytes | None] = [rng.choice(samples) for _ in range(3 * len(samples))]
            keys: list[bytes | None] = [rng.choice([None, b"", b"intent-clf@v42", b"other", b"\xff"]) for _ in values]
            assert_same(kind, keys, values, MAX_BYTES)
        # all valid: one joined decode, no split
        valid = [raw for _, k, raw, expected in SAMPLES if k == kind and expected is None]
        assert_same(kind, [None] * (8 * len(valid)), valid * 8, MAX_BYTES)


def test_records_that_would_shift_each_others_boundaries_are_caught() -> None:
    good = msgspec.json.encode(BASE["inference"])
    head, tail = good[: good.index(b'"model_id"')], good[good.index(b'"model_id"'):]
    tricky: list[bytes | None] = [
        good[:-1] + b', "x": "',         # opens a string that the next record would close
        b'", "y": 1}',                   # ... closed here: joined, the two would read as one object
        good + b" ",                      # trailing JSON space is fine
        b" \t" + good,                   # leading JSON space too
        b"\x0c" + good,                  # form feed is not JSON space
        good + b"," + good,              # two events in one record: two array elements
        good + b"]",                     # would close the array early
        b"[" + good,
        head + b"\n" + tail,             # a newline between members
        good,
        b"null",
        b"{}",
        good.replace(b"intent-clf@v42", b" "),  # blank model id
    ]
    for rotate in range(len(tricky)):
        values = tricky[rotate:] + tricky[:rotate] + [good] * 6
        assert_same("inference", [None] * len(values), values, MAX_BYTES)


def _records(kind: EventKind) -> st.SearchStrategy[bytes | None]:
    valid = EVENT_DICTS[kind].map(msgspec.json.encode)
    base = msgspec.json.encode(BASE[kind])
    cut = st.integers(0, len(base)).map(lambda i: base[:i])
    spliced = st.tuples(st.integers(0, len(base)), st.binary(max_size=12)).map(
        lambda t: base[: t[0]] + t[1] + base[t[0]:]
    )
    return st.one_of(valid, valid, st.just(base), cut, spliced, st.none(), st.binary(max_size=30))


@FAST
@given(data=st.data(), kind=kinds, max_bytes=st.sampled_from([64, 300, MAX_BYTES]))
def test_any_mix_of_records_gets_the_same_verdicts(data: st.DataObject, kind: EventKind, max_bytes: int) -> None:
    values = data.draw(st.lists(_records(kind), min_size=0, max_size=40))
    keys = data.draw(st.lists(st.none() | st.sampled_from([b"", b"m", b"\xff", b"intent-clf@v42"]),
                              min_size=len(values), max_size=len(values)))
    assert_same(kind, keys, values, max_bytes)


def test_valid_records_never_take_the_one_by_one_path(monkeypatch: Any) -> None:
    import monitor.ingest.decoder as decoder

    calls: list[int] = []
    real = decoder._one

    def counted(*args: Any) -> Any:
        calls.append(1)
        return real(*args)

    monkeypatch.setattr(decoder, "_one", counted)
    good = msgspec.json.encode(BASE["feedback"])
    out = decode_records("feedback", [None] * 64, [good] * 64, MAX_BYTES)
    assert len(out) == 64 and not any(isinstance(x, DecodeFailure) for x in out) and calls == []
    # one bad record among 64: found by splitting, only the small spans around it one by one
    values: list[bytes | None] = [good] * 64
    values[37] = b'{"schema_version": 1}'
    out = decode_records("feedback", [None] * 64, values, MAX_BYTES)
    assert [i for i, x in enumerate(out) if isinstance(x, DecodeFailure)] == [37]
    assert len(calls) <= 2  # the last failing pair, halved


def test_a_poll_is_decoded_per_partition_and_a_decoder_bug_costs_only_its_record() -> None:
    from collections import namedtuple

    from kafka.structs import TopicPartition
    from prometheus_client import CollectorRegistry, Counter

    from monitor.ingest.batch import decode_poll, one_at_a_time

    Rec = namedtuple("Rec", "topic partition offset key value")
    good = msgspec.json.encode(BASE["feedback"])
    tp, other = TopicPartition("fb", 0), TopicPartition("not-ours", 0)
    recs = {tp: [Rec("fb", 0, 10 + i, None, good if i != 3 else b"{") for i in range(6)],
            other: [Rec("not-ours", 0, 5, None, b"x")]}
    counter = Counter("f", "f", ["topic"], registry=CollectorRegistry())
    kw: dict[str, Any] = {"kinds": {"fb": "feedback"}, "clock": lambda: 2e9, "max_event_bytes": MAX_BYTES,
                          "max_future_s": None, "dead_letter_value_cap_bytes": 100, "future_events": counter}
    batch = decode_poll(recs, decode=decode_records, **kw)
    assert [i.origin.offset for i in batch.items] == [10, 11, 12, 14, 15]
    assert [(d.offset, d.error_class) for d in batch.dead_letters] == [(13, "invalid_json")]
    assert batch.offsets == {tp: 16, other: 6} and batch.consumed == {"fb": 6, "not-ours": 1}

    def broken(kind: Any, keys: Any, values: Any, max_bytes: int) -> Any:
        raise RuntimeError("a bug")

    again = decode_poll(recs, decode=broken, **kw)  # falls back to one record at a time
    assert [i.origin.offset for i in again.items] == [10, 11, 12, 14, 15]

    def picky(kind: Any, key: Any, value: Any, max_bytes: int) -> Any:
        if value == b"{":
            raise KeyError("a bug in a custom decoder")
        return decode_record(kind, key, value, max_bytes)

    custom = decode_poll(recs, decode=one_at_a_time(picky), **kw)
    assert [(d.offset, d.error_class, d.reason) for d in custom.dead_letters] == [
        (13, "decoder_error", "decoder raised KeyError")
    ]
