"""Install a package into the device's slot and load the artifact this device runs best."""

from __future__ import annotations

import logging
import shutil
from dataclasses import dataclass
from pathlib import Path

from edge_agent.backends import Backend, choose_artifact, load_backend
from edge_agent.smoke import smoke_test
from edgefleet.errors import AgentError
from edgefleet.manifest import Artifact, Manifest
from edgefleet.messages import ActiveModel
from edgefleet.package import MANIFEST_NAME, OpenedPackage, file_sha256, open_package, verify_package
from edgefleet.signing import TrustedKeys

__all__ = ["LoadedModel", "check_profile", "install_package", "load_model"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class LoadedModel:
    manifest: Manifest
    artifact: Artifact
    backend: Backend
    active: ActiveModel


def install_package(package: Path, slot: Path, trusted: TrustedKeys) -> OpenedPackage:
    """Verify ``package`` and extract it into ``slot``; a slot that already holds it intact is reused as it is.

    Raises a PackageError subclass when the package is refused.
    """
    verified = verify_package(package, trusted)
    reused = OpenedPackage(verified.manifest, verified.manifest_sha256, verified.key_id, slot)
    if _holds(reused):
        log.info("model.slot_reused", extra={"slot": str(slot), "package": verified.manifest.name})
        return reused
    shutil.rmtree(slot, ignore_errors=True)
    return open_package(package, slot, trusted)


def _holds(opened: OpenedPackage) -> bool:
    """Whether the slot holds this manifest and every artifact unaltered (a disk can rot, a hand can edit)."""
    manifest_file = opened.root / MANIFEST_NAME
    if not manifest_file.is_file() or file_sha256(manifest_file)[0] != opened.manifest_sha256:
        return False
    for artifact in opened.manifest.artifacts:
        path = opened.artifact_path(artifact)
        if not path.is_file() or file_sha256(path) != (artifact.sha256, artifact.size_bytes):
            return False
    return True


def check_profile(manifest: Manifest, profile: str) -> None:
    """Refuse a package made for other device profiles; raises AgentError naming both."""
    if manifest.compatible_profiles and profile not in manifest.compatible_profiles:
        raise AgentError(
            f"{manifest.name}@{manifest.version} is for device profiles {', '.join(manifest.compatible_profiles)}, "
            f"not for this device's {profile!r}",
            hint="roll out a package built for this profile, or correct the agent's `profile` setting",
        )


def _check_names(manifest: Manifest, artifact: Artifact, backend: Backend) -> None:
    """Refuse a model whose tensors are not the ones its manifest names, before it serves a single window."""
    missing = sorted(
        {t.name for t in manifest.inputs} - set(backend.input_names)
        | {t.name for t in manifest.outputs} - set(backend.output_names)
    )
    if missing:
        raise AgentError(
            f"{artifact.path} has no tensor named {', '.join(missing)}, which its manifest declares",
            hint="the package's manifest and model disagree: rebuild the package",
        )


def load_model(opened: OpenedPackage, threads: int) -> LoadedModel:
    """Pick the artifact, load it and pass the smoke test; raises AgentError when none can run here."""
    artifact = choose_artifact(opened.manifest)
    if artifact is None:
        kinds = ", ".join(f"{a.format} {a.precision}" for a in opened.manifest.artifacts)
        raise AgentError(
            f"this agent runs none of the package's artifacts ({kinds})",
            hint="export the model to ONNX, or update the agent",
        )
    backend = load_backend(artifact, opened.artifact_path(artifact), threads)
    _check_names(opened.manifest, artifact, backend)
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
