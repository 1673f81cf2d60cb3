"""What the HTTP API providers share: one injected httpx client, batching, status mapping.

A vendor module says how to build one request for a chunk of recipients and how to read
a successful answer; everything else is decided here, the same way for every vendor:

- 2xx: the vendor reads the answer (some report per-message errors inside it);
- 429, 5xx, a timeout or a dropped connection: the whole call is temporary. First call
  of a send: `TemporaryFailure` with the Retry-After value (the engine holds off); a
  later call: its recipients, and those of the chunks after it, get RETRY instead, so
  that the earlier calls' answers are kept;
- 401, 403, 404 (a wrong key, account or base URL): `AccountRefused` (see base.py);
- any other 4xx: every recipient of the call FAILED, with the provider's own message.

Building one is shared too: `from_config` reads the secret `secret_env` names, the
`[delivery.<name>] base_url` and `[delivery] timeout`; a vendor with settings of its own
adds them in `_config_options` and takes them in its constructor.

The client is injected so tests (and a daemon sharing connections) can pass their own;
a provider closes only a client it made itself.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any, Required, Self, TypedDict

import httpx

from publisher import __version__
from publisher.delivery.base import (
    UNUSABLE_RECIPIENT,
    AccountRefused,
    R,
    SendInterrupted,
    Template,
    batches,
    every,
    failed,
    parse_retry_after,
    refused_for_now,
    require_secret,
    settle,
)
from publisher.models import Outcome, SendResult

if TYPE_CHECKING:
    from publisher.config import Config

__all__ = ["Connection", "HttpApiProvider", "WholeCallRetry"]

USER_AGENT = f"publisher/{__version__}"
_NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout, httpx.UnsupportedProtocol)


class WholeCallRetry(Exception):
    """A call failed as a whole for a reason worth retrying later."""

    def __init__(
        self, detail: str, retry_after: float | None = None, *, maybe_sent: bool = False
    ) -> None:
        super().__init__(detail)
        self.detail = detail
        self.retry_after = retry_after
        self.maybe_sent = maybe_sent


class Connection(TypedDict, total=False):
    """The constructor arguments of `HttpApiProvider`, for a vendor that adds its own."""

    api_key: Required[str]
    base_url: str
    client: httpx.Client | None
    timeout: float


class _NotSent(Exception):
    """Building a request failed unexpectedly: nothing of that call left."""


class HttpApiProvider:
    name: str
    label: str
    """The vendor's name as people write it, for messages."""
    max_batch: int
    call_size: int = 0
    """Recipients per HTTP request; 0 means `max_batch`."""
    unique_addresses: bool = False
    """The API keys personalisation by address, so one call may not repeat one."""
    secret_env: str
    """The environment variable holding `api_key` (SES: its key pair), named in messages."""
    default_base_url: str

    def __init__(
        self,
        *,
        api_key: str,
        base_url: str | None = None,
        client: httpx.Client | None = None,
        timeout: float = 30.0,
    ) -> None:
        self._api_key = api_key
        self._connect(self.default_base_url if base_url is None else base_url, client, timeout)

    @classmethod
    def from_config(cls, config: Config, *, client: httpx.Client | None = None) -> Self:
        """The provider the environment and `[delivery]` describe; `client` as in `make_provider`."""
        options = cls._config_options(config)
        return cls(client=client, timeout=float(config["delivery.timeout"]), **options)

    @classmethod
    def _config_options(cls, config: Config) -> dict[str, Any]:
        """The constructor arguments besides `client` and `timeout`.

        By default the secret `secret_env` names, refusing to start without it, and
        `[delivery.<name>] base_url`; a vendor with more settings adds them here.
        """
        return {
            "api_key": require_secret(config, cls.secret_env, cls.name),
            "base_url": str(config[f"delivery.{cls.name}.base_url"]),
        }

    def _connect(self, base_url: str, client: httpx.Client | None, timeout: float) -> None:
        self.base_url = base_url.rstrip("/")
        self._owns_client = client is None
        self._client = client if client is not None else httpx.Client(
            timeout=timeout, headers={"User-Agent": USER_AGENT}
        )

    def close(self) -> None:
        if self._owns_client:
            self._client.close()

    def send(
        self, template: Template[R], recipients: Sequence[R], *, now: datetime
    ) -> list[SendResult]:
        results: list[SendResult] = []
        size = self.call_size or self.max_batch
        for chunk in batches(recipients, size, unique=self.unique_addresses):
            try:
                results.extend(self._call(template, chunk, now))
            except WholeCallRetry as exc:
                # The calls after this one would meet the same limit or outage.
                rest = recipients[len(results):]
                return refused_for_now(
                    results, rest, exc.detail, exc.retry_after, maybe_sent=exc.maybe_sent
                )
            except AccountRefused as exc:
                return settle(results, recipients[len(results):], exc)
            except _NotSent as exc:
                raise SendInterrupted(results, 0) from exc.__cause__
            except Exception as exc:
                # The request may have been taken (an answer that could not be read).
                raise SendInterrupted(results, len(chunk)) from exc
        return results

    def _call(self, template: Template[R], chunk: list[R], now: datetime) -> list[SendResult]:
        """One HTTP request for `chunk`; a recipient whose values are unusable fails alone."""
        items: list[Any] = []
        ready: list[R] = []
        refused: dict[int, SendResult] = {}
        for index, recipient in enumerate(chunk):
            try:
                items.append(self._item(template, recipient, now))
            except UNUSABLE_RECIPIENT as exc:
                refused[index] = failed(recipient, f"cannot build this message: {exc}")
            except Exception as exc:
                raise _NotSent(str(exc)) from exc
            else:
                ready.append(recipient)
        answered = iter(self._exchange(template, ready, items, now) if ready else ())
        return [refused[i] if i in refused else next(answered) for i in range(len(chunk))]

    def _exchange(
        self, template: Template[R], chunk: list[R], items: list[Any], now: datetime
    ) -> list[SendResult]:
        try:
            request = self._request(template, chunk, items)
        except Exception as exc:
            raise _NotSent(str(exc)) from exc
        try:
            response = self._client.send(request)
        except _NOT_SENT as exc:
            raise WholeCallRetry(f"cannot reach {self.label} ({type(exc).__name__}: {exc})") from exc
        except httpx.TimeoutException as exc:
            raise WholeCallRetry(
                f"{self.label} did not answer in time ({type(exc).__name__}); it may have "
                "accepted the request",
                maybe_sent=True,
            ) from exc
        except httpx.TransportError as exc:
            raise WholeCallRetry(
                f"connection to {self.label} failed ({type(exc).__name__}: {exc}); it may have "
                "accepted the request",
                maybe_sent=True,
            ) from exc
        status = response.status_code
        if 200 <= status < 300:
            return self._accepted(response, chunk)
        detail = f"{self.label} answered HTTP {status}: {self._error_message(response)}"
        if status == 429 or status >= 500 or self._temporary(response):
            retry_after = parse_retry_after(response.headers.get("Retry-After"), now)
            raise WholeCallRetry(detail, retry_after)
        if status in (401, 403) or self._account_refused(response):
            raise AccountRefused(f"{detail}. Check {self.secret_env} and {self._settings()}.")
        if status == 404:
            raise AccountRefused(f"{detail}. Check {self._settings()}.")
        return every(chunk, Outcome.FAILED, detail)

    def _settings(self) -> str:
        return f"the [delivery.{self.name}] settings"

    def _item(self, template: Template[R], recipient: R, now: datetime) -> Any:
        """The recipient's part of the request; ValueError if its values are unusable."""
        raise NotImplementedError

    def _request(self, template: Template[R], chunk: list[R], items: list[Any]) -> httpx.Request:
        """The request carrying `items`, one per recipient of `chunk`."""
        raise NotImplementedError

    def _accepted(self, response: httpx.Response, chunk: list[R]) -> list[SendResult]:
        """Results for a 2xx answer. By default the provider took every message."""
        return every(chunk, Outcome.SENT, "")

    def _temporary(self, response: httpx.Response) -> bool:
        """A 4xx this vendor documents as temporary."""
        return False

    def _account_refused(self, response: httpx.Response) -> bool:
        """A 4xx this vendor uses when the account, not the message, is refused."""
        return False

    def _error_message(self, response: httpx.Response) -> str:
        return error_text(response)


def json_or_none(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return None


def error_text(response: httpx.Response) -> str:
    """The provider's own words about a refused call, kept short for the ledger."""
    body = json_or_none(response)
    if isinstance(body, dict):
        for key in ("message", "Message", "error", "detail"):
            value = body.get(key)
            if isinstance(value, str) and value:
                return value[:500]
        errors = body.get("errors")
        if isinstance(errors, list):
            texts = [
                str(item.get("message", item)) if isinstance(item, dict) else str(item)
                for item in errors
            ]
            return "; ".join(texts)[:500]
    text = " ".join(response.text.split())
    return text[:300] or response.reason_phrase
