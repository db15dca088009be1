"""Run an IngestConsumer in its own process (the SIGKILL / SIGTERM tests).

    python -m tests.ingest_runner BOOTSTRAP TOPIC_PREFIX DATABASE_URL GROUP_ID [MAX_POLL_RECORDS]

SIGTERM sets the stop event, as the real CLI does; exit code 0 after a clean stop.
"""

from __future__ import annotations

import signal
import sys
import threading

from prometheus_client import CollectorRegistry

from monitor.store.engine import make_engine
from monitor.store.repository import Repository
from tests.ingest_fixtures import Topics, make_ingest_consumer


def main(argv: list[str]) -> int:
    bootstrap, prefix, url, group = argv[:4]
    max_poll = int(argv[4]) if len(argv) > 4 else 200
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    engine = make_engine(url)
    consumer = make_ingest_consumer(bootstrap, Topics.with_prefix(prefix), Repository(engine),
                                    CollectorRegistry(), group, max_poll_records=max_poll)
    print("ready", flush=True)
    consumer.run(stop)
    engine.dispose()
    print("stopped", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
