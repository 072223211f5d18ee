"""The first admin token: created on start when the database holds no live one, written to a 0600 file."""

from __future__ import annotations

import logging
import os
import secrets
from datetime import datetime
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from fleet_server.auth.accounts import NewToken, add_token, is_live
from fleet_server.auth.roles import Role
from fleet_server.db.auth_models import ApiToken

__all__ = ["ensure_admin_token", "read_token_file"]

log = logging.getLogger(__name__)


def ensure_admin_token(sessions: sessionmaker[Session], path: Path, now: datetime) -> bool:
    """Create an admin token into ``path`` (mode 0600) when the database has no live admin token.

    Returns True when it wrote one. A live admin token in the database means someone holds one already:
    then nothing is written, even when the file is gone (an admin may have moved it somewhere safer).
    """
    with sessions() as session:
        admins = session.scalars(select(ApiToken).where(ApiToken.role == Role.ADMIN.value))
        if any(is_live(record, now) for record in admins):
            log.info("auth.admin_token_present", extra={"path": str(path)})
            return False
        issued = add_token(session, NewToken(Role.ADMIN, "bootstrap admin", "server start"), now)
        # the file first: a token committed but never written would lock every admin out until a restart
        _write_private(path, issued.token + "\n")
        session.commit()
    log.warning("auth.admin_token_written", extra={"path": str(path), "token_id": issued.record.id})
    return True


def read_token_file(path: Path) -> str:
    """The token in a token file such as ``admin.token``, without surrounding whitespace."""
    return path.read_text().strip()


def _write_private(path: Path, text: str) -> None:
    """Replace ``path`` atomically by a file only its owner can read, created with that mode (never chmod'ed)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)
