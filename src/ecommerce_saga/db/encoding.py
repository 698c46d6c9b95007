"""Records as MongoDB stores them, without Beanie's encoder: for the writes on the order path.

Beanie encodes a document field by field through its `Encoder` (validation, custom encoders,
its own walk), which costs more CPU than the write's command. `stored_fields` builds the same
BSON-ready dict from a pydantic record's `model_dump`: enums as their values and dates as
midnight, as Beanie's default encoders store them. Each collection written this way has a test
comparing what it stores with Beanie's encoding of the same document.
"""

from __future__ import annotations

from datetime import date, datetime, time
from enum import Enum
from typing import Any

from pydantic import BaseModel


def stored_fields(record: BaseModel, *, id_field: str) -> dict[str, Any]:
    """`record` as its Beanie document stores it, with `id_field` as `_id`."""
    fields: dict[str, Any] = _plain(record.model_dump())
    return {"_id": fields.pop(id_field), **fields}


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_plain(item) for item in value]
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, date) and not isinstance(value, datetime):
        return datetime.combine(value, time.min)
    return value
