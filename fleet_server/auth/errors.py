"""Why a credential was refused, one class per HTTP answer the API gives.

* ServerError (edgefleet.errors)
  x AuthError                  root of this module
    + NotAuthenticated         no token, a malformed, unknown, revoked or expired one (401)
    + ProvisioningRefused      a known provisioning token that is expired, used up, or for another profile (403)
    + AlreadyEnrolled          the device id holds live credentials (409)
    + LastAdmin                revoking this token would leave no admin token (409)
    + UnknownToken             no token with this id (404)
"""

from __future__ import annotations

from edgefleet.errors import ServerError

__all__ = ["AlreadyEnrolled", "AuthError", "LastAdmin", "NotAuthenticated", "ProvisioningRefused", "UnknownToken"]


class AuthError(ServerError):
    """A credential was refused; the message says which and why, the hint what to do."""


class NotAuthenticated(AuthError):
    pass


class ProvisioningRefused(AuthError):
    pass


class AlreadyEnrolled(AuthError):
    pass


class LastAdmin(AuthError):
    pass


class UnknownToken(AuthError):
    pass
