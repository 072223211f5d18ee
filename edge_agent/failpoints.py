"""Named points where a test crashes the agent on purpose, to prove that every update step is restartable.

Armed only by the ``EDGEFLEET_FAILPOINT`` environment variable, ``NAME`` or ``NAME@N`` (the N-th time the
point is reached, counting from 1): the process then kills itself with SIGKILL, as a power cut or the
kernel's OOM killer would, with no cleanup of any kind. Unarmed, ``reach`` is one comparison.

Hand-written because the idea (etcd's gofail, TiKV's fail-rs) is a dozen lines, not a dependency.
"""

from __future__ import annotations

import os
import signal
import threading
from typing import Final

__all__ = ["ENV", "reach"]

ENV: Final = "EDGEFLEET_FAILPOINT"

_name, _, _nth = os.environ.get(ENV, "").partition("@")
_ARMED: Final = _name or None
_AT: Final = int(_nth) if _nth.isdigit() else 1
_lock = threading.Lock()
_reached = 0


def reach(name: str) -> None:
    """Kill this process with SIGKILL when ``name`` is the armed point and this is the armed time."""
    global _reached
    if name != _ARMED:
        return
    with _lock:
        _reached += 1
        if _reached == _AT:
            os.kill(os.getpid(), signal.SIGKILL)
