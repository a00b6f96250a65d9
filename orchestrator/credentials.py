"""The development write key and admin token: generated on first start, kept in the data dir.

``JOURNEYMAN_WRITE_KEY`` and ``JOURNEYMAN_ADMIN_TOKEN`` fix them instead (scripts, tests,
production). The file is readable by its owner only; values never go to the logs.
"""

from __future__ import annotations

import json
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from .config import Settings

FILE_NAME = "credentials.json"


@dataclass(frozen=True)
class Credentials:
    write_key: str
    admin_token: str
    generated: bool  # True when this call created at least one of them
    # Signs tracking and unsubscribe links; None: links are off (production without a secret).
    link_secret: str | None = None

    def __repr__(self) -> str:  # keep secrets out of tracebacks and debug output
        return f"Credentials(write_key=***, admin_token=***, generated={self.generated})"


def load_or_create(settings: Settings) -> Credentials:
    """Settings win; otherwise read the data dir's file, creating missing values once."""
    if settings.write_key is not None and settings.admin_token is not None:
        # Both fixed: nothing to generate, and the data dir may well be read-only.
        return Credentials(
            write_key=settings.write_key.get_secret_value(),
            admin_token=settings.admin_token.get_secret_value(),
            generated=False,
            link_secret=settings.link_secret.get_secret_value() if settings.link_secret else None,
        )
    path = settings.data_dir / FILE_NAME
    stored: dict[str, str] = {}
    if path.exists():
        stored = json.loads(path.read_text(encoding="utf-8"))
    generated = False
    # The link secret is kept with the others so links in sent mail survive restarts.
    for name, prefix in (("write_key", "wk_"), ("admin_token", "adm_"), ("link_secret", "")):
        if name not in stored:
            stored[name] = prefix + secrets.token_urlsafe(24)
            generated = True
    if generated:
        _write_private(path, json.dumps(stored, indent=2))
    write_key = settings.write_key.get_secret_value() if settings.write_key else stored["write_key"]
    admin = (
        settings.admin_token.get_secret_value() if settings.admin_token else stored["admin_token"]
    )
    links = (
        settings.link_secret.get_secret_value() if settings.link_secret else stored["link_secret"]
    )
    return Credentials(
        write_key=write_key, admin_token=admin, generated=generated, link_secret=links
    )


def _write_private(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)
