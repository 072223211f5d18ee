"""Mobile bundles: the Android model runs in LiteRT like PyTorch and carries metadata that reads back; the Core ML
spec names the right tensors and classes; the ExecuTorch program runs like PyTorch; bad input exits 2."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch

from edgefleet.manifest import Precision, SensorPreprocessing
from edgefleet.preprocess import prepare_inputs
from train.run import RunInfo, load_run

pytestmark = pytest.mark.integration

# how far each precision may move a class probability away from PyTorch's
TOLERANCE = {Precision.FP32: 1e-4, Precision.INT8: 0.08}


@dataclass(frozen=True)
class Bundle:
    run: RunInfo
    folder: Path
    precision: Precision
    inputs: np.ndarray  # held-out inputs, scaled
    expected: np.ndarray  # PyTorch's class probabilities for them


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from train import PdmConfig, train_pdm

    out = tmp_path_factory.mktemp("bundles") / "run"
    train_pdm(PdmConfig(epochs=1, recordings_per_class=3, windows_per_recording=2), out)
    return out


def _expected(run_dir: Path) -> tuple[RunInfo, np.ndarray, np.ndarray]:
    from train.evaluate import load_classifier
    from train.models import DeviceOutputs

    run = load_run(run_dir)
    with np.load(run_dir / run.calibration) as data:
        inputs = prepare_inputs(data["held_out_inputs"], run.preprocessing)
    with torch.no_grad():
        expected = DeviceOutputs(load_classifier(run_dir))(torch.from_numpy(inputs)).numpy()
    return run, inputs, expected


@pytest.fixture(scope="module", params=[Precision.FP32, Precision.INT8], ids=lambda p: p.value)
def android(request: pytest.FixtureRequest, run_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Bundle:
    """An Android bundle per precision, each with an ExecuTorch program of the same precision."""
    from export.bundles import build_android_bundle

    precision: Precision = request.param
    folder = tmp_path_factory.mktemp(f"android-{precision.value}")
    build_android_bundle(run_dir, folder, precision, executorch=precision)
    run, inputs, expected = _expected(run_dir)
    return Bundle(run, folder, precision, inputs, expected)


def _tflite(bundle: Bundle) -> Path:
    return bundle.folder / f"{bundle.run.name}-{bundle.precision.value}.tflite"


def test_android_model_runs_in_litert_like_pytorch(android: Bundle) -> None:
    from edge_agent.backends.litert import LiteRtBackend

    backend = LiteRtBackend(_tflite(android))
    assert backend.input_names == ("x",)
    assert backend.output_names == ("probs",)
    probs = backend.run({"x": android.inputs})["probs"]
    assert probs.shape == android.expected.shape
    assert np.abs(probs - android.expected).max() <= TOLERANCE[android.precision]
    if android.precision is Precision.FP32:
        assert (probs.argmax(1) == android.expected.argmax(1)).all()


def test_android_metadata_reads_back_with_the_runs_preprocessing_and_labels(android: Bundle) -> None:
    from export.bundles import AssociatedFileType, FeatureContent, read_associated_files, read_metadata

    model = _tflite(android).read_bytes()
    metadata = read_metadata(model)
    spec = android.run.preprocessing
    assert isinstance(spec, SensorPreprocessing)
    assert metadata.name == android.run.name
    assert metadata.min_parser_version == "1.0.0"
    (x,) = metadata.inputs
    assert x.name == "x"
    assert x.dimension_names == ("batch", "channel", "time")
    assert isinstance(x.content, FeatureContent)
    assert all(c.name in x.description for c in spec.channels)
    assert x.normalization is not None
    np.testing.assert_allclose(x.normalization.mean, [c.mean for c in spec.channels], rtol=1e-6)
    np.testing.assert_allclose(x.normalization.std, [c.std for c in spec.channels], rtol=1e-6)
    (probs,) = metadata.outputs
    assert probs.name == "probs"
    assert "labels.txt" in probs.description
    (labels_file,) = probs.associated_files
    assert (labels_file.name, labels_file.type) == ("labels.txt", AssociatedFileType.TENSOR_AXIS_LABELS)
    packed = read_associated_files(model)
    assert packed == {"labels.txt": (android.folder / "labels.txt").read_bytes()}
    assert packed["labels.txt"].decode().splitlines() == android.run.labels


def test_metadata_follows_the_upstream_schema_field_by_field(android: Bundle) -> None:
    """Walks the raw flatbuffer with the field ids of metadata_schema.fbs, independently of the module's reader."""
    from ai_edge_litert import schema_py_generated as schema
    from flatbuffers import number_types  # type: ignore[import-untyped]  # the runtime ships no types
    from flatbuffers.table import Table  # type: ignore[import-untyped]

    model = _tflite(android).read_bytes()
    root = schema.Model.GetRootAs(model, 0)
    entries = {root.Metadata(i).Name(): root.Metadata(i).Buffer() for i in range(root.MetadataLength())}
    buffer = root.Buffers(entries[b"TFLITE_METADATA"]).DataAsNumpy().tobytes()
    assert buffer[4:8] == b"M001"

    def field(tab: Table, slot: int) -> int:
        return tab.Offset(4 + 2 * slot)

    def child(tab: Table, slot: int, index: int | None = None) -> Table:
        o = field(tab, slot)
        at = tab.Vector(o) + 4 * index if index is not None else o + tab.Pos
        return Table(buffer, tab.Indirect(at))

    model_md = Table(buffer, int.from_bytes(buffer[:4], "little"))
    assert model_md.String(field(model_md, 0) + model_md.Pos) == android.run.name.encode()  # ModelMetadata.name
    subgraph = child(model_md, 3, 0)  # subgraph_metadata[0]
    tensor = child(subgraph, 2, 0)  # input_tensor_metadata[0]
    unit = child(tensor, 4, 0)  # process_units[0]
    assert unit.Get(number_types.Uint8Flags, field(unit, 0) + unit.Pos) == 1  # options_type: NormalizationOptions
    options = child(unit, 1)
    mean = [options.Get(number_types.Float32Flags, options.Vector(field(options, 0)) + 4 * i) for i in range(5)]
    spec = android.run.preprocessing
    assert isinstance(spec, SensorPreprocessing)
    np.testing.assert_allclose(mean, [c.mean for c in spec.channels], rtol=1e-6)


def _float_array(text: str, name: str) -> list[float]:
    match = re.search(rf"{name} = floatArrayOf\(([^)]*)\)", text)
    assert match, f"no {name} in the Kotlin sample"
    return [float(v.rstrip("f")) for v in match.group(1).split(",")]


def test_kotlin_sample_prepares_inputs_as_the_run_and_reads_outputs_by_name(android: Bundle) -> None:
    kotlin = (android.folder / "Classifier.kt").read_text()
    spec = android.run.preprocessing
    assert isinstance(spec, SensorPreprocessing)
    np.testing.assert_allclose(_float_array(kotlin, "MEAN"), [c.mean for c in spec.channels], rtol=1e-6)
    np.testing.assert_allclose(_float_array(kotlin, "STD"), [c.std for c in spec.channels], rtol=1e-6)
    assert f"WINDOW_LENGTH = {spec.window_length}" in kotlin
    assert "import org.tensorflow.lite.Interpreter" in kotlin
    assert 'getOutputTensorFromSignature("probs", SIGNATURE)' in kotlin
    assert f'MODEL_FILE = "{_tflite(android).name}"' in kotlin
    gradle = (android.folder / "build.gradle.kts.snippet").read_text()
    assert 'implementation("com.google.ai.edge.litert:litert:' in gradle
    assert "org.pytorch:executorch-android" in gradle


def test_executorch_program_runs_like_pytorch(android: Bundle) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the Python runtime announces itself as experimental
        from executorch.runtime import Runtime

        pte = android.folder / f"{android.run.name}-xnnpack-{android.precision.value}.pte"
        method = Runtime.get().load_program(pte).load_method("forward")
        assert method is not None
        rows = [method.execute((torch.from_numpy(x[None].copy()),))[0] for x in android.inputs]
    probs = torch.cat(list(rows)).numpy()
    assert np.abs(probs - android.expected).max() <= TOLERANCE[android.precision]


def test_ios_bundle_holds_a_core_ml_classifier_with_the_runs_names_and_labels(run_dir: Path, tmp_path: Path) -> None:
    import coremltools as ct

    from export.bundles import build_ios_bundle

    run = load_run(run_dir)
    files = build_ios_bundle(run_dir, tmp_path)
    assert {p.name for p in files} == {f"{run.name}.mlpackage", "labels.txt", "Classifier.swift", "README.md"}
    spec = ct.utils.load_spec(str(tmp_path / f"{run.name}.mlpackage"))
    assert spec.WhichOneof("Type") == "mlProgram"
    description = spec.description
    assert [i.name for i in description.input] == ["x"]
    assert list(description.input[0].type.multiArrayType.shape) == [1, 5, 512]
    assert [o.name for o in description.output] == ["label", "probs"]
    assert (description.predictedFeatureName, description.predictedProbabilitiesName) == ("label", "probs")
    function = spec.mlProgram.functions["main"]
    (classify,) = [op for op in function.block_specializations[function.opset].operations if op.type == "classify"]
    classes = classify.inputs["classes"].arguments[0].value.immediateValue.list.values
    assert [c.immediateValue.tensor.strings.values[0] for c in classes] == run.labels
    assert (tmp_path / "labels.txt").read_text().splitlines() == run.labels
    swift = (tmp_path / "Classifier.swift").read_text()
    spec_pre = run.preprocessing
    assert isinstance(spec_pre, SensorPreprocessing)
    means = re.search(r"static let mean: \[Float\] = \[([^\]]*)\]", swift)
    assert means
    np.testing.assert_allclose([float(v) for v in means.group(1).split(",")], [c.mean for c in spec_pre.channels])
    assert 'featureValue(for: "probs")' in swift


def _edgefleet(*args: str | Path, prelude: str = "") -> subprocess.CompletedProcess[str]:
    script = f"import sys\n{prelude}\nfrom edgefleet.cli import main\nsys.argv = ['edgefleet', *sys.argv[1:]]\nmain()\n"
    env = {**os.environ, "COLUMNS": "200"}
    return subprocess.run(
        [sys.executable, "-c", script, *map(str, args)], capture_output=True, text=True, env=env, timeout=120
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("bundle", "android", "{tmp}", "--out", "{tmp}/out"), "holds no run.json"),
        (("bundle", "ios", "{tmp}", "--out", "{tmp}/out"), "holds no run.json"),
        (("bundle", "android", "{tmp}", "--out", "{tmp}/out", "--executorch", "fp16"), "fp32 or int8, not fp16"),
    ],
)
def test_bad_input_exits_2_with_a_message_and_no_traceback(args: tuple[str, ...], message: str, tmp_path: Path) -> None:
    result = _edgefleet(*(a.format(tmp=tmp_path) for a in args))
    assert result.returncode == 2, result.stderr
    assert message in result.stderr
    assert "hint:" in result.stderr
    assert "Traceback" not in result.stderr


def test_ios_without_coremltools_says_what_to_install(run_dir: Path, tmp_path: Path) -> None:
    # a None entry in sys.modules makes `import coremltools` raise ImportError, as on a machine without it
    result = _edgefleet("bundle", "ios", run_dir, "--out", tmp_path, prelude="sys.modules['coremltools'] = None")
    assert result.returncode == 2, result.stderr
    assert "pip install 'edgefleet[mobile]'" in result.stderr
    assert "Traceback" not in result.stderr
    assert not list(tmp_path.iterdir())
