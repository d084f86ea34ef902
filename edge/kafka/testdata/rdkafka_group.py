"""Two librdkafka (confluent-kafka) consumers in one group read a topic.

Usage: rdkafka_group.py BOOTSTRAP TOPIC GROUP COUNT TIMEOUT_S

Both consumers poll until together they have COUNT records, committing each
record's offset synchronously before polling again, so that a rebalance
never hands a partition over with uncommitted progress. Prints one JSON
object: the values each consumer read and the partitions each was assigned.
Exits 1 if COUNT is not reached within TIMEOUT_S.
"""
import json
import sys
import threading
import time

from confluent_kafka import Consumer, KafkaException

bootstrap, topic, group, count, timeout = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), float(sys.argv[5])

lock = threading.Lock()
values = {"a": [], "b": []}
assigned = {"a": set(), "b": set()}
errors = []
stop = threading.Event()


def total():
    with lock:
        return sum(len(v) for v in values.values())


def run(name):
    c = Consumer({
        "bootstrap.servers": bootstrap,
        "group.id": group,
        "client.id": "rdkafka-" + name,
        "enable.auto.commit": False,
        "auto.offset.reset": "earliest",
        "session.timeout.ms": 6000,
        "heartbeat.interval.ms": 500,
        "topic.metadata.refresh.interval.ms": 1000,
    })

    def on_assign(consumer, parts):
        with lock:
            assigned[name].update(p.partition for p in parts)

    try:
        c.subscribe([topic], on_assign=on_assign)
        while not stop.is_set():
            m = c.poll(0.2)
            if m is None:
                continue
            if m.error():
                errors.append(str(m.error()))
                continue
            with lock:
                values[name].append(m.value().decode())
            c.commit(message=m, asynchronous=False)
            if total() >= count:
                stop.set()
    except KafkaException as e:
        errors.append(str(e))
    finally:
        c.close()


threads = [threading.Thread(target=run, args=(n,)) for n in ("a", "b")]
for t in threads:
    t.start()
deadline = time.time() + timeout
while not stop.is_set() and time.time() < deadline:
    time.sleep(0.05)
stop.set()
for t in threads:
    t.join()
print(json.dumps({
    "values": values,
    "assigned": {k: sorted(v) for k, v in assigned.items()},
    "errors": errors,
}))
sys.exit(0 if total() >= count else 1)
