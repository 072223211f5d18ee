"""Visual inspection: synthetic surfaces, image folders on disk, training, and export of the image model."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from edgefleet.errors import InputError
from train.datasets import load_image_folder, load_mvtec
from train.datasets.surfaces import DEFECTS, TEXTURES, render_surface, synthetic_images

pytestmark = pytest.mark.integration


def test_synthetic_surfaces_are_reproducible_and_every_defect_marks_the_surface() -> None:
    a, b = synthetic_images(2, 48, seed=5), synthetic_images(2, 48, seed=5)
    assert np.array_equal(a.images, b.images)
    assert a.images.shape == (2 * len(DEFECTS), 48, 48, 3)
    for defect in DEFECTS[1:]:
        for texture in TEXTURES:
            plain = render_surface("good", texture, 48, np.random.default_rng(9))
            marked = render_surface(defect, texture, 48, np.random.default_rng(9))
            changed = np.abs(plain.astype(int) - marked.astype(int)).max(axis=2) > 25
            assert 3 <= changed.sum() < 48 * 48 // 2, (defect, texture, int(changed.sum()))


def _png(path: Path, colour: tuple[int, int, int]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (80, 60), colour).save(path)


def test_an_image_folder_loads_one_class_per_folder_resized(tmp_path: Path) -> None:
    _png(tmp_path / "ok" / "a.png", (10, 200, 10))
    _png(tmp_path / "ok" / "b.jpg", (10, 190, 10))
    _png(tmp_path / "dent" / "c.png", (200, 10, 10))
    (tmp_path / "dent" / "notes.txt").write_text("not an image")
    data = load_image_folder(tmp_path, size=32)
    assert data.label_names == ("dent", "ok")
    assert data.images.shape == (3, 32, 32, 3)
    assert data.labels.tolist() == [0, 1, 1]


def test_an_mvtec_category_loads_good_and_each_defect(tmp_path: Path) -> None:
    _png(tmp_path / "train" / "good" / "000.png", (128, 128, 128))
    _png(tmp_path / "test" / "good" / "000.png", (128, 128, 128))
    _png(tmp_path / "test" / "crack" / "000.png", (20, 20, 20))
    _png(tmp_path / "ground_truth" / "crack" / "000_mask.png", (255, 255, 255))
    data = load_mvtec(tmp_path, size=32)
    assert data.label_names == ("crack", "good")
    assert sorted(data.labels.tolist()) == [0, 1, 1]


@pytest.mark.parametrize(
    ("setup", "words"),
    [
        (lambda p: (p / "a").mkdir(), "holds no images"),
        (lambda p: (p / "a").mkdir() or (p / "a" / "x.png").write_bytes(b"not a png"), "cannot read the image"),
    ],
)
def test_unusable_image_folders_are_refused(tmp_path: Path, setup, words: str) -> None:
    setup(tmp_path)
    with pytest.raises(InputError, match=words):
        load_image_folder(tmp_path)


def test_an_image_model_trains_exports_and_meets_its_test_vectors(tmp_path: Path) -> None:
    from edgefleet.tensors import decode_tensor
    from export import ExportOptions, export_run
    from export.measure import run_artifact
    from train import VisionConfig, train_vision

    run = train_vision(VisionConfig(per_class=24, size=32, epochs=2), tmp_path / "run")
    assert run.kind == "vision"
    assert run.preprocessing.kind == "image"
    assert {f.name for f in run.reference_profile.features} >= {"brightness", "sharpness"}
    assert (tmp_path / "run" / "confusion_matrix.png").exists()
    report = export_run(tmp_path / "run", tmp_path / "export", ExportOptions(latency_runs=5))
    assert report.inputs[0].shape == [None, 3, 32, 32]
    inputs = {n: decode_tensor(t) for n, t in report.test_vectors.inputs.items()}
    assert {a.format for a in report.artifacts} == {"onnx", "tflite"}
    for artifact in report.artifacts:
        expected = report.test_vectors.expected[artifact.path]
        x = np.asarray(inputs["x"], dtype=np.float32)
        got = run_artifact(artifact.format, tmp_path / "export" / artifact.path, x)["probs"]
        assert (
            np.abs(got - np.asarray(decode_tensor(expected.outputs["probs"]), dtype=np.float32)).max() <= expected.atol
        )


def test_the_command_line_refuses_an_empty_image_folder(tmp_path: Path) -> None:
    (tmp_path / "images" / "ok").mkdir(parents=True)
    result = subprocess.run(
        [sys.executable, "-m", "edgefleet", "train", "vision", "--out", str(tmp_path / "run"), "--data", str(tmp_path / "images")],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 2
    assert "holds no images" in result.stderr
    assert "Traceback" not in result.stderr
