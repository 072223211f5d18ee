"""The roles a bearer token carries, and which role's permissions each one includes."""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from typing import Final

__all__ = ["GRANTS", "Role", "grants"]


class Role(StrEnum):
    """Who holds a token: people (admin, operator, viewer) or one enrolled device."""

    ADMIN = "admin"  # everything an operator does, plus API tokens (create, list, revoke)
    OPERATOR = "operator"  # everything a viewer does, plus acting: uploads, rollouts, tags, provisioning tokens
    VIEWER = "viewer"  # reads everything people may read
    DEVICE = "device"  # only its own routes: download packages, read its own record


# what a token of each role may do that a route requires; the people's roles nest, a device's stands apart
# (an admin is not a device: a device's routes that people also use name a people's role besides DEVICE)
GRANTS: Final[Mapping[Role, frozenset[Role]]] = {
    Role.ADMIN: frozenset({Role.ADMIN, Role.OPERATOR, Role.VIEWER}),
    Role.OPERATOR: frozenset({Role.OPERATOR, Role.VIEWER}),
    Role.VIEWER: frozenset({Role.VIEWER}),
    Role.DEVICE: frozenset({Role.DEVICE}),
}


def grants(held: Role, needed: Role) -> bool:
    """True when a token with the ``held`` role may use a route that requires ``needed``."""
    return needed in GRANTS[held]
