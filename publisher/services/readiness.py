"""Is the publication ready for real readers? What the desk's Settings and Home show an owner.

`go_live_gaps` names each thing between this configuration and real readers (a postal
address, a real provider, the signing secret, https, DKIM); `article_findings` every
article file's problem, or that there is none yet; `secrets_set` which of the secrets
the environment provides, by name only, never the value. `newest_public_slug` is the
article a provider test sends.
"""

from __future__ import annotations

from datetime import datetime

from publisher.config import Config
from publisher.errors import ContentError, PublisherError
from publisher.mail import tokens
from publisher.services.catalogue import catalogue
from publisher.services.settings_text import CHOICE_WORDS

__all__ = ["SECRET_NAMES", "article_findings", "go_live_gaps", "newest_public_slug", "secrets_set"]

SECRET_NAMES = (
    tokens.SECRET_ENV, "PUBLISHER_SMTP_PASSWORD", "PUBLISHER_POSTMARK_TOKEN", "PUBLISHER_SENDGRID_API_KEY",
    "PUBLISHER_MAILGUN_API_KEY", "PUBLISHER_RESEND_API_KEY",
)


def go_live_gaps(config: Config) -> list[str]:
    """What stands between this configuration and real readers, in the desk's words: each
    thing to change names Settings (the desk links the word) rather than a config key."""
    gaps = []
    if not str(config["publication.postal_address"]).strip():
        gaps.append("Add your postal address in Settings: every email must carry it.")
    if config["delivery.provider"] == "maildir":
        # Named as Settings offers it: "maildir" is the config's word, not the author's.
        chosen = CHOICE_WORDS["provider"]["maildir"]
        gaps.append(f"Choose a real mail provider in Settings: it is now “{chosen}”.")
    if not config.secret(tokens.SECRET_ENV):
        gaps.append(f"Set {tokens.SECRET_ENV} in the server's environment: it signs unsubscribe links.")
    if not str(config["server.public_url"]).strip() and config.public_url.startswith("http://"):
        gaps.append("Serve the app over https and give its https address in Settings.")
    if not str(config["delivery.dkim.domain"]).strip():
        gaps.append("Sign with DKIM in Settings, or let your provider sign for your domain.")
    return gaps


def secrets_set(config: Config) -> list[tuple[str, bool]]:
    """Each secret's name, and whether the environment sets it."""
    return [(name, bool(config.secret(name))) for name in SECRET_NAMES]


def article_findings(config: Config) -> list[str]:
    """Every article file's problem; that there are no articles yet, if so."""
    try:
        listed = catalogue(config)
        articles, problems = listed.articles, listed.problems
    except ContentError as exc:  # the content folder itself is missing or unreadable
        return [str(exc)]
    found = [str(p) for p in problems]
    if not articles:
        found.append(f"No articles yet in {config.path_of('build.content')}.")
    return found


def newest_public_slug(config: Config, now: datetime) -> str:
    """The newest article on the site; PublisherError when there is none to test with."""
    articles = [a for a in catalogue(config).parsed() if a.is_public(now)]
    if not articles:
        raise PublisherError("publish an article first: the test sends the newest one")
    return articles[0].slug
