"""Mobile app bundles of a training run: Android (LiteRT with TFLite metadata), iOS (Core ML), and ExecuTorch."""

from __future__ import annotations

from export.bundles._schema import (
    AssociatedFile,
    AssociatedFileType,
    ColourSpace,
    FeatureContent,
    ImageContent,
    ModelMetadata,
    Normalization,
    TensorMetadata,
)
from export.bundles.android import build_android_bundle
from export.bundles.ios import build_ios_bundle
from export.bundles.metadata import read_associated_files, read_metadata

__all__ = [
    "AssociatedFile",
    "AssociatedFileType",
    "ColourSpace",
    "FeatureContent",
    "ImageContent",
    "ModelMetadata",
    "Normalization",
    "TensorMetadata",
    "build_android_bundle",
    "build_ios_bundle",
    "read_associated_files",
    "read_metadata",
]
