"""Install a package into the device's slot and load the artifact this device runs best."""

from __future__ import annotations

import logging
import shutil
from dataclasses import dataclass
from pathlib import Path

from edge_agent.backends import Backend, OnnxBackend, choose_artifact
from edge_agent.smoke import smoke_test
from edgefleet.errors import AgentError
from edgefleet.manifest import Artifact, Manifest
from edgefleet.messages import ActiveModel
from edgefleet.package import MANIFEST_NAME, OpenedPackage, file_sha256, open_package, verify_package
from edgefleet.signing import TrustedKeys

__all__ = ["LoadedModel", "install_package", "load_model"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class LoadedModel:
    manifest: Manifest
    artifact: Artifact
    backend: Backend
    active: ActiveModel


def install_package(package: Path, slot: Path, trusted: TrustedKeys) -> OpenedPackage:
    """Verify ``package`` and extract it into ``slot``; a slot that already holds it is reused as it is."""
    verified = verify_package(package, trusted)
    if (slot / MANIFEST_NAME).is_file() and file_sha256(slot / MANIFEST_NAME)[0] == verified.manifest_sha256:
        return OpenedPackage(verified.manifest, verified.manifest_sha256, verified.key_id, slot)
    shutil.rmtree(slot, ignore_errors=True)
    return open_package(package, slot, trusted)


def load_model(opened: OpenedPackage, threads: int) -> LoadedModel:
    """Pick the artifact, load it and pass the smoke test; raises AgentError when none can run here."""
    artifact = choose_artifact(opened.manifest)
    if artifact is None:
        kinds = ", ".join(f"{a.format} {a.precision}" for a in opened.manifest.artifacts)
        raise AgentError(
            f"this agent runs none of the package's artifacts ({kinds})",
            hint="export the model to ONNX, or update the agent",
        )
    backend = OnnxBackend(opened.artifact_path(artifact), threads)
    worst = smoke_test(backend, opened.manifest, artifact)
    active = ActiveModel(
        name=opened.manifest.name,
        version=opened.manifest.version,
        sha256=opened.manifest_sha256,
        artifact=artifact.path,
    )
    log.info(
        "model.loaded",
        extra={"model": active.name, "version": active.version, "artifact": artifact.path, "smoke_max_diff": worst},
    )
    return LoadedModel(opened.manifest, artifact, backend, active)
