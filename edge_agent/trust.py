"""The keys this device accepts packages from: pinned keys, and the newest signing-key list its root keys signed,
kept in the data folder (crash-safe) so a restart neither forgets a rotation nor goes back on a revocation."""

from __future__ import annotations

from edge_agent.durable import write_atomic
from edge_agent.settings import AgentSettings
from edgefleet.keylist import KEY_LIST_FILE, KeyRing
from edgefleet.signing import load_public_keys

__all__ = ["key_ring"]


def key_ring(settings: AgentSettings) -> KeyRing:
    """The device's ring; raises InputError when a configured key file cannot be read."""
    return KeyRing(
        load_public_keys(settings.trusted_keys),
        load_public_keys(settings.root_keys),
        settings.data_dir / KEY_LIST_FILE,
        write=write_atomic,
    )
