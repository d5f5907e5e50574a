"""Per-client copies of a strategy's train message (simulation slots and deployment)."""

from __future__ import annotations

from typing import Any

from flwr.app import ConfigRecord, Message, RecordDict


def addressed_copy(template: Message, dst_node_id: int, **config: Any) -> Message:
    """`template` for `dst_node_id` with `config` added to its ConfigRecords. The
    strategy's records are reused, never mutated: only the config is copied."""
    content = RecordDict()
    for key, record in template.content.items():
        if isinstance(record, ConfigRecord):
            record = ConfigRecord({**record, **config})
        content[key] = record
    return Message(
        content=content, dst_node_id=dst_node_id, message_type=template.metadata.message_type
    )


def with_records(template: Message, records: dict) -> Message:
    """`template` with extra records added (e.g. FOT's basis); its own are reused."""
    content = RecordDict()
    for key, record in template.content.items():
        content[key] = record
    for key, record in records.items():
        content[key] = record
    return Message(
        content=content,
        dst_node_id=template.metadata.dst_node_id,
        message_type=template.metadata.message_type,
    )
