"""The mail provider the actions send through, as the faces hold it.

A face makes the provider once from the config (`make_provider`, which imports only the
module of the provider configured) and hands a factory for it to the actions that send
(`Provider` is the interface they take), so that a test or the demo can hand in another.

`pool_status` says in words how a provider pool (`provider = "pool"`) stands, for Home
and `publisher status`: which member is failing since when and why, and which one the
send goes through instead; nothing while every member is well.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Engine

from publisher.config import Config
from publisher.delivery.base import Provider, make_provider
from publisher.delivery.pool import describe
from publisher.store import provider_state

__all__ = ["Provider", "make_provider", "pool_status"]


def pool_status(config: Config, engine: Engine, *, now: datetime) -> list[str]:
    """"Postmark failing since 10:02 (connection refused); sending through SMTP relay", or
    "all providers failing: the send waits and resumes by itself"; [] without a pool."""
    if config["delivery.provider"] != "pool" or not config.pool:
        return []
    members = [m.provider for m in sorted(config.pool, key=lambda m: m.priority)]
    return describe(
        provider_state.read(engine, members), members, now=now,
        cooldown=float(config["delivery.breaker_cooldown"]), zone=config.tz,
    )
