from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from thingbucket.kit.schemas import Body, Description, Name, Resource

Kind = Literal["number", "text", "bool", "json", "media"]
TYPE_ID_PATTERN = r"^[A-Za-z][A-Za-z0-9_.-]{0,63}$"
DIMENSION_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$"
MAX_DIMENSIONS = 100


class DimensionIn(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    id: str = Field(pattern=DIMENSION_ID_PATTERN)
    name: Name = Field(min_length=1)
    description: Description | None = None
    unit: str = Field(default="", max_length=64)
    kind: Kind = "number"
    media_types: list[str] = Field(default_factory=list, max_length=16)
    labels: list[str] = Field(default_factory=list, max_length=64)

    @model_validator(mode="after")
    def _media(self) -> DimensionIn:
        if self.kind == "media" and not self.media_types:
            raise ValueError("a media dimension lists its media_types")
        return self


class DimensionOut(BaseModel):
    id: str
    name: str
    description: str | None
    unit: str
    kind: str
    media_types: list[str]
    labels: list[str]


def _unique_ids(dimensions: list[DimensionIn] | None) -> None:
    if dimensions is not None:
        ids = [d.id for d in dimensions]
        if len(ids) != len(set(ids)):
            raise ValueError("dimension ids must be unique within a property")


class PropertyTypeCreate(Body):
    allowed_read_only = frozenset({"id"})

    id: str = Field(pattern=TYPE_ID_PATTERN)
    name: Name = Field(min_length=1)
    description: Description | None = None
    org_id: str | None = None
    dimensions: list[DimensionIn] = Field(min_length=1, max_length=MAX_DIMENSIONS)

    @model_validator(mode="after")
    def _unique(self) -> PropertyTypeCreate:
        _unique_ids(self.dimensions)
        return self


class PropertyTypeOut(BaseModel):
    id: str
    name: str
    description: str | None
    organization_id: str | None
    builtin: bool
    dimensions: list[DimensionOut]


class PropertyCreate(Body):
    name: Name = Field(min_length=1)
    description: Description | None = None
    type: str | None = Field(default=None, pattern=TYPE_ID_PATTERN)
    dimensions: list[DimensionIn] | None = Field(
        default=None, min_length=1, max_length=MAX_DIMENSIONS
    )
    retention_days: int | None = Field(default=None, ge=1, le=36_500)

    @model_validator(mode="after")
    def _one_source(self) -> PropertyCreate:
        if (self.type is None) == (self.dimensions is None):
            raise ValueError("give either a type or inline dimensions")
        _unique_ids(self.dimensions)
        return self


class PropertyUpdate(Body):
    name: Name | None = Field(default=None, min_length=1)
    description: Description | None = None
    # The full list: the current dimensions first, in order, then any new ones (append only).
    dimensions: list[DimensionIn] | None = Field(
        default=None, min_length=1, max_length=MAX_DIMENSIONS
    )
    retention_days: int | None = Field(default=None, ge=1, le=36_500)  # null: the bucket's

    @model_validator(mode="after")
    def _unique(self) -> PropertyUpdate:
        _unique_ids(self.dimensions)
        return self


class PropertyOut(Resource):
    organization_id: str
    bucket_id: str
    thing_id: str
    name: str
    description: str | None
    type: str | None
    retention_days: int | None
    dimensions: list[DimensionOut]
