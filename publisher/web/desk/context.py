"""What every desk page is rendered with, built once per request.

`DeskAuth.guarded` builds one `DeskContext` when it has read the session and checked the
role, and hands it to the route with the request (`Asked.desk`); the route passes it to
`DeskPages.render` as it is. So the signed-in account, its role, the CSRF token every
form carries, the publication's title, the notice a redirect asked for and the locale
are read in one place, and no page assembles them itself. The sign-in page, which has
no session yet, gets one built with the sign-in form's own token.
"""

from __future__ import annotations

from dataclasses import dataclass

from starlette.requests import Request

from publisher.accounts import DeskSession, Role, allows

__all__ = ["MESSAGES", "DeskContext", "sentence"]

def sentence(said: Exception | str) -> str:
    """An error or a service's words as the desk shows them: one sentence, its first letter
    a capital and a full stop at its end (the command line prints the same words after
    "error: ")."""
    text = str(said).strip()
    return text[:1].upper() + text[1:] + ("" if text.endswith(".") else ".")


MESSAGES = {
    "saved": "Saved.",
    "test-sent": "The test copy is on its way.",
    "scheduled": "Scheduled.",
    "queued": "The issue is being sent. Follow it below.",
    "already-sent": "It was already on its way (the button was pressed twice): each reader gets one copy. "
    "Follow it below.",
    "cancelled": "The schedule is cancelled.",
    "retrying": "The failed copies are queued again.",
    "added": "Subscriber saved.",
    "unsubscribed": "Unsubscribed. The address stays on file so that no import brings it back.",
    "erased": "Erased: the address and its personal data are gone.",
    "imported": "Imported.",
    "user-added": "User added.",
    "user-removed": "User removed.",
    "key-revoked": "Key revoked: requests with it are refused from now on.",
    "bounce-decided": "Decided. The subscriber's page shows it.",
    "step-saved": "Saved. Nothing was sent: readers get the step when their day for it comes.",
    "password-set": "Your new password is set, and every session of the account has ended. Sign in with it.",
}
"""Notices shown after a redirect, by code (`?m=saved`): a link cannot make the desk say
anything else."""


@dataclass(frozen=True, slots=True)
class DeskContext:
    """One request's desk context: who asks, with what role, the form token, and what to say."""

    request: Request
    session: DeskSession | None
    account: str
    """The signed-in address, "" on the sign-in page."""
    role: Role | None
    csrf: str
    """The session's CSRF token (the sign-in form's own token before sign-in)."""
    publication: str
    message: str
    """The notice named by `?m=` (one of MESSAGES), else ""."""
    locale: str

    @classmethod
    def build(
        cls, request: Request, session: DeskSession | None, *, publication: str, locale: str, csrf: str = ""
    ) -> DeskContext:
        return cls(
            request=request,
            session=session,
            account=session.user.email if session else "",
            role=Role(session.user.role) if session else None,
            csrf=session.csrf if session else csrf,
            publication=publication,
            message=MESSAGES.get(request.query_params.get("m", ""), ""),
            locale=locale,
        )

    def can(self, needed: Role) -> bool:
        """Whether the signed-in role includes `needed` (never before sign-in)."""
        return self.role is not None and allows(self.role, needed)
