"""Helpers shared by the tests of distillguard.models."""
from __future__ import annotations

import json
import zlib

from distillguard.models.clusters import LinkRecord
from distillguard.models.pipeline import KeyPipeline
from distillguard.models.step import Record, RequestProcessor


def worker_link_records(raws: list[bytes], partitions: int = 4) -> list[LinkRecord]:
    """The workers' link records of ``raws``, made by the one event step: each key's records in
    the input partition Kafka gives it (by key), at that partition's next offset."""
    offsets, records = [0] * partitions, []
    for raw in raws:
        partition = zlib.crc32(json.loads(raw)["api_key_id"].encode()) % partitions
        records.append(Record(raw, partition=partition, offset=offsets[partition], position=offsets[partition]))
        offsets[partition] += 1
    return RequestProcessor(KeyPipeline(), source_topic="llm.requests").run(records, {}).links
