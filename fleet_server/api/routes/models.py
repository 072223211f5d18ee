"""``/api/v1/models`` and ``/api/v1/packages``: upload verified packages, list them, download them."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator, Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Annotated, Any, Final

import anyio
from fastapi import APIRouter, Depends, Header, HTTPException, Path, Request, Response
from fastapi.responses import FileResponse
from pydantic import BaseModel, Field

from edgefleet.errors import EdgefleetError, PackageError
from edgefleet.manifest import Manifest
from fleet_server.api.deps import RuntimeDep, SessionDep, require
from fleet_server.auth import Role
from fleet_server.db.models import Package
from fleet_server.registry import NoTrustedKeys, Received, VersionTaken

__all__ = [
    "ErrorOut",
    "ModelOut",
    "PackageDetail",
    "PackageOut",
    "download_package",
    "get_version",
    "list_models",
    "router",
    "upload_package",
]

router = APIRouter(tags=["models"])

_OCTET_STREAM: Final = "application/octet-stream"
# the most specific class first: a subclass must not be caught by its parent's entry
_STATUS: Final[Mapping[type[EdgefleetError], int]] = {NoTrustedKeys: 503, VersionTaken: 409, PackageError: 422}
_SHA256_PATH = Path(pattern=r"^[0-9a-f]{64}$", description="sha256 of the package file, lowercase hex")


class ErrorOut(BaseModel):
    detail: str = Field(description="what went wrong, then what to do about it in parentheses")


class PackageOut(BaseModel):
    name: str
    version: str
    sha256: str = Field(description="sha256 of the package file: its id in the store and its ETag")
    manifest_sha256: str
    size_bytes: int
    key_id: str = Field(description="the signing key that signed the manifest")
    uploaded_at: datetime
    download_path: str = Field(description="where devices download the file (Range and ETag supported)")


class PackageDetail(PackageOut):
    manifest: Manifest


class ModelOut(BaseModel):
    name: str
    versions: list[PackageOut] = Field(description="newest first, by semver precedence")


def _out(package: Package) -> PackageOut:
    return PackageOut(
        name=package.name,
        version=package.version,
        sha256=package.file_sha256,
        manifest_sha256=package.manifest_sha256,
        size_bytes=package.size_bytes,
        key_id=package.key_id,
        # SQLite hands back naive datetimes; every time the server stores is UTC
        uploaded_at=package.uploaded_at if package.uploaded_at.tzinfo else package.uploaded_at.replace(tzinfo=UTC),
        download_path=f"/api/v1/packages/{package.file_sha256}",
    )


@contextmanager
def _as_http() -> Iterator[None]:
    """Turn the registry's refusals into HTTP answers that carry the message and the hint."""
    try:
        yield
    except tuple(_STATUS) as err:
        status = next(code for kind, code in _STATUS.items() if isinstance(err, kind))
        raise HTTPException(status, detail=str(err)) from err


async def _receive(request: Request, runtime: RuntimeDep) -> AsyncIterator[Received]:
    """Stream the request body into the store's incoming folder, hashing it; the file is removed afterwards."""
    with _as_http():
        runtime.packages.check_accepting()  # refuse before the client sends megabytes for nothing
    content_type = request.headers.get("content-type", _OCTET_STREAM).split(";")[0].strip().lower()
    if content_type != _OCTET_STREAM:
        raise HTTPException(
            415,
            detail=f"the body is {content_type} (send the .efpkg file itself as the body, "
            f"with Content-Type: {_OCTET_STREAM}; forms are not accepted)",
        )
    limit = runtime.settings.max_package_bytes
    too_large = HTTPException(
        413,
        detail=f"the package is larger than this server accepts ({limit} bytes) "
        "(shrink the package, or raise EDGEFLEET_SERVER_MAX_PACKAGE_BYTES)",
    )
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise too_large
    path = runtime.packages.store.reserve()
    digest, size = hashlib.sha256(), 0
    try:
        async with await anyio.open_file(path, "wb") as fh:
            async for chunk in request.stream():
                size += len(chunk)
                if size > limit:  # a chunked body declares no length: count it
                    raise too_large
                digest.update(chunk)
                await fh.write(chunk)
        yield Received(path, digest.hexdigest(), size)
    finally:
        path.unlink(missing_ok=True)  # already gone when the store kept it


ReceivedDep = Annotated[Received, Depends(_receive)]

_UPLOAD_ERRORS: Final[dict[int | str, dict[str, Any]]] = {
    200: {"model": PackageOut, "description": "these exact bytes were uploaded before: the existing record"},
    409: {"model": ErrorOut, "description": "the name@version is taken by other bytes: bump the version"},
    413: {"model": ErrorOut, "description": "the body is over max_package_bytes"},
    415: {"model": ErrorOut, "description": "the body is not application/octet-stream"},
    422: {"model": ErrorOut, "description": "the package was refused: signature, hashes or manifest"},
    503: {"model": ErrorOut, "description": "the server has no trusted keys configured"},
}
_RAW_BODY: Final = {
    "requestBody": {
        "required": True,
        "content": {_OCTET_STREAM: {"schema": {"type": "string", "format": "binary"}}},
        "description": "the signed .efpkg file, as it is",
    }
}


@router.post(
    "/models",
    status_code=201,
    responses=_UPLOAD_ERRORS,
    openapi_extra=_RAW_BODY,
    dependencies=[Depends(require(Role.OPERATOR))],
)
def upload_package(received: ReceivedDep, session: SessionDep, runtime: RuntimeDep, response: Response) -> PackageOut:
    """Verify a signed package against the server's trusted keys and add it to the registry."""
    with _as_http():
        admitted = runtime.packages.admit(session, received)
    if not admitted.is_new:
        response.status_code = 200
    return _out(admitted.package)


@router.get("/models", dependencies=[Depends(require(Role.VIEWER))])
def list_models(session: SessionDep, runtime: RuntimeDep) -> list[ModelOut]:
    """Every model in the registry, with its versions newest first."""
    return [
        ModelOut(name=name, versions=[_out(p) for p in packages]) for name, packages in runtime.packages.models(session)
    ]


@router.get(
    "/models/{name}/versions/{version}",
    responses={404: {"model": ErrorOut}},
    dependencies=[Depends(require(Role.VIEWER))],
)
def get_version(name: str, version: str, session: SessionDep, runtime: RuntimeDep) -> PackageDetail:
    """One package's record and its manifest; 404 when that name@version was never uploaded."""
    package = runtime.packages.by_version(session, name, version)
    if package is None:
        raise HTTPException(404, detail=f"no package {name}@{version} in the registry (GET /api/v1/models lists them)")
    return PackageDetail(**_out(package).model_dump(), manifest=Manifest.model_validate(package.manifest))


_DOWNLOAD_RESPONSES: Final[dict[int | str, dict[str, Any]]] = {
    200: {"content": {_OCTET_STREAM: {}}, "description": "the whole file"},
    206: {"description": "the requested range (Content-Range), to resume an interrupted download"},
    304: {"description": "If-None-Match holds the ETag: the client already has these bytes"},
    404: {"model": ErrorOut},
}


# devices download with their own token; any package, as rollouts may assign any (and it is signed, not secret)
_DOWNLOADERS: Final = [Depends(require(Role.VIEWER, Role.DEVICE))]


@router.get("/packages/{sha256}", response_class=FileResponse, responses=_DOWNLOAD_RESPONSES, dependencies=_DOWNLOADERS)
@router.head(
    "/packages/{sha256}", response_class=FileResponse, responses=_DOWNLOAD_RESPONSES, dependencies=_DOWNLOADERS
)
def download_package(
    sha256: Annotated[str, _SHA256_PATH],
    session: SessionDep,
    runtime: RuntimeDep,
    if_none_match: Annotated[str | None, Header()] = None,
) -> Response:
    """The package file by its sha256, with Range, If-Range and If-None-Match against a strong ETag."""
    package = runtime.packages.by_sha256(session, sha256)
    if package is None:
        raise HTTPException(404, detail=f"no package with sha256 {sha256} in the registry")
    etag = f'"{sha256}"'
    if if_none_match is not None and _matches(if_none_match, etag):
        return Response(status_code=304, headers={"ETag": etag})
    path = runtime.packages.store.path(sha256)
    if not path.is_file():
        raise HTTPException(
            404,
            detail=f"{package.name}@{package.version} is recorded but its file is missing from the store "
            f"{runtime.packages.store.root} (upload the same package again to restore it)",
        )
    # our ETag replaces Starlette's mtime-and-size one; Starlette then handles Range and If-Range against it
    return FileResponse(
        path,
        media_type=_OCTET_STREAM,
        filename=f"{package.name}-{package.version}.efpkg",
        headers={"ETag": etag},
    )


def _matches(if_none_match: str, etag: str) -> bool:
    """RFC 9110 If-None-Match: ``*`` or any listed tag, compared weakly (a ``W/`` prefix is ignored)."""
    tags = [tag.strip().removeprefix("W/") for tag in if_none_match.split(",")]
    return "*" in tags or etag in tags
