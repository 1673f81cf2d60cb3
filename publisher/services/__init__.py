"""The actions of publisher, one function each: what the CLI, the HTTP API and the desk call.

A face (a command, a route, a form) parses its input, calls one function here and
presents what comes back; every rule (validation, unsubscribe wins, exactly once) lives
in these functions or below them, never in a face. Each function takes what it needs of
the config (`Config`), the store (an SQLAlchemy `Engine` from `publisher.store.open_store`)
and the time (`now`, timezone-aware), returns frozen dataclasses, and raises only from
`publisher.errors`, whose class says what went wrong (NotFound, InvalidRequest,
Conflict, SubscriberError, ContentError, ConfigError, ...) and whose message says what
to do.

    subscribers  subscribe, get_subscriber, update_subscriber, unsubscribe, erase,
                 export_subscriber, import_subscribers, list_subscribers (cursor pages),
                 iter_subscribers, counts, tags, link_holder (whom a mail's link names)
    articles     list_articles (with state), get_article, write_article, preview
    catalogue    the articles under content/ through the build cache (what every action
                 that needs them reads them with: no file parsed twice)
    issues       plan_send (dry run), test_send, send_now, blocking_problems, issue_status
    scheduling   schedule_send, start_schedule (the daemon, at the minute), cancel_schedule,
                 list_schedules, agenda (held, scheduled, waiting), notify_owners
    issues       ... create_issue, get_issue, send_issue, article_slug, cancel_issue,
                 issue_failures (the same actions on an issue already in the ledger)
    imports      start_import (a bulk import as a job), get_import, preview_import
    stats        subscriber_days, issue_counts, send_pace
    complaints   complaint_rate (30 days), issue_complaint_rate, stop_for_complaints: the
                 stop at 0.3% that an owner may override knowingly, recorded
    access       create_key, list_keys, revoke_key (API keys); add_endpoint,
                 list_endpoints, remove_endpoint (outbound webhooks); authenticate,
                 claim_request (Idempotency-Key answers)
    bounces      first_use, suppress_all: what a provider's verified webhook does
    delivering   deliver, recover, fail_unusable: the queue sent in the foreground;
                 run_worker (`publisher worker`)
    preferences  a reader's own page: public_topics, preferences_of, save_preferences
    signup       register, confirm_state, unsubscribe_by_link (the public subscribe flow)
    site         build_site, check_site, start_draft (`publisher build`, `check`, `new`),
                 output_folder, manifest_files (what the build wrote, which is served)
    readiness    go_live_gaps, article_findings: what stands between the setup and readers
    previews     run_checks (before a send), issue_email (an issue as it went out)
    providers    Provider, make_provider: the mail provider the sending actions take
    media        store_image, list_media, delete_image, usage (pictures)
    pages        template_environment, feed_url, translations: what the web face's pages
                 are rendered with
    paging       next_after: where the next of a keyset page's pages starts
    revisions    an article's saved versions
    article_import  import_articles (someone else's page or feed)
    starter      check_answer, starter_files, updated_config (`publisher init`)
    doctor       diagnose: a live setup checked end to end (`publisher doctor`)
    backup       create_backup, restore_backup, scheduled_backup, prune_backups (archives);
                 backup_archive: the archive's format and verify_archive
    settings     settings_view, save_settings: the desk's Settings forms, written back to
                 config.toml and audited; settings_text: the fields, the text edit, cron in
                 words; credentials: a provider's key checked without sending

Delivering queued rows is the delivery engine's job (`publisher.delivery.engine`), run
in the foreground by `publisher send` (through `delivering`) and in the background by
`publisher serve`.
"""

from __future__ import annotations

import importlib
from types import ModuleType

__all__ = [
    "access",
    "article_import",
    "articles",
    "backup",
    "backup_archive",
    "bounces",
    "catalogue",
    "complaints",
    "credentials",
    "delivering",
    "doctor",
    "imports",
    "issues",
    "media",
    "pages",
    "paging",
    "preferences",
    "previews",
    "providers",
    "readiness",
    "revisions",
    "scheduling",
    "settings",
    "settings_text",
    "signup",
    "site",
    "starter",
    "stats",
    "subscribers",
]


def __getattr__(name: str) -> ModuleType:
    # Each face imports the modules it uses; `status` must not pay for the renderer.
    if name in __all__:
        return importlib.import_module(f"publisher.services.{name}")
    raise AttributeError(f"module 'publisher.services' has no attribute {name!r}")
