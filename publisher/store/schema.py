"""The tables, as SQLAlchemy Core metadata: the one description of the database.

Migrations under `migrations/` create and alter these; times are stored as timezone-aware
UTC datetimes.
"""

from __future__ import annotations

import secrets
from datetime import UTC, datetime

from sqlalchemy import (
    Boolean,
    Column,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    TypeDecorator,
    UniqueConstraint,
    false,
)
from sqlalchemy.engine import Dialect

# Named constraints, so that later migrations (SQLite's batch mode) can find them by name.
metadata = MetaData(
    naming_convention={
        "ix": "ix_%(column_0_label)s",
        "uq": "uq_%(table_name)s_%(column_0_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)


class UTCDateTime(TypeDecorator[datetime]):
    """A timestamp that goes in as UTC and comes out timezone-aware on every database.

    SQLite keeps no zone: without this, an aware non-UTC value would be stored as its
    wall-clock time and every value would be read back naive. A naive value is taken as UTC.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


UTC_TIME = UTCDateTime()


def new_token_key() -> str:
    """A subscriber's link key: 128 random bits, never reused by another database."""
    return secrets.token_hex(16)


SEARCH_INDEXES = frozenset({"ix_subscribers_email_trgm", "ix_subscribers_name_trgm"})
"""Trigram indexes (PostgreSQL's pg_trgm, GIN) on the address and the lower-cased name that
revision 0025 builds where the extension can be had, for the desk's search by a part of
either. They have no SQLite twin, so they are not declared here; a comparison of this
schema with a database leaves them out."""
SEARCH_TABLE = "subscriber_search"
"""SQLite's twin of those indexes: an FTS5 trigram table over the address and the name,
kept in step by triggers (revision 0034). A virtual table with shadow tables of its own
(`subscriber_search_*`), so it is not declared here either; a comparison leaves them out."""


subscribers = Table(
    "subscribers",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("email", String(320), nullable=False, unique=True),  # normalised, lower-case
    Column("name", String(200), nullable=False, default=""),
    Column("status", String(16), nullable=False, index=True),  # SubscriberStatus
    Column("timezone", String(64)),
    Column("source", String(64), nullable=False, default=""),  # cli, import:<file>, web
    Column("created_at", UTC_TIME, nullable=False),
    Column("updated_at", UTC_TIME, nullable=False),
    Column("confirmed_at", UTC_TIME),
    Column("confirm_sent_at", UTC_TIME),  # rate-limits confirmation mails
    # Consent kept from where a reader came: when they opted in (confirmed_at is when they
    # confirmed) and what the other service recorded about it (form, IP, plan, file).
    Column("opted_in_at", UTC_TIME),
    Column("consent_text", Text),
    # The random key that this subscriber's unsubscribe and confirmation links carry.
    Column("token_key", String(32), nullable=False, default=new_token_key),
    # Links signed before token keys existed carried the bare id: they are honoured only
    # for rows that had been mailed under that id when keys came in (see publisher.mail.tokens).
    Column("legacy_links", Boolean, nullable=False, default=False),
    Index("ix_subscribers_token_key", "token_key", unique=True),
    # The reader's own choices (their manage page): every article or the digest only, and
    # the public tags they want articles on (comma-separated; NULL for every topic).
    Column("frequency", String(16), nullable=False, default="every", server_default="every"),
    Column("topics", Text),
    # A segment's signup-date and source conditions, among active readers, read these.
    Index("ix_subscribers_status_created_at", "status", "created_at"),
    Index("ix_subscribers_status_source", "status", "source"),
    # The desk's list filtered by status, a page at a time in id order, on a large list.
    Index("ix_subscribers_status_id", "status", "id"),
    # A segment's time-zone conditions, among active readers.
    Index("ix_subscribers_status_timezone", "status", "timezone"),
    # An erased subscriber's id is never given to someone else (SQLite's AUTOINCREMENT;
    # PostgreSQL's sequence never goes back): webhook receivers and CRMs key on it.
    sqlite_autoincrement=True,
)

subscriber_tags = Table(
    "subscriber_tags",
    metadata,
    Column("subscriber_id", Integer, ForeignKey("subscribers.id", ondelete="CASCADE"), primary_key=True),
    Column("tag", String(100), primary_key=True),
    Index("ix_subscriber_tags_tag", "tag"),
    # A segment's "has tag" reads (tag, subscriber) from the index alone.
    Index("ix_subscriber_tags_tag_subscriber", "tag", "subscriber_id"),
)

# Subscribers per status (tag "") and per status and tag, and events per UTC day and kind:
# kept by the database's own triggers in the transaction of each change (migration 0027),
# so the desk reads a few rows however long the list is.
list_counts = Table(
    "list_counts",
    metadata,
    Column("status", String(16), primary_key=True),
    Column("tag", String(100), primary_key=True),
    Column("number", Integer, nullable=False),
)

event_days = Table(
    "event_days",
    metadata,
    Column("day", String(10), primary_key=True),  # "YYYY-MM-DD", UTC
    Column("kind", String(32), primary_key=True),
    Column("number", Integer, nullable=False),
)

# Copies of each issue the providers accepted per UTC minute ("YYYY-MM-DD HH:MM"), kept as
# `list_counts`: an issue's pace and the complaint rate's 30 days are read from it, not
# from the ledger.
sent_minutes = Table(
    "sent_minutes",
    metadata,
    Column("issue_id", Integer, primary_key=True),
    Column("minute", String(16), primary_key=True),
    Column("number", Integer, nullable=False),
    Index("ix_sent_minutes_minute", "minute"),
)

# Copies of each issue per ledger state, and (state "uncertain") those that may have gone
# twice: kept by triggers in the transaction of every change to a copy (migration 0031),
# so Home and the report read a few rows however many readers an issue went to.
issue_counts = Table(
    "issue_counts",
    metadata,
    Column("issue_id", Integer, primary_key=True),
    Column("state", String(16), primary_key=True),
    Column("number", Integer, nullable=False),
)

# On PostgreSQL, one aggregated line per (issue, state) a statement moved, folded into
# `issue_counts` when read (publisher.store.issues); SQLite never writes it.
issue_count_changes = Table(
    "issue_count_changes",
    metadata,
    Column("issue_id", Integer, nullable=False),
    Column("state", String(16), nullable=False),
    Column("number", Integer, nullable=False),
)

# On PostgreSQL the triggers append +1 and -1 lines here, folded into the three tables
# above when they are read (publisher.store.counts_kept); SQLite never writes them.
list_count_changes = Table(
    "list_count_changes",
    metadata,
    Column("status", String(16), nullable=False),
    Column("tag", String(100), nullable=False),
    Column("number", Integer, nullable=False),
)

event_day_changes = Table(
    "event_day_changes",
    metadata,
    Column("day", String(10), nullable=False),
    Column("kind", String(32), nullable=False),
    Column("number", Integer, nullable=False),
)

sent_minute_changes = Table(
    "sent_minute_changes",
    metadata,
    Column("issue_id", Integer, nullable=False),
    Column("minute", String(16), nullable=False),
    Column("number", Integer, nullable=False),
)

# On SQLite, a row here while an import's transaction runs (and never after it: the import
# deletes it before committing, a rollback takes it away) tells the triggers of new
# readers, status moves, tags added and events to stand aside: the import adds what its
# chunk moved to `list_counts` and `event_days` itself, once a chunk (migration 0032).
# No other connection ever sees the row, so every other writer still goes through them.
counts_by_import = Table(
    "counts_by_import",
    metadata,
    Column("id", Integer, primary_key=True),
)

# Saved segments: a name and a rule tree (publisher.store.segment_rules), compiled to one
# query whenever it is counted, listed, exported or sent to.
segments = Table(
    "segments",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("name", String(100), nullable=False, unique=True),
    Column("rules", Text, nullable=False),  # JSON, as segment_rules.dumps writes it
    Column("created_at", UTC_TIME, nullable=False),
    Column("updated_at", UTC_TIME, nullable=False),
    Column("updated_by", String(320), nullable=False, default=""),
)

events = Table(
    "events",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("subscriber_id", Integer, ForeignKey("subscribers.id", ondelete="SET NULL"), index=True),
    Column("email", String(320), nullable=False),
    Column("kind", String(32), nullable=False),  # subscribe, confirm, unsubscribe, bounce, complaint
    Column("provider", String(32), nullable=False, default=""),
    Column("detail", Text, nullable=False, default=""),
    Column("created_at", UTC_TIME, nullable=False),
    # The provider's own id of a webhook event: a redelivered event is recognised by it.
    Column("event_key", String(255)),
    Index("uq_events_provider_event_key", "provider", "event_key", unique=True),
    # Counts per day and the reactions to an issue read this, never the whole table.
    Index("ix_events_kind_created_at", "kind", "created_at"),
    # The issue an unsubscribe, bounce or complaint answers (see store.subscribers.issue_for_event).
    # No foreign key: SQLite cannot add one to a table in place, and issues are never deleted.
    Column("issue_id", Integer),
    Index("ix_events_issue_kind", "issue_id", "kind"),
)

# Every message read from the bounce mailbox or piped in by the MTA, once each (`key`: a
# hash of its Message-ID, or of its bytes when it has none), with what it was taken for
# and what was done. Those no rule could read (`outcome` "review", `decided_at` NULL) are
# the desk's review queue; a person's decision fills `decision`, `decided_at` and `decided_by`.
bounce_messages = Table(
    "bounce_messages",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("key", String(64), nullable=False, unique=True),
    Column("received_at", UTC_TIME, nullable=False),
    Column("source", String(32), nullable=False, default=""),  # pipe, imap, ...
    Column("kind", String(16), nullable=False),  # the reading: hard, soft, complaint, auto_reply, ...
    Column("outcome", String(24), nullable=False),  # what was done (services.bounce_intake.OUTCOMES)
    Column("address", String(320)),
    Column("subscriber_id", Integer, ForeignKey("subscribers.id", ondelete="SET NULL")),
    Column("issue_id", Integer),
    Column("status", String(16), nullable=False, default=""),  # the DSN's status code, e.g. 5.1.1
    Column("detail", Text, nullable=False, default=""),
    Column("size", Integer, nullable=False, default=0),  # bytes of the whole message
    Column("raw", LargeBinary, nullable=False),  # its first 256 KB
    Column("decided_at", UTC_TIME),
    Column("decision", String(16)),  # hard, soft, complaint, ignore
    Column("decided_by", String(320)),
    Index("ix_bounce_messages_outcome", "outcome", "decided_at"),
    Index("ix_bounce_messages_subscriber", "subscriber_id", "received_at"),
    Index("ix_bounce_messages_address", "address", "received_at"),
)

webhook_tokens = Table(
    "webhook_tokens",
    metadata,
    # One-time values of signed webhook calls (Mailgun's token) seen within the replay
    # window; a second call with one is a replay, whatever its body.
    Column("provider", String(32), primary_key=True),
    Column("token", String(255), primary_key=True),
    Column("expires_at", UTC_TIME, nullable=False, index=True),
)

client_hits = Table(
    "client_hits",
    metadata,
    # Requests per client (an IPv4 address or IPv6 /64) in its current fixed window.
    Column("client", String(100), primary_key=True),
    Column("window_start", UTC_TIME, nullable=False, index=True),
    Column("hits", Integer, nullable=False),
)

issues = Table(
    "issues",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("key", String(500), nullable=False, unique=True),  # article id or digest:<date>
    Column("kind", String(16), nullable=False),  # IssueKind
    Column("slug", String(200), nullable=False, default=""),
    Column("subject", Text, nullable=False),
    Column("html", Text, nullable=False),  # snapshot: RenderedIssue.html with placeholders
    Column("text", Text, nullable=False),
    Column("tag", String(100)),  # segment; NULL for everyone
    Column("status", String(16), nullable=False),  # draft, scheduled, sending, done
    Column("topics", Text),  # the article's public tags, comma-separated: who chose topics gets it if one matches
    Column("created_at", UTC_TIME, nullable=False),
    Column("enqueued_at", UTC_TIME),
    Column("finished_at", UTC_TIME),
    # A send to a saved segment: which (its id and its name then, kept if it is deleted) and
    # how many copies it queued (the segment's count at send time).
    Column("segment_id", Integer),
    Column("segment_name", String(100)),
    Column("segment_count", Integer),
)

deliveries = Table(
    "deliveries",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("issue_id", Integer, ForeignKey("issues.id", ondelete="CASCADE"), nullable=False),
    # NULL once the subscriber was erased: the row stays, emptied of them, so counts stay true.
    Column("subscriber_id", Integer, ForeignKey("subscribers.id", ondelete="SET NULL")),
    Column("email", String(320), nullable=False),
    Column("name", String(200), nullable=False, default=""),
    # queued, sending, sent, retry, failed, skipped
    Column("state", String(16), nullable=False),
    Column("attempts", Integer, nullable=False, default=0),
    Column("not_before", UTC_TIME, nullable=False),  # next attempt (retry, local time)
    Column("claimed_by", String(100)),
    Column("claimed_at", UTC_TIME),
    Column("sent_at", UTC_TIME),
    Column("provider_id", String(200), nullable=False, default=""),
    Column("detail", Text, nullable=False, default=""),
    # The left-hand part of the row's Message-ID (random, so unique in the world); every
    # retry and resume of the row sends it again.
    Column("message_key", String(64), nullable=False, default=""),
    # True once the row was in flight when a worker died: it may have been sent twice.
    Column("uncertain", Boolean, nullable=False, default=False),
    # Which subject of a subject test the copy carries (0 is the first); NULL without a test.
    Column("variant", Integer, nullable=True),
    UniqueConstraint("issue_id", "subscriber_id", name="uq_deliveries_issue_subscriber"),
    Index("ix_deliveries_claim", "state", "not_before"),
    Index("ix_deliveries_issue_state", "issue_id", "state"),
    # The desk's list of who an issue went to, a page at a time in id order, per state
    # (migration 0035): SQLite's index above has the row id last already, PostgreSQL's not.
    Index("ix_deliveries_issue_state_id", "issue_id", "state", "id"),
    Index("ix_deliveries_issue_uncertain", "issue_id", "uncertain"),
    # An unsubscribe link names its message; a provider's report, its reader's latest copy.
    Index("ix_deliveries_message_key", "message_key"),
    Index("ix_deliveries_subscriber_sent", "subscriber_id", "sent_at"),
)

schedules = Table(
    "schedules",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("issue_id", Integer, ForeignKey("issues.id", ondelete="CASCADE"), nullable=False),
    Column("run_at", UTC_TIME, nullable=False),
    Column("timezone", String(64), nullable=False),  # the zone the author named
    Column("local_time", String(32), nullable=False),  # "2026-12-01 09:00" as the author wrote it
    Column("state", String(16), nullable=False),  # pending, claimed, done, skipped, held, cancelled
    # True when the article was not on the site when scheduled: the schedule puts it there.
    Column("publishes", Boolean, nullable=False, default=False, server_default=false()),
    Column("claimed_by", String(100)),
    Column("claimed_at", UTC_TIME),
    Column("detail", Text, nullable=False, default=""),
    Column("created_at", UTC_TIME, nullable=False),
    Index("ix_schedules_state_run_at", "state", "run_at"),
)

articles_seen = Table(
    "articles_seen",
    metadata,
    Column("article_id", String(500), primary_key=True),  # Article.id (stable across edits)
    Column("slug", String(200), nullable=False),
    Column("origin", String(500), nullable=False, default=""),  # content/ or a source URL
    Column("first_seen_at", UTC_TIME, nullable=False),
    Column("handled", String(16), nullable=False),  # now, window, draft, digest, backlog
    Column("digested_at", UTC_TIME),
)

pings = Table(
    "pings",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("hub", String(500), nullable=False),
    Column("topic", String(500), nullable=False),
    Column("state", String(16), nullable=False),  # pending, done, failed
    Column("attempts", Integer, nullable=False, default=0),
    Column("not_before", UTC_TIME, nullable=False),
    Column("detail", Text, nullable=False, default=""),
    Column("created_at", UTC_TIME, nullable=False),
)

# Old addresses of articles moved in from another service (Substack's /p/slug, Ghost's
# /slug/, WordPress's /2024/05/slug/ and /?p=12): the app answers each with a 301 to the
# article's page here, and the build writes them for a static host. `old_path` is kept
# without a trailing slash ("/" alone stays), with its query when the query is the key.
redirects = Table(
    "redirects",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("old_path", String(500), nullable=False, unique=True),
    Column("target", String(500), nullable=False),  # a path on this site: "/my-article/"
    Column("source", String(64), nullable=False),  # substack, ghost, wordpress, buttondown
    Column("created_at", UTC_TIME, nullable=False),
)

sources = Table(
    "sources",
    metadata,
    Column("url", String(1000), primary_key=True),
    Column("etag", String(500)),
    Column("last_modified", String(100)),
    Column("polled_at", UTC_TIME),
    Column("ok_at", UTC_TIME),
    Column("error", Text, nullable=False, default=""),
)

source_items = Table(
    "source_items",
    metadata,
    Column("source_url", String(1000), primary_key=True),
    Column("item_id", String(1000), primary_key=True),
    Column("slug", String(200), nullable=False, default=""),
    Column("first_seen_at", UTC_TIME, nullable=False),
    Column("imported", Boolean, nullable=False, default=False),
)

rate_budgets = Table(
    "rate_budgets",
    metadata,
    # One token bucket per name ("delivery": `delivery.rate`), shared by every process.
    Column("name", String(64), primary_key=True),
    Column("tokens", Float, nullable=False),
    Column("stamp", Float, nullable=False),  # wall-clock seconds (Unix time) of the last refill
)

api_keys = Table(
    "api_keys",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("name", String(100), nullable=False, unique=True),
    Column("key_id", String(32), nullable=False, unique=True),  # the token's public part, for look-up
    Column("key_hash", String(64), nullable=False),  # SHA-256 of the whole token, hex
    Column("scopes", String(500), nullable=False),  # space-separated
    Column("created_at", UTC_TIME, nullable=False),
    Column("last_used_at", UTC_TIME),
    Column("revoked_at", UTC_TIME),
)

idempotency_keys = Table(
    "idempotency_keys",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("api_key_id", Integer, ForeignKey("api_keys.id", ondelete="CASCADE"), nullable=False),
    Column("key", String(255), nullable=False),  # the client's Idempotency-Key
    Column("fingerprint", String(64), nullable=False),  # SHA-256 of method, path and body
    Column("status", Integer),  # NULL while the first request is still being answered
    Column("content_type", String(100), nullable=False, default=""),
    Column("body", Text, nullable=False, default=""),
    Column("created_at", UTC_TIME, nullable=False, index=True),
    UniqueConstraint("api_key_id", "key", name="uq_idempotency_keys_api_key_id"),
)

import_jobs = Table(
    "import_jobs",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("state", String(16), nullable=False),  # running, done, failed
    Column("format", String(8), nullable=False),  # csv, json
    Column("rows_read", Integer, nullable=False, default=0),
    Column("imported", Integer, nullable=False, default=0),
    Column("updated", Integer, nullable=False, default=0),
    Column("kept", Integer, nullable=False, default=0),
    # Addresses already here that the file brought nothing new for: with the others it adds up to rows_read.
    Column("unchanged", Integer, nullable=False, default=0, server_default="0"),
    Column("rejected_count", Integer, nullable=False, default=0),
    Column("rejected", Text, nullable=False, default="[]"),  # JSON [{"row": n, "reason": "..."}], the first 1000
    Column("detail", Text, nullable=False, default=""),
    Column("created_at", UTC_TIME, nullable=False),
    Column("finished_at", UTC_TIME),
)

webhook_endpoints = Table(
    "webhook_endpoints",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("url", String(1000), nullable=False),
    Column("events", String(500), nullable=False),  # space-separated event types
    Column("secret", String(200), nullable=False),  # whsec_..., the signing key
    Column("created_at", UTC_TIME, nullable=False),
)

webhook_messages = Table(
    "webhook_messages",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("endpoint_id", Integer, ForeignKey("webhook_endpoints.id", ondelete="CASCADE"), nullable=False),
    Column("msg_id", String(64), nullable=False, unique=True),  # webhook-id: the same on every retry
    Column("event", String(64), nullable=False),
    Column("payload", Text, nullable=False),  # the JSON body, signed as is
    Column("state", String(16), nullable=False),  # pending, delivered, expired
    Column("attempts", Integer, nullable=False, default=0),
    Column("not_before", UTC_TIME, nullable=False),
    Column("last_error", Text, nullable=False, default=""),
    Column("created_at", UTC_TIME, nullable=False),
    Column("delivered_at", UTC_TIME),
    Index("ix_webhook_messages_due", "state", "not_before"),
)

# The author's desk: people who sign in, their sessions and failed sign-ins.
users = Table(
    "users",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("email", String(320), nullable=False, unique=True),  # normalised, lower-case
    Column("role", String(16), nullable=False),  # owner, editor, viewer
    Column("password_hash", String(200), nullable=False),  # argon2id, PHC string
    Column("created_at", UTC_TIME, nullable=False),
    Column("updated_at", UTC_TIME, nullable=False),
)

desk_sessions = Table(
    "desk_sessions",
    metadata,
    # SHA-256 of the cookie's value: a copy of the database signs nobody in.
    Column("id", String(64), primary_key=True),
    Column("user_id", Integer, ForeignKey("users.id", ondelete="CASCADE"), nullable=False, index=True),
    Column("csrf", String(64), nullable=False),
    Column("address", String(64), nullable=False, default=""),
    Column("created_at", UTC_TIME, nullable=False),
    Column("seen_at", UTC_TIME, nullable=False),
    Column("expires_at", UTC_TIME, nullable=False),
)

login_failures = Table(
    "login_failures",
    metadata,
    # Sign-in attempts per throttle key in its current fixed window, counted before the
    # password is checked (see publisher.accounts): "pair <account> <client>",
    # "client <client>" or "account <account>".
    Column("key", String(400), primary_key=True),
    Column("window_start", UTC_TIME, nullable=False, index=True),
    Column("failures", Integer, nullable=False),
)

sign_in_devices = Table(
    "sign_in_devices",
    metadata,
    # Browsers a user has signed in with: the SHA-256 of the device cookie's value.
    Column("id", String(64), primary_key=True),
    Column("user_id", Integer, ForeignKey("users.id", ondelete="CASCADE"), nullable=False, index=True),
    Column("created_at", UTC_TIME, nullable=False),
)

# A desk account's second factor: a TOTP secret, encrypted with a key drawn from
# PUBLISHER_SECRET (a copy of the database alone cannot make codes), and the last time
# step a code was accepted for, so that no code is taken twice.
sign_in_factors = Table(
    "sign_in_factors",
    metadata,
    Column("user_id", Integer, ForeignKey("users.id", ondelete="CASCADE"), primary_key=True),
    Column("secret", String(400), nullable=False),
    # A new phone's secret while it is being set up; the old one works until it is confirmed.
    Column("pending_secret", String(400), nullable=True),
    Column("enabled_at", UTC_TIME, nullable=True),  # NULL while being set up
    Column("last_step", Integer, nullable=False, default=0),
    Column("created_at", UTC_TIME, nullable=False),
)

# One-time recovery codes, by SHA-256: a used one keeps its row with `used_at`.
recovery_codes = Table(
    "recovery_codes",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("user_id", Integer, ForeignKey("users.id", ondelete="CASCADE"), nullable=False, index=True),
    Column("code_hash", String(64), nullable=False, unique=True),
    Column("used_at", UTC_TIME, nullable=True),
)

# A sign-in half done: the password was right and the code is still to come ("code"), or
# the browser went to the OpenID Connect provider and is to come back ("oidc"). Keyed by
# the SHA-256 of the value the browser holds; the nonce and PKCE verifier never leave here.
sign_in_steps = Table(
    "sign_in_steps",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("kind", String(8), nullable=False),
    Column("user_id", Integer, ForeignKey("users.id", ondelete="CASCADE"), nullable=True, index=True),
    Column("nonce", String(100), nullable=False, default=""),
    Column("verifier", String(200), nullable=False, default=""),
    Column("next_path", String(2000), nullable=False, default="/desk/"),
    Column("address", String(64), nullable=False, default=""),
    Column("expires_at", UTC_TIME, nullable=False, index=True),
)

# What the author wrote, as it was: autosaves while typing and each saved version.
article_revisions = Table(
    "article_revisions",
    metadata,
    Column("id", Integer, primary_key=True),
    # The article's slug; before its first save, "new:" and the editor's draft key.
    Column("article", String(200), nullable=False),
    Column("kind", String(16), nullable=False),  # autosave, saved
    Column("author", String(320), nullable=False),  # the desk user's address, kept if they go
    Column("text", Text, nullable=False),  # the whole file: front matter and body
    Column("fingerprint", String(64), nullable=False),  # SHA-256 of text
    Column("words", Integer, nullable=False),
    Column("created_at", UTC_TIME, nullable=False),
    Index("ix_article_revisions_article", "article", "created_at"),
)

# Owners' changes to the settings, one row per key changed: who, when, the old and the new
# value as shown in the desk (a secret's values never: "(changed)", "(set)", "(removed)").
settings_changes = Table(
    "settings_changes",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("changed_at", UTC_TIME, nullable=False, index=True),
    Column("who", String(320), nullable=False),
    Column("key", String(200), nullable=False),
    Column("old", Text, nullable=False),
    Column("new", Text, nullable=False),
)

# Each member of a provider pool as every worker sees it: its circuit breaker (closed:
# in use; open: failing, left alone until a cool-down passes; half_open: one probe call
# on its way) and what went wrong, for Home and `publisher status`.
provider_state = Table(
    "provider_state",
    metadata,
    Column("member", String(64), primary_key=True),
    Column("state", String(16), nullable=False, default="closed"),
    Column("failures", Integer, nullable=False, default=0),  # provider-level failures in a row
    Column("opened_at", UTC_TIME, nullable=True),  # last opened, or the probe's start when half_open
    Column("failing_since", UTC_TIME, nullable=True),  # first failure of the current run of them
    Column("last_error", Text, nullable=False, default=""),
    Column("updated_at", UTC_TIME, nullable=False),
)

# Networks (an IPv4 /24 or IPv6 /64) whose signups went past a limit (per client or per network):
# how many were refused, first and last, so that Home tells the author.
signup_throttles = Table(
    "signup_throttles",
    metadata,
    Column("network", String(64), primary_key=True),
    Column("first_at", UTC_TIME, nullable=False),
    Column("last_at", UTC_TIME, nullable=False, index=True),
    Column("refused", Integer, nullable=False),
)

# Opens and clicks, only while `analytics.enabled` is on. One row per request: a person's
# copy (delivery_id) only while `analytics.per_person` is on, NULL otherwise; `machine` rows
# (proxies, scanners, HEAD requests) are kept apart with the reason, never counted as readers.
engagement = Table(
    "engagement",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("delivery_id", Integer, ForeignKey("deliveries.id", ondelete="SET NULL")),
    Column("issue_id", Integer, ForeignKey("issues.id", ondelete="CASCADE"), nullable=False),
    Column("kind", String(8), nullable=False),  # open, click
    Column("link_id", Integer),  # NULL for opens
    Column("at", UTC_TIME, nullable=False),
    Column("machine", Boolean, nullable=False, default=False),
    Column("reason", String(64), nullable=False, default=""),
    # The reader of the copy, beside delivery_id and only with it (per person; NULL once they
    # were erased): a segment's "opened in the last N issues" reads it without the ledger.
    Column("subscriber_id", Integer, ForeignKey("subscribers.id", ondelete="SET NULL")),
    # Covers every count of an issue: the report reads this index, never the table.
    Index("ix_engagement_issue_kind", "issue_id", "kind", "machine", "reason", "link_id", "delivery_id"),
    Index("ix_engagement_delivery", "delivery_id"),
    # Who opened (clicked) an issue, and whether one reader did: a segment's engagement conditions.
    Index("ix_engagement_issue_reader", "issue_id", "kind", "machine", "subscriber_id"),
    Index("ix_engagement_reader", "subscriber_id", "issue_id"),
)

# Each copy that opened or clicked, once: a digest of the copy's random message key (never
# its ledger row), so unique opens and clicks, per link and per subject of a subject test, are
# counted without a per-person record (`publisher.store.engagement` says why a digest, and
# how an erasure cuts them loose). Link 0 is the copy as a whole; readers only, never machines.
engagement_seen = Table(
    "engagement_seen",
    metadata,
    Column("issue_id", Integer, ForeignKey("issues.id", ondelete="CASCADE"), primary_key=True),
    Column("kind", String(8), primary_key=True),  # open, click
    Column("link_id", Integer, primary_key=True),  # 0: the copy, whichever link
    Column("digest", String(32), primary_key=True),
    Column("variant", Integer),  # the subject the copy carried, in a subject test
)

# The links that were in an issue's HTML, numbered from 1: a click token names a number,
# and only a URL found here is ever redirected to.
links = Table(
    "links",
    metadata,
    Column("issue_id", Integer, ForeignKey("issues.id", ondelete="CASCADE"), primary_key=True),
    Column("link_id", Integer, primary_key=True),
    Column("url", Text, nullable=False),
)

# Welcome and drip sequences (`publisher.store.sequences`). A sequence's steps are files;
# these rows keep what the files cannot: when each sequence and step was first seen (a
# step added later reaches only readers whose day for it is still to come), how far the
# event log has been read for enrolment, who is in which sequence since when, and each
# (sequence, step, reader) handed to the ledger once, whatever text the step had then.
sequences = Table(
    "sequences",
    metadata,
    Column("name", String(100), primary_key=True),
    Column("first_seen_at", UTC_TIME, nullable=False),
    Column("last_event_id", Integer, nullable=False, default=0),  # events read for enrolment
    Column("steps_key", String(64), nullable=False, default=""),  # the step list last seen
)

sequence_steps = Table(
    "sequence_steps",
    metadata,
    Column("sequence", String(100), primary_key=True),
    Column("step", String(100), primary_key=True),
    Column("first_seen_at", UTC_TIME, nullable=False),
)

sequence_enrolments = Table(
    "sequence_enrolments",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("sequence", String(100), nullable=False),
    Column("subscriber_id", Integer, ForeignKey("subscribers.id", ondelete="CASCADE"), nullable=False),
    Column("started_at", UTC_TIME, nullable=False),  # the event's time: delays count from it
    Column("state", String(16), nullable=False),  # active, stopped
    Column("next_at", UTC_TIME),  # when its next step is due; NULL while none is waiting
    Column("detail", Text, nullable=False, default=""),
    UniqueConstraint("sequence", "subscriber_id", name="uq_sequence_enrolments_sequence_subscriber"),
    Index("ix_sequence_enrolments_due", "state", "next_at"),
    Index("ix_sequence_enrolments_subscriber", "subscriber_id"),
)

sequence_sends = Table(
    "sequence_sends",
    metadata,
    Column("sequence", String(100), primary_key=True),
    Column("step", String(100), primary_key=True),
    Column("subscriber_id", Integer, ForeignKey("subscribers.id", ondelete="CASCADE"), primary_key=True),
    Column("issue_id", Integer),  # the step's issue (its text then); NULL for a step passed by
    Column("at", UTC_TIME, nullable=False),
    Index("ix_sequence_sends_subscriber", "subscriber_id"),
)

# Readers an import let into a sequence by name (`subscribers import --sequence NAME`),
# written in the import's own transaction: enrolment, reading that import's events, starts
# the sequence for them (and only them). Kept afterwards as the record of why they entered.
sequence_doors = Table(
    "sequence_doors",
    metadata,
    Column("sequence", String(100), primary_key=True),
    Column("subscriber_id", Integer, ForeignKey("subscribers.id", ondelete="CASCADE"), primary_key=True),
    Column("at", UTC_TIME, nullable=False),
    Index("ix_sequence_doors_subscriber", "subscriber_id"),
)

# Subject tests: an issue's two to four subjects, the share of its readers that tries them
# (the rest wait as `held` ledger rows), when and by what the winner is chosen, and the
# decision once made (kept, so that the report never changes after the rest went out).
subject_tests = Table(
    "subject_tests",
    metadata,
    Column("issue_id", Integer, ForeignKey("issues.id", ondelete="CASCADE"), primary_key=True),
    Column("subjects", Text, nullable=False),  # JSON list, the first is the one kept on a tie
    Column("sample_percent", Integer, nullable=False),
    Column("metric", String(8), nullable=False),  # clicks, opens
    Column("seed", Integer, nullable=False),  # draws the sample: the same readers on every run
    Column("decide_at", UTC_TIME, nullable=False),
    Column("created_at", UTC_TIME, nullable=False),
    Column("sampled_at", UTC_TIME),  # the sample's rows were given their subjects
    Column("decided_at", UTC_TIME),
    Column("winner", Integer),  # index into subjects
    Column("reason", Text, nullable=False, default=""),
    Column("figures", Text, nullable=False, default=""),  # JSON: each variant's numbers at the decision
    Column("released_at", UTC_TIME),  # the held rows were queued with the winner
    # A test planned with a schedule: its wait starts when the schedule starts the send
    # (NULL: decide_at is a time the author named, or the test started at once).
    Column("wait_seconds", Integer),
    Index("ix_subject_tests_decide_at", "decided_at", "decide_at"),
)
