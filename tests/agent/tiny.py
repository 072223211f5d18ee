"""Tiny signed sensor classifier packages, real ONNX graphs built with onnx.helper, in the variants the update
tests need: a healthy one, one that passes its smoke test but fails on live data, and a much slower one."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Any

import numpy as np

from edgefleet.keylist import SignedKeyListV1
from edgefleet.manifest import (
    ArtifactFormat,
    ChannelSpec,
    DType,
    ExpectedOutputs,
    FeatureReference,
    Histogram,
    Manifest,
    Precision,
    ReferenceProfile,
    SensorPreprocessing,
    Task,
    TensorSpec,
    TestVectors,
)
from edgefleet.sensor_sim import CHANNELS, FAULTS, SAMPLE_RATE_HZ, WINDOW_LENGTH, Recording

CONFIDENCE_EDGES = [0.0, 0.25, 0.5, 0.75, 1.0]


class Variant(Enum):
    HEALTHY = "healthy"
    FAILS_LIVE = "fails-live"  # meets its test vectors, raises in the runtime on any other input
    SLOW = "slow"  # the same answers behind a long chain of matrix products


@dataclass(frozen=True)
class TinyPackage:
    path: Path
    public_key: Path
    manifest: Manifest


def build_tiny_package(
    root: Path,
    *,
    version: str = "1.0.0",
    seed: int = 1,
    variant: Variant = Variant.HEALTHY,
    keys: Path | None = None,
    profiles: list[str] | None = None,
    pad_floats: int = 0,
    min_agent_version: str = "0.1.0",
    key_list: SignedKeyListV1 | None = None,
) -> TinyPackage:
    """A signed package with a reference profile, test vectors and two artifacts, fp32 and one labelled int8
    (the agent must pick that one); signed with the key pair in ``keys`` (made there when absent).

    ``pad_floats`` adds that many weights which change no answer, for a package of some size."""
    from edgefleet.package import build_package, describe_artifact
    from edgefleet.preprocess import prepare_sensor_windows
    from edgefleet.signing import PRIVATE_KEY_FILE, PUBLIC_KEY_FILE, generate_keys, load_private_key
    from edgefleet.sketch import count_into, reference_histogram, sensor_features
    from edgefleet.tensors import encode_tensor

    root.mkdir(parents=True, exist_ok=True)
    keys = keys or root / "keys"
    if not (keys / PRIVATE_KEY_FILE).is_file():
        generate_keys(keys)
    rng = np.random.default_rng(0)
    raw = np.stack([Recording.random(f, rng).window(i, rng) for f in range(len(FAULTS)) for i in range(10)])
    channels = [
        ChannelSpec(name=name, unit=unit, mean=float(raw[:, c].mean()), std=float(raw[:, c].std()) or 1.0)
        for c, (name, unit) in enumerate(CHANNELS)
    ]
    preprocessing = SensorPreprocessing(channels=channels, window_length=WINDOW_LENGTH, sample_rate_hz=SAMPLE_RATE_HZ)
    batch = prepare_sensor_windows(raw, preprocessing)
    vector_inputs = batch[:2]
    src = root / f"src-{version}-{variant.value}"
    src.mkdir(parents=True, exist_ok=True)
    # the int8 artifact is the fp32 graph under another name: the agent picks by the manifest, not the bytes
    files = {"model-fp32.onnx": src / "model-fp32.onnx", "model-int8.onnx": src / "model-int8.onnx"}
    for path in files.values():
        _write_onnx(path, seed, variant, vector_inputs, pad_floats)
    artifacts = [
        describe_artifact(name, path, format=ArtifactFormat.ONNX, precision=precision, runtime="onnxruntime>=1.19")
        for (name, path), precision in zip(files.items(), (Precision.FP32, Precision.INT8), strict=True)
    ]
    probs = run_onnx(files["model-fp32.onnx"], vector_inputs)
    healthy = src / "healthy.onnx"
    _write_onnx(healthy, seed, Variant.HEALTHY, vector_inputs, 0)
    all_probs = run_onnx(healthy, batch)
    # the reference describes normal service (train/reference.py): 400 normal windows, 40 per quantile bin
    normal_rng = np.random.default_rng(2)
    normal = np.stack(
        [
            Recording.random(FAULTS.index("normal"), normal_rng).window(i, normal_rng)
            for _ in range(40)
            for i in range(10)
        ]
    )
    normal_probs = run_onnx(healthy, prepare_sensor_windows(normal, preprocessing))
    features = sensor_features(normal, [c.name for c in channels])
    reference = ReferenceProfile(
        sample_count=len(normal),
        features=[FeatureReference(name=n, histogram=reference_histogram(v)) for n, v in features.items()],
        class_counts=count_into(np.arange(len(FAULTS) + 1, dtype=np.float64) - 0.5, normal_probs.argmax(1)),
        confidence=Histogram(edges=CONFIDENCE_EDGES, counts=count_into(CONFIDENCE_EDGES, all_probs.max(1))),
    )
    expected = ExpectedOutputs(atol=1e-4, outputs={"probs": encode_tensor(probs)})
    manifest = Manifest(
        name="tiny-pump",
        version=version,
        task=Task.CLASSIFICATION,
        created_at="2026-11-24T00:00:00Z",
        inputs=[TensorSpec(name="x", shape=[None, len(CHANNELS), WINDOW_LENGTH], dtype=DType.FLOAT32, layout="NCW")],
        outputs=[TensorSpec(name="probs", shape=[None, len(FAULTS)], dtype=DType.FLOAT32)],
        labels=list(FAULTS),
        preprocessing=preprocessing,
        artifacts=artifacts,
        reference_profile=reference,
        test_vectors=TestVectors(
            inputs={"x": encode_tensor(vector_inputs)}, expected={a.path: expected for a in artifacts}
        ),
        compatible_profiles=profiles or [],
        min_agent_version=min_agent_version,
    )
    out = build_package(
        manifest,
        files,
        load_private_key(keys / PRIVATE_KEY_FILE),
        root / f"tiny-pump-{version}-{variant.value}.efpkg",
        key_list=key_list,
    )
    return TinyPackage(out, keys / PUBLIC_KEY_FILE, manifest)


def run_onnx(path: Path, batch: np.ndarray) -> np.ndarray:
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return np.asarray(session.run(None, {"x": batch})[0])


def _write_onnx(path: Path, seed: int, variant: Variant, vector_inputs: np.ndarray, pad_floats: int) -> None:
    """x (N, C, L) → mean over time → Gemm → Softmax → probs (N, classes), plus what the variant adds."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(seed)
    weights = rng.normal(size=(len(CHANNELS), len(FAULTS))).astype(np.float32)
    bias = rng.normal(size=len(FAULTS)).astype(np.float32)
    nodes = [
        helper.make_node("ReduceMean", ["x"], ["mean"], axes=[2], keepdims=0),
        helper.make_node("Gemm", ["mean", "w", "b"], ["logits"]),
    ]
    initializers = [numpy_helper.from_array(weights, "w"), numpy_helper.from_array(bias, "b")]
    if pad_floats:
        # the bias becomes b + 0 × sum(pad): the same answers, with the pad's bytes in the file
        pad = rng.normal(size=pad_floats).astype(np.float32)
        initializers += [numpy_helper.from_array(pad, "pad"), numpy_helper.from_array(np.zeros(1, np.float32), "nil")]
        nodes = [
            helper.make_node("ReduceSum", ["pad"], ["pad_sum"], keepdims=1),
            helper.make_node("Mul", ["pad_sum", "nil"], ["pad_zero"]),
            helper.make_node("Add", ["b0", "pad_zero"], ["b"]),
            *nodes,
        ]
        initializers[1] = numpy_helper.from_array(bias, "b0")
    if variant is Variant.HEALTHY:
        nodes.append(helper.make_node("Softmax", ["logits"], ["probs"], axis=1))
    elif variant is Variant.SLOW:
        nodes += _slow_branch(initializers, rng)
    else:
        nodes += _fails_live_guard(initializers, vector_inputs)
    graph = helper.make_graph(
        nodes,
        "tiny-pump",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", len(CHANNELS), WINDOW_LENGTH])],
        [helper.make_tensor_value_info("probs", TensorProto.FLOAT, ["n", len(FAULTS)])],
        initializer=initializers,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8  # what onnxruntime 1.19 (the oldest the agent extra allows) still reads
    onnx.checker.check_model(model)
    onnx.save(model, str(path))


def _slow_branch(initializers: list[Any], rng: np.random.Generator) -> list[Any]:
    """Logits plus 0 × (a chain of 120 tanh(h·W) over 512 units fed by the input): same answers, much later (several
    times the healthy model's latency even when a loaded machine inflates the baseline)."""
    from onnx import helper, numpy_helper

    width, depth = 512, 120
    initializers += [
        numpy_helper.from_array(rng.normal(size=(len(CHANNELS), width)).astype(np.float32), "w_in"),
        numpy_helper.from_array((rng.normal(size=(width, width)) / np.sqrt(width)).astype(np.float32), "w_deep"),
        numpy_helper.from_array(np.zeros(1, dtype=np.float32), "zero"),
    ]
    nodes = [helper.make_node("MatMul", ["mean", "w_in"], ["h0"])]
    for i in range(depth):
        nodes += [
            helper.make_node("MatMul", [f"h{i}", "w_deep"], [f"m{i}"]),
            helper.make_node("Tanh", [f"m{i}"], [f"h{i + 1}"]),
        ]
    nodes += [
        helper.make_node("ReduceSum", [f"h{depth}"], ["heavy"], keepdims=1),
        helper.make_node("Mul", ["heavy", "zero"], ["nothing"]),
        helper.make_node("Add", ["logits", "nothing"], ["slow_logits"]),
        helper.make_node("Softmax", ["slow_logits"], ["probs"], axis=1),
    ]
    return nodes


def _fails_live_guard(initializers: list[Any], vector_inputs: np.ndarray) -> list[Any]:
    """Reshape the answers to (N, classes) for the test vectors' batch, and to (N, classes + 1) for any other
    input, which onnxruntime refuses at run time: a model that passes the smoke test and fails in service."""
    from onnx import TensorProto, helper, numpy_helper

    total = float(np.abs(vector_inputs).sum())
    initializers += [
        numpy_helper.from_array(np.array(total, dtype=np.float32), "vector_total"),
        numpy_helper.from_array(np.array(total * 1e-5, dtype=np.float32), "tolerance"),
        numpy_helper.from_array(np.array([len(FAULTS) + 1], dtype=np.int64), "wrong_cols"),
        numpy_helper.from_array(np.array([0], dtype=np.int64), "zero_axis"),
        numpy_helper.from_array(np.array([0], dtype=np.int64), "first"),
        numpy_helper.from_array(np.array([1], dtype=np.int64), "second"),
    ]
    return [
        helper.make_node("Softmax", ["logits"], ["raw_probs"], axis=1),
        helper.make_node("Abs", ["x"], ["abs_x"]),
        helper.make_node("ReduceSum", ["abs_x"], ["x_total"], keepdims=0),
        helper.make_node("Sub", ["x_total", "vector_total"], ["gap"]),
        helper.make_node("Abs", ["gap"], ["abs_gap"]),
        helper.make_node("Less", ["abs_gap", "tolerance"], ["is_vector"]),
        helper.make_node("Cast", ["is_vector"], ["is_vector_i"], to=TensorProto.INT64),
        helper.make_node("Unsqueeze", ["is_vector_i", "zero_axis"], ["is_vector_1"]),
        helper.make_node("Sub", ["wrong_cols", "is_vector_1"], ["cols"]),
        helper.make_node("Shape", ["x"], ["x_shape"]),
        helper.make_node("Slice", ["x_shape", "first", "second"], ["n"]),
        helper.make_node("Concat", ["n", "cols"], ["out_shape"], axis=0),
        helper.make_node("Reshape", ["raw_probs", "out_shape"], ["probs"]),
    ]
