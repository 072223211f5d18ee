"""Keep the samples files devices upload under ``data_dir/samples/<device>/``, with one small JSON record each.

A request (``<id>.json``, state ``requested``) is written when an operator asks; the device's upload adds
``<id>.npz`` and turns the record to ``received`` with what the file holds. Files, not database rows: the
samples are bulk data that training reads, and no query joins them to anything.
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
import time
from collections import Counter
from pathlib import Path
from typing import Final, Literal

from pydantic import BaseModel, ConfigDict, Field

from edgefleet.errors import EdgefleetError, InputError
from edgefleet.samples import NO_LABEL, decode_samples

__all__ = ["SampleRecord", "SampleStore", "SampleStoreError", "StoreFull"]

_REQUEST_ID: Final = re.compile(r"^[a-z0-9-]{1,64}$")


class SampleStoreError(EdgefleetError):
    """A request or an upload the store cannot take."""


class StoreFull(SampleStoreError):
    """The disk under the store has too little room left."""


class SampleRecord(BaseModel):
    """One request and, once the device sent it, what its file holds."""

    model_config = ConfigDict(extra="forbid")

    request_id: str
    device_id: str
    state: Literal["requested", "received"]
    requested_at: float
    max_count: int
    received_at: float | None = None
    count: int = 0
    labelled: int = Field(default=0, description="samples that carry their true label")
    size_bytes: int = 0
    reasons: dict[str, int] = Field(default_factory=dict, description="samples per reason they were kept")
    models: list[str] = Field(default_factory=list)


class SampleStore:
    """Sample files under ``root``; uploads above ``max_upload_bytes``, or leaving less than ``min_free_bytes`` on
    the disk, are refused."""

    def __init__(self, root: Path, *, max_upload_bytes: int, min_free_bytes: int) -> None:
        self.root = root
        self.max_upload_bytes = max_upload_bytes
        self.min_free_bytes = min_free_bytes

    def request(self, device_id: str, max_count: int) -> SampleRecord:
        """A new request record for ``device_id``; raises StoreFull when no upload could be kept anyway."""
        folder = self.root / device_id
        folder.mkdir(parents=True, exist_ok=True)
        self.check_room(0)
        record = SampleRecord(
            request_id=f"{time.strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(3)}",
            device_id=device_id,
            state="requested",
            requested_at=time.time(),
            max_count=max_count,
        )
        self._write(record)
        return record

    def check_room(self, size_bytes: int) -> None:
        """Raise StoreFull unless ``size_bytes`` more leave ``min_free_bytes`` free on the store's disk."""
        self.root.mkdir(parents=True, exist_ok=True)
        free = shutil.disk_usage(self.root).free
        if free - size_bytes < self.min_free_bytes:
            raise StoreFull(
                f"the disk under {self.root} has {free} bytes free; keeping {size_bytes} more would leave less than "
                f"the {self.min_free_bytes} reserved",
                hint="delete old samples under data_dir/samples, or give the server more disk",
            )

    def receive(self, device_id: str, request_id: str, data: bytes) -> SampleRecord:
        """Check ``data`` (an ef.samples.v1 file) and keep it for ``request_id``; raises InputError for a bad file,
        SampleStoreError for an unknown request, StoreFull for a full disk."""
        record = self.get(device_id, request_id)
        if len(data) > self.max_upload_bytes:
            raise InputError(
                f"the upload is {len(data)} bytes, over the {self.max_upload_bytes} this server accepts",
                hint="ask for fewer samples (max_count)",
            )
        self.check_room(len(data))
        count, labelled, reasons, models = 0, 0, Counter[str](), []
        if data:  # an empty body: the device had nothing to send
            samples = decode_samples(data, max_bytes=self.max_upload_bytes, where=f"the upload of {device_id}")
            count, labelled = len(samples), int((samples.labels != NO_LABEL).sum())
            reasons = Counter(str(r).split(":")[0] for r in samples.reasons)
            models = sorted({str(m) for m in samples.models})
            path = self._folder(device_id) / f"{request_id}.npz"
            tmp = path.with_name(path.name + ".tmp")
            try:
                with tmp.open("wb") as fh:
                    fh.write(data)
                    fh.flush()
                    os.fsync(fh.fileno())
                os.replace(tmp, path)
            except OSError as err:
                tmp.unlink(missing_ok=True)
                raise StoreFull(
                    f"the samples of {device_id} cannot be written: {err}", hint="free disk space under data_dir"
                ) from err
        received = record.model_copy(
            update={
                "state": "received",
                "received_at": time.time(),
                "count": count,
                "labelled": labelled,
                "size_bytes": len(data),
                "reasons": dict(reasons),
                "models": models,
            }
        )
        self._write(received)
        return received

    def get(self, device_id: str, request_id: str) -> SampleRecord:
        """The record of ``request_id``; raises SampleStoreError when there is none."""
        path = self._folder(device_id) / f"{request_id}.json" if _REQUEST_ID.fullmatch(request_id) else None
        if path is None or not path.is_file():
            raise SampleStoreError(
                f"device {device_id} has no samples request {request_id!r}",
                hint="ask first with POST /api/v1/devices/{id}/samples:request",
            )
        return SampleRecord.model_validate_json(path.read_bytes())

    def list(self, device_id: str) -> list[SampleRecord]:
        """Every request of ``device_id``, oldest first."""
        folder = self._folder(device_id)
        if not folder.is_dir():
            return []
        records = [SampleRecord.model_validate_json(p.read_bytes()) for p in folder.glob("*.json")]
        return sorted(records, key=lambda r: r.requested_at)

    def file(self, device_id: str, request_id: str) -> Path:
        """The samples file of a received request; raises SampleStoreError when there is none."""
        record = self.get(device_id, request_id)
        path = self._folder(device_id) / f"{request_id}.npz"
        if record.state != "received" or not path.is_file():
            raise SampleStoreError(
                f"request {request_id} of {device_id} holds no samples ({record.state}, {record.count} samples)",
                hint="wait until the device has sent them, or ask again",
            )
        return path

    def _folder(self, device_id: str) -> Path:
        return self.root / device_id

    def _write(self, record: SampleRecord) -> None:
        path = self._folder(record.device_id) / f"{record.request_id}.json"
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(record.model_dump_json())
        os.replace(tmp, path)
