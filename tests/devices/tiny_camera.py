"""A tiny signed camera package: a real ONNX graph (mean colour → Gemm → Softmax) over 32x32 RGB images, with a
reference profile of the simulated camera's image statistics, for the emulated camera devices' tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from edge_agent.sources.simulated_camera import inspection_image
from edgefleet.manifest import (
    ArtifactFormat,
    DType,
    ExpectedOutputs,
    FeatureReference,
    ImagePreprocessing,
    Manifest,
    Precision,
    ReferenceProfile,
    Task,
    TensorSpec,
    TestVectors,
)
from tests.agent.tiny import TinyPackage

SIZE = 32
LABELS = ["good", "defect"]


def build_tiny_camera_package(root: Path) -> TinyPackage:
    import onnx
    import onnxruntime as ort
    from onnx import TensorProto, helper, numpy_helper

    from edgefleet.package import build_package, describe_artifact
    from edgefleet.preprocess import InputPreparer
    from edgefleet.signing import PRIVATE_KEY_FILE, PUBLIC_KEY_FILE, generate_keys, load_private_key
    from edgefleet.sketch import image_features, reference_histogram
    from edgefleet.tensors import encode_tensor

    root.mkdir(parents=True, exist_ok=True)
    keys = root / "keys"
    generate_keys(keys)
    rng = np.random.default_rng(0)
    images = np.stack([inspection_image(SIZE, SIZE, rng, defect=i % 5 == 0) for i in range(100)])
    preprocessing = ImagePreprocessing(height=SIZE, width=SIZE, mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25))
    graph = helper.make_graph(
        [
            helper.make_node("GlobalAveragePool", ["x"], ["pooled"]),
            helper.make_node("Flatten", ["pooled"], ["flat"]),
            helper.make_node("Gemm", ["flat", "w", "b"], ["logits"]),
            helper.make_node("Softmax", ["logits"], ["probs"], axis=1),
        ],
        "tiny-camera",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 3, SIZE, SIZE])],
        [helper.make_tensor_value_info("probs", TensorProto.FLOAT, ["n", len(LABELS)])],
        [
            numpy_helper.from_array(rng.normal(size=(3, len(LABELS))).astype(np.float32), "w"),
            numpy_helper.from_array(np.zeros(len(LABELS), np.float32), "b"),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx_file = root / "model-fp32.onnx"
    onnx.save(model, onnx_file)
    vectors = InputPreparer(preprocessing)(images[:2])
    session = ort.InferenceSession(str(onnx_file), providers=["CPUExecutionProvider"])
    probs = np.asarray(session.run(None, {"x": vectors})[0])
    artifact = describe_artifact(
        "model-fp32.onnx", onnx_file, format=ArtifactFormat.ONNX, precision=Precision.FP32, runtime="onnxruntime>=1.19"
    )
    features = image_features(images)
    manifest = Manifest(
        name="tiny-camera",
        version="1.0.0",
        task=Task.CLASSIFICATION,
        created_at="2026-11-24T00:00:00Z",
        inputs=[TensorSpec(name="x", shape=[None, 3, SIZE, SIZE], dtype=DType.FLOAT32, layout="NCHW")],
        outputs=[TensorSpec(name="probs", shape=[None, len(LABELS)], dtype=DType.FLOAT32)],
        labels=LABELS,
        preprocessing=preprocessing,
        artifacts=[artifact],
        reference_profile=ReferenceProfile(
            sample_count=len(images),
            features=[FeatureReference(name=n, histogram=reference_histogram(v)) for n, v in features.items()],
        ),
        test_vectors=TestVectors(
            inputs={"x": encode_tensor(vectors)},
            expected={artifact.path: ExpectedOutputs(atol=1e-4, outputs={"probs": encode_tensor(probs)})},
        ),
    )
    out = build_package(
        manifest, {"model-fp32.onnx": onnx_file}, load_private_key(keys / PRIVATE_KEY_FILE), root / "camera.efpkg"
    )
    return TinyPackage(out, keys / PUBLIC_KEY_FILE, manifest)
