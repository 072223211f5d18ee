"""Take a package archive apart and put it back together with changes, as an attacker would."""

from __future__ import annotations

import io
import tarfile
from dataclasses import dataclass, replace
from pathlib import Path


@dataclass(frozen=True)
class Member:
    name: str
    data: bytes = b""
    type: bytes = tarfile.REGTYPE
    linkname: str = ""
    size: int | None = None  # a header size that differs from the data, when set

    def renamed(self, name: str) -> Member:
        return replace(self, name=name)


def read_members(path: Path) -> list[Member]:
    with tarfile.open(path, "r:") as tar:
        out = []
        for info in tar.getmembers():
            stream = tar.extractfile(info)
            out.append(Member(info.name, stream.read() if stream else b""))
        return out


def write_members(path: Path, members: list[Member]) -> Path:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for m in members:
            info = tarfile.TarInfo(m.name)
            info.type = m.type
            info.linkname = m.linkname
            info.size = len(m.data) if m.type == tarfile.REGTYPE else 0
            if m.type in (tarfile.CHRTYPE, tarfile.BLKTYPE):
                info.devmajor, info.devminor = 1, 3
            tar.addfile(info, io.BytesIO(m.data) if m.type == tarfile.REGTYPE else None)
    data = buf.getvalue()
    path.write_bytes(data)
    return path
