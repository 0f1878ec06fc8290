"""Shared pieces of the control-plane schemas: strict bodies, bounded names, list pages."""

from __future__ import annotations

import unicodedata
from datetime import datetime
from typing import Annotated, Any, ClassVar, Generic, TypeVar

from pydantic import AfterValidator, BaseModel, ConfigDict, model_validator
from pydantic_core import PydanticCustomError

# Fields only the server sets (security.md §4.7); a native body carrying one gets READ_ONLY_FIELD.
READ_ONLY_FIELDS = frozenset(
    {"id", "organization_id", "owner_id", "created_at", "updated_at", "created_by", "digest"}
)


def _no_control(value: str) -> str:
    if any(unicodedata.category(c) == "Cc" for c in value):
        raise PydanticCustomError("control_characters", "must not contain control characters")
    return value


def _bounded(limit: int) -> Any:
    def check(value: str) -> str:
        if len(value.encode()) > limit:
            raise PydanticCustomError("too_long", "longer than {limit} bytes", {"limit": limit})
        return value

    return AfterValidator(check)


Name = Annotated[str, AfterValidator(_no_control), _bounded(256)]
Description = Annotated[str, _bounded(4096)]


class Body(BaseModel):
    """A request body: unknown fields refused, server-owned fields refused with their own code."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)
    allowed_read_only: ClassVar[frozenset[str]] = frozenset()

    @model_validator(mode="before")
    @classmethod
    def _read_only(cls, data: Any) -> Any:
        if isinstance(data, dict):
            allowed = cls.allowed_read_only
            for key in data:
                if key in READ_ONLY_FIELDS and key not in allowed:
                    raise PydanticCustomError(
                        "read_only_field", "{field} is set by the server", {"field": key}
                    )
        return data


class Out(BaseModel):
    model_config = ConfigDict(from_attributes=True)


class Resource(Out):
    id: str
    created_at: datetime
    updated_at: datetime


T = TypeVar("T")


class Page(BaseModel, Generic[T]):
    items: list[T]
    next_cursor: str | None
