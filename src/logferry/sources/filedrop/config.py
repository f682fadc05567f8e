"""Configuration of the file drop sources: ``ssh_drop`` (an embedded SCP/SFTP receiver) and ``directory``
(a watched directory for files delivered by other means).

Both read complete files line by line with the same options (``format``, ``timezone``, ``after``,
archive retention, name-based dedupe), so those live on one base model. Example::

    sources:
      esa:
        type: ssh_drop
        listen: 0.0.0.0:2222
        users:
          esa1: /etc/logferry/esa1_authorized_keys   # the ESA's public key, as in ~/.ssh/authorized_keys
        format: esa
        timezone: Europe/Berlin                      # the appliance's zone: its log lines carry none
      drops:
        type: directory
        path: /srv/esa-drop
        format: esa
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from pydantic import Field, field_validator, model_validator

from logferry.config.base import BuildContext, SourceConfig
from logferry.config.listen import parse_listen
from logferry.core.registry import register_source
from logferry.formats import ParseError
from logferry.formats.esa import zone

if TYPE_CHECKING:
    from logferry.sources.filedrop.source import FileDropSource

__all__ = ["DirectoryConfig", "FileDropConfig", "SshDropConfig"]

#: Twice an hourly rollover: a log subscription pushes a file per rollover (size or time, whichever
#: comes first), and hourly is a common interval (the appliance's own default is unconfirmed).
DEFAULT_STALE_AFTER_SECS = 7200.0
DEFAULT_ARCHIVE_MAX_FILES = 1000
DEFAULT_MAX_FILE_BYTES = 1024**3
DEFAULT_MAX_SPOOL_BYTES = 8 * 1024**3
_USER = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}$")


class FileDropConfig(SourceConfig):
    """What both file drop sources share: how a complete file becomes records and what happens to it."""

    format: Literal["esa", "lines"] = Field(
        "esa",
        description="How lines are read. 'esa': Cisco Secure Email text mail logs (one record per line "
        "with the parsed fields and ICID/MID/DCID/RID; only files named <name>.@<timestamp>.s are read, "
        "'.c'/'.current' files are left until renamed). 'lines': one record per line, the raw text in "
        "'message'; every file is read.",
        examples=["esa"],
    )
    timezone: str = Field(
        "UTC",
        description="Time zone of the appliance for timestamps that carry none (ESA log lines): 'UTC', an "
        "offset such as '+0200', or an IANA name.",
        examples=["Europe/Berlin"],
    )
    after: Literal["archive", "delete"] = Field(
        "archive",
        description="What happens to a file once all its lines are committed: 'archive' moves it to "
        "archive_dir (keeps the original for a replay, bounded by archive_max_files), 'delete' removes it.",
        examples=["archive"],
    )
    archive_dir: str | None = Field(
        None,
        description="Where processed files go with after: archive. Default: the 'archive' directory "
        "under this source's spool in the data dir (next to the state file).",
        examples=["/var/lib/logferry/esa-archive"],
    )
    archive_max_files: int = Field(
        DEFAULT_ARCHIVE_MAX_FILES,
        ge=1,
        description="The archive keeps this many newest files; older ones are deleted.",
        examples=[1000],
    )
    dedupe_by_file_name: bool | None = Field(
        None,
        description="Give each line the id '<file name>|<line number>', so a file delivered again under "
        "the same name within dedupe_ttl_secs is dropped (the appliance re-pushes files whose transfer "
        "failed). Default: on for format esa (its file names carry a timestamp and never repeat), off for "
        "lines (senders may reuse a name for new content, which would then be dropped).",
        examples=[True],
    )
    scan_interval_secs: float = Field(
        10.0,
        gt=0,
        description="Seconds between looks for new files (an SCP/SFTP upload is picked up at once).",
        examples=[10],
    )
    stale_after_secs: float | None = Field(
        None,
        gt=0,
        description="Health turns red when no file has arrived for this long. Default: 7200 (twice an "
        "hourly rollover); set it to twice the log subscription's rollover interval.",
        examples=[7200],
    )

    @field_validator("timezone")
    @classmethod
    def _zone(cls, v: str) -> str:
        try:
            zone(v)
        except ParseError as exc:
            raise ValueError(f"{exc}; for example 'UTC', '+0200' or 'Europe/Berlin'") from None
        return v

    @property
    def ids_by_file_name(self) -> bool:
        return self.format == "esa" if self.dedupe_by_file_name is None else self.dedupe_by_file_name

    def spool_path(self, name: str, ctx: BuildContext) -> Path:
        """This source's own directory: files in progress, the default archive, the host key."""
        return ctx.data_dir / "filedrop" / name


@register_source("ssh_drop")
class SshDropConfig(FileDropConfig):
    """An embedded SSH server that accepts SCP and SFTP uploads (Cisco Secure Email 'SCP Push')."""

    type: Literal["ssh_drop"] = Field(description="Source type.", examples=["ssh_drop"])
    listen: str = Field(
        "127.0.0.1:2222",
        description="Address and port the SSH server listens on; [::]:2222 accepts appliances on the "
        "network over IPv4 and IPv6, 0.0.0.0:2222 over IPv4 only.",
        examples=["0.0.0.0:2222"],
    )
    users: dict[str, str] = Field(
        min_length=1,
        description="Login name -> authorized_keys file with the public key(s) allowed to log in as it. "
        "Only public key login; each user writes into a directory of its own and sees nothing else.",
        examples=[{"esa1": "/etc/logferry/esa1_authorized_keys"}],
    )
    spool_dir: str | None = Field(
        None,
        description="Where uploads, files in progress, the archive and the host key live. Default: "
        "filedrop/<source name> in the data dir (next to the state file). Keep it on one file system.",
        examples=["/var/lib/logferry/filedrop/esa"],
    )
    max_file_bytes: int = Field(
        DEFAULT_MAX_FILE_BYTES,
        gt=0,
        description="Largest file accepted; a larger upload fails with an SFTP/SCP error and nothing of it "
        "is read.",
        examples=[1073741824],
    )
    max_spool_bytes: int = Field(
        DEFAULT_MAX_SPOOL_BYTES,
        gt=0,
        description="Total bytes of uploads waiting or in progress; uploads beyond it fail until files are "
        "processed (the appliance retries them at its next push).",
        examples=[8589934592],
    )
    max_upload_bytes_per_sec: int | None = Field(
        None,
        gt=0,
        description="Upload rate limit per connection, in bytes per second; unset: no limit.",
        examples=[10485760],
    )

    @field_validator("listen")
    @classmethod
    def _listen(cls, v: str) -> str:
        parse_listen(v)
        return v

    @field_validator("users")
    @classmethod
    def _users(cls, v: dict[str, str]) -> dict[str, str]:
        bad = [u for u in v if not _USER.match(u)]
        if bad:
            raise ValueError(
                f"login names {bad} are not allowed: use letters, digits, '_', '.', '-' (not first)"
            )
        return v

    def spool_path(self, name: str, ctx: BuildContext) -> Path:
        return Path(self.spool_dir).expanduser() if self.spool_dir else super().spool_path(name, ctx)

    def build(self, name: str, ctx: BuildContext) -> FileDropSource:
        from logferry.sources.filedrop.source import build_ssh_drop

        return build_ssh_drop(name, self, ctx)


@register_source("directory")
class DirectoryConfig(FileDropConfig):
    """Reads files that appear in a directory (delivered by FTP, rsync, a mount...), each once."""

    type: Literal["directory"] = Field(description="Source type.", examples=["directory"])
    path: str = Field(
        min_length=1,
        description="The directory to watch (and its subdirectories; names starting with '.' are skipped). "
        "Deliver files by renaming them into it, or see settle_secs.",
        examples=["/srv/esa-drop"],
    )
    settle_secs: float = Field(
        5.0,
        ge=0,
        description="A file is read only once it has not changed for this long, for senders that write "
        "in place instead of renaming a finished file into the directory. 0 = read at once.",
        examples=[5],
    )

    @model_validator(mode="after")
    def _archive_outside(self) -> DirectoryConfig:
        if self.archive_dir is None:
            return self
        watched = Path(self.path).expanduser().resolve()
        archive = Path(self.archive_dir).expanduser().resolve()
        # Inside the watched tree, only a hidden directory is skipped by the scan.
        hidden = watched in archive.parents and any(
            p.startswith(".") for p in archive.relative_to(watched).parts
        )
        if (archive == watched or watched in archive.parents) and not hidden:
            raise ValueError(
                "archive_dir is inside path, so archived files would be read again; "
                "put it elsewhere or under a directory whose name starts with '.'"
            )
        return self

    def build(self, name: str, ctx: BuildContext) -> FileDropSource:
        from logferry.sources.filedrop.source import build_directory

        return build_directory(name, self, ctx)
