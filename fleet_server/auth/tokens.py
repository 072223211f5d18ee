"""Bearer secrets: their format (a public id to look the record up, then the secret), generation and hashing.

A token reads ``<kind>_<id>_<secret>``: ``eft`` for API tokens, ``efp`` for provisioning tokens; the id is 12
hex characters, public (it names the token in listings and in ``DELETE /api/v1/tokens/{id}``), the secret 43
URL-safe characters (256 bits). The kind prefix keeps one kind of token from being used as the other, and
lets secret scanners recognize a leaked one.

Only ``hash_secret(token)`` is stored: one SHA-256, unsalted and unkeyed, and that is enough because the
secret is 256 random bits. Slow salted hashes (scrypt, bcrypt, PBKDF2) exist to make guessing low-entropy
human passwords expensive; nobody can guess 2**256 values, fast or slow, so they would only cost every
request tens of milliseconds. A key (HMAC with a server secret) would add nothing a database thief could
not already do without it, but one more secret to keep, back up and share between server workers.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from enum import StrEnum
from typing import Final

__all__ = ["ParsedToken", "TokenKind", "hash_secret", "new_token", "parse_token", "secret_matches"]

_ID_HEX_CHARS: Final = 12
_SECRET_BYTES: Final = 32
_TOKEN: Final = re.compile(r"^(eft|efp)_([0-9a-f]{12})_([A-Za-z0-9_-]{43})$")


class TokenKind(StrEnum):
    API = "eft"  # a bearer token: Authorization: Bearer eft_...
    PROVISIONING = "efp"  # spent on enrollment, never a bearer


@dataclass(frozen=True, slots=True)
class ParsedToken:
    kind: TokenKind
    id: str
    token: str


def new_token(kind: TokenKind) -> ParsedToken:
    """A fresh random token of ``kind`` with its public id."""
    token_id = secrets.token_hex(_ID_HEX_CHARS // 2)
    return ParsedToken(kind, token_id, f"{kind}_{token_id}_{secrets.token_urlsafe(_SECRET_BYTES)}")


def parse_token(token: str, kind: TokenKind) -> ParsedToken | None:
    """The parts of ``token`` when it is well formed and of ``kind``, else None."""
    match = _TOKEN.fullmatch(token)
    if match is None or match.group(1) != kind:
        return None
    return ParsedToken(kind, match.group(2), token)


def hash_secret(secret: str) -> str:
    """The SHA-256 hex digest stored in place of a high-entropy secret (see the module docstring for why)."""
    return hashlib.sha256(secret.encode()).hexdigest()


def secret_matches(secret: str, stored_hash: str) -> bool:
    """True when ``secret`` hashes to ``stored_hash``, compared in constant time."""
    return hmac.compare_digest(hash_secret(secret), stored_hash)
