"""Identifier generation."""

from __future__ import annotations

import uuid


def new_id(prefix: str) -> str:
    """A new unique id such as ``ord_3f2a…``: a short type prefix and 32 hex digits."""
    return f"{prefix}_{uuid.uuid4().hex}"
