"""int8 artifacts: TFLite calibration covers the whole calibration set, and neither format stores what it need not."""

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
from train.models import DeviceOutputs, SensorCNN

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
