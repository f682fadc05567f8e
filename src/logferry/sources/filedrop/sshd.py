"""The SSH server of the ``ssh_drop`` source (asyncssh): public key login, SCP and SFTP, nothing else.

* **Login.** Each configured user has an authorized_keys file (OpenSSH format), read at every login
  so a key can be replaced without a restart. Password, keyboard-interactive and host-based logins
  are not offered; an unknown user gets no key to match and is refused like a wrong key.
* **Sessions.** Only the SFTP subsystem and ``scp -t`` (the appliance's "SCP Push",
  :mod:`~logferry.sources.filedrop.scp`) run, inside the user's jail
  (:mod:`~logferry.sources.filedrop.jail`); shells and other commands end at once with exit status
  1, and PTYs, agent, X11 and port forwarding are refused.
* **Host key.** An ed25519 key generated on first start and kept in the spool directory
  (:mod:`~logferry.sources.filedrop.hostkey`); its fingerprint is logged at every start so the
  admin can check it against what the appliance shows.

Layout of the spool directory (one file system, so completed uploads move by rename)::

    ssh_host_ed25519_key(.pub)   the host key
    upload/                      uploads in progress (private temporary files)
    jail/<user>/                 what each user sees: completed uploads wait here
    work/ archive/               claimed and processed files (see spool.py)
    work/failed/                 claimed files that could not be read, kept for a human
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import weakref
from collections.abc import Callable
from pathlib import Path

import asyncssh
from asyncssh.connection import SSHConnection

from logferry.core.errors import SourceError
from logferry.net.sockets import dual_stack_socket
from logferry.observe.logging import log_event
from logferry.sources.filedrop.hostkey import load_or_create_host_key
from logferry.sources.filedrop.jail import DropRules, JailSFTPServer
from logferry.sources.filedrop.limits import ByteRate, SpoolQuota
from logferry.sources.filedrop.scp import ScpSessions
from logferry.sources.filedrop.spool import tree_bytes

__all__ = ["DropServer"]

HOST_KEY_FILE = "ssh_host_ed25519_key"
#: A login that has not authenticated within this time is dropped.
LOGIN_TIMEOUT_SECS = 60.0
CLOSE_TIMEOUT_SECS = 2.0


class _Login(asyncssh.SSHServer):
    def __init__(
        self,
        users: dict[str, Path],
        logger: logging.Logger,
        source: str,
        open_conns: set[asyncssh.SSHServerConnection],
    ) -> None:
        self._users = users
        self._logger = logger
        self._source = source
        self._open = open_conns
        self._conn: asyncssh.SSHServerConnection | None = None
        self._peer = ""

    def connection_made(self, conn: asyncssh.SSHServerConnection) -> None:
        self._conn = conn
        self._open.add(conn)
        peer = conn.get_extra_info("peername")
        self._peer = f"{peer[0]}:{peer[1]}" if peer else ""

    def connection_lost(self, exc: Exception | None) -> None:
        if self._conn is not None:
            self._open.discard(self._conn)

    def begin_auth(self, username: str) -> bool:
        keys = self._users.get(username)
        if keys is None:
            log_event(self._logger, logging.WARNING, "ssh_login_refused", source=self._source,
                      user=username, peer=self._peer, reason="unknown user")  # fmt: skip
            return True
        assert self._conn is not None
        try:
            self._conn.set_authorized_keys(str(keys))
        except (OSError, ValueError) as exc:
            log_event(self._logger, logging.ERROR, "ssh_login_refused", source=self._source, user=username,
                      peer=self._peer, reason=f"cannot read authorized keys {keys}: {exc}")  # fmt: skip
        return True

    def auth_completed(self) -> None:
        assert self._conn is not None
        log_event(self._logger, logging.INFO, "ssh_login", source=self._source,
                  user=self._conn.get_extra_info("username"), peer=self._peer)  # fmt: skip

    def password_auth_supported(self) -> bool:
        return False

    def kbdint_auth_supported(self) -> bool:
        return False

    def public_key_auth_supported(self) -> bool:
        return True


class DropServer:
    def __init__(
        self,
        *,
        host: str,
        port: int,
        users: dict[str, Path],
        spool_dir: Path,
        max_file_bytes: int,
        quota: SpoolQuota,
        bytes_per_sec: int | None,
        source: str,
    ) -> None:
        self.host = host
        self.port = port
        self.users = users
        self.spool_dir = spool_dir
        self.quota = quota
        self.bytes_per_sec = bytes_per_sec
        self.source = source
        #: Called with (file name, bytes) when an upload completes.
        self.on_upload: Callable[[str], None] = lambda rel: None
        self.rules = DropRules(spool_dir / "upload", max_file_bytes, quota)
        self.fingerprint: str | None = None
        self._acceptor: asyncssh.SSHAcceptor | None = None
        self._conns: set[asyncssh.SSHServerConnection] = set()
        self._rates: weakref.WeakKeyDictionary[SSHConnection, ByteRate] = weakref.WeakKeyDictionary()
        self._logger = logging.getLogger(f"logferry.source.{source}")

    @property
    def listening(self) -> bool:
        return self._acceptor is not None

    def jail(self, user: str) -> Path:
        return self.spool_dir / "jail" / user

    def problems(self) -> list[str]:
        """What would stop the server or logins, checked without listening."""
        out = []
        for user, keys in self.users.items():
            try:
                asyncssh.read_authorized_keys(str(keys))
            except (OSError, ValueError) as exc:
                out.append(f"users.{user}: cannot read authorized keys {keys}: {exc}")
        try:
            self.spool_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
            self.fingerprint = load_or_create_host_key(self.spool_dir / HOST_KEY_FILE).get_fingerprint()
        except SourceError as exc:
            out.append(str(exc))
        except (OSError, ValueError) as exc:
            out.append(f"spool directory {self.spool_dir}: {exc}")
        return out

    def describe(self) -> str:
        return (
            f"will listen on {self.host}:{self.port} for {', '.join(self.users)}; host key {self.fingerprint}"
        )

    def measure_spool(self, work: Path) -> None:
        jails = self.spool_dir / "jail"
        self.quota.measure(tree_bytes(jails) + tree_bytes(self.rules.upload_dir) + tree_bytes(work))

    async def start(self, logger: logging.Logger) -> None:
        """Listen, if not already; :class:`SourceError` with the reason when that fails."""
        if self._acceptor is not None:
            return
        self._logger = logger
        self.spool_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.rules.upload_dir.mkdir(exist_ok=True, mode=0o700)
        # Leftovers of uploads cut short by a crash: never complete, the sender pushes them again.
        for tmp in self.rules.upload_dir.iterdir():
            tmp.unlink(missing_ok=True)
        for user in self.users:
            self.jail(user).mkdir(parents=True, exist_ok=True, mode=0o700)
        key = load_or_create_host_key(self.spool_dir / HOST_KEY_FILE)
        self.fingerprint = key.get_fingerprint()
        self.rules.on_upload = self._uploaded
        self.rules.on_discard = self._discarded
        try:
            sock = dual_stack_socket(self.host, self.port)
            self._acceptor = await asyncssh.listen(
                self.host,
                self.port,
                sock=sock,
                server_factory=lambda: _Login(self.users, self._logger, self.source, self._conns),
                server_host_keys=[key],
                sftp_factory=self._session,
                # SCP runs through its own session handler, not allow_scp: see scp.py.
                session_factory=ScpSessions(self._session),
                # Channels carry bytes (SCP's stream is binary; SFTP sets this itself).
                encoding=None,
                # No line editing: with a session_factory asyncssh would wrap channels in one.
                line_editor=False,
                agent_forwarding=False,
                x11_forwarding=False,
                allow_pty=False,
                gss_host=None,
                login_timeout=LOGIN_TIMEOUT_SECS,
            )
        except OSError as exc:
            raise SourceError(f"cannot listen on {self.host}:{self.port}: {exc.strerror or exc}") from exc
        self.port = self._acceptor.get_port()
        log_event(
            logger,
            logging.INFO,
            "ssh_drop_listening",
            source=self.source,
            address=f"{self.host}:{self.port}",
            users=list(self.users),
            host_key_fingerprint=self.fingerprint,
            host_key=key.export_public_key().decode().strip(),
        )

    def _session(self, chan: asyncssh.SSHServerChannel[bytes]) -> JailSFTPServer:
        user = chan.get_extra_info("username")
        rate = None
        if self.bytes_per_sec:
            # One budget per connection, shared by its channels: opening more sessions on one
            # connection does not multiply the rate.
            conn = chan.get_connection()
            rate = self._rates.get(conn)
            if rate is None:
                rate = self._rates[conn] = ByteRate(self.bytes_per_sec)
        return JailSFTPServer(chan, user, self.jail(user), self.rules, rate)

    def _uploaded(self, rel: str, size: int) -> None:
        log_event(self._logger, logging.INFO, "file_uploaded", source=self.source, file=rel, bytes=size)
        self.on_upload(rel)

    def _discarded(self, rel: str, why: str) -> None:
        log_event(self._logger, logging.WARNING, "upload_discarded", source=self.source, file=rel, reason=why)

    async def close(self) -> None:
        """Stop listening and drop the connections still open (their uploads in progress are
        discarded: never complete, the sender pushes them again)."""
        if self._acceptor is not None:
            self._acceptor.close()
            await self._acceptor.wait_closed()
            self._acceptor = None
        conns = list(self._conns)
        for conn in conns:
            conn.close()
        for conn in conns:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(conn.wait_closed(), timeout=CLOSE_TIMEOUT_SECS)
