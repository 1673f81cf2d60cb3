"""feedgen's extensions for what its writers leave out: WebSub hubs in RSS, dc:creator and
dcterms:modified per entry, media:thumbnail. A module of its own so that feedgen and lxml
load only when a build writes a feed (`publisher.site.feeds` imports it then)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from feedgen.ext.base import BaseEntryExtension, BaseExtension
from feedgen.util import xml_elem

from publisher.site import feeds

__all__ = ["MediaEntryExtension", "MediaExtension", "RssEntryExtension", "RssExtension"]


class RssExtension(BaseExtension):  # type: ignore[misc]
    """Adds the `atom:link rel="hub"` elements feedgen's RSS writer leaves out."""

    def __init__(self) -> None:
        self.hubs: tuple[str, ...] = ()

    def extend_ns(self) -> dict[str, str]:
        return {"dc": feeds.DC_NS, "dcterms": feeds.DCTERMS_NS}

    def extend_rss(self, feed: Any) -> Any:
        channel = feed.find("channel")
        anchor = channel.find(f"{{{feeds.ATOM_NS}}}link")
        position = list(channel).index(anchor) + 1 if anchor is not None else len(channel)
        for offset, hub in enumerate(self.hubs):
            link = xml_elem(f"{{{feeds.ATOM_NS}}}link", href=hub, rel="hub")
            channel.insert(position + offset, link)
        return feed


class RssEntryExtension(BaseEntryExtension):  # type: ignore[misc]
    """dc:creator (RSS's `author` must be an email address) and dcterms:modified."""

    def __init__(self) -> None:
        self.creator = ""
        self.modified: datetime | None = None

    def extend_rss(self, item: Any) -> Any:
        if self.creator:
            xml_elem(f"{{{feeds.DC_NS}}}creator", item).text = self.creator
        if self.modified is not None:
            xml_elem(f"{{{feeds.DCTERMS_NS}}}modified", item).text = feeds._rfc3339(self.modified)
        return item


class MediaExtension(BaseExtension):  # type: ignore[misc]
    def extend_ns(self) -> dict[str, str]:
        return {"media": feeds.MEDIA_NS}


class MediaEntryExtension(BaseEntryExtension):  # type: ignore[misc]
    """`media:thumbnail`: the lead image readers show beside an entry in their list."""

    def __init__(self) -> None:
        self.image = ""

    def extend_atom(self, entry: Any) -> Any:
        if self.image:
            xml_elem(f"{{{feeds.MEDIA_NS}}}thumbnail", entry, url=self.image)
        return entry

    def extend_rss(self, item: Any) -> Any:
        return self.extend_atom(item)
