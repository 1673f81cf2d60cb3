"""A router that tries only the routes a path could match: those of its first segment.

Starlette's `Router` asks every route in turn whether it matches, a regular expression
each; the app and the desk hold well over a hundred, so a desk page was matched against
most of them before its own (a tenth of a busy desk's CPU). `IndexedRouter` groups the
routes by the literal first segment of their path (`/subscribers/{id:int}` under
"subscribers", the mount `/desk` under "desk") and asks, in their order, only the
routes of the request's first segment and those whose first segment is not literal
(a parameter, or a route with no path). A route of another literal segment cannot match,
so the first full match, and the first partial one (405), are the same routes as
Starlette's. A request nothing matched goes to Starlette's own loop, which gives the
same redirect of a trailing slash or the same 404 as before.
"""

from __future__ import annotations

from collections.abc import Sequence

from starlette._utils import get_route_path  # the path routes match against, as `Route.matches` reads it
from starlette.routing import BaseRoute, Match, Router
from starlette.types import Receive, Scope, Send

__all__ = ["IndexedRouter", "first_segment"]


def first_segment(path: str) -> str | None:
    """The literal first segment of a route's path ("" for "/"), or None when it holds a parameter."""
    segment = path.lstrip("/").split("/", 1)[0]
    return None if "{" in segment else segment


class IndexedRouter(Router):
    """`Router` that matches a request against the routes of its path's first segment only."""

    _indexed: tuple[int, dict[str, list[BaseRoute]], list[BaseRoute]] | None = None

    def _candidates(self, route_path: str) -> Sequence[BaseRoute]:
        index = self._indexed
        if index is None or index[0] != len(self.routes):  # routes added after the first request
            index = self._indexed = self._index()
        _, by_segment, anywhere = index
        return by_segment.get(route_path.lstrip("/").split("/", 1)[0], anywhere)

    def _index(self) -> tuple[int, dict[str, list[BaseRoute]], list[BaseRoute]]:
        segments = {
            first_segment(path) for route in self.routes if isinstance(path := getattr(route, "path", None), str)
        }
        by_segment: dict[str, list[BaseRoute]] = {segment: [] for segment in segments if segment is not None}
        anywhere: list[BaseRoute] = []
        for route in self.routes:
            path = getattr(route, "path", None)
            segment = first_segment(path) if isinstance(path, str) else None
            if segment is None:  # a candidate for every path, in its place among the others
                anywhere.append(route)
                for routes in by_segment.values():
                    routes.append(route)
            else:
                by_segment[segment].append(route)
        return len(self.routes), by_segment, anywhere

    async def app(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await super().app(scope, receive, send)
            return
        partial: BaseRoute | None = None
        partial_scope: Scope = {}
        for route in self._candidates(get_route_path(scope)):
            match, child_scope = route.matches(scope)
            if match is Match.FULL:
                scope.setdefault("router", self)
                scope["route"] = route
                scope.update(child_scope)
                await route.handle(scope, receive, send)
                return
            if match is Match.PARTIAL and partial is None:
                partial, partial_scope = route, child_scope
        if partial is not None:
            scope.setdefault("router", self)
            scope["route"] = partial
            scope.update(partial_scope)
            await partial.handle(scope, receive, send)
            return
        await super().app(scope, receive, send)
