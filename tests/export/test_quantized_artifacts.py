"""int8 artifacts: BatchNorm folded, TFLite calibration covers the whole calibration set, and no format stores what it need not."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from edgefleet.manifest import ArtifactFormat, Precision
from export.measure import run_artifact
from export.onnx import INPUT_NAME, OUTPUT_NAME, export_onnx, shorten_names
from export.quantize import quantize_onnx_int8
from export.tflite import export_tflite, quantize_tflite
from train.models import DeviceOutputs, SensorCNN, fold_batch_norms

pytestmark = pytest.mark.integration


class _TinyImageNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(3, 8, 3, stride=2, padding=1), nn.BatchNorm2d(8), nn.ReLU6())
        self.head = nn.Linear(8, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.softmax(self.head(self.features(x).mean(dim=(2, 3))), dim=1)


def _images(count: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).uniform(-1, 1, size=(count, 3, 16, 16)).astype(np.float32)


@pytest.fixture(scope="module")
def tiny_tflite(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.manual_seed(0)
    out = tmp_path_factory.mktemp("tflite") / "fp32.tflite"
    return export_tflite(_TinyImageNet().eval(), torch.from_numpy(_images(1, 0)), out, INPUT_NAME, (OUTPUT_NAME,))


def test_int8_input_range_covers_the_rare_extremes_of_the_calibration_set(tiny_tflite: Path, tmp_path: Path) -> None:
    # most inputs lie in [-1, 1] and one in sixty-four reaches 5: a running average of per-sample ranges
    # (the quantizer's default) would end near [-1, 1] and clip that input
    calibration = _images(64, 1)
    calibration[::64] *= 5.0
    out = quantize_tflite(tiny_tflite, Precision.INT8, calibration, INPUT_NAME, tmp_path / "int8.tflite")
    from ai_edge_litert.interpreter import Interpreter

    runner = Interpreter(model_path=str(out)).get_signature_runner("serving_default")
    scale, zero_point = runner.get_input_details()[INPUT_NAME]["quantization"]
    assert (127 - zero_point) * scale >= calibration.max() - scale
    assert (-128 - zero_point) * scale <= calibration.min() + scale


def test_tflite_int8_stores_each_identical_quantization_vector_once(tiny_tflite: Path, tmp_path: Path) -> None:
    from ai_edge_litert.tools import flatbuffer_utils

    out = quantize_tflite(tiny_tflite, Precision.INT8, _images(32, 2), INPUT_NAME, tmp_path / "int8.tflite")
    plain = tmp_path / "plain.tflite"
    plain.write_bytes(flatbuffer_utils.convert_object_to_bytearray(flatbuffer_utils.read_model(str(out))))
    # per-channel zero points (int64, all 0) of the conv weights and biases: 2 × 8 channels × 8 bytes, once
    assert out.stat().st_size <= plain.stat().st_size - 8 * 8
    inputs = _images(8, 3)
    shared = run_artifact(ArtifactFormat.TFLITE, out, inputs)[OUTPUT_NAME]
    np.testing.assert_array_equal(shared, run_artifact(ArtifactFormat.TFLITE, plain, inputs)[OUTPUT_NAME])


def test_onnx_int8_of_the_sensor_cnn_is_under_three_tenths_of_fp32_and_keeps_its_outputs(tmp_path: Path) -> None:
    import onnx

    torch.manual_seed(0)
    model = DeviceOutputs(SensorCNN(channels=3, classes=7)).eval()
    windows = np.random.default_rng(0).normal(size=(64, 3, 256)).astype(np.float32)
    fp32 = export_onnx(model, torch.from_numpy(windows[:1]), tmp_path / "fp32.onnx")
    int8 = quantize_onnx_int8(fp32, windows, INPUT_NAME, tmp_path / "int8.onnx")
    shorten_names(int8)
    assert int8.stat().st_size <= 0.30 * fp32.stat().st_size

    graph = onnx.load(str(int8)).graph
    constants = {i.name for i in graph.initializer}
    weight_dequantizers = [n for n in graph.node if n.op_type == "DequantizeLinear" and n.input[0] in constants]
    assert weight_dequantizers
    assert all(len(n.input) == 2 for n in weight_dequantizers)  # symmetric: the default zero point, 0
    with torch.no_grad():
        reference = model(torch.from_numpy(windows)).numpy()
    probs = run_artifact(ArtifactFormat.ONNX, int8, windows)[OUTPUT_NAME]
    assert float(np.abs(probs - reference).max()) <= 0.25


def _with_running_statistics(model: nn.Module) -> nn.Module:
    # fresh BatchNorms are identities (mean 0, variance 1, scale 1, shift 0): give them something to fold
    generator = torch.Generator().manual_seed(0)
    for module in model.modules():
        if not isinstance(module, nn.BatchNorm1d | nn.BatchNorm2d):
            continue
        for name, tensor in module.state_dict().items():  # detached, sharing the module's storage
            if name == "running_var":
                tensor.copy_(torch.rand(tensor.shape, generator=generator) + 0.5)
            elif name != "num_batches_tracked":
                tensor.copy_(torch.randn(tensor.shape, generator=generator) * 0.5)
    return model.eval()


def test_batch_norm_is_folded_into_the_convolutions_and_the_model_keeps_its_own() -> None:
    model = _with_running_statistics(DeviceOutputs(SensorCNN(channels=3, classes=7)))
    windows = torch.from_numpy(np.random.default_rng(4).normal(size=(16, 3, 256)).astype(np.float32))
    folded = fold_batch_norms(model)
    assert not any(isinstance(m, nn.BatchNorm1d) for m in folded.modules())
    assert sum(isinstance(m, nn.BatchNorm1d) for m in model.modules()) == 4  # the trained model is untouched
    with torch.no_grad():
        torch.testing.assert_close(folded(windows), model(windows), atol=1e-5, rtol=1e-4)


def test_the_sensor_cnn_exports_without_batch_norm_operators_or_inner_transposes(tmp_path: Path) -> None:
    import onnx

    model = _with_running_statistics(DeviceOutputs(SensorCNN(channels=3, classes=7)))
    sample = torch.from_numpy(np.random.default_rng(5).normal(size=(1, 3, 256)).astype(np.float32))
    onnx_ops = [n.op_type for n in onnx.load(str(export_onnx(model, sample, tmp_path / "m.onnx"))).graph.node]
    assert "BatchNormalization" not in onnx_ops
    assert onnx_ops.count("Conv") == 4
    tflite_ops = _tflite_operators(export_tflite(model, sample, tmp_path / "m.tflite", INPUT_NAME, (OUTPUT_NAME,)))
    # unfolded, each BatchNorm1d was a MUL and an ADD between two TRANSPOSEs back to channels-first
    assert tflite_ops.count("CONV_2D") == 4
    assert "MUL" not in tflite_ops
    assert "ADD" not in tflite_ops
    assert tflite_ops.count("TRANSPOSE") == 2  # into channels-last once, and back once
    with torch.no_grad():
        reference = model(sample).numpy()
    for fmt, path in ((ArtifactFormat.ONNX, tmp_path / "m.onnx"), (ArtifactFormat.TFLITE, tmp_path / "m.tflite")):
        np.testing.assert_allclose(run_artifact(fmt, path, sample.numpy())[OUTPUT_NAME], reference, atol=1e-5)


def _tflite_operators(path: Path) -> list[str]:
    from ai_edge_litert import schema_py_generated as schema
    from ai_edge_litert.tools import flatbuffer_utils

    names = {code: name for name, code in vars(schema.BuiltinOperator).items() if not name.startswith("_")}
    model = flatbuffer_utils.read_model(str(path))
    return [names[model.operatorCodes[op.opcodeIndex].builtinCode] for op in model.subgraphs[0].operators]


class _TinySeparable(nn.Module):
    """A stem convolution, a depthwise and a pointwise one, and a linear head: each kind of weight once."""

    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 8, 3, stride=2, padding=1, bias=False),
            nn.BatchNorm2d(8),
            nn.ReLU6(),
            nn.Conv2d(8, 8, 3, padding=1, groups=8, bias=False),
            nn.BatchNorm2d(8),
            nn.ReLU6(),
            nn.Conv2d(8, 16, 1, bias=False),
            nn.BatchNorm2d(16),
            nn.ReLU6(),
        )
        self.head = nn.Linear(16, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.softmax(self.head(self.features(x).mean(dim=(2, 3))), dim=1)


def test_tflite_int8_gives_a_weight_scale_per_channel_only_to_depthwise_convolutions(tmp_path: Path) -> None:
    from ai_edge_litert.tools import flatbuffer_utils

    torch.manual_seed(0)
    model = _with_running_statistics(_TinySeparable())
    fp32 = export_tflite(model, torch.from_numpy(_images(1, 0)), tmp_path / "fp32.tflite", INPUT_NAME, (OUTPUT_NAME,))
    int8 = quantize_tflite(fp32, Precision.INT8, _images(64, 6), INPUT_NAME, tmp_path / "int8.tflite")
    flat = flatbuffer_utils.read_model(str(int8))
    tensors = flat.subgraphs[0].tensors
    scales: dict[str, list[int]] = {}
    for op, kind in zip(flat.subgraphs[0].operators, _tflite_operators(int8), strict=True):
        if kind in ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED"):
            scales.setdefault(kind, []).append(len(tensors[op.inputs[1]].quantization.scale))
    assert scales == {"CONV_2D": [1, 1], "DEPTHWISE_CONV_2D": [8], "FULLY_CONNECTED": [1]}
    with torch.no_grad():
        reference = model(torch.from_numpy(_images(32, 7))).numpy()
    probs = run_artifact(ArtifactFormat.TFLITE, int8, _images(32, 7))[OUTPUT_NAME]
    assert float(np.abs(probs - reference).max()) <= 0.25


def test_onnx_int8_gives_a_weight_scale_per_channel_only_to_depthwise_convolutions(tmp_path: Path) -> None:
    import onnx

    torch.manual_seed(0)
    model = _with_running_statistics(_TinySeparable())
    fp32 = export_onnx(model, torch.from_numpy(_images(1, 0)), tmp_path / "fp32.onnx")
    int8 = quantize_onnx_int8(fp32, _images(64, 6), INPUT_NAME, tmp_path / "int8.onnx")
    graph = onnx.load(str(int8)).graph
    shapes = {i.name: list(i.dims) for i in graph.initializer}
    producers = {n.output[0]: n for n in graph.node}
    scales: dict[str, list[list[int]]] = {}
    for node in graph.node:
        if node.op_type in ("Conv", "Gemm"):
            dequantize = producers[node.input[1]]
            kind = "depthwise" if any(a.name == "group" and a.i > 1 for a in node.attribute) else node.op_type
            scales.setdefault(kind, []).append(shapes[dequantize.input[1]])
    assert scales == {"Conv": [[], []], "depthwise": [[8]], "Gemm": [[]]}
    with torch.no_grad():
        reference = model(torch.from_numpy(_images(32, 7))).numpy()
    probs = run_artifact(ArtifactFormat.ONNX, int8, _images(32, 7))[OUTPUT_NAME]
    assert float(np.abs(probs - reference).max()) <= 0.25
