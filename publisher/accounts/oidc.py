"""Sign-in with an OpenID Connect provider: the authorization code flow with PKCE, state and nonce.

The provider is the owner's choice, named by `desk.oidc.issuer` (with `desk.oidc.client_id`,
and the client secret from `PUBLISHER_OIDC_CLIENT_SECRET` or its `_FILE`; a public client
has none). Its endpoints come from the issuer's `/.well-known/openid-configuration`,
whose `issuer` must be the configured one exactly. The issuer is https, or http on a
loopback address only (a provider on the same machine, the tests'). Every exchange with
it (discovery, the token request, its keys) has `fetch.timeout` seconds on one wall
clock (`content.fetch.DeadlineTransport`), however slowly it answers.

What comes back is trusted only once the ID token passes every check (`verified_email`,
pure, `now` passed in): a signature by one of the provider's published keys (an
asymmetric algorithm: never `none`, never HMAC with a public key), `iss` the issuer,
`aud` naming this client (and `azp` this client when there are several), not expired
(a minute's leeway), not issued in the future, `nonce` the one this sign-in sent, and
an `email` the provider says it verified (`email_verified` true). A failure raises
AccountError saying which check failed; nothing is signed in.

The address is all an account is matched by, and only to an account an owner made:
nobody signs themselves up here.
"""

from __future__ import annotations

import hmac
import ipaddress
import json
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

import httpx
from authlib.common.urls import add_params_to_uri
from authlib.oauth2.rfc7636 import create_s256_code_challenge
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet

from publisher.config import Config
from publisher.content.fetch import DeadlineTransport
from publisher.errors import AccountError

__all__ = [
    "ALGORITHMS",
    "LEEWAY",
    "OidcClient",
    "ProviderInfo",
    "authorization_url",
    "discover",
    "exchange_code",
    "fetch_keys",
    "verified_email",
]

ALGORITHMS = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA")
"""Signature algorithms an ID token may use: public-key ones only."""
LEEWAY = 60
"""Seconds of clock difference allowed between the provider and this machine."""
SECRET_NAME = "PUBLISHER_OIDC_CLIENT_SECRET"  # noqa: S105  (a variable's name, not a secret)
_MAX_BODY = 1_000_000


@dataclass(frozen=True, slots=True)
class OidcClient:
    """The desk as a client of one provider."""

    issuer: str
    client_id: str
    client_secret: str
    label: str
    timeout: float

    @classmethod
    def from_config(cls, config: Config) -> OidcClient | None:
        """The configured provider; None when `desk.oidc.issuer` is empty. ConfigError-like
        AccountError when it is set without a client id or on plain http elsewhere than loopback."""
        issuer = str(config["desk.oidc.issuer"]).rstrip("/")
        if not issuer:
            return None
        client_id = str(config["desk.oidc.client_id"])
        if not client_id:
            raise AccountError(
                "the sign-in provider needs desk.oidc.client_id: set it to the client id it issued for the desk"
            )
        _check_scheme(issuer, "desk.oidc.issuer")
        host = urlsplit(issuer).hostname or issuer
        return cls(
            issuer=issuer, client_id=client_id, client_secret=config.secret(SECRET_NAME) or "",
            label=str(config["desk.oidc.label"]) or host, timeout=float(config["fetch.timeout"]),
        )


@dataclass(frozen=True, slots=True)
class ProviderInfo:
    """The provider's endpoints, from its discovery document."""

    issuer: str
    authorization_endpoint: str
    token_endpoint: str
    jwks_uri: str


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _check_scheme(url: str, what: str) -> None:
    parts = urlsplit(url)
    if parts.scheme == "https" and parts.hostname:
        return
    if parts.scheme == "http" and _loopback(parts.hostname or ""):
        return
    raise AccountError(f"{what} must be an https:// URL (plain http only on this machine), got {url!r}")


def _client(timeout: float) -> httpx.Client:
    deadline = time.monotonic() + timeout
    return httpx.Client(transport=DeadlineTransport(deadline), trust_env=False, follow_redirects=False)


def _json(response: httpx.Response, what: str) -> dict[str, Any]:
    if len(response.content) > _MAX_BODY:
        raise AccountError(f"the sign-in provider's {what} is too large")
    try:
        data = json.loads(response.content)
    except ValueError as exc:
        raise AccountError(f"the sign-in provider's {what} is not JSON (HTTP {response.status_code})") from exc
    if not isinstance(data, dict):
        raise AccountError(f"the sign-in provider's {what} is not a JSON object")
    return data


def _get(url: str, what: str, timeout: float) -> dict[str, Any]:
    try:
        with _client(timeout) as http:
            response = http.get(url, headers={"Accept": "application/json"}, timeout=timeout)
    except httpx.HTTPError as exc:
        raise AccountError(f"the sign-in provider did not answer ({what}, {url}): {exc or type(exc).__name__}") from exc
    if response.status_code != 200:
        raise AccountError(f"the sign-in provider answered HTTP {response.status_code} for its {what} ({url})")
    return _json(response, what)


def discover(client: OidcClient) -> ProviderInfo:
    """The provider's endpoints from `{issuer}/.well-known/openid-configuration`."""
    data = _get(client.issuer + "/.well-known/openid-configuration", "discovery document", client.timeout)
    if str(data.get("issuer", "")).rstrip("/") != client.issuer:
        raise AccountError(
            f"the sign-in provider calls itself {data.get('issuer')!r}, not {client.issuer!r}: "
            "set desk.oidc.issuer to the issuer it names"
        )
    found: dict[str, str] = {}
    for name in ("authorization_endpoint", "token_endpoint", "jwks_uri"):
        value = data.get(name)
        if not isinstance(value, str) or not value:
            raise AccountError(f"the sign-in provider's discovery document has no {name}")
        _check_scheme(value, f"the provider's {name}")
        found[name] = value
    return ProviderInfo(issuer=client.issuer, **found)


def authorization_url(
    info: ProviderInfo, client: OidcClient, *, redirect_uri: str, state: str, nonce: str, verifier: str
) -> str:
    """Where to send the browser: a code request for `openid email`, with PKCE (S256)."""
    params = [
        ("response_type", "code"), ("client_id", client.client_id), ("redirect_uri", redirect_uri),
        ("scope", "openid email"), ("state", state), ("nonce", nonce),
        ("code_challenge", create_s256_code_challenge(verifier)), ("code_challenge_method", "S256"),
    ]
    return str(add_params_to_uri(info.authorization_endpoint, params))


def exchange_code(info: ProviderInfo, client: OidcClient, *, code: str, redirect_uri: str, verifier: str) -> str:
    """The ID token the provider gives for `code` (with the PKCE verifier and, for a
    confidential client, its secret by HTTP Basic)."""
    form = {"grant_type": "authorization_code", "code": code, "redirect_uri": redirect_uri, "code_verifier": verifier}
    auth = httpx.BasicAuth(client.client_id, client.client_secret) if client.client_secret else None
    if auth is None:
        form["client_id"] = client.client_id
    try:
        with _client(client.timeout) as http:
            response = http.post(
                info.token_endpoint, data=form, auth=auth or httpx.USE_CLIENT_DEFAULT,
                headers={"Accept": "application/json"}, timeout=client.timeout,
            )
    except httpx.HTTPError as exc:
        why = str(exc) or type(exc).__name__
        raise AccountError(f"the sign-in provider did not answer the token request: {why}") from exc
    data = _json(response, "token answer")
    if response.status_code != 200:
        why = str(data.get("error_description") or data.get("error") or f"HTTP {response.status_code}")[:200]
        raise AccountError(f"the sign-in provider refused the sign-in code: {why}")
    token = data.get("id_token")
    if not isinstance(token, str) or not token:
        raise AccountError("the sign-in provider's token answer has no ID token (is the openid scope allowed?)")
    return token


def fetch_keys(info: ProviderInfo, client: OidcClient) -> KeySet:
    """The provider's published signing keys."""
    data = _get(info.jwks_uri, "signing keys", client.timeout)
    try:
        return KeySet.import_key_set(data)  # type: ignore[arg-type]
    except (JoseError, ValueError, TypeError, KeyError) as exc:
        raise AccountError(f"the sign-in provider's signing keys cannot be read: {exc}") from exc


def verified_email(id_token: str, keys: KeySet, *, issuer: str, client_id: str, nonce: str, now: datetime) -> str:
    """The verified address an ID token vouches for, after every check in the module's docstring."""
    try:
        token = jwt.decode(id_token, keys, algorithms=list(ALGORITHMS))
    except JoseError as exc:
        raise AccountError(
            f"the sign-in provider's ID token does not verify ({exc.error}); nobody was signed in"
        ) from exc
    except ValueError as exc:
        raise AccountError("the sign-in provider's ID token cannot be read; nobody was signed in") from exc
    claims: Mapping[str, Any] = token.claims
    moment = now.timestamp()
    if claims.get("iss") != issuer:
        raise AccountError(f"the ID token was issued by {str(claims.get('iss'))[:200]!r}, not {issuer!r}")
    audience = claims.get("aud")
    audiences = [audience] if isinstance(audience, str) else audience if isinstance(audience, list) else []
    if client_id not in audiences:
        raise AccountError("the ID token was issued for another client (its audience is not this desk)")
    if len(audiences) > 1 and claims.get("azp") != client_id:
        raise AccountError("the ID token names several audiences and was not issued to this desk (azp)")
    expires, issued = claims.get("exp"), claims.get("iat")
    if not isinstance(expires, int | float) or expires + LEEWAY <= moment:
        raise AccountError("the ID token has expired; start the sign-in again")
    if not isinstance(issued, int | float) or issued - LEEWAY > moment:
        raise AccountError("the ID token says it was issued in the future; check this machine's clock")
    if not isinstance(claims.get("nonce"), str) or not hmac.compare_digest(str(claims["nonce"]), nonce):
        raise AccountError("the ID token does not belong to this sign-in (its nonce differs); start again")
    email = claims.get("email")
    if not isinstance(email, str) or not email:
        raise AccountError("the sign-in provider gave no email address; allow the email scope for the desk")
    if claims.get("email_verified") is not True:
        raise AccountError(f"the sign-in provider has not verified {email[:320]}; verify it there first")
    return email
