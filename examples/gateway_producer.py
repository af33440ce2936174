"""How an API gateway hands its requests to distillguard: one ``llm.request.v1`` record per
request on ``llm.requests``, keyed by ``api_key_id`` (the per-key detector relies on it).

The schema is ``contracts/request-event.v1.schema.json``. Send what the gateway *saw*: the
client's IP, ASN and user agent as observed at the edge, the account's creation time and
payment fingerprint from your billing records, the usage the model actually produced. Fields
the client sends (conversation ids, turn index, system prompt, params) are passed as claims;
distillguard checks them. The prompt text is read to compute features and never stored.

    python examples/gateway_producer.py --bootstrap 127.0.0.1:9092   # sends one example event

Production settings: ``enable.idempotence`` (no duplicates from producer retries), ``acks=all``,
``linger.ms`` for batching; never block the request path on delivery (``poll(0)`` and a
delivery callback that counts failures).
"""
from __future__ import annotations

import argparse
import json
import uuid
from datetime import datetime, timezone


def request_event(*, api_key_id: str, account_id: str, model: str, prompt: str, ts: datetime,
                  org_id: str | None = None, endpoint: str = "/v1/messages", system_prompt: str | None = None,
                  conversation_id: str | None = None, turn_index: int = 0, params: dict | None = None,
                  input_tokens: int | None = None, output_tokens: int | None = None, status: int = 200,
                  latency_ms: int | None = None, ip: str | None = None, asn: int | None = None,
                  user_agent: str | None = None, country: str | None = None,
                  account_created_at: datetime | None = None, payment_fingerprint: str | None = None,
                  tier: str | None = None) -> dict:
    """One request as the contract wants it (times in UTC, ISO 8601 with ``Z``)."""
    def iso(moment: datetime) -> str:
        return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"

    return {
        "schema": "llm.request.v1",
        "event_id": f"ev_{uuid.uuid4().hex[:20]}",  # unique per request: de-duplication relies on it
        "ts": iso(ts),
        "api_key_id": api_key_id, "account_id": account_id, "org_id": org_id,
        "model": model, "endpoint": endpoint,
        "prompt": prompt, "system_prompt": system_prompt,
        "conversation_id": conversation_id, "turn_index": turn_index,
        "params": params or {},
        "usage": {"input_tokens": input_tokens, "output_tokens": output_tokens},
        "status": status, "latency_ms": latency_ms,
        "client": {"ip": ip, "asn": asn, "user_agent": user_agent, "country": country},
        "account": {"created_at": iso(account_created_at) if account_created_at else None,
                    "payment_fingerprint": payment_fingerprint, "tier": tier},
    }


def send(producer, topic: str, event: dict) -> None:
    producer.produce(topic, key=event["api_key_id"].encode(), value=json.dumps(event).encode())
    producer.poll(0)  # serve delivery callbacks; never wait on the request path


def main() -> None:
    from confluent_kafka import Producer

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bootstrap", default="127.0.0.1:9092")
    parser.add_argument("--topic", default="llm.requests")
    args = parser.parse_args()
    failed = []
    producer = Producer({"bootstrap.servers": args.bootstrap, "enable.idempotence": True, "acks": "all",
                         "linger.ms": 20})
    event = request_event(api_key_id="key_example", account_id="acct_example", model="example-model",
                          prompt="What is the capital of France?", ts=datetime.now(timezone.utc),
                          input_tokens=9, output_tokens=12, latency_ms=420, ip="203.0.113.7", asn=64500,
                          user_agent="example-sdk/1.0", country="FR",
                          account_created_at=datetime(2025, 3, 1, tzinfo=timezone.utc), tier="tier2")
    producer.produce(args.topic, key=event["api_key_id"].encode(), value=json.dumps(event).encode(),
                     on_delivery=lambda err, msg: failed.append(err) if err else None)
    producer.flush(10)
    print("delivery failed" if failed else f"sent {event['event_id']} to {args.topic}")


if __name__ == "__main__":
    main()
