"""Valid contract objects and packages for tests, built the way the pipeline builds them."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from edgefleet.keylist import SignedKeyListV1
from edgefleet.manifest import (
    Artifact,
    ArtifactFormat,
    ChannelSpec,
    DType,
    Manifest,
    Precision,
    SensorPreprocessing,
    Task,
    TensorSpec,
)
from edgefleet.package import build_package, describe_artifact
from edgefleet.sensor_sim import CHANNELS, FAULTS, SAMPLE_RATE_HZ, WINDOW_LENGTH


def sensor_preprocessing() -> SensorPreprocessing:
    return SensorPreprocessing(
        channels=[ChannelSpec(name=n, unit=u, mean=0.0, std=1.0) for n, u in CHANNELS],
        window_length=WINDOW_LENGTH,
        sample_rate_hz=SAMPLE_RATE_HZ,
    )


def make_package(
    tmp: Path,
    key: Ed25519PrivateKey,
    *,
    version: str = "1.0.0",
    files: dict[str, bytes] | None = None,
    key_list: SignedKeyListV1 | None = None,
) -> Path:
    """A signed package whose artifacts are the given bytes (not real models: the reader does not care)."""
    files = files or {"model.onnx": b"not really onnx " * 64, "extra/model-int8.onnx": bytes(range(256)) * 8}
    src = tmp / f"src-{version}"
    paths: dict[str, Path] = {}
    for name, data in files.items():
        path = src / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        paths[name] = path
    artifacts = [
        describe_artifact(name, path, format=ArtifactFormat.ONNX, precision=Precision.FP32, runtime="onnxruntime>=1.17")
        for name, path in paths.items()
    ]
    manifest = Manifest(
        name="pump-vibration",
        version=version,
        task=Task.CLASSIFICATION,
        created_at="2026-11-24T00:00:00Z",
        inputs=[TensorSpec(name="x", shape=[None, len(CHANNELS), WINDOW_LENGTH], dtype=DType.FLOAT32, layout="NCW")],
        outputs=[TensorSpec(name="logits", shape=[None, len(FAULTS)], dtype=DType.FLOAT32)],
        labels=list(FAULTS),
        preprocessing=sensor_preprocessing(),
        artifacts=artifacts,
    )
    return build_package(manifest, paths, key, tmp / f"pump-vibration-{version}.efpkg", key_list=key_list)


def random_windows(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(n, len(CHANNELS), WINDOW_LENGTH)).astype(np.float32)


def make_manifest(kinds: list[tuple[ArtifactFormat, Precision]]) -> Manifest:
    """A manifest with one made-up artifact per (format, precision)."""
    artifacts = [
        Artifact(
            path=f"model-{fmt}-{precision}.{fmt}",
            format=fmt,
            precision=precision,
            runtime="any",
            sha256="0" * 64,
            size_bytes=1,
        )
        for fmt, precision in kinds
    ]
    return Manifest(
        name="pump-vibration",
        version="1.0.0",
        task=Task.CLASSIFICATION,
        created_at="2026-11-24T00:00:00Z",
        inputs=[TensorSpec(name="x", shape=[None, len(CHANNELS), WINDOW_LENGTH], dtype=DType.FLOAT32)],
        outputs=[TensorSpec(name="probs", shape=[None, len(FAULTS)], dtype=DType.FLOAT32)],
        labels=list(FAULTS),
        preprocessing=sensor_preprocessing(),
        artifacts=artifacts,
    )
