"""Native ids: lowercase UUIDv4 strings."""

from __future__ import annotations

import re
import uuid

_UUID4 = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")


def new_id() -> str:
    return str(uuid.uuid4())


def is_native_id(value: str) -> bool:
    return bool(_UUID4.match(value))
