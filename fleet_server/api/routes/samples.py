"""``/api/v1/devices/{id}/samples``: ask a device for its kept inputs, receive them, list and download them.

Devices sit behind NAT, so the server asks (an ``upload-samples`` command over MQTT) and the device POSTs the
file back with its own token, to its own id only.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated, Any, Final

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi.responses import FileResponse
from pydantic import BaseModel, Field
from sqlalchemy.orm import Session

from edgefleet.errors import InputError
from edgefleet.messages import UploadSamplesCommand
from fleet_server.api.deps import RuntimeDep, SessionDep, require, require_own_device_or
from fleet_server.auth import Role
from fleet_server.db.models import Device
from fleet_server.samples import SampleRecord, SampleStore, SampleStoreError, StoreFull

__all__ = [
    "SamplesRequest",
    "download_samples",
    "get_sample_store",
    "list_samples",
    "receive_samples",
    "request_samples",
    "router",
]

router = APIRouter(tags=["samples"])

MAX_UPLOAD_BYTES: Final = 64 * 1024 * 1024
MIN_FREE_BYTES: Final = 256 * 1024 * 1024
_OCTET_STREAM: Final = "application/octet-stream"
_REQUEST_ID = Query(pattern=r"^[a-z0-9-]{1,64}$", description="the request the samples answer")


class SamplesRequest(BaseModel):
    max_count: int = Field(default=256, ge=1, le=100_000, description="most samples the device should send")


def get_sample_store(runtime: RuntimeDep) -> SampleStore:
    """The store under the server's data folder."""
    return SampleStore(
        runtime.settings.data_dir / "samples", max_upload_bytes=MAX_UPLOAD_BYTES, min_free_bytes=MIN_FREE_BYTES
    )


StoreDep = Annotated[SampleStore, Depends(get_sample_store)]


def _device(session: Session, device_id: str) -> Device:
    device = session.get(Device, device_id)
    if device is None:
        raise HTTPException(404, detail=f"no device {device_id!r} has reported to this server")
    return device


def _as_http(err: Exception) -> HTTPException:
    if isinstance(err, StoreFull):
        return HTTPException(507, detail=str(err))
    if isinstance(err, InputError):
        return HTTPException(422, detail=str(err))
    return HTTPException(404, detail=str(err))


@router.post(
    "/devices/{device_id}/samples:request",
    status_code=202,
    dependencies=[Depends(require(Role.OPERATOR))],
    responses={507: {"description": "the server's disk has no room for samples"}},
)
def request_samples(
    device_id: str, body: SamplesRequest, session: SessionDep, runtime: RuntimeDep, store: StoreDep
) -> SampleRecord:
    """Ask the device for its kept inputs: it POSTs them to ``/samples?request=<request_id>`` when it gets this."""
    device = _device(session, device_id)
    try:
        record = store.request(device_id, body.max_count)
    except StoreFull as err:
        raise _as_http(err) from err
    url = f"{runtime.settings.resolved_public_url()}/api/v1/devices/{device_id}/samples?request={record.request_id}"
    command = UploadSamplesCommand(
        request_id=record.request_id, url=url, max_count=body.max_count, max_bytes=store.max_upload_bytes
    )
    runtime.commands.send(session, device, command)
    session.commit()
    return record


async def _body(request: Request, store: StoreDep) -> AsyncIterator[bytes]:
    """The request body, refused with 413 past the store's limit (counted, as a chunked body declares none)."""
    limit = store.max_upload_bytes
    too_large = HTTPException(
        413, detail=f"the samples file is larger than this server accepts ({limit} bytes) (send fewer samples)"
    )
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise too_large
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise too_large
        chunks.append(chunk)
    yield b"".join(chunks)


_RAW_BODY: Final[dict[str, Any]] = {
    "requestBody": {
        "content": {_OCTET_STREAM: {"schema": {"type": "string", "format": "binary"}}},
        "description": "an ef.samples.v1 .npz file; empty when the device kept nothing",
    }
}


@router.post(
    "/devices/{device_id}/samples",
    dependencies=[Depends(require_own_device_or(Role.OPERATOR))],
    openapi_extra=_RAW_BODY,
    responses={
        413: {"description": "the file is over the server's limit"},
        507: {"description": "the server's disk has no room for samples"},
    },
)
def receive_samples(
    device_id: str,
    data: Annotated[bytes, Depends(_body)],
    store: StoreDep,
    request: Annotated[str, _REQUEST_ID],
) -> SampleRecord:
    """The device's answer to a samples request: its kept inputs, checked and stored."""
    try:
        return store.receive(device_id, request, data)
    except (SampleStoreError, InputError) as err:
        raise _as_http(err) from err


@router.get("/devices/{device_id}/samples", dependencies=[Depends(require(Role.VIEWER))])
def list_samples(device_id: str, session: SessionDep, store: StoreDep) -> list[SampleRecord]:
    """The device's samples requests, oldest first, and what each received file holds."""
    _device(session, device_id)
    return store.list(device_id)


@router.get(
    "/devices/{device_id}/samples/{request_id}",
    response_class=FileResponse,
    dependencies=[Depends(require(Role.VIEWER))],
    responses={200: {"content": {_OCTET_STREAM: {}}, "description": "the ef.samples.v1 .npz file"}},
)
def download_samples(device_id: str, request_id: str, session: SessionDep, store: StoreDep) -> FileResponse:
    """The samples file of a received request."""
    _device(session, device_id)
    try:
        path = store.file(device_id, request_id)
    except SampleStoreError as err:
        raise _as_http(err) from err
    return FileResponse(path, media_type=_OCTET_STREAM, filename=f"{device_id}-{request_id}.npz")
