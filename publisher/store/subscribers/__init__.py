"""Subscribers: addresses, statuses, tags and time zones, and the events that change them.

Addresses are stored normalised and lower-cased, so one person is one row whatever the
case they typed. A row is never deleted to unsubscribe someone: the row keeps the status
(unsubscribed, bounced, complained), so a later import or `add` cannot quietly put them
back on the list. Only `remove(..., purge=True)` deletes, for erasure requests.

Lists are streamed a page at a time, never loaded whole.

The parts, re-exported here so that callers work with one module:

    values.py   what the fields may hold: addresses, names, tags, zones, the limits
    reading.py  one subscriber, a page of the list, counts, the CSV export
    changes.py  adding, editing, statuses, suppression, confirmation, imports
    erasure.py  unsubscribing by address, and erasing a person (`purge=True`)
"""

from __future__ import annotations

from publisher.store.subscriber_csv import ImportReport, Rejected
from publisher.store.subscribers.changes import (
    add,
    can_confirm,
    confirm,
    edit,
    import_csv,
    mark_confirm_sent,
    set_status,
    suppress,
)
from publisher.store.subscribers.erasure import remove
from publisher.store.subscribers.reading import (
    Listed,
    by_legacy_link,
    by_link_key,
    counts,
    export_csv,
    find,
    get,
    iter_subscribers,
    link_key,
    list_figures,
    listing,
    page,
    search_page,
    tag_counts,
    tags_of,
)
from publisher.store.subscribers.values import (
    MAX_ADDRESS,
    MAX_NAME,
    MAX_SOURCE,
    MAX_TAG,
    MAX_TAGS,
    PAGE,
    STATUS_KIND,
    SUPPRESSED,
    check_timezone,
    clean_name,
    clean_tags,
    normalize_email,
)

__all__ = [
    "MAX_ADDRESS",
    "MAX_NAME",
    "MAX_SOURCE",
    "MAX_TAG",
    "MAX_TAGS",
    "PAGE",
    "STATUS_KIND",
    "SUPPRESSED",
    "ImportReport",
    "Listed",
    "Rejected",
    "add",
    "by_legacy_link",
    "by_link_key",
    "can_confirm",
    "check_timezone",
    "clean_name",
    "clean_tags",
    "confirm",
    "counts",
    "edit",
    "export_csv",
    "find",
    "get",
    "import_csv",
    "iter_subscribers",
    "link_key",
    "list_figures",
    "listing",
    "mark_confirm_sent",
    "normalize_email",
    "page",
    "remove",
    "search_page",
    "set_status",
    "suppress",
    "tag_counts",
    "tags_of",
]
