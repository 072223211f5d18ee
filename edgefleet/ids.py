"""Identifier types shared by every component: device ids, model names, relative archive paths."""

from __future__ import annotations

from typing import Annotated

from pydantic import StringConstraints

__all__ = ["DeviceId", "ModelName", "RelPath", "Sha256Hex"]

# never '/', '+' or '#': they would break MQTT ACL patterns (Mosquitto's CVE-2017-7650)
DeviceId = Annotated[str, StringConstraints(pattern=r"^[a-z0-9](?:[a-z0-9-]{0,62}[a-z0-9])?$")]
ModelName = Annotated[str, StringConstraints(pattern=r"^[a-z0-9](?:[a-z0-9._-]{0,62}[a-z0-9])?$")]
# a relative POSIX path inside a package: no leading '/', and no component starts with '.', so
# neither '.' nor '..' nor hidden files can appear
RelPath = Annotated[
    str,
    StringConstraints(
        pattern=r"^[A-Za-z0-9_][A-Za-z0-9._-]*(?:/[A-Za-z0-9_][A-Za-z0-9._-]*)*$",
        max_length=200,
    ),
]
Sha256Hex = Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{64}$")]
