"""Who is calling: API keys in `Authorization: Bearer ...`, their scopes and their rate.

A request without a key, with a key that is malformed, unknown or revoked gets the same
401, in the same time; a valid key without the route's scope gets 403. Either way the
route does not run, so nothing changes. Each key may make `api.rate_limit` requests a
minute, counted in the store across every process that serves the API; past that, 429
with Retry-After.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError
from starlette.concurrency import run_in_threadpool

from publisher.api import problems
from publisher.api.limits import SharedLimit
from publisher.services import access
from publisher.services.access import ApiKey

__all__ = ["ApiRefusal", "Authenticator", "bearer", "field_refusal"]

log = logging.getLogger(__name__)

bearer = HTTPBearer(auto_error=False, description="An API key from `publisher keys create`.")


class ApiRefusal(Exception):
    """Raised by a dependency to answer with a problem before the route runs."""

    def __init__(
        self, problem: problems.Problem, detail: str, headers: dict[str, str] | None = None,
        errors: list[dict[str, object]] | None = None,
    ) -> None:
        super().__init__(detail)
        self.problem = problem
        self.detail = detail
        self.headers = headers or {}
        self.errors = errors


def field_refusal(field: str, message: str) -> ApiRefusal:
    """A 422 naming one field of the body, shaped like the validation problems."""
    return ApiRefusal(
        problems.VALIDATION, f"body.{field}: {message}",
        errors=[{"loc": ["body", field], "msg": message, "type": "value_error"}],
    )


UNAUTHORIZED = ApiRefusal(
    problems.UNAUTHORIZED,
    "send a valid API key as `Authorization: Bearer KEY` (`publisher keys create` makes one)",
    {"www-authenticate": 'Bearer realm="publisher"'},
)


class Authenticator:
    """Makes one dependency per scope: `Depends(auth.scope("subscribers:read"))`."""

    def __init__(self, db: Engine, *, per_minute: int, clock: Callable[[], datetime]) -> None:
        self.db = db
        self.clock = clock
        self.limit = SharedLimit(db, per_minute, 60.0)
        self.recorder = ThreadPoolExecutor(max_workers=1, thread_name_prefix="api-key-use")

    def key_for(self, token: str) -> ApiKey | None:
        key = access.authenticate(self.db, token)
        now = self.clock()
        if key is not None and access.due_for_touch(key, now):
            # Recorded beside the request, never in its way: a bulk import holding the
            # database's write lock must not hold up the requests that follow it.
            self.recorder.submit(self._touch, key, now)
        return key

    def _touch(self, key: ApiKey, now: datetime) -> None:
        try:
            access.touch(self.db, key, now=now)
        except SQLAlchemyError as exc:
            log.warning("could not record the use of API key %r: %s", key.name, exc)

    def scope(self, scope: str) -> Callable[..., object]:
        async def check(
            request: Request,
            credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
        ) -> ApiKey:
            token = credentials.credentials if credentials is not None else ""
            key = await run_in_threadpool(self.key_for, token)
            if key is None:
                raise UNAUTHORIZED
            wait = await run_in_threadpool(self.limit.hit, key.key_id, time.time())
            if wait:
                raise ApiRefusal(
                    problems.RATE_LIMITED,
                    f"this key made more than {self.limit.limit} requests in a minute; try again in {wait:.0f} s",
                    {"retry-after": str(int(wait))},
                )
            if not key.allows(scope):
                raise ApiRefusal(problems.FORBIDDEN, f"this key lacks the scope {scope!r}")
            request.state.api_key = key
            return key

        check.__name__ = f"requires_{scope.replace(':', '_')}"
        return check
