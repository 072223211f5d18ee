"""The agent's fast paths give what the general paths give: the preparer's reused buffer, the bound ONNX inputs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from edgefleet.errors import AgentError, InputError
from edgefleet.manifest import ChannelSpec, ImagePreprocessing, SensorPreprocessing
from edgefleet.preprocess import InputPreparer

pytestmark = pytest.mark.unit

SPEC = SensorPreprocessing(
    channels=[
        ChannelSpec(name="a", mean=0.3, std=0.7),
        ChannelSpec(name="b", mean=-12.5, std=3.1),
        ChannelSpec(name="c", mean=1e3, std=250.0),
    ],
    window_length=16,
    sample_rate_hz=100.0,
)


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int16])
@pytest.mark.parametrize("size", [1, 3, 8])
def test_many_gives_the_batch_paths_values_bit_for_bit(dtype: type, size: int) -> None:
    prepare = InputPreparer(SPEC)
    rng = np.random.default_rng(0)
    for _ in range(20):
        windows: list[np.ndarray] = [
            (rng.normal(size=(3, 16)) * rng.uniform(0.01, 1e3)).astype(dtype) for _ in range(size)
        ]
        assert np.array_equal(prepare.many(windows), prepare(np.stack(windows)))


def test_many_reuses_one_buffer_per_batch_size_and_leaves_the_batch_path_fresh() -> None:
    prepare = InputPreparer(SPEC)
    first = prepare.many([np.ones((3, 16), dtype=np.float32)])
    pair = prepare.many([np.ones((3, 16)), np.ones((3, 16))])
    second = prepare.many([np.zeros((3, 16), dtype=np.float32)])
    assert first is second
    assert pair is not first
    assert pair is prepare.many([np.zeros((3, 16)), np.ones((3, 16))])
    assert np.array_equal(second, prepare(np.zeros((1, 3, 16), dtype=np.float32)))
    assert prepare(np.zeros((1, 3, 16))) is not prepare(np.zeros((1, 3, 16)))


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_many_refuses_nan_and_infinity_like_the_batch_path(bad: float) -> None:
    window = np.ones((3, 16), dtype=np.float32)
    window[2, 7] = bad
    with pytest.raises(InputError, match="NaN or infinity"):
        InputPreparer(SPEC).many([np.ones((3, 16)), window])


def test_many_refuses_a_wrong_shape_with_the_batch_paths_message() -> None:
    with pytest.raises(InputError, match=r"the model needs \(N, 3, 16\)"):
        InputPreparer(SPEC).many([np.ones((3, 15), dtype=np.float32)])
    with pytest.raises(InputError, match=r"the model needs \(N, 3, 16\)"):
        InputPreparer(SPEC).many([np.ones((1, 3, 16), dtype=np.float32)])


def test_many_prepares_images_as_the_batch_path_does() -> None:
    spec = ImagePreprocessing(height=4, width=5, mean=(0.4, 0.5, 0.6), std=(0.2, 0.25, 0.3), colour_order="BGR")
    images = list(np.random.default_rng(1).integers(0, 256, size=(2, 4, 5, 3), dtype=np.uint8))
    prepare = InputPreparer(spec)
    assert np.array_equal(prepare.many(images), prepare(np.stack(images)))


def _dynamic_model(tmp_path: Path) -> Path:
    import onnx
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("ReduceSum", ["x", "axes"], ["y"], keepdims=0)],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 3, 16])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 3])],
        [helper.make_tensor("axes", TensorProto.INT64, [1], [2])],
    )
    path = tmp_path / "sum.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    return path


def test_the_onnx_backend_answers_each_batch_afresh_whatever_its_array(tmp_path: Path) -> None:
    from edge_agent.backends.onnx import OnnxBackend

    backend = OnnxBackend(_dynamic_model(tmp_path))
    rng = np.random.default_rng(2)
    batch = rng.normal(size=(4, 3, 16)).astype(np.float32)
    first = backend.run({"x": batch})["y"]
    assert np.allclose(first, batch.sum(axis=2), atol=1e-5)
    batch *= 2  # the same array, changed in place: still bound, and read anew
    assert np.allclose(backend.run({"x": batch})["y"], batch.sum(axis=2), atol=1e-5)
    assert np.allclose(first * 2, batch.sum(axis=2), atol=1e-5)  # the first answer was a copy, not overwritten
    assert np.allclose(backend.run({"x": batch[:1]})["y"], batch[:1].sum(axis=2), atol=1e-5)  # a new batch size
    strided = batch[::2]
    assert np.allclose(backend.run({"x": strided})["y"], strided.sum(axis=2), atol=1e-5)
    assert np.allclose(backend.run({"x": batch})["y"], batch.sum(axis=2), atol=1e-5)


def test_the_onnx_backend_refuses_a_wrong_dtype_or_a_missing_input(tmp_path: Path) -> None:
    from edge_agent.backends.onnx import OnnxBackend

    backend = OnnxBackend(_dynamic_model(tmp_path))
    with pytest.raises(AgentError, match="onnxruntime failed on a batch"):
        backend.run({"x": np.ones((1, 3, 16), dtype=np.float64)})
    with pytest.raises(AgentError, match="no input named 'x'"):
        backend.run({"z": np.ones((1, 3, 16), dtype=np.float32)})
    assert backend.run({"x": np.ones((2, 3, 16), dtype=np.float32)})["y"].tolist() == [[16.0] * 3] * 2
