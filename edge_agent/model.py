"""Load the artifact of an installed package this device runs best, and refuse what it must not run."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from edge_agent.backends import DEFAULT_RUNTIMES, Backend, choose_artifact, installed_formats, load_backend
from edge_agent.smoke import smoke_test
from edgefleet.errors import AgentError
from edgefleet.manifest import Artifact, Manifest
from edgefleet.messages import ActiveModel
from edgefleet.package import OpenedPackage
from edgefleet.profile import RuntimeName

__all__ = ["LoadedModel", "check_profile", "load_model"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class LoadedModel:
    manifest: Manifest
    artifact: Artifact
    backend: Backend
    active: ActiveModel


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


def load_model(
    opened: OpenedPackage,
    threads: int,
    slot: Literal["a", "b"] = "a",
    runtimes: Sequence[RuntimeName] = DEFAULT_RUNTIMES,
) -> LoadedModel:
    """Pick the artifact the device's ``runtimes`` (its profile's, best first) run best, load it and pass the
    smoke test; raises AgentError when none can run here."""
    formats = installed_formats(runtimes)
    artifact = choose_artifact(opened.manifest, formats)
    if artifact is None:
        kinds = ", ".join(f"{a.format} {a.precision}" for a in opened.manifest.artifacts)
        usable = ", ".join(formats) or "none of them is installed"
        raise AgentError(
            f"this device runs none of the package's artifacts ({kinds}); its runtimes {', '.join(runtimes)} "
            f"take: {usable}",
            hint="export the model for one of the device's runtimes, or install one (pip install 'edgefleet[agent]' "
            "for onnxruntime, 'edgefleet[tflite]' for LiteRT)",
        )
    backend = load_backend(artifact, opened.artifact_path(artifact), threads)
    _check_names(opened.manifest, artifact, backend)
    worst = smoke_test(backend, opened.manifest, artifact)
    active = ActiveModel(
        name=opened.manifest.name,
        version=opened.manifest.version,
        sha256=opened.manifest_sha256,
        artifact=artifact.path,
        slot=slot,
    )
    log.info(
        "model.loaded",
        extra={"model": active.name, "version": active.version, "artifact": artifact.path, "smoke_max_diff": worst},
    )
    return LoadedModel(opened.manifest, artifact, backend, active)
