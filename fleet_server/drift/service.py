"""Drift per device and per cohort over a sliding window: the merged sketches scored against a reference.

A device is compared with its own baseline (its first ``baseline_s`` on the model version it runs, stored by the
periodic check once it holds ``min_samples``): one machine sits at one or two operating points, so against the
package's reference, which spans every machine of the training data, it would look drifted all the time. Until
its baseline is closed a device's level is not-enough-data, and its cohort decides. A cohort of at least
``min_cohort_devices`` is compared with the package's reference profile until every device in it has its own
baseline (fewer machines than that look drifted against the many of the training data: not-enough-data). Then
its devices' windows after their baselines are compared with those baselines added up (each scaled to its
device's share of the window): the same machines on both sides, so the cohort adds their evidence without their
differences counting as drift.

Values are not independent (``stats.dispersion``): each side's dispersion comes from its baseline's intervals
(pooled over a cohort's devices), or from the window's intervals when there is no baseline; a cohort judged
against the package also counts its devices as its independent units.

A cohort is a model version × device profile × tag, as in ``/api/v1/cohorts`` (a device with several tags is in
each of its tags' cohorts, an untagged one in tag ""); its counts are the sum of its devices'. Every group on
the same reference is scored in one vectorized call (devices × features × bins).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

import numpy as np
import numpy.typing as npt
from sqlalchemy import select
from sqlalchemy.orm import Session

from edgefleet.errors import InputError
from fleet_server.db.models import Device
from fleet_server.drift.estimate import estimated_accuracy
from fleet_server.drift.reference import ModelKey, Parts, Reference
from fleet_server.drift.schemas import (
    ClassDriftOut,
    CohortDriftOut,
    ConfidenceOut,
    DeviceDriftOut,
    FeatureDriftOut,
)
from fleet_server.drift.stats import (
    ClassDrift,
    DriftLevel,
    DriftThresholds,
    assess_classes,
    dispersion,
    feature_statistics,
    overall_level,
)
from fleet_server.drift.window import Baseline, DeviceSketch, MergedWindow, Tally, merge_window

__all__ = [
    "BASELINE",
    "BASELINES",
    "PACKAGE",
    "CohortKey",
    "FleetDrift",
    "ScopeDrift",
    "Summary",
    "cohort_drift",
    "device_drift",
    "fleet_drift",
]

CohortKey = tuple[str | None, str | None, str, str]  # model name, model version, profile, tag
PACKAGE = "package"  # judged against the package's reference profile
BASELINE = "device-baseline"  # judged against the device's own baseline
BASELINES = "device-baselines"  # a cohort judged against its devices' own baselines, added up
_COLLECTING = (
    "collecting this device's baseline: its first telemetry on this model version, until it spans the server's "
    "baseline time and holds enough samples; its cohort is judged against the package's reference meanwhile"
)

_TOO_FEW = (
    "{devices} device(s), fewer than the {least} a cohort needs to be judged against the package's reference (a few "
    "machines, each at its own operating point, look drifted against the many of the training data); judged "
    "against its devices' own baselines once they have them"
)


@dataclass(frozen=True, slots=True)
class Summary:
    """What a drift check keeps of one device or cohort: its level and its worst feature."""

    level: DriftLevel
    worst_feature: str | None
    worst_psi: float | None
    estimated_accuracy: float | None
    sample_count: int
    intervals: int
    has_reference: bool
    note: str
    reference: str = PACKAGE
    baseline: Baseline | None = None


@dataclass(frozen=True, slots=True)
class ScopeDrift:
    """A device (``device_id`` set) or a cohort (``cohort`` set) and its summary."""

    model: ModelKey | None
    summary: Summary
    device_id: str | None = None
    cohort: CohortKey | None = None
    device_ids: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class FleetDrift:
    devices: list[ScopeDrift]
    cohorts: list[ScopeDrift]


@dataclass(slots=True)
class _Group:
    model: ModelKey | None
    tally: Tally = field(default_factory=Tally)
    device_ids: set[str] = field(default_factory=set)
    baseline: Baseline | None = None  # set for a device (or cohort) judged against its own (devices') baseline
    is_device: bool = False
    unit_counts: list[npt.NDArray[np.int64]] = field(default_factory=list)  # a cohort's counts per device
    member_baselines: list[Baseline | None] = field(default_factory=list)  # a cohort's devices' own baselines

    def add(self, device_id: str, tally: Tally) -> None:
        self.device_ids.add(device_id)
        self.tally.add(tally)
        if not self.is_device and tally.counts is not None:
            self.unit_counts.append(tally.counts)


@dataclass(frozen=True, slots=True)
class _Scored:
    """Groups on one reference, scored together; row ``i`` is one group."""

    reference: Reference
    parts: Parts
    against: Parts  # what each row is compared with: the package's reference, or its device's baseline
    psi: npt.NDArray[np.float64]  # (groups, features), corrected for sample size
    ks: npt.NDArray[np.float64]
    live: npt.NDArray[np.int64]  # (groups, features): live values per feature
    effective: npt.NDArray[np.float64]  # (groups, features): live values over their dispersion
    levels: npt.NDArray[np.object_]
    classes: list[ClassDrift | None]
    accuracy: list[float | None]


@dataclass(frozen=True, slots=True)
class _Judged:
    summary: Summary
    scored: _Scored | None = None
    row: int = 0
    drawn_only: bool = False  # histograms, no statistics: a device collecting its baseline, a cohort too small


def _reference_parts(reference: Reference) -> Parts:
    confidence = reference.confidence_counts or (0,) * (len(reference.confidence_edges) - 1)
    return Parts(
        reference.padded[np.newaxis].astype(np.int64),
        np.asarray([reference.class_counts], dtype=np.int64),
        np.asarray([confidence], dtype=np.int64),
    )


def _tally_dispersion(
    reference: Reference, counts: npt.NDArray[np.int64], squares: npt.NDArray[np.float64] | None, clusters: int
) -> npt.NDArray[np.float64] | None:
    """φ per feature of counts summed over ``clusters`` intervals; None when it cannot be told."""
    if squares is None or clusters < 2:
        return None
    return dispersion(reference.features(counts[np.newaxis])[0], reference.features(squares[np.newaxis])[0], clusters)


def _against_dispersion(
    reference: Reference, group: _Group, package: npt.NDArray[np.float64]
) -> npt.NDArray[np.float64]:
    """φ per feature of what the group is compared with: the package's reference, or the baseline of its device
    (of its devices, pooled); a baseline stored without squares takes the window's own intervals' φ."""
    baseline = group.baseline
    if baseline is None or baseline.counts is None:
        return package
    if group.is_device:
        found = _tally_dispersion(reference, baseline.counts, baseline.squares, baseline.intervals)
    else:
        found = _baselines_dispersion(reference, group.member_baselines)
    return found if found is not None else _window_dispersion(reference, group, np.ones_like(package))


def _window_dispersion(
    reference: Reference, group: _Group, fallback: npt.NDArray[np.float64]
) -> npt.NDArray[np.float64]:
    counts = group.tally.counts
    assert counts is not None  # scored only with counts
    found = _tally_dispersion(reference, counts, group.tally.squares, group.tally.intervals)
    return found if found is not None else fallback


def _baselines_dispersion(reference: Reference, baselines: Sequence[Baseline | None]) -> npt.NDArray[np.float64] | None:
    """φ per feature between the intervals of a cohort's devices' baselines, pooled; None unless every device has
    one with squares."""
    known = [(b.counts, b.squares, b.intervals) for b in baselines if b is not None]
    pairs = [(c, s, n) for c, s, n in known if c is not None and s is not None]
    if not baselines or len(pairs) < len(baselines):
        return None
    counts = np.sum([c for c, _, _ in pairs], axis=0)
    squares = np.sum([s for _, s, _ in pairs], axis=0)
    return _tally_dispersion(reference, counts, squares, sum(n for _, _, n in pairs))


def _live_dispersion(reference: Reference, group: _Group, fallback: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """φ per feature of a cohort's live counts judged against the package: between intervals (of its devices'
    baselines when all have one: the window's own would count a drift that starts inside it as dispersion), and
    between its devices, since machines differ and a cohort's devices are its independent units."""
    between_intervals = _baselines_dispersion(reference, group.member_baselines)
    found = [between_intervals if between_intervals is not None else _window_dispersion(reference, group, fallback)]
    if len(group.unit_counts) >= 2:
        units = np.stack(group.unit_counts)
        counts = group.tally.counts
        assert counts is not None  # scored only with counts
        by_units = _tally_dispersion(reference, counts, reference.squares(units), len(units))
        if by_units is not None:
            found.append(by_units)
    return np.asarray(np.maximum.reduce(found), dtype=np.float64)


def _score(reference: Reference, groups: Sequence[_Group], against: Parts, thresholds: DriftThresholds) -> _Scored:
    counts = np.stack([g.tally.counts for g in groups if g.tally.counts is not None])
    parts = reference.unflatten(counts)
    live = parts.features
    ref = against.features
    classes: list[ClassDrift | None] = [
        assess_classes(against.classes[min(i, len(against.classes) - 1)], row, thresholds)
        if reference.class_counts
        else None
        for i, row in enumerate(parts.classes)
    ]
    accuracy = [
        estimated_accuracy(
            row, reference.confidence_edges, confidence_sum=g.tally.confidence_sum, summed=g.tally.summed
        )
        for row, g in zip(parts.confidence, groups, strict=True)
    ]
    against_phi = np.stack([_against_dispersion(reference, g, reference.dispersions) for g in groups])
    # a live window has its baseline's dispersion (the same machines); measuring it on the window instead would
    # count a drift that starts inside the window as dispersion, and hide it
    live_phi = np.stack(
        [
            phi if g.baseline is not None else _live_dispersion(reference, g, phi)
            for g, phi in zip(groups, against_phi, strict=True)
        ]
    )
    psi, ks, levels = feature_statistics(ref, live, thresholds, live_phi, against_phi)
    return _Scored(
        reference=reference,
        parts=parts,
        against=against,
        psi=psi,
        ks=ks,
        live=live.sum(axis=-1),
        effective=live.sum(axis=-1) / live_phi,
        levels=levels,
        classes=classes,
        accuracy=accuracy,
    )


def _summary(scored: _Scored, row: int, group: _Group, thresholds: DriftThresholds) -> Summary:
    levels = [DriftLevel(level) for level in scored.levels[row]]
    classes = scored.classes[row]
    if classes is not None:
        levels.append(classes.level)
    judged = scored.effective[row] >= thresholds.min_samples
    worst = int(np.argmax(np.where(judged, scored.psi[row], -1.0))) if judged.any() else None
    samples = [int(scored.live[row].max(initial=0)), int(scored.parts.classes[row].sum())]
    samples.append(int(scored.parts.confidence[row].sum()))
    return Summary(
        level=overall_level(levels),
        worst_feature=scored.reference.feature_names[worst] if worst is not None else None,
        worst_psi=float(scored.psi[row, worst]) if worst is not None else None,
        estimated_accuracy=scored.accuracy[row],
        sample_count=max(samples),
        intervals=group.tally.intervals,
        has_reference=True,
        note=""
        if judged.any()
        else f"fewer than {thresholds.min_samples} effective live samples per feature in the window (values from "
        "one machine state count as fewer: stats.dispersion)",
        reference=PACKAGE if group.baseline is None else BASELINE if group.is_device else BASELINES,
        baseline=group.baseline,
    )


def _unjudged(model: ModelKey | None, intervals: int) -> Summary:
    if intervals == 0:
        note = "no telemetry in the window"
    elif model is None:
        note = "no reference: the telemetry names no model"
    else:
        note = (
            f"no reference: package {model[0]}@{model[1]} is not in the registry or has no reference profile "
            "(upload the package these devices run, built with a reference profile)"
        )
    return Summary(DriftLevel.NOT_ENOUGH_DATA, None, None, None, 0, intervals, False, note)


def _waiting(intervals: int, note: str, baseline: Baseline | None) -> Summary:
    reference = BASELINE if baseline is not None else PACKAGE
    return Summary(DriftLevel.NOT_ENOUGH_DATA, None, None, None, 0, intervals, True, note, reference, baseline)


def _judge(
    groups: Sequence[_Group], references: dict[ModelKey, Reference | None], thresholds: DriftThresholds
) -> list[_Judged]:
    """Each group's summary; groups on the same reference (and of the same scope) are scored in one call."""
    judged: list[_Judged | None] = [None] * len(groups)
    # scope: "cohort" and "device" are judged; a device still "collecting" its baseline is only drawn, its live
    # histograms over the package's reference, with no level (the rule judges a device by its own baseline)
    batches: dict[tuple[ModelKey, str], list[int]] = defaultdict(list)
    for index, group in enumerate(groups):
        model, intervals = group.model, group.tally.intervals
        if group.baseline is not None and group.tally.counts is None:
            judged[index] = _Judged(_waiting(0, "no telemetry after this device's baseline yet", group.baseline))
        elif model is None or references.get(model) is None or intervals == 0:
            judged[index] = _Judged(_unjudged(model, intervals))
        elif group.tally.counts is None:  # sketches stored in another layout than the package's reference now
            judged[index] = _Judged(_unjudged(model, 0))
        elif group.is_device and group.baseline is None:
            batches[(model, "collecting")].append(index)
        elif group.baseline is None and len(group.device_ids) < thresholds.min_cohort_devices:
            batches[(model, "few")].append(index)
        else:
            batches[(model, "package" if group.baseline is None else "own")].append(index)
    for (model, scope), indices in batches.items():
        reference = references[model]
        assert reference is not None  # batched only with a reference
        members = [groups[i] for i in indices]
        baselines = [g.baseline.counts for g in members if g.baseline is not None and g.baseline.counts is not None]
        against = reference.unflatten(np.stack(baselines)) if scope == "own" else _reference_parts(reference)
        scored = _score(reference, members, against, thresholds)
        for row, index in enumerate(indices):
            if scope == "collecting":
                judged[index] = _Judged(_waiting(groups[index].tally.intervals, _COLLECTING, None), scored, row, True)
            elif scope == "few":
                # its counts and histograms as usual, without a level or a worst feature
                note = _TOO_FEW.format(devices=len(groups[index].device_ids), least=thresholds.min_cohort_devices)
                summary = replace(
                    _summary(scored, row, groups[index], thresholds),
                    level=DriftLevel.NOT_ENOUGH_DATA,
                    worst_feature=None,
                    worst_psi=None,
                    note=note,
                )
                judged[index] = _Judged(summary, scored, row, True)
            else:
                judged[index] = _Judged(_summary(scored, row, groups[index], thresholds), scored, row)
    return [j for j in judged if j is not None]


def _details(judged: _Judged) -> dict[str, object]:
    """The per-feature histograms, classes and confidence of one judged group, as the API shows them."""
    scored, row = judged.scored, judged.row
    if scored is None:
        return {}
    reference, parts = scored.reference, scored.parts
    base = min(row, scored.against.features.shape[0] - 1)  # the package's one row, or this device's baseline
    features = []
    for index, name in enumerate(reference.feature_names):
        bins = reference.feature_bins[index]
        level = DriftLevel.NOT_ENOUGH_DATA if judged.drawn_only else DriftLevel(scored.levels[row, index])
        judged_feature = level is not DriftLevel.NOT_ENOUGH_DATA  # as assess_feature: no statistics below the minimum
        features.append(
            FeatureDriftOut(
                name=name,
                edges=list(reference.feature_edges[index]),
                reference_counts=scored.against.features[base, index, :bins].tolist(),
                live_counts=parts.features[row, index, :bins].tolist(),
                live_count=int(scored.live[row, index]),
                psi=float(scored.psi[row, index]) if judged_feature else None,
                ks=float(scored.ks[row, index]) if judged_feature else None,
                level=level,
            )
        )
    classes = scored.classes[row]
    return {
        "features": features,
        "classes": None
        if classes is None
        else ClassDriftOut(
            labels=list(reference.labels),
            reference_counts=scored.against.classes[base].tolist(),
            live_counts=parts.classes[row].tolist(),
            live_count=classes.live_count,
            chi2=None if judged.drawn_only else classes.chi2,
            p_value=None if judged.drawn_only else classes.p_value,
            level=DriftLevel.NOT_ENOUGH_DATA if judged.drawn_only else classes.level,
        ),
        "confidence": ConfidenceOut(
            edges=list(reference.confidence_edges),
            reference_counts=scored.against.confidence[base].tolist(),
            live_counts=parts.confidence[row].tolist(),
            estimated_accuracy=scored.accuracy[row],
        ),
    }


def _common(judged: _Judged, model: ModelKey | None, merged: MergedWindow) -> dict[str, object]:
    s = judged.summary
    return {
        "model_name": model[0] if model else None,
        "model_version": model[1] if model else None,
        "window_s": (merged.until - merged.since).total_seconds(),
        "since": merged.since,
        "until": merged.until,
        "has_reference": s.has_reference,
        "note": s.note,
        "intervals": s.intervals,
        "sample_count": s.sample_count,
        "level": s.level,
        "worst_feature": s.worst_feature,
        "worst_psi": s.worst_psi,
        "estimated_accuracy": s.estimated_accuracy,
        "reference": s.reference,
        "baseline_start": s.baseline.start if s.baseline else None,
        "baseline_end": s.baseline.end if s.baseline else None,
        **_details(judged),
    }


def _device_groups(merged: MergedWindow, device_ids: Collection[str]) -> list[_Group]:
    """Each device's current model (its latest interval's), with that model's intervals after its baseline."""
    groups = {device_id: _Group(merged.current.get(device_id), is_device=True) for device_id in device_ids}
    for device_id, group in groups.items():
        if group.model is not None:
            group.baseline = merged.baselines.get((device_id, group.model))
    for sketch in merged.sketches:
        found = groups.get(sketch.device_id)
        if found is not None and sketch.model == found.model:
            found.add(sketch.device_id, sketch.live if found.baseline is not None else sketch.all)
    return list(groups.values())


def _cohort_groups(merged: MergedWindow, devices: dict[str, Device]) -> dict[CohortKey, _Group]:
    """Cohorts and their devices' sketches: whole windows against the package's reference, or, once every device
    has its own baseline, their windows after it against the baselines (``_pool_baselines``)."""
    members: dict[CohortKey, list[DeviceSketch]] = defaultdict(list)
    for sketch in merged.sketches:
        device = devices.get(sketch.device_id)
        if device is None:
            continue
        name, version = sketch.model if sketch.model else (None, None)
        for tag in device.tags or [""]:
            members[(name, version, device.profile, tag)].append(sketch)
    groups: dict[CohortKey, _Group] = {}
    for key, sketches in members.items():
        model = sketches[0].model
        baselines = [merged.baselines.get((s.device_id, model)) if model else None for s in sketches]
        pooled = _pool_baselines(baselines, [s.live for s in sketches], merged.references.get(model) if model else None)
        group = groups[key] = _Group(model, baseline=pooled)
        for sketch, baseline in zip(sketches, baselines, strict=True):
            group.add(sketch.device_id, sketch.all if pooled is None else sketch.live)
            group.member_baselines.append(baseline)
    return groups


def _pool_baselines(
    baselines: Sequence[Baseline | None], live: Sequence[Tally], reference: Reference | None
) -> Baseline | None:
    """A cohort's devices' baselines added up, each scaled to its device's share of the live window, so that machines
    that differ (each at its own operating point) weigh the same on both sides; None unless every device of the
    cohort has a baseline and some live data after it."""
    if reference is None or not baselines or any(b is None or b.counts is None for b in baselines):
        return None
    known = [b for b in baselines if b is not None and b.counts is not None]
    bins = reference.sample_bins
    live_totals = [float(t.counts[:bins].sum()) if t.counts is not None else 0.0 for t in live]
    if not sum(live_totals):
        return None
    scaled = [
        b.counts * (n / max(float(b.counts[:bins].sum()), 1.0))
        for b, n in zip(known, live_totals, strict=True)
        if b.counts is not None
    ]
    return Baseline(
        start=min(b.start for b in known),
        end=max(b.end for b in known),
        intervals=sum(b.intervals for b in known),
        counts=np.rint(np.sum(scaled, axis=0)).astype(np.int64),
    )


def _devices(session: Session, ids: Collection[str]) -> dict[str, Device]:
    return {d.id: d for d in session.scalars(select(Device).where(Device.id.in_(sorted(ids))))} if ids else {}


def _window(window_s: float, now: datetime) -> tuple[datetime, datetime]:
    if not window_s > 0:
        raise InputError(f"a drift window of {window_s} s is empty", hint="give a window in seconds, above 0")
    return now - timedelta(seconds=window_s), now


def device_drift(
    session: Session, device_id: str, *, window_s: float, now: datetime, thresholds: DriftThresholds | None = None
) -> DeviceDriftOut:
    """One device's drift over the window ending ``now``, on the model it ran last; InputError for an unknown device."""
    device = session.get(Device, device_id)
    if device is None:
        raise InputError(
            f"no device {device_id!r} has reported to this server", hint="list devices: GET /api/v1/devices"
        )
    since, until = _window(window_s, now)
    merged = merge_window(session, since, until, device_ids=[device_id])
    if device_id not in merged.current and device.model_name and device.model_version:
        merged.current[device_id] = (device.model_name, device.model_version)
    group = _device_groups(merged, [device_id])[0]
    [judged] = _judge([group], merged.references, thresholds or DriftThresholds())
    return DeviceDriftOut(
        device_id=device_id,
        profile=device.profile,
        tags=list(device.tags or []),
        **_common(judged, group.model, merged),
    )


def cohort_drift(
    session: Session, *, window_s: float, now: datetime, thresholds: DriftThresholds | None = None
) -> list[CohortDriftOut]:
    """Every cohort heard from in the window, its devices' sketches added; worst level first, then largest."""
    since, until = _window(window_s, now)
    merged = merge_window(session, since, until)
    devices = _devices(session, {s.device_id for s in merged.sketches})
    groups = _cohort_groups(merged, devices)
    judged = _judge(list(groups.values()), merged.references, thresholds or DriftThresholds())
    out = [
        CohortDriftOut(
            profile=key[2],
            tag=key[3],
            devices=len(group.device_ids),
            device_ids=sorted(group.device_ids),
            **_common(j, group.model, merged),
        )
        for (key, group), j in zip(groups.items(), judged, strict=True)
    ]
    return sorted(out, key=lambda c: (-_RANK[c.level], -c.devices, c.model_name or "", c.model_version or "", c.tag))


_RANK = {DriftLevel.NOT_ENOUGH_DATA: 0, DriftLevel.OK: 1, DriftLevel.WARN: 2, DriftLevel.ALARM: 3}


def fleet_drift(
    session: Session,
    *,
    since: datetime,
    until: datetime,
    thresholds: DriftThresholds | None = None,
    device_ids: Collection[str] | None = None,
    model_version: str | None = None,
) -> FleetDrift:
    """Summaries of every device and cohort heard from between ``since`` and ``until`` (optionally narrowed)."""
    rule = thresholds or DriftThresholds()
    merged = merge_window(session, since, until, device_ids=device_ids, model_version=model_version)
    devices = _devices(session, merged.current)
    ids = sorted(devices)
    device_groups = _device_groups(merged, ids)
    cohort_groups = _cohort_groups(merged, devices)
    judged = _judge([*device_groups, *cohort_groups.values()], merged.references, rule)
    return FleetDrift(
        devices=[
            ScopeDrift(g.model, j.summary, device_id=device_id, device_ids=(device_id,))
            for device_id, g, j in zip(ids, device_groups, judged, strict=False)
        ],
        cohorts=[
            ScopeDrift(g.model, j.summary, cohort=key, device_ids=tuple(sorted(g.device_ids)))
            for (key, g), j in zip(cohort_groups.items(), judged[len(device_groups) :], strict=True)
        ],
    )
