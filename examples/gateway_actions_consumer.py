"""An API gateway's consumer of ``distill.actions`` (contracts/action.v1.schema.json).

Reads the router's recommendations and applies them to the gateway's key policy, here a dict
printed on each change; put your gateway's calls where ``enforced`` changes. Run it with::

    pip install confluent-kafka
    python examples/gateway_actions_consumer.py --bootstrap kafka:9092 --group my-gateway

The rules of docs/contracts.md: a recommendation is one or more pages (``page`` of ``pages``,
each with its share of ``api_key_ids``); apply each page to its keys; a page of an older
``version`` than the one applied for the incident is stale; ``(action_id, page)`` seen before
is a re-send; ``release`` lifts everything the incident applied. Offsets are committed after
a record is applied, so a crash re-reads (and skips as seen) rather than loses one.
"""
from __future__ import annotations

import argparse
import json


# A key held by several incidents gets the strongest of their actions.
STRENGTH = ("throttle", "perturb_outputs", "require_verification", "suspend")


class GatewayPolicy:
    """What the gateway enforces per key, from the action records applied so far."""

    def __init__(self) -> None:
        self.version: dict[str, int] = {}          # incident -> version applied
        self.action: dict[str, str] = {}           # incident -> its action in force
        self.keys: dict[str, set[str]] = {}        # incident -> keys it restricts
        self.seen: set[tuple[str, int]] = set()    # (action_id, page) applied (persist all this in production)

    def apply(self, record: dict) -> bool:
        """Apply one action record; False when it is a re-send or stale."""
        incident, page_id = record["incident"], (record["action_id"], record["page"])
        if page_id in self.seen:
            return False
        if record["action"] != "release" and record["version"] < self.version.get(incident, 0):
            return False  # an escalation superseded it
        self.seen.add(page_id)
        if record["action"] == "release":  # lifts every key the incident restricted, whichever page named it
            for table in (self.version, self.action, self.keys):
                table.pop(incident, None)
            return True
        self.version[incident] = record["version"]
        self.action[incident] = record["action"]
        self.keys.setdefault(incident, set()).update(record["api_key_ids"])
        return True

    @property
    def enforced(self) -> dict[str, str]:
        """API key -> the action the gateway applies to it (your gateway's calls go here)."""
        result: dict[str, str] = {}
        for incident, keys in self.keys.items():
            for key in keys:
                if STRENGTH.index(self.action[incident]) >= STRENGTH.index(result.get(key, STRENGTH[0])):
                    result[key] = self.action[incident]
        return result


def main() -> None:
    from confluent_kafka import Consumer

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bootstrap", default="127.0.0.1:9092")
    parser.add_argument("--group", default="api-gateway")
    parser.add_argument("--topic", default="distill.actions")
    args = parser.parse_args()
    consumer = Consumer({"bootstrap.servers": args.bootstrap, "group.id": args.group,
                         "enable.auto.commit": False, "auto.offset.reset": "earliest"})
    consumer.subscribe([args.topic])
    policy = GatewayPolicy()
    try:
        while True:
            message = consumer.poll(1.0)
            if message is None:
                continue
            if message.error():
                print(f"consumer error: {message.error()}")
                continue
            try:
                record = json.loads(message.value())
                applied = policy.apply(record)
            except (ValueError, KeyError, TypeError) as exc:  # not an action.v1 record: skip it, loudly
                print(f"skipped offset {message.offset()}: {exc!r}")
                applied = False
            if applied:
                print(f"{record['action']} {record['incident']} v{record['version']} page "
                      f"{record['page']}/{record['pages']}: {len(record['api_key_ids'])} keys "
                      f"({len(policy.enforced)} keys restricted in all)")
            consumer.commit(message=message, asynchronous=False)
    except KeyboardInterrupt:
        pass
    finally:
        consumer.close()


if __name__ == "__main__":
    main()
