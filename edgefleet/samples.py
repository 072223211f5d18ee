"""The samples file (``ef.samples.v1``): a device's kept inputs as one .npz, written by the agent, checked by the
server, read by training.

Arrays, one row per sample: ``inputs`` (N, C, L) float32 sensor windows or (N, H, W, 3) uint8 RGB images;
``labels`` int64, the true class when the source knew it, else -1; ``predictions`` int64 and ``confidences``
float32, what the model answered; ``ts`` float64 (Unix seconds); ``reasons`` (``low-confidence`` or
``out-of-range:<feature>``) and ``models`` (``name@version``) as text; and ``label_names``, the model's classes.
No pickled objects: a reader loads it with ``allow_pickle=False``.
"""

from __future__ import annotations

import csv
import io
import zipfile
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Final

import numpy as np
import numpy.typing as npt

from edgefleet.errors import InputError

__all__ = [
    "LABELS_FILE",
    "NO_LABEL",
    "SAMPLES_SCHEMA",
    "SampleSet",
    "add_to_folder",
    "decode_samples",
    "encode_samples",
    "read_folder",
]

SAMPLES_SCHEMA: Final = "ef.samples.v1"
NO_LABEL: Final = -1  # the true class is unknown (real devices)
LABELS_FILE: Final = "labels.csv"  # one row per sample; people fill or correct its ``label`` column
_LABEL_COLUMNS: Final = ("file", "index", "label", "predicted", "confidence", "reason", "model", "ts")
_MAX_FILE_BYTES: Final = 1 << 31
_ROWS: Final = ("inputs", "labels", "predictions", "confidences", "ts", "reasons", "models")


@dataclass(frozen=True, slots=True)
class SampleSet:
    inputs: npt.NDArray[np.generic]
    labels: npt.NDArray[np.int64]
    predictions: npt.NDArray[np.int64]
    confidences: npt.NDArray[np.float32]
    ts: npt.NDArray[np.float64]
    reasons: npt.NDArray[np.str_]
    models: npt.NDArray[np.str_]
    label_names: tuple[str, ...]

    def __len__(self) -> int:
        return len(self.labels)


def encode_samples(samples: SampleSet) -> bytes:
    """The .npz bytes of ``samples`` (uncompressed: sensor noise does not compress, and the size stays known)."""
    buffer = io.BytesIO()
    np.savez(
        buffer,
        schema=np.str_(SAMPLES_SCHEMA),
        inputs=samples.inputs,
        labels=samples.labels.astype(np.int64),
        predictions=samples.predictions.astype(np.int64),
        confidences=samples.confidences.astype(np.float32),
        ts=samples.ts.astype(np.float64),
        reasons=samples.reasons.astype(np.str_),
        models=samples.models.astype(np.str_),
        label_names=np.array(list(samples.label_names) or [""], dtype=np.str_),
    )
    return buffer.getvalue()


def decode_samples(data: bytes, *, max_bytes: int, where: str = "the samples file") -> SampleSet:
    """Check and read a samples file; raises InputError naming what is wrong (never unpickles anything).

    ``max_bytes`` bounds the arrays' unpacked size, so a small compressed file cannot expand without limit.
    """
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            unpacked = sum(info.file_size for info in archive.infolist())
        if unpacked > max_bytes:
            raise InputError(
                f"{where} unpacks to {unpacked} bytes, more than the {max_bytes} allowed",
                hint="send fewer samples at a time",
            )
        with np.load(io.BytesIO(data), allow_pickle=False) as npz:
            arrays = {name: npz[name] for name in npz.files}
    except (zipfile.BadZipFile, OSError, ValueError, EOFError) as err:
        raise InputError(f"{where} is not a readable .npz: {err}", hint=f"send an {SAMPLES_SCHEMA} file") from err
    schema = str(arrays.get("schema", ""))
    if schema != SAMPLES_SCHEMA:
        raise InputError(f"{where} is {schema or 'unversioned'!r}, not {SAMPLES_SCHEMA}", hint="update the agent")
    missing = [name for name in (*_ROWS, "label_names") if name not in arrays]
    if missing:
        raise InputError(f"{where} lacks the arrays {', '.join(missing)}", hint=f"send an {SAMPLES_SCHEMA} file")
    lengths = {name: len(arrays[name]) if arrays[name].ndim else -1 for name in _ROWS}
    if len(set(lengths.values())) != 1:
        raise InputError(f"{where} has arrays of different lengths: {lengths}", hint="one row per sample in each")
    inputs = arrays["inputs"]
    if inputs.dtype not in (np.float32, np.uint8) or inputs.ndim not in (3, 4):
        raise InputError(
            f"{where} holds inputs {inputs.dtype} {inputs.shape}",
            hint="sensor windows are (N, C, L) float32, images (N, H, W, 3) uint8",
        )
    return SampleSet(
        inputs=inputs,
        labels=arrays["labels"].astype(np.int64),
        predictions=arrays["predictions"].astype(np.int64),
        confidences=arrays["confidences"].astype(np.float32),
        ts=arrays["ts"].astype(np.float64),
        reasons=arrays["reasons"].astype(np.str_),
        models=arrays["models"].astype(np.str_),
        label_names=tuple(str(n) for n in arrays["label_names"] if str(n)),
    )


def add_to_folder(folder: Path, name: str, samples: SampleSet) -> Path:
    """Write ``samples`` as ``folder/name.npz`` and append a row per sample to ``folder/labels.csv`` (the true
    label's name, or empty where the device did not know it); returns the .npz path."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.npz"
    path.write_bytes(encode_samples(samples))
    labels_path = folder / LABELS_FILE
    is_new = not labels_path.is_file()
    with labels_path.open("a", newline="") as fh:
        writer = csv.writer(fh)
        if is_new:
            writer.writerow(_LABEL_COLUMNS)
        for i in range(len(samples)):
            writer.writerow(
                [
                    path.name,
                    i,
                    _name(samples.labels[i], samples.label_names),
                    _name(samples.predictions[i], samples.label_names),
                    f"{float(samples.confidences[i]):.4f}",
                    str(samples.reasons[i]),
                    str(samples.models[i]),
                    f"{float(samples.ts[i]):.3f}",
                ]
            )
    return path


def read_folder(folder: Path, label_names: tuple[str, ...]) -> list[SampleSet]:
    """The samples files of ``folder``, their labels taken from ``labels.csv`` where it has a row (names mapped to
    indices of ``label_names``; an empty label is NO_LABEL); raises InputError naming a bad file or label."""
    files = sorted(folder.glob("*.npz")) if folder.is_dir() else []
    if not files:
        raise InputError(
            f"{folder} holds no samples files (*.npz)", hint="pull some with `edgefleet samples pull --out DIR`"
        )
    overrides = _read_labels(folder / LABELS_FILE, label_names)
    sets = []
    for path in files:
        samples = decode_samples(path.read_bytes(), max_bytes=_MAX_FILE_BYTES, where=str(path))
        labels = np.array(
            [
                overrides.get((path.name, i), _reindex(samples.labels[i], samples.label_names, label_names))
                for i in range(len(samples))
            ],
            dtype=np.int64,
        )
        sets.append(replace(samples, labels=labels, label_names=label_names))
    return sets


def _name(index: np.integer, names: tuple[str, ...]) -> str:
    return names[int(index)] if 0 <= int(index) < len(names) else ""


def _reindex(index: np.integer, names: tuple[str, ...], target: tuple[str, ...]) -> int:
    name = _name(index, names)
    return target.index(name) if name in target else NO_LABEL


def _read_labels(path: Path, label_names: tuple[str, ...]) -> dict[tuple[str, int], int]:
    if not path.is_file():
        return {}
    labels: dict[tuple[str, int], int] = {}
    with path.open(newline="") as fh:
        for line, row in enumerate(csv.DictReader(fh), start=2):
            name = (row.get("label") or "").strip()
            if name and name not in label_names:
                raise InputError(
                    f"{path}:{line}: the label {name!r} is not a class of the model",
                    hint=f"use one of {', '.join(label_names)}, or leave it empty to skip the sample",
                )
            try:
                key = (row["file"], int(row["index"]))
            except (KeyError, TypeError, ValueError) as err:
                raise InputError(f"{path}:{line}: no file and index", hint="keep those columns as written") from err
            labels[key] = label_names.index(name) if name else NO_LABEL
    return labels
