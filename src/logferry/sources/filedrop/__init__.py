"""File drop sources: ``ssh_drop`` (embedded SCP/SFTP receiver) and ``directory`` (watched directory)."""

from __future__ import annotations

from logferry.sources.filedrop.config import DirectoryConfig, SshDropConfig
from logferry.sources.filedrop.source import FileDropSource

__all__ = ["DirectoryConfig", "FileDropSource", "SshDropConfig"]
