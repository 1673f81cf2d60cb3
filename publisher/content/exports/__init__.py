"""Other services' export files, read as they are documented. Pure.

An export arrives as a zip, a folder or one file; `publisher.services.migration.open_export`
checks it (no member that climbs out, no bomb) and hands the readers here an `ExportFiles`:
member names and their bytes, already in memory, so no reader touches the disk.

    substack.py    the export zip: posts.csv and posts/<id>.<slug>.html
    ghost.py       the JSON export: posts in Lexical, mobiledoc or HTML, tags, authors
    wordpress.py   the WXR file: posts, pages, categories, tags, attachments
    buttondown.py  the export: emails.csv (or .json) and emails/<slug>.md
    listmonk.py    campaigns: the API's JSON, or a database dump (read by pg_dump.py, never run)
    articles.py    what every article reader returns (`ExportedArticle`, `ArticleBatch`)

Every reader names the file and the record in what it refuses, so an author can find it.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Mapping
from dataclasses import dataclass, field

from publisher.errors import SourceError

__all__ = ["ExportFiles"]


@dataclass(frozen=True, slots=True)
class ExportFiles:
    """An export's files: relative POSIX name -> bytes, and what to call it in messages.

    `label` is what the author named (the zip, the folder or the file). A single file
    is one member under its own name.
    """

    label: str
    members: Mapping[str, bytes] = field(default_factory=dict)

    def names(self, *patterns: str) -> list[str]:
        """Member names (sorted) matching any of the glob `patterns` on their last part,
        case-insensitively; every name without patterns."""
        names = sorted(self.members)
        if not patterns:
            return names
        lowered = [p.lower() for p in patterns]
        return [n for n in names if any(fnmatch.fnmatchcase(n.rsplit("/", 1)[-1].lower(), p) for p in lowered)]

    def where(self, name: str) -> str:
        """How a member is named in a message: `export.zip: posts.csv`."""
        if name == self.label.rsplit("/", 1)[-1] and len(self.members) == 1:
            return self.label
        return f"{self.label}: {name}"

    def read(self, name: str) -> bytes:
        try:
            return self.members[name]
        except KeyError:
            raise SourceError(f"{self.label}: has no {name}; is it the right export?") from None

    def text(self, name: str) -> str:
        """A member as text: UTF-8 with or without a byte-order mark, any line endings."""
        data = self.read(name)
        try:
            text = data.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            raise SourceError(
                f"{self.where(name)}: is not UTF-8 text (byte {exc.start}); export it again as UTF-8"
            ) from exc
        return text.replace("\r\n", "\n").replace("\r", "\n")
