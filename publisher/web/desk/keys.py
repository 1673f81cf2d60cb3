"""API keys (owners): the keys that may use /api/v1, one made here, one revoked here.

    GET  /desk/settings/keys            the keys: name, scopes, created, last used, prefix
    POST /desk/settings/keys            create one; the answer shows its token, once
    POST /desk/settings/keys/revoke     revoke one by name, at once

The same service functions as `publisher keys create | list | revoke`: names, scopes
and what a revoked key may do are ruled there. The token is in the body of the answer
to the POST that made it and nowhere else (not in a link, a redirect or the list); the
page lists only each key's public prefix, `pub_<key_id>_`, which is in every token and
proves nothing by itself.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from starlette.concurrency import run_in_threadpool
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from publisher.accounts import Role
from publisher.errors import Conflict, NotFound, PublisherError
from publisher.services import access
from publisher.services.access import ApiKey, NewKey
from publisher.web.desk.auth import Asked
from publisher.web.desk.context import sentence
from publisher.web.desk.section import Section

__all__ = ["KeyDesk", "KeyLine"]


@dataclass(frozen=True, slots=True)
class KeyLine:
    """One key as the page shows it: never the secret part."""

    name: str
    prefix: str
    scopes: tuple[str, ...]
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None

    @classmethod
    def of(cls, key: ApiKey) -> KeyLine:
        return cls(
            name=key.name, prefix=f"pub_{key.key_id}_", scopes=tuple(sorted(key.scopes)),
            created_at=key.created_at, last_used_at=key.last_used_at, revoked_at=key.revoked_at,
        )


class KeyDesk(Section):
    def routes(self) -> list[BaseRoute]:
        guard = self.auth.guarded
        return [
            Route("/settings/keys", guard(self.index, Role.OWNER), methods=["GET", "HEAD"]),
            Route("/settings/keys", guard(self.create, Role.OWNER), methods=["POST"]),
            Route("/settings/keys/revoke", guard(self.revoke, Role.OWNER), methods=["POST"]),
        ]

    async def index(
        self, asked: Asked, *, made: NewKey | None = None, error: str = "", status_code: int = 200,
        name: str = "", scopes: tuple[str, ...] = (),
    ) -> Response:
        keys = await run_in_threadpool(access.list_keys, self.engine)
        return self.pages.render(
            "keys", asked.desk, section="settings", status=status_code,
            keys=[KeyLine.of(k) for k in keys], all_scopes=access.SCOPES, made=made, error=error,
            name=name, chosen=scopes,
        )

    async def create(self, asked: Asked) -> Response:
        name = asked.field("name").strip()
        scopes = tuple(s for s in access.SCOPES if asked.field(f"scope-{s}") == "on")
        try:
            made = await run_in_threadpool(
                lambda: access.create_key(self.engine, name, scopes, now=asked.now)
            )
        except Conflict as exc:
            return await self.index(asked, error=sentence(exc), status_code=409, name=name, scopes=scopes)
        except PublisherError as exc:
            return await self.index(asked, error=sentence(exc), status_code=400, name=name, scopes=scopes)
        return await self.index(asked, made=made, status_code=201)

    async def revoke(self, asked: Asked) -> Response:
        try:
            await run_in_threadpool(
                lambda: access.revoke_key(self.engine, asked.field("name"), now=asked.now)
            )
        except NotFound as exc:
            return await self.index(asked, error=sentence(exc), status_code=404)
        except PublisherError as exc:
            return await self.index(asked, error=sentence(exc), status_code=409)
        return RedirectResponse("/desk/settings/keys?m=key-revoked", status_code=303)


