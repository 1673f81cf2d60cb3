"""Someone else's page or feed into this publication's articles, and whether they are mailed.

One page imported is a new article: the daemon mails it as it would any new file (unless
told not to). A whole feed is the author's back catalogue: its articles join the archive
and the feeds, and are filed as seen so that no policy mails them (unless told to).
Extraction pulls in trafilatura and lxml, so they are imported here only when an import
runs, never for every command.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from publisher.config import Config
from publisher.models import Article
from publisher.store import open_store

__all__ = ["Imported", "import_articles"]


@dataclass(frozen=True, slots=True)
class Imported:
    written: tuple[tuple[Path, Article], ...]
    filed: bool
    """Filed as back catalogue: on the site, never mailed."""


def import_articles(
    config: Config, location: str, *, now: datetime, force: bool = False, base_url: str | None = None,
    send: bool | None = None,
) -> Imported:
    """Import the page or feed at `location` (URL or file); `send` None means "one page is mailed"."""
    from publisher.content.importer import import_location
    from publisher.content.sources import file_as_backlog

    written = import_location(config, location, now=now, force=force, base_url=base_url)
    mail = send if send is not None else len(written) == 1
    if not mail:
        file_as_backlog(open_store(config.store_url), [a for _, a in written], origin=location, now=now)
    return Imported(written=tuple(written), filed=not mail)
