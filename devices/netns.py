"""A network namespace joined to the host by a veth pair: the devices started inside it are a cohort on a network
of their own, which ``cut`` takes off the air and ``restore`` brings back.

Cutting takes the namespace's end of the link down. Packets then vanish, as when a switch loses power or a cell
link dies: open connections are not closed, they hang until a keepalive gives up, which is harder on an MQTT
client than a proxy that closes them. The host's address on the link stays reachable from the host itself, so the
broker and server listen on it for everyone.

Wraps ``ip`` (iproute2) because it is the interface to netlink every Linux has; needs root (CAP_NET_ADMIN).
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
from pathlib import Path
from typing import Final

from edgefleet.errors import ConfigError

__all__ = ["CohortNetwork"]

log = logging.getLogger(__name__)

_IP: Final = "/usr/sbin/ip"
_PREFIX: Final = "ef-cohort-"


class CohortNetwork:
    """Namespace ``ef-cohort-<pid>``: the host is ``host_ip`` on the link, the cohort ``cohort_ip``.

    ``create`` sets it up (raises ConfigError when this machine cannot), ``remove`` takes it down again.
    """

    def __init__(self, pid: int | None = None) -> None:
        self._ip = shutil.which("ip") or _IP
        self.pid = os.getpid() if pid is None else pid
        self.name = f"{_PREFIX}{self.pid}"
        # interface names hold 15 characters; the pid keeps two runs on one machine apart
        self._host_if, self._cohort_if = f"efh{self.pid % 10**7}", f"efc{self.pid % 10**7}"
        self._subnet(self.pid % 250)
        self.is_cut = False

    def _subnet(self, index: int) -> None:
        self.host_ip, self.cohort_ip = f"10.213.{index}.1", f"10.213.{index}.2"

    def command(self, argv: list[str]) -> list[str]:
        """``argv`` run inside the namespace."""
        return [self._ip, "netns", "exec", self.name, *argv]

    def create(self) -> None:
        self._remove_orphans()
        self.remove()
        taken = subprocess.run([self._ip, "-o", "-4", "addr"], capture_output=True, text=True, check=False).stdout
        # another run's cohort may hold the subnet this pid maps to: take the next free one
        start = self.pid % 250
        free = (i % 250 for i in range(start, start + 250) if f" 10.213.{i % 250}.1/" not in taken)
        self._subnet(next(free, start))
        try:
            self._run("netns", "add", self.name)
            self._run("link", "add", self._host_if, "type", "veth", "peer", "name", self._cohort_if)
            self._run("link", "set", self._cohort_if, "netns", self.name)
            self._run("addr", "add", f"{self.host_ip}/30", "dev", self._host_if)
            self._run("link", "set", self._host_if, "up")
            self._in_cohort("addr", "add", f"{self.cohort_ip}/30", "dev", self._cohort_if)
            self._in_cohort("link", "set", self._cohort_if, "up")
            self._in_cohort("link", "set", "lo", "up")
        except (OSError, subprocess.CalledProcessError) as err:
            self.remove()
            detail = (
                err.stderr.decode(errors="replace").strip() if isinstance(err, subprocess.CalledProcessError) else err
            )
            raise ConfigError(
                f"cannot create the network namespace {self.name}: {detail}",
                hint="the soak's cohort cut needs root and iproute2 (apt-get install iproute2, or make setup)",
            ) from err

    def cut(self) -> None:
        self._in_cohort("link", "set", self._cohort_if, "down")
        self.is_cut = True

    def restore(self) -> None:
        self._in_cohort("link", "set", self._cohort_if, "up")
        self.is_cut = False

    def remove(self) -> None:
        """Delete the link and the namespace, whatever is left of them."""
        subprocess.run([self._ip, "link", "del", self._host_if], capture_output=True, check=False)
        subprocess.run([self._ip, "netns", "del", self.name], capture_output=True, check=False)

    def _remove_orphans(self) -> None:
        """Namespaces left by a run that was killed before it could remove its own (its pid is gone)."""
        listed = subprocess.run([self._ip, "netns", "list"], capture_output=True, text=True, check=False).stdout
        for line in listed.splitlines():
            name = line.split(" ", 1)[0]
            pid = name.removeprefix(_PREFIX)
            if name.startswith(_PREFIX) and pid.isdigit() and not Path(f"/proc/{pid}").exists():
                log.info("netns.orphan_removed", extra={"namespace": name})
                CohortNetwork(int(pid)).remove()

    def _in_cohort(self, *args: str) -> None:
        self._run("-n", self.name, *args)

    def _run(self, *args: str) -> None:
        subprocess.run([self._ip, *args], capture_output=True, check=True)
