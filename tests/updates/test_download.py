"""The package download against a real HTTP server: resumes what it can, refuses what an attacker sends."""

from __future__ import annotations

import hashlib
import time
from pathlib import Path
from typing import Any

import pytest

from edge_agent import durable
from edge_agent.updates.download import DownloadOptions, Failure, cleanup_partials, download
from edgefleet.errors import DownloadError
from tests.support import fill
from tests.updates.conftest import CONTENT, FileServer, Mode, Step

pytestmark = pytest.mark.integration

SHA256 = hashlib.sha256(CONTENT).hexdigest()
FAST = DownloadOptions(fsync_every_bytes=256 << 10, retry_min_s=0.01, retry_max_s=0.05)


def fetch(server: FileServer, dest: Path, *, deadline_s: float = 10.0, **kwargs: Any) -> Path:
    kwargs.setdefault("options", FAST)
    return download(
        server.url,
        dest,
        size_bytes=kwargs.pop("size_bytes", len(CONTENT)),
        sha256=kwargs.pop("sha256", SHA256),
        deadline_ts=time.time() + deadline_s,
        **kwargs,
    )


def failure(server: FileServer, dest: Path, **kwargs: Any) -> DownloadError:
    with pytest.raises(DownloadError) as caught:
        fetch(server, dest, **kwargs)
    return caught.value


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def part(dest: Path) -> Path:
    return dest.with_name(dest.name + ".part")


def test_downloads_the_file_and_leaves_only_it(server: FileServer, tmp_path: Path) -> None:
    seen: list[tuple[int, int]] = []
    dest = fetch(
        server, tmp_path / "pkg.efpkg", headers={"Authorization": "Bearer t0k"}, progress=lambda *a: seen.append(a)
    )
    assert dest.read_bytes() == CONTENT
    assert leftovers(tmp_path) == ["pkg.efpkg"]
    assert seen[-1] == (len(CONTENT), len(CONTENT))
    assert server.seen[0].authorization == "Bearer t0k"


def test_a_complete_file_is_not_fetched_again(server: FileServer, tmp_path: Path) -> None:
    fetch(server, tmp_path / "pkg.efpkg")
    fetch(server, tmp_path / "pkg.efpkg")
    assert len(server.seen) == 1


def test_every_fsync_goes_through_durable(server: FileServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[int] = []
    real = durable.fsync_file

    def counting(fh: Any) -> None:
        calls.append(1)
        real(fh)

    monkeypatch.setattr(durable, "fsync_file", counting)
    fetch(server, tmp_path / "pkg.efpkg")
    # the sidecar, one per 256 KiB of the part, and the end
    assert len(calls) >= 1 + len(CONTENT) // (256 << 10) + 1


def test_resumes_after_a_cut_connection_instead_of_starting_over(server: FileServer, tmp_path: Path) -> None:
    server.then(Step(Mode.CUT, 500_000))
    dest = fetch(server, tmp_path / "pkg.efpkg")
    assert dest.read_bytes() == CONTENT
    assert [s.status for s in server.seen] == [200, 206]
    assert server.seen[1].range == "bytes=500000-"
    assert server.seen[1].if_range == server.etag
    assert server.bytes_sent == len(CONTENT)  # every byte sent once


def test_resumes_a_part_left_by_an_earlier_process(server: FileServer, tmp_path: Path) -> None:
    dest = tmp_path / "pkg.efpkg"
    server.then(Step(Mode.CUT, 400_000), Step(Mode.STATUS, 404))
    assert failure(server, dest).reason == Failure.HTTP_ERROR
    assert part(dest).stat().st_size == 400_000
    fetch(server, dest)  # a new call, as after the agent's restart
    assert dest.read_bytes() == CONTENT
    assert server.seen[-1].range == "bytes=400000-"
    assert server.bytes_sent == len(CONTENT)


def test_a_part_cut_back_by_a_power_cut_resumes_from_its_real_length(server: FileServer, tmp_path: Path) -> None:
    dest = tmp_path / "pkg.efpkg"
    server.then(Step(Mode.CUT, 400_000), Step(Mode.STATUS, 404))
    failure(server, dest)
    with part(dest).open("r+b") as fh:
        fh.truncate(100_000)  # what the disk kept: the bytes up to the last fsync
    fetch(server, dest)
    assert dest.read_bytes() == CONTENT
    assert server.seen[-1].range == "bytes=100000-"


def test_a_part_of_another_assignment_is_not_resumed(server: FileServer, tmp_path: Path) -> None:
    dest = tmp_path / "pkg.efpkg"
    server.then(Step(Mode.CUT, 400_000), Step(Mode.STATUS, 404))
    failure(server, dest, sha256="ab" * 32)
    fetch(server, dest)
    assert dest.read_bytes() == CONTENT
    assert server.seen[-1].range is None


def test_a_file_changed_on_the_server_starts_over_and_ends_right(server: FileServer, tmp_path: Path) -> None:
    server.content = CONTENT[::-1]  # an older build of the same size
    server.then(Step(Mode.CUT, 300_000, publish=CONTENT))
    dest = fetch(server, tmp_path / "pkg.efpkg")
    assert dest.read_bytes() == CONTENT
    assert server.seen[1].if_range != server.etag
    assert server.seen[1].status == 200  # the old bytes were dropped, not spliced
    assert leftovers(tmp_path) == ["pkg.efpkg"]


@pytest.mark.parametrize("mode", [Mode.LONG_LENGTH, Mode.ENDLESS])
def test_endless_data_is_refused_and_nothing_is_left(server: FileServer, tmp_path: Path, mode: Mode) -> None:
    server.then(Step(mode))
    err = failure(server, tmp_path / "pkg.efpkg")
    assert err.reason == Failure.ENDLESS_DATA
    assert str(len(CONTENT)) in err.message
    assert leftovers(tmp_path) == []


def test_a_shorter_file_is_refused(server: FileServer, tmp_path: Path) -> None:
    err = failure(server, tmp_path / "pkg.efpkg", size_bytes=len(CONTENT) + 10)
    assert err.reason == Failure.SIZE_MISMATCH
    assert leftovers(tmp_path) == []


@pytest.mark.parametrize(
    "step",
    [Step(Mode.TRICKLE, 20), Step(Mode.STALL), Step(Mode.SLOW_HEADERS, 20)],
    ids=["trickle", "stall", "slow-headers"],
)
def test_slow_retrieval_ends_at_the_deadline(server: FileServer, tmp_path: Path, step: Step) -> None:
    server.then(step)
    start = time.time()
    err = failure(server, tmp_path / "pkg.efpkg", deadline_s=0.5)
    assert err.reason == Failure.SLOW_RETRIEVAL
    assert 0.5 <= time.time() - start < 2.5


def test_a_wrong_hash_is_refused_and_nothing_is_left(server: FileServer, tmp_path: Path) -> None:
    server.content = CONTENT[::-1]
    err = failure(server, tmp_path / "pkg.efpkg")
    assert err.reason == Failure.HASH_MISMATCH
    assert leftovers(tmp_path) == []


def test_server_errors_are_retried_until_it_answers(server: FileServer, tmp_path: Path) -> None:
    server.then(*[Step(Mode.STATUS, 500)] * 3)
    assert fetch(server, tmp_path / "pkg.efpkg").read_bytes() == CONTENT
    assert [s.status for s in server.seen] == [500, 500, 500, 200]


def test_server_errors_until_the_deadline_fail_naming_the_status(server: FileServer, tmp_path: Path) -> None:
    server.then(*[Step(Mode.STATUS, 503)] * 1000)
    err = failure(server, tmp_path / "pkg.efpkg", deadline_s=0.3)
    assert err.reason == Failure.HTTP_ERROR
    assert "503" in err.message


def test_a_missing_file_fails_at_once(server: FileServer, tmp_path: Path) -> None:
    server.then(Step(Mode.STATUS, 404))
    start = time.time()
    err = failure(server, tmp_path / "pkg.efpkg", deadline_s=30)
    assert err.reason == Failure.HTTP_ERROR
    assert "404" in err.message
    assert time.time() - start < 1
    assert len(server.seen) == 1


def test_a_redirect_is_followed_without_the_token_to_another_host(server: FileServer, tmp_path: Path) -> None:
    other_host = server.url.replace("127.0.0.1", "localhost")
    server.then(Step(Mode.REDIRECT, location="/file"), Step(Mode.REDIRECT, location=other_host))
    dest = fetch(server, tmp_path / "pkg.efpkg", headers={"Authorization": "Bearer t0k"})
    assert dest.read_bytes() == CONTENT
    assert [s.authorization for s in server.seen] == ["Bearer t0k", "Bearer t0k", None]


def test_endless_redirects_fail(server: FileServer, tmp_path: Path) -> None:
    server.then(*[Step(Mode.REDIRECT, location="/file")] * 10)
    assert failure(server, tmp_path / "pkg.efpkg").reason == Failure.HTTP_ERROR


def test_https_checks_the_server_against_the_ca_file(
    tls_server: FileServer, certificate: tuple[Path, Path], tmp_path: Path
) -> None:
    dest = fetch(tls_server, tmp_path / "pkg.efpkg", options=DownloadOptions(ca_file=certificate[0]))
    assert dest.read_bytes() == CONTENT


def test_https_refuses_an_untrusted_server_at_once(tls_server: FileServer, tmp_path: Path) -> None:
    start = time.time()
    err = failure(tls_server, tmp_path / "pkg.efpkg", deadline_s=30)
    assert err.reason == Failure.TLS
    assert time.time() - start < 1


def test_a_file_bigger_than_the_free_space_fails_before_it_is_fetched(server: FileServer, small_disk: Path) -> None:
    big = CONTENT * 2
    server.content = big
    err = failure(server, small_disk / "pkg.efpkg", size_bytes=len(big), sha256=hashlib.sha256(big).hexdigest())
    assert err.reason == Failure.DISK_FULL
    assert "full" in err.message
    assert server.seen == []
    assert leftovers(small_disk) == []


def test_a_disk_filling_up_during_the_download_fails_and_leaves_nothing(server: FileServer, small_disk: Path) -> None:
    def fill_once(done: int, total: int) -> None:
        if not (small_disk / "filler").exists():
            fill(small_disk)

    err = failure(server, small_disk / "pkg.efpkg", progress=fill_once)
    assert err.reason == Failure.DISK_FULL
    assert leftovers(small_disk) == ["filler"]


def test_cleanup_removes_stale_partials_and_keeps_the_current_one(tmp_path: Path) -> None:
    for name in [
        "old.efpkg.part",
        "old.efpkg.part.json",
        "old.efpkg.part.json.tmp",
        "cur.efpkg.part",
        "cur.efpkg.part.json",
        "done.efpkg",
    ]:
        (tmp_path / name).write_bytes(b"x")
    removed = cleanup_partials(tmp_path, keep=[tmp_path / "cur.efpkg"])
    assert [p.name for p in removed] == ["old.efpkg.part", "old.efpkg.part.json", "old.efpkg.part.json.tmp"]
    assert leftovers(tmp_path) == ["cur.efpkg.part", "cur.efpkg.part.json", "done.efpkg"]
