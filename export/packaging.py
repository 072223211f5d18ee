"""Turn an export folder into a signed package: the manifest from ``export.json``, the artifacts it lists."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from edgefleet.errors import InputError
from edgefleet.keylist import load_key_list
from edgefleet.manifest import Manifest, Metrics, Task
from edgefleet.package import build_package, describe_artifact
from edgefleet.signing import load_private_key
from export.report import REPORT_FILE, ExportReport

__all__ = ["new_manifest", "package_export"]


def package_export(
    export_dir: Path,
    *,
    key: Path,
    version: str,
    out: Path,
    compatible_profiles: list[str] | None = None,
    key_list: Path | None = None,
) -> Path:
    """Build and sign the package of an export folder; raises InputError for a bad folder, key or version.

    The device profiles it is compatible with default to those the export found a runtime for; ``key_list`` is a
    root-signed ``keys.json`` to ship inside the package (how devices learn a rotated signing key).
    """
    report = _load_report(export_dir)
    private_key = load_private_key(key)
    signed_keys = load_key_list(key_list) if key_list is not None else None
    files = {a.path: export_dir / a.path for a in report.artifacts}
    artifacts = [
        describe_artifact(a.path, files[a.path], format=a.format, precision=a.precision, runtime=a.runtime)
        for a in report.artifacts
    ]
    manifest = new_manifest(
        hint="the version must be semantic (e.g. 1.0.0) and the export folder complete",
        name=report.name,
        version=version,
        task=Task.CLASSIFICATION,
        inputs=report.inputs,
        outputs=report.outputs,
        labels=report.labels,
        preprocessing=report.preprocessing,
        artifacts=artifacts,
        metrics=Metrics(
            reference={**report.reference_metrics, "float_accuracy": report.float_accuracy},
            artifacts={
                a.path: {
                    "accuracy": a.accuracy,
                    "macro_f1": a.macro_f1,
                    "accuracy_drop": a.accuracy_drop,
                    "max_abs_diff": a.max_abs_diff,
                    "top1_agreement": a.top1_agreement,
                    "latency_p50_ms": a.latency_p50_ms,
                    "latency_p95_ms": a.latency_p95_ms,
                }
                for a in report.artifacts
            },
        ),
        reference_profile=report.reference_profile,
        test_vectors=report.test_vectors,
        compatible_profiles=report.compatible_profiles if compatible_profiles is None else compatible_profiles,
        latency_estimates=report.latency_estimates,
    )
    return build_package(manifest, files, private_key, out, key_list=signed_keys)


def new_manifest(*, hint: str, **fields: Any) -> Manifest:
    """A manifest of ``fields``, created now; raises InputError naming the first invalid field, with ``hint``."""
    try:
        return Manifest(created_at=datetime.now(UTC).isoformat(timespec="seconds"), **fields)
    except ValidationError as err:
        first = err.errors(include_url=False)[0]
        raise InputError(
            f"cannot make a manifest: {'.'.join(map(str, first['loc']))}: {first['msg']}", hint=hint
        ) from err


def _load_report(export_dir: Path) -> ExportReport:
    path = export_dir / REPORT_FILE
    try:
        return ExportReport.model_validate_json(path.read_bytes())
    except OSError as err:
        raise InputError(
            f"{export_dir} holds no {REPORT_FILE}", hint="pass a folder written by `edgefleet export`"
        ) from err
    except ValidationError as err:
        raise InputError(f"{path} is not a valid export report", hint="export the run again") from err
