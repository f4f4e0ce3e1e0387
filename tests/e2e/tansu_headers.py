#!/usr/bin/env python3
"""Measures what record headers cost tansu 0.6 (sqlite): a fresh broker, N records produced,
then a plain confluent-kafka loop that consumes them and produces each to another topic with
H headers (0, 1 or 3, the three like stepstream's output headers), timed until the last copy is
acknowledged. Not a test; the figures behind `headers = false` in the e2e suite.

    python3 tests/e2e/tansu_headers.py --records 40000 --headers 3 [--tansu tansu]
"""
import argparse
import os
import shutil
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import kafka_e2e as e  # noqa: E402
from confluent_kafka import Consumer, Producer  # noqa: E402

HEADERS = {
    0: None,
    1: [("stepstream-execution", b"x" * 40)],
    3: [("stepstream-execution", b"x" * 40), ("stepstream-source", b"in/1/2"),
        ("stepstream-status", b"SUCCEEDED")],
}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--records", type=int, default=20000)
    ap.add_argument("--headers", type=int, choices=sorted(HEADERS), default=3)
    ap.add_argument("--tansu", default=shutil.which("tansu") or "tansu")
    args = ap.parse_args()
    work = tempfile.mkdtemp(prefix="tansu-headers-")
    broker = e.Broker(args.tansu, work)
    broker.start()
    try:
        broker.create_topics("in", "out")
        e.produce(broker, "in", e.records(args.records))
        c = Consumer({"bootstrap.servers": broker.url, "group.id": "copy", "auto.offset.reset": "earliest"})
        c.subscribe(["in"])
        p = Producer({"bootstrap.servers": broker.url, "linger.ms": 100, "batch.num.messages": 10000,
                      "acks": "all"})
        started, got = time.time(), 0
        while got < args.records and time.time() - started < 300:
            for m in c.consume(5000, timeout=0.5):
                if m.error():
                    continue
                got += 1
                while True:
                    try:
                        p.produce("out", value=m.value(), key=m.key(), headers=HEADERS[args.headers])
                        break
                    except BufferError:
                        p.poll(0.05)
            p.poll(0)
        p.flush(120)
        took = time.time() - started
        print(f"{got} of {args.records} records copied with {args.headers} header(s) in {took:.2f} s")
        c.close()
    finally:
        broker.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
