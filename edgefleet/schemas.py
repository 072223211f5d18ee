"""JSON Schemas of the wire contracts, generated from the pydantic models into ``docs/schemas/``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Final

from pydantic import BaseModel

from edgefleet.keylist import KeyListV1, SignedKeyListV1
from edgefleet.manifest import Manifest
from edgefleet.messages import CommandV1, EventV1, StatusV1, TelemetryV1
from edgefleet.profile import DeviceProfile
from edgefleet.signing import SignatureV1

__all__ = ["CONTRACTS", "render_schemas", "write_schemas"]

CONTRACTS: Final[dict[str, type[BaseModel]]] = {
    "ef.manifest.v1": Manifest,
    "ef.signature.v1": SignatureV1,
    "ef.keylist.v1": KeyListV1,
    "ef.signed-keylist.v1": SignedKeyListV1,
    "ef.status.v1": StatusV1,
    "ef.telemetry.v1": TelemetryV1,
    "ef.event.v1": EventV1,
    "ef.command.v1": CommandV1,
    "ef.profile.v1": DeviceProfile,
}


def render_schemas() -> dict[str, str]:
    """File name → JSON Schema text of every contract, as written to disk."""
    return {
        f"{name}.schema.json": json.dumps(
            model.model_json_schema(by_alias=True, mode="validation"), indent=2, sort_keys=True
        )
        + "\n"
        for name, model in CONTRACTS.items()
    }


def write_schemas(out_dir: Path) -> list[Path]:
    """Write every contract's JSON Schema into ``out_dir``; returns the paths written."""
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for name, text in render_schemas().items():
        path = out_dir / name
        path.write_text(text)
        written.append(path)
    return written
