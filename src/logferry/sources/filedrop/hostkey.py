"""The SSH drop's host key: generated on first start, then the same key (and fingerprint) for good.

The appliance pins this key (its "host key" for the SCP push), so it must survive restarts and
upgrades: it lives in the source's spool directory in the data dir, readable by logferry only.

A key file that exists but cannot be read as a key (damaged, truncated, replaced) is an error with
the fix in the message, never silently replaced: a new host key makes the appliance refuse to push
until someone accepts it there, which must be a decision, not a side effect.
"""

from __future__ import annotations

import os
from pathlib import Path

import asyncssh

from logferry.core.errors import SourceError

__all__ = ["load_or_create_host_key"]


def load_or_create_host_key(path: Path) -> asyncssh.SSHKey:
    if path.exists():
        try:
            return asyncssh.read_private_key(str(path))
        except (asyncssh.KeyImportError, ValueError) as exc:
            raise SourceError(
                f"host key file {path} is unreadable: {exc}; delete it to generate a new one "
                "(the appliance must then accept the new host key)"
            ) from exc
    key = asyncssh.generate_private_key("ssh-ed25519", comment="logferry ssh_drop")
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(key.export_private_key())
        f.flush()
        os.fsync(f.fileno())
    # The rename makes the key appear whole or not at all, so a crash never leaves half a key.
    os.replace(tmp, path)
    path.with_name(path.name + ".pub").write_bytes(key.export_public_key())
    return key
