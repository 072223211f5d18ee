"""The update state machine: download, verify, stage, smoke test, switch, health window, then commit or roll back.

Every step ends with a journal write (fsync'd) before its event is published, and every step can run again
from the journal after a crash, so a kill or a power cut at any instant leaves the device on a verified
model with the update either finished or rolled back. The order of the two durable writes of a switch, a
commit or a rollback is always journal first, pointer second; ``boot`` completes whichever the journal
decided and the pointer does not show yet.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from pathlib import Path
from typing import Protocol

from edge_agent import failpoints
from edge_agent.model import LoadedModel
from edge_agent.settings import AgentSettings
from edge_agent.updates.checks import REASONS, check_package
from edge_agent.updates.download import DownloadOptions, cleanup_partials, download
from edge_agent.updates.health import HealthWindow, Verdict, Vitals
from edge_agent.updates.journal import Journal, Step, UpdateRecord
from edge_agent.updates.slots import Pointer, Slot, Slots, other
from edgefleet.errors import ConfigError, EdgefleetError, PackageError, UpdateError
from edgefleet.keylist import KeyRing
from edgefleet.messages import AssignCommand, EventKind, RollbackCommand
from edgefleet.package import OpenedPackage, file_sha256, verify_package
from edgefleet.semver import parse_semver

__all__ = ["ModelHost", "Updater"]

log = logging.getLogger(__name__)

_POLL_S = 0.05


class ModelHost(Protocol):
    """What the updater needs from the agent that serves the models."""

    vitals: Vitals

    def load_package(self, opened: OpenedPackage, slot: Slot) -> LoadedModel:
        """Load with the real runtime and pass the smoke test; raises EdgefleetError."""
        ...

    def switch(self, model: LoadedModel, window: HealthWindow | None) -> None:
        """Serve ``model`` from the next input on, watched by ``window``."""
        ...

    def current(self) -> LoadedModel | None: ...

    def publish(
        self, kind: EventKind, *, package: str | None, detail: str, rollout_id: str | None, reason: str | None
    ) -> None: ...


class Updater:
    """Owns the slots, the journal and the downloads of one device; one worker thread runs the updates."""

    def __init__(self, settings: AgentSettings, keys: KeyRing, host: ModelHost) -> None:
        self._settings = settings
        # new packages are checked against the ring (which learns a newer key list a package carries), installed
        # ones against its view that an expired list does not revoke
        self._trusted = keys
        self._installed_keys = keys.installed()
        self._host = host
        self.slots = Slots(settings.data_dir / "slots")
        self.journal = Journal(settings.data_dir / "update-journal.json")
        self._downloads = settings.data_dir / "downloads"
        # None wakes the worker to stop: it waits on the inbox without a timeout, so an idle device costs no
        # wake-ups (a thousand emulated devices polling every 0.2 s kept two cores busy)
        self._inbox: queue.SimpleQueue[AssignCommand | RollbackCommand | None] = queue.SimpleQueue()
        self._stopping = threading.Event()
        self._worker: threading.Thread | None = None
        self._staged: LoadedModel | None = None

    # -- at start ---------------------------------------------------------------------------------------------

    def boot(self) -> LoadedModel:
        """The model to serve at start: the journal's decisions completed, a crash loop rolled back, and the
        active slot checked again (signature and hashes) and smoke-tested; falls back to the known-good slot,
        then to the configured package. Raises EdgefleetError only when no verified model is left at all."""
        pointer = self._reconcile()
        factory_sha256 = self._factory_sha256()
        if pointer is None or (factory_sha256 is not None and factory_sha256 != pointer.factory_sha256):
            return self._provision(pointer)
        try:
            return self._load(pointer.active)
        except EdgefleetError as err:
            return self._recover(pointer, err)

    def _reconcile(self) -> Pointer | None:
        pointer, record = self.slots.pointer(), self.journal.read()
        if pointer is None or record is None:
            return pointer
        if record.step is Step.SWITCHED:
            if pointer.active != record.slot:
                self.slots.point(pointer.model_copy(update={"active": record.slot}))
            record = self._save(record, health_starts=record.health_starts + 1)
            if record.health_starts > self._settings.updates.max_health_starts:
                crashes = record.health_starts - 1
                self._decide_rollback(record, "crash-loop", f"the agent restarted {crashes} times in the health window")
                self.slots.clear(record.slot)
        elif record.step is Step.COMMITTED and (pointer.active, pointer.good) != (record.slot, record.slot):
            self.slots.point(pointer.model_copy(update={"active": record.slot, "good": record.slot}))
        elif record.step is Step.ROLLED_BACK and pointer.active != record.previous:
            self.slots.point(pointer.model_copy(update={"active": record.previous, "good": record.previous}))
        return self.slots.pointer()

    def _factory_sha256(self) -> str | None:
        """The manifest sha256 of the configured package, or None when there is none or it does not verify
        (then logged: the installed slots keep running)."""
        path = self._settings.package
        if path is None:
            return None
        try:
            return verify_package(path, self._trusted).manifest_sha256
        except EdgefleetError as err:
            log.error("update.factory_refused", extra={"package": str(path), "error": err.message})
            return None

    def _provision(self, pointer: Pointer | None) -> LoadedModel:
        """Install the configured package into a free slot and run it: the first start, or a new package in the
        agent's settings (an operator's decision on the device itself)."""
        if self._settings.package is None:
            raise ConfigError("no package to run and none installed", hint="set `package` in the agent's TOML file")
        record = self.journal.read()
        if record is not None and not record.finished:
            # the slot it was installing is the one the configured package now takes
            self._save(record, step=Step.FAILED, reason="superseded", detail="the agent's configured package changed")
        slot: Slot = "a" if pointer is None else other(pointer.active)
        opened = self.slots.stage(self._settings.package, slot, self._trusted)
        model = self._host.load_package(opened, slot)
        self.slots.point(Pointer(active=slot, good=slot, factory_sha256=opened.manifest_sha256))
        log.info("update.provisioned", extra={"slot": slot, "package": _name(opened)})
        return model

    def _recover(self, pointer: Pointer, err: EdgefleetError) -> LoadedModel:
        """The active slot cannot run: back to the known-good one, else the other, else the configured package."""
        log.error("update.active_unloadable", extra={"slot": pointer.active, "error": err.message})
        record = self.journal.read()
        if record is not None and not record.finished and record.step is Step.SWITCHED:
            self._decide_rollback(record, "load-failed", f"slot {record.slot} no longer loads: {err.message}")
        for slot in dict.fromkeys((pointer.good, other(pointer.active))):
            if slot == pointer.active:
                continue
            try:
                model = self._load(slot)
            except EdgefleetError as fallback_err:
                log.error("update.fallback_unloadable", extra={"slot": slot, "error": fallback_err.message})
                continue
            self.slots.point(pointer.model_copy(update={"active": slot, "good": slot}))
            self._host.publish(
                EventKind.ERROR,
                package=model.active.name + "@" + model.active.version,
                detail=f"slot {pointer.active} no longer loads ({err.message}); running slot {slot}",
                rollout_id=None,
                reason="slot-unloadable",
            )
            return model
        return self._provision(pointer)

    def _load(self, slot: Slot) -> LoadedModel:
        return self._host.load_package(self.slots.read(slot, self._installed_keys), slot)

    # -- commands ----------------------------------------------------------------------------------------------

    def submit(self, command: AssignCommand | RollbackCommand) -> None:
        """Queue a command for the worker; returns at once."""
        self._inbox.put_nowait(command)

    def start(self) -> None:
        """Start the worker: it resumes the journal's unfinished update first, then takes commands."""
        self._worker = threading.Thread(target=self._work, name="updater", daemon=True)
        self._worker.start()

    def stop(self, timeout_s: float = 5.0) -> None:
        """Stop after the current step; the journal resumes the rest at the next start."""
        self._stopping.set()
        self._inbox.put_nowait(None)
        if self._worker is not None:
            self._worker.join(timeout_s)

    def _work(self) -> None:
        self._prune_downloads()
        record = self.journal.read()
        if record is not None and record.finished and not record.announced:
            self._announce(record)
        elif record is not None and not record.finished:
            self._advance(record)
        while not self._stopping.is_set():
            command = self._inbox.get()
            if command is None:
                break
            try:
                if isinstance(command, AssignCommand):
                    self._assign(command)
                else:
                    self._rollback_on_command(command)
            except Exception:  # the worker must outlive any one update: logged, and the device keeps serving
                log.exception("update.crashed", extra={"command": command.action})

    def _prune_downloads(self) -> None:
        """Remove every download but the unfinished update's (disk hygiene after crashes and failures)."""
        record = self.journal.read()
        keep = [self._package_file(record)] if record is not None and not record.finished else []
        cleanup_partials(self._downloads, keep=keep)
        if self._downloads.is_dir():
            for stale in self._downloads.glob("*.efpkg"):
                if stale not in keep:
                    stale.unlink(missing_ok=True)

    def _assign(self, command: AssignCommand) -> None:
        last = self.journal.read()
        if last is not None and last.same_assignment(command.rollout_id, command.sha256):
            log.info("update.duplicate", extra={"rollout": command.rollout_id, "step": last.step})
            return
        current = self._host.current()
        if current is not None and f"{current.active.name}@{current.active.version}" == command.package:
            self._publish(EventKind.COMMITTED, command.rollout_id, command.package, "already running", "unchanged")
            return
        pointer = self.slots.pointer()
        active: Slot = pointer.active if pointer is not None else "a"
        record = UpdateRecord(
            rollout_id=command.rollout_id,
            package=command.package,
            url=command.url,
            sha256=command.sha256,
            size_bytes=command.size_bytes,
            deadline_ts=command.deadline_ts,
            allow_downgrade=command.allow_downgrade,
            slot=other(active),
            previous=active,
        )
        self.journal.write(record)
        self._publish(EventKind.ASSIGNED, record.rollout_id, record.package, f"into slot {record.slot}")
        failpoints.reach("assigned")
        self._advance(record)

    # -- the steps ---------------------------------------------------------------------------------------------

    def _advance(self, record: UpdateRecord) -> None:
        """Run the steps from where ``record`` stands until the update is finished or the agent stops."""
        log.info("update.resume", extra={"rollout": record.rollout_id, "step": record.step})
        while not record.finished and not self._stopping.is_set():
            if record.step is Step.SWITCHED:
                # past the switch a failure is the health window's to judge, never a reason to give up half-way
                record = self._step(record)
                continue
            try:
                record = self._step(record)
            except UpdateError as err:
                record = self._end(record, err.reason, f"{err.message} ({err.hint})" if err.hint else err.message)
            except PackageError as err:
                reason = next((r for cls, r in REASONS.items() if isinstance(err, cls)), "refused")
                record = self._end(record, reason, err.message)
            except EdgefleetError as err:
                record = self._end(record, "smoke-test", err.message)
            except OSError as err:
                reason = "disk-full" if err.errno == 28 else "io-error"  # 28: ENOSPC
                record = self._end(record, reason, f"{err.strerror or err} ({getattr(err, 'filename', '')})")

    def _step(self, record: UpdateRecord) -> UpdateRecord:
        match record.step:
            case Step.ASSIGNED:
                return self._download(record)
            case Step.DOWNLOADED:
                return self._verify(record)
            case Step.VERIFIED:
                return self._stage(record)
            case Step.STAGED:
                return self._smoke_test(record)
            case Step.SMOKE_TESTED:
                return self._switch(record)
            case _:
                return self._watch(record)

    def _download(self, record: UpdateRecord) -> UpdateRecord:
        if time.time() > record.deadline_ts:
            raise UpdateError(
                f"the deadline of {record.package} passed before its download could start",
                hint="assign it again with a later deadline",
                reason="slow-retrieval",
            )
        self._publish(EventKind.DOWNLOADING, record.rollout_id, record.package, f"{record.size_bytes:,} bytes")
        updates = self._settings.updates
        token = updates.auth_token.get_secret_value() if updates.auth_token is not None else None
        download(
            record.url,
            self._package_file(record),
            size_bytes=record.size_bytes,
            sha256=record.sha256,
            deadline_ts=record.deadline_ts,
            options=DownloadOptions(
                read_timeout_s=updates.download_read_timeout_s, fsync_every_bytes=updates.fsync_every_bytes
            ),
            headers={"Authorization": f"Bearer {token}"} if token else None,
            progress=lambda _done, _total: failpoints.reach("downloading"),
        )
        record = self._save(record, step=Step.DOWNLOADED)
        failpoints.reach("downloaded")
        return record

    def _verify(self, record: UpdateRecord) -> UpdateRecord:
        path = self._package_file(record)
        if not path.is_file() or file_sha256(path)[0] != record.sha256:
            # the disk lost or damaged the file since it was complete (a power cut, a full disk): fetch it again
            path.unlink(missing_ok=True)
            return self._save(record, step=Step.ASSIGNED)
        current = self._host.current()
        check_package(
            path,
            assigned=record.package,
            trusted=self._trusted,
            installed_version=current.active.version if current is not None else None,
            allow_downgrade=record.allow_downgrade,
            profile=self._settings.profile,
            slots_root=self.slots.root,
        )
        record = self._save(record, step=Step.VERIFIED)
        self._publish(EventKind.VERIFIED, record.rollout_id, record.package, "signature, hashes, version, profile")
        failpoints.reach("verified")
        return record

    def _stage(self, record: UpdateRecord) -> UpdateRecord:
        path = self._package_file(record)
        if not path.is_file():
            return self._save(record, step=Step.ASSIGNED)
        try:
            self.slots.stage(path, record.slot, self._trusted)
        except BaseException:
            self.slots.clear(record.slot)
            raise
        record = self._save(record, step=Step.STAGED)
        path.unlink(missing_ok=True)
        self._publish(EventKind.STAGED, record.rollout_id, record.package, f"slot {record.slot}")
        failpoints.reach("staged")
        return record

    def _smoke_test(self, record: UpdateRecord) -> UpdateRecord:
        self._staged = self._load(record.slot)
        record = self._save(record, step=Step.SMOKE_TESTED)
        self._publish(EventKind.SMOKE_TESTED, record.rollout_id, record.package, self._staged.artifact.path)
        failpoints.reach("smoke-tested")
        return record

    def _switch(self, record: UpdateRecord) -> UpdateRecord:
        model = self._staged if self._staged is not None else self._load(record.slot)
        self._staged = None
        record = self._save(record, step=Step.SWITCHED, health_starts=1, baseline_p95_ms=self._host.vitals.p95_ms())
        failpoints.reach("switched")
        pointer = self.slots.pointer() or Pointer(active=record.previous, good=record.previous)
        self.slots.point(pointer.model_copy(update={"active": record.slot}))
        self._host.switch(model, HealthWindow(self._settings.updates, record.baseline_p95_ms))
        self._publish(EventKind.ACTIVE, record.rollout_id, record.package, f"slot {record.slot}; health window open")
        failpoints.reach("active")
        return record

    def _watch(self, record: UpdateRecord) -> UpdateRecord:
        """The health window: commit when it passes, roll back when it fails or an operator says so."""
        if not self._host.vitals.watching:
            # resumed after a restart: the agent already serves the new slot, and the window starts again
            self._host.vitals.watch(HealthWindow(self._settings.updates, record.baseline_p95_ms))
        while not self._stopping.is_set():
            failpoints.reach("health")
            verdict = self._host.vitals.verdict() or self._rollback_requested()
            if verdict is not None:
                return self._commit(record, verdict) if verdict.healthy else self._roll_back(record, verdict)
            time.sleep(_POLL_S)
        return record

    def _commit(self, record: UpdateRecord, verdict: Verdict) -> UpdateRecord:
        record = self._save(record, step=Step.COMMITTED, reason="", detail=verdict.detail)
        failpoints.reach("committed")
        pointer = self.slots.pointer() or Pointer(active=record.slot, good=record.slot)
        self.slots.point(pointer.model_copy(update={"active": record.slot, "good": record.slot}))
        self._host.vitals.watch(None)
        log.info("update.committed", extra={"rollout": record.rollout_id, "package": record.package})
        return self._announce(record)

    def _roll_back(self, record: UpdateRecord, verdict: Verdict) -> UpdateRecord:
        record = self._decide_rollback(record, verdict.reason, verdict.detail)
        try:
            self._host.switch(self._load(record.previous), None)
        except EdgefleetError as err:
            # the known-good slot rotted while the new model ran: serving the new one beats serving nothing
            log.error("update.rollback_unloadable", extra={"slot": record.previous, "error": err.message})
        else:
            self.slots.clear(record.slot)
        return self._announce(record)

    def _decide_rollback(self, record: UpdateRecord, reason: str, detail: str) -> UpdateRecord:
        """Journal, then pointer: the rollback is decided even if the process dies right after, and the next
        start loads the previous slot and announces it."""
        record = self._save(record, step=Step.ROLLED_BACK, reason=reason, detail=detail)
        pointer = self.slots.pointer() or Pointer(active=record.previous, good=record.previous)
        self.slots.point(pointer.model_copy(update={"active": record.previous, "good": record.previous}))
        log.warning("update.rolled_back", extra={"rollout": record.rollout_id, "reason": reason, "detail": detail})
        return record

    def _end(self, record: UpdateRecord, reason: str, detail: str) -> UpdateRecord:
        """An update that failed before the switch: the running model never stopped; its leftovers go."""
        record = self._save(record, step=Step.FAILED, reason=reason, detail=detail)
        self._package_file(record).unlink(missing_ok=True)
        cleanup_partials(self._downloads)
        pointer = self.slots.pointer()
        if pointer is None or record.slot != pointer.active:
            self.slots.clear(record.slot)
        log.warning("update.failed", extra={"rollout": record.rollout_id, "reason": reason, "detail": detail})
        return self._announce(record)

    def _announce(self, record: UpdateRecord) -> UpdateRecord:
        """Publish a finished update's final event, once it is decided; after a crash in between, at the next
        start (the server may then see it twice, under two seqs, and counts it once per rollout)."""
        kind = {Step.COMMITTED: EventKind.COMMITTED, Step.ROLLED_BACK: EventKind.ROLLED_BACK}.get(
            record.step, EventKind.FAILED
        )
        self._publish(kind, record.rollout_id, record.package, record.detail, record.reason or None)
        return self._save(record, announced=True)

    # -- rollback on command -------------------------------------------------------------------------------

    def _rollback_requested(self) -> Verdict | None:
        """A rollback command that arrives during the health window is acted on at once; others wait their turn."""
        try:
            command = self._inbox.get_nowait()
        except queue.Empty:
            return None
        if isinstance(command, RollbackCommand):
            return Verdict(False, "command", command.reason or "an operator rolled back")
        self._inbox.put_nowait(command)  # an assignment waits its turn; None (stop) is seen by _stopping already
        return None

    def _rollback_on_command(self, command: RollbackCommand) -> None:
        """Go back to the other slot's model when it is older than the running one; otherwise say why not.

        Only ever going back to an older version makes a repeated command harmless.
        """
        pointer, current = self.slots.pointer(), self._host.current()
        rollout_id = command.rollout_id or "operator"
        if pointer is None or current is None:
            self._publish(EventKind.FAILED, rollout_id, None, "no model installed", "nothing-to-roll-back")
            return
        previous = other(pointer.active)
        try:
            opened = self.slots.read(previous, self._installed_keys)
        except PackageError as err:
            detail = f"slot {previous} holds no verified model ({err.message})"
            self._publish(EventKind.FAILED, rollout_id, None, detail, "nothing-to-roll-back")
            return
        if parse_semver(opened.manifest.version) >= parse_semver(current.active.version):
            detail = f"slot {previous} holds {_name(opened)}, not older than the running {current.active.version}"
            self._publish(EventKind.FAILED, rollout_id, _name(opened), detail, "nothing-to-roll-back")
            return
        # a rollback downloads nothing: the record only says which slot is left and which one runs again
        record = UpdateRecord(
            rollout_id=rollout_id,
            package=f"{current.active.name}@{current.active.version}",
            step=Step.SWITCHED,
            slot=pointer.active,
            previous=previous,
        )
        self._roll_back(record, Verdict(False, "command", command.reason or "an operator rolled back"))

    # -- helpers ---------------------------------------------------------------------------------------------

    def _save(self, record: UpdateRecord, **changes: object) -> UpdateRecord:
        record = record.model_copy(update=changes)
        self.journal.write(record)
        return record

    def _package_file(self, record: UpdateRecord) -> Path:
        return self._downloads / f"{record.sha256}.efpkg"

    def _publish(
        self, kind: EventKind, rollout_id: str | None, package: str | None, detail: str, reason: str | None = None
    ) -> None:
        self._host.publish(kind, package=package, detail=detail[:2000], rollout_id=rollout_id, reason=reason)


def _name(opened: OpenedPackage) -> str:
    return f"{opened.manifest.name}@{opened.manifest.version}"
