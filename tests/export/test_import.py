"""Bring your own model: ONNX and TFLite files edgefleet did not make become packages devices accept."""

from __future__ import annotations

import os
import subprocess
import sys
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from edge_agent.model import load_model
from edge_agent.smoke import smoke_test
from edgefleet.errors import InputError
from edgefleet.manifest import ArtifactFormat, Manifest, Precision
from edgefleet.package import inspect_package, open_package
from edgefleet.signing import generate_keys, load_public_keys
from export.importing import ImportRequest, import_model
from export.importing.keras import KERAS_EXTRA

pytestmark = pytest.mark.integration

CHANNELS, LENGTH, CLASSES = 3, 128, 4
LABELS = ["normal", "bearing", "imbalance", "misalignment"]


@dataclass(frozen=True)
class Files:
    root: Path
    onnx: Path  # x (N, 3, 128) → probs (N, 4)
    tflite: Path  # the same kind of classifier, from a torch module through litert-torch
    spec: Path  # fits both models, with raw samples
    samples: Path
    key: Path
    public_key: Path


def edgefleet(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "edgefleet", *map(str, args)],
        capture_output=True,
        text=True,
        env={**os.environ, "COLUMNS": "200"},
        timeout=120,
    )


def spec_data(**changes: Any) -> dict[str, Any]:
    channels = [{"name": f"accel_{axis}", "unit": "g", "mean": 0.5, "std": 2.0} for axis in "xyz"]
    data: dict[str, Any] = {
        "name": "acme-pump",
        "task": "classification",
        "labels": LABELS,
        "preprocessing": {"kind": "sensor", "channels": channels, "window_length": LENGTH, "sample_rate_hz": 1000},
        "samples": "samples.npy",  # relative to the spec's folder
    }
    data.update(changes)
    return {k: v for k, v in data.items() if v is not None}


def write_spec(path: Path, **changes: Any) -> Path:
    path.write_text(yaml.safe_dump(spec_data(**changes)))
    return path


def onnx_classifier(
    path: Path, shape: tuple[int | str, ...] = ("n", CHANNELS, LENGTH), channel_axis: int = 1, quantized: bool = False
) -> Path:
    """x → ReduceMean over all but batch and channels → MatMul → Add → Softmax; ``quantized`` puts Q/DQ on x."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(7)
    weights = [
        numpy_helper.from_array(rng.normal(size=(int(shape[channel_axis]), CLASSES)).astype(np.float32), "w"),
        numpy_helper.from_array(rng.normal(size=CLASSES).astype(np.float32), "b"),
    ]
    quantization = [
        numpy_helper.from_array(np.array(0.05, dtype=np.float32), "scale"),
        numpy_helper.from_array(np.array(0, dtype=np.int8), "zero"),
    ]
    quantize = [
        helper.make_node("QuantizeLinear", ["x", "scale", "zero"], ["xq"]),
        helper.make_node("DequantizeLinear", ["xq", "scale", "zero"], ["xd"]),
    ]
    first = "xd" if quantized else "x"
    reduced = [axis for axis in range(1, len(shape)) if axis != channel_axis]
    graph = helper.make_graph(
        [
            *(quantize if quantized else []),
            helper.make_node("ReduceMean", [first], ["mean"], axes=reduced, keepdims=0),
            helper.make_node("MatMul", ["mean", "w"], ["scores"]),
            helper.make_node("Add", ["scores", "b"], ["logits"]),
            helper.make_node("Softmax", ["logits"], ["probs"], axis=1),
        ],
        "byo-classifier",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, list(shape))],
        [helper.make_tensor_value_info("probs", TensorProto.FLOAT, [shape[0], CLASSES])],
        initializer=weights + (quantization if quantized else []),
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


def tflite_classifier(path: Path) -> Path:
    """A plain torch module converted directly by litert-torch: batch fixed at 1, input named x."""
    import torch

    class Classifier(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.head = torch.nn.Linear(CHANNELS, CLASSES)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.softmax(self.head(x.mean(dim=2)), dim=1)

    torch.manual_seed(0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the converter's own deprecation notices are not ours to fix
        import litert_torch

        sample = torch.randn(1, CHANNELS, LENGTH)
        litert_torch.convert(Classifier().eval(), sample_kwargs={"x": sample}).export(str(path))
    return path


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> Files:
    root = tmp_path_factory.mktemp("byo")
    rng = np.random.default_rng(3)
    samples = root / "samples.npy"
    np.save(samples, (0.5 + 2.0 * rng.standard_normal((20, CHANNELS, LENGTH))).astype(np.float32))
    key, public_key = generate_keys(root / "keys")
    return Files(
        root=root,
        onnx=onnx_classifier(root / "byo.onnx"),
        tflite=tflite_classifier(root / "byo.tflite"),
        spec=write_spec(root / "spec.yaml"),
        samples=samples,
        key=key,
        public_key=public_key,
    )


def assert_the_agent_runs_it(package: Path, public_key: Path, slot: Path) -> Manifest:
    """The package installs, loads and passes the smoke test exactly as on a device."""
    opened = open_package(package, slot, load_public_keys([public_key]))
    loaded = load_model(opened, threads=1)
    vectors = loaded.manifest.test_vectors
    assert vectors is not None
    assert smoke_test(loaded.backend, loaded.manifest, loaded.artifact) <= vectors.expected[loaded.artifact.path].atol
    return loaded.manifest


def test_an_onnx_model_with_samples_becomes_a_verified_package_with_a_reference_profile(files: Files) -> None:
    out = files.root / "onnx-1.0.0.efpkg"
    result = edgefleet(
        "import", "onnx", files.onnx, "--spec", files.spec, "--key", files.key, "--version", "1.0.0", "--out", out
    )
    assert result.returncode == 0, result.stderr
    assert "onnx fp32" in result.stdout
    verified = edgefleet("package", "verify", out, "--trust", files.public_key)
    assert verified.returncode == 0, verified.stderr
    manifest = assert_the_agent_runs_it(out, files.public_key, files.root / "slot-onnx")
    assert [(t.name, t.shape, t.layout) for t in manifest.inputs] == [("x", [None, CHANNELS, LENGTH], "NCW")]
    assert [(t.name, t.shape) for t in manifest.outputs] == [("probs", [None, CLASSES])]
    assert manifest.labels == LABELS
    profile = manifest.reference_profile
    assert profile is not None
    assert sum(profile.class_counts) == profile.sample_count == 20
    assert {f.name for f in profile.features} >= {"accel_x.mean", "accel_z.rms"}


def test_a_tflite_model_from_litert_torch_becomes_a_verified_package_without_samples(files: Files) -> None:
    spec = write_spec(files.root / "no-samples.yaml", samples=None)
    out = files.root / "tflite-1.0.0.efpkg"
    result = edgefleet(
        "import", "tflite", files.tflite, "--spec", spec, "--key", files.key, "--version", "1.0.0", "--out", out
    )
    assert result.returncode == 0, result.stderr
    verified = edgefleet("package", "verify", out, "--trust", files.public_key)
    assert verified.returncode == 0, verified.stderr
    manifest = assert_the_agent_runs_it(out, files.public_key, files.root / "slot-tflite")
    assert manifest.artifacts[0].path == "acme-pump-fp32.tflite"
    assert manifest.inputs[0].shape == [None, CHANNELS, LENGTH]
    assert manifest.reference_profile is None
    assert manifest.test_vectors is not None
    assert manifest.test_vectors.inputs["x"].shape == [4, CHANNELS, LENGTH]


def test_a_quantized_onnx_model_with_a_fixed_batch_is_packaged_as_int8_with_one_test_vector(files: Files) -> None:
    model = onnx_classifier(files.root / "int8.onnx", (1, CHANNELS, LENGTH), quantized=True)
    out = files.root / "int8.efpkg"
    manifest = import_model(ImportRequest(model, ArtifactFormat.ONNX, files.spec, files.key, "1.1.0", out))
    assert manifest.artifacts[0].precision is Precision.INT8
    assert manifest.inputs[0].shape == [1, CHANNELS, LENGTH]
    assert inspect_package(out).test_vectors is not None
    assert_the_agent_runs_it(out, files.public_key, files.root / "slot-int8")


def test_an_image_model_gets_image_statistics_in_its_reference_profile(files: Files) -> None:
    model = onnx_classifier(files.root / "image.onnx", ("n", 3, 16, 16))
    np.save(files.root / "images.npy", np.random.default_rng(5).integers(0, 256, (12, 16, 16, 3), dtype=np.uint8))
    image = {"kind": "image", "height": 16, "width": 16, "mean": [0.5] * 3, "std": [0.25] * 3}
    spec = write_spec(files.root / "image.yaml", preprocessing=image, samples="images.npy")
    out = files.root / "image.efpkg"
    manifest = import_model(ImportRequest(model, ArtifactFormat.ONNX, spec, files.key, "1.0.0", out))
    assert [(t.shape, t.layout) for t in manifest.inputs] == [([None, 3, 16, 16], "NCHW")]
    assert manifest.reference_profile is not None
    assert {f.name for f in manifest.reference_profile.features} >= {"brightness", "sharpness"}
    assert_the_agent_runs_it(out, files.public_key, files.root / "slot-image")


def test_a_channels_last_model_is_refused_with_the_transpose_it_needs(files: Files) -> None:
    model = onnx_classifier(files.root / "nlc.onnx", ("n", LENGTH, CHANNELS), channel_axis=2)
    out = files.root / "nlc.efpkg"
    with pytest.raises(InputError, match="channels last") as refused:
        import_model(ImportRequest(model, ArtifactFormat.ONNX, files.spec, files.key, "1.0.0", out))
    assert "add a transpose" in refused.value.hint
    assert not out.exists()


_KERAS_MODEL = """
import sys
import keras
inputs = keras.Input(shape=(3, 128), name="x")
pooled = keras.layers.GlobalAveragePooling1D(data_format="channels_first")(inputs)
outputs = keras.layers.Dense(4, activation="softmax")(pooled)
keras.Model(inputs, outputs).save(sys.argv[1])
"""


def test_a_keras_model_is_converted_by_tensorflow_and_packaged(files: Files) -> None:
    model = files.root / "made-in-keras.keras"
    # TensorFlow stays out of the test process: it and torch each bring their own native libraries
    made = subprocess.run([sys.executable, "-c", _KERAS_MODEL, str(model)], capture_output=True, text=True, timeout=300)
    assert made.returncode == 0, made.stderr
    spec = write_spec(files.root / "keras.yaml", samples=None)
    out = files.root / "keras-1.0.0.efpkg"
    result = edgefleet("import", "keras", model, "--spec", spec, "--key", files.key, "--version", "1.0.0", "--out", out)
    assert result.returncode == 0, result.stderr
    verified = edgefleet("package", "verify", out, "--trust", files.public_key)
    assert verified.returncode == 0, verified.stderr
    manifest = assert_the_agent_runs_it(out, files.public_key, files.root / "slot-keras")
    assert manifest.artifacts[0].format == "tflite"
    assert manifest.inputs[0].shape[1:] == [CHANNELS, LENGTH]
    assert manifest.outputs[0].shape[1:] == [CLASSES]


def test_keras_without_tensorflow_exits_2_and_says_which_extra_to_install(files: Files) -> None:
    model = files.root / "model.keras"
    model.write_bytes(b"PK\x03\x04 a Keras archive")
    # TensorFlow blocked for this process, so the test holds whether or not the venv has it
    script = "import sys; sys.modules['tensorflow'] = None; from edgefleet.cli import main; main()"
    args = ["import", "keras", model, "--spec", files.spec, "--key", files.key, "--version", "1.0.0"]
    result = subprocess.run(
        [sys.executable, "-c", script, *map(str, args), "--out", files.root / "keras.efpkg"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    assert "needs TensorFlow" in result.stderr
    assert KERAS_EXTRA in result.stderr
    assert not (files.root / "keras.efpkg").exists()


def bad_inputs(files: Files) -> dict[str, list[str | Path]]:
    """Each case's command line; the files they need are written here, beside samples.npy."""
    root = files.root / "bad"
    root.mkdir()
    np.save(root / "samples.npy", np.load(files.samples))
    (root / "corrupt.onnx").write_bytes(b"\x08\x07garbage that is no protobuf \xff\xff\xff")
    (root / "corrupt.tflite").write_bytes(b"TFL3 truncated")
    wide = [{"name": f"c{i}", "mean": 0.0, "std": 1.0} for i in range(5)]
    np.save(root / "short.npy", np.zeros((6, CHANNELS, LENGTH // 2), dtype=np.float32))
    specs = {
        "five-by-512": write_spec(
            root / "wide.yaml",
            preprocessing={"kind": "sensor", "channels": wide, "window_length": 512, "sample_rate_hz": 1000},
        ),
        "three-labels": write_spec(root / "three.yaml", labels=LABELS[:3]),
        "no-labels": write_spec(root / "nolabels.yaml", labels=None),
        "audio": write_spec(root / "audio.yaml", preprocessing={"kind": "audio", "sample_rate_hz": 16000}),
        "short-samples": write_spec(root / "short.yaml", samples="short.npy"),
    }

    def command(model: Path, spec: Path, fmt: str = "onnx") -> list[str | Path]:
        key: list[str | Path] = ["--key", files.key, "--version", "1.0.0"]
        return ["import", fmt, model, "--spec", spec, *key, "--out", root / f"{spec.stem}-{model.stem}.efpkg"]

    return {
        "corrupt onnx": command(root / "corrupt.onnx", files.spec),
        "corrupt tflite": command(root / "corrupt.tflite", files.spec, "tflite"),
        "shapes contradict the spec": command(files.onnx, specs["five-by-512"]),
        "labels differ from the outputs": command(files.onnx, specs["three-labels"]),
        "spec without labels": command(files.onnx, specs["no-labels"]),
        "unknown preprocessing": command(files.onnx, specs["audio"]),
        "missing model": command(root / "absent.onnx", files.spec),
        "missing spec": command(files.onnx, root / "absent.yaml"),
        "samples of the wrong shape": command(files.onnx, specs["short-samples"]),
    }


@pytest.fixture(scope="module")
def bad_runs(files: Files) -> dict[str, subprocess.CompletedProcess[str]]:
    """Every bad-input command run at once (each process pays the start-up alone), then collected."""
    env = {**os.environ, "COLUMNS": "200"}
    started = {
        case: subprocess.Popen(
            [sys.executable, "-m", "edgefleet", *map(str, args)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        for case, args in bad_inputs(files).items()
    }
    results = {}
    for case, process in started.items():
        stdout, stderr = process.communicate(timeout=120)
        results[case] = subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)
    return results


@pytest.mark.parametrize(
    ("case", "says"),
    [
        ("corrupt onnx", "is not an ONNX model"),
        ("corrupt tflite", "is not a TFLite model"),
        ("shapes contradict the spec", "shaped (N, 3, 128), but the spec's preprocessing makes (N, 5, 512)"),
        ("labels differ from the outputs", "spec names 3 labels"),
        ("spec without labels", "needs `labels`"),
        ("unknown preprocessing", "preprocessing: Input tag 'audio'"),
        ("missing model", "no model file at"),
        ("missing spec", "cannot read the spec"),
        ("samples of the wrong shape", "do not fit the spec"),
    ],
)
def test_bad_input_exits_2_with_a_message_and_a_hint_but_no_traceback(
    bad_runs: dict[str, subprocess.CompletedProcess[str]], case: str, says: str
) -> None:
    result = bad_runs[case]
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    assert says in result.stderr
    assert "hint:" in result.stderr
    assert not any(Path(str(a)).suffix == ".efpkg" and Path(str(a)).exists() for a in result.args)
