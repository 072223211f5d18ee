"""The base every wire contract derives from: strict, frozen, and versioned by its ``schema`` field."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

__all__ = ["Contract"]


class Contract(BaseModel):
    # "schema" would shadow a BaseModel attribute, so the field is ``schema_`` with the wire name "schema"
    model_config = ConfigDict(
        frozen=True,
        extra="forbid",
        validate_by_name=True,
        validate_by_alias=True,
        serialize_by_alias=True,
    )
