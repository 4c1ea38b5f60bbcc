"""Where the gateway finds a recording's file: the PBX names it by its own path
(MixMonitor: /var/spool/asterisk/monitor/2026/12/06/x.wav); the gateway reads the same
folder where it is mounted here. A name that leads outside that folder (`..`, an absolute
path elsewhere, a symbolic link out) is refused, never read."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path, PurePosixPath

MEDIA = {".wav": "audio/wav", ".mp3": "audio/mpeg", ".ogg": "audio/ogg", ".gsm": "audio/x-gsm"}


@dataclass(frozen=True)
class RecordingsFolder:
    here: Path  # the folder on this host (--recordings-dir)
    on_pbx: str = "/var/spool/asterisk/monitor"  # the same folder as the PBX names it

    def file_of(self, name: str) -> Path | None:
        """The file for a recording's name, or None when the name leads outside the folder
        or no such file is there."""
        path = PurePosixPath(name)
        prefix = PurePosixPath(self.on_pbx)
        if path.is_absolute():
            if not path.is_relative_to(prefix):
                return None
            path = path.relative_to(prefix)
        if ".." in path.parts or not path.parts:
            return None
        root = self.here.resolve()
        found = (root / path).resolve()
        if not found.is_relative_to(root) or not found.is_file():
            return None
        return found

    @staticmethod
    def media_type(path: Path) -> str:
        return MEDIA.get(path.suffix.lower(), "application/octet-stream")
