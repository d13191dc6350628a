"""LiteLLM `custom_auth` hook of the test bed's gateway.

A real AI gateway in front of Foundry is called in one of three ways (reference section 3.1):
an API key in the Azure-style `api-key` header, an API key as `Authorization: Bearer <key>`
(an `authConfig` that says so), or `Authorization: Bearer <JWT>` from an OAuth2 token endpoint or
Microsoft Entra ID. LiteLLM's own auth knows keys, and its JWT auth is an enterprise feature, so
this open-source hook (`general_settings.custom_auth`) decides alone:

- the master key (env `LITELLM_MASTER_KEY`) in `api-key` or as a bearer token is accepted;
- a bearer JWT is accepted when its RS256 signature verifies against the token server's JWKS
  (env `FOUNDRY_GATEWAY_JWKS_URL`, fetched over HTTPS trusting `FOUNDRY_GATEWAY_CA_FILE`), its
  `aud` is one of `FOUNDRY_GATEWAY_JWT_AUDIENCES` (comma-separated), when
  `FOUNDRY_GATEWAY_JWT_ISSUER` is set its `iss` matches, and it carries every claim required for
  its audience (below);
- anything else is refused with 401.

Required claims mirror the APIM policy of the Foundry samples' `apim-setup-guide-for-agents.md`
(`validate-azure-ad-token` with `<required-claims><claim name="xms_mirid" match="any">`): a token
for a listed audience must carry the claim with one of the listed values, compared exactly (the
guide's value is the project's ARM id as Entra writes it, "resource group name (case-sensitive)"),
else 401 "Unauthorized. Valid Entra token is required.". They are read from the JSON file named
by `FOUNDRY_GATEWAY_REQUIRED_CLAIMS_FILE` on every check, so a test can change them while the
gateway runs: `[{"audience": "...", "claim": "xms_mirid", "values": ["/subscriptions/..."]}]`.

`identify(headers)` is the same decision for callers outside LiteLLM's auth (the launcher's
parameter check). Keys and tokens are never logged.
"""

from __future__ import annotations

import hmac
import json
import os
import ssl
import threading
import time
import urllib.request
from collections.abc import Mapping

import jwt
from fastapi import Request
from litellm.proxy._types import LitellmUserRoles, ProxyException, UserAPIKeyAuth

# Do not refetch the key set for an unknown key id more often than this (seconds).
_REFETCH_INTERVAL = 5.0
_FETCH_TIMEOUT = 10.0

# The failure message of the guide's `validate-azure-ad-token` policy.
ENTRA_REFUSAL = "Unauthorized. Valid Entra token is required."

_lock = threading.Lock()
_jwks: dict[str, jwt.PyJWK] = {}
_jwks_fetched_at = 0.0


def _refuse(message: str) -> ProxyException:
    return ProxyException(message=message, type="auth_error", param="api_key", code=401)


def _presented_credentials(headers: Mapping[str, str]) -> list[str]:
    """Every credential the caller sent, in the order the headers are checked."""
    found = []
    api_key = headers.get("api-key")
    if api_key:
        found.append(api_key.strip())
    authorization = headers.get("authorization", "")
    scheme, _, value = authorization.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        found.append(value.strip())
    return found


def _fetch_jwks(url: str) -> dict[str, jwt.PyJWK]:
    context = ssl.create_default_context(cafile=os.environ.get("FOUNDRY_GATEWAY_CA_FILE") or None)
    # The token server lives on loopback: proxy settings of the environment must not apply.
    opener = urllib.request.build_opener(
        urllib.request.ProxyHandler({}), urllib.request.HTTPSHandler(context=context)
    )
    with opener.open(url, timeout=_FETCH_TIMEOUT) as reply:
        document = json.load(reply)
    keys = {}
    for entry in document.get("keys", []):
        try:
            key = jwt.PyJWK.from_dict(entry)
        except jwt.PyJWKError:
            continue
        keys[entry.get("kid", "")] = key
    return keys


def _signing_key(url: str, kid: str) -> jwt.PyJWK | None:
    global _jwks, _jwks_fetched_at
    with _lock:
        key = _jwks.get(kid)
        if key is None and time.monotonic() - _jwks_fetched_at >= _REFETCH_INTERVAL:
            _jwks = _fetch_jwks(url)
            _jwks_fetched_at = time.monotonic()
            key = _jwks.get(kid)
        if key is None and kid == "" and len(_jwks) == 1:
            key = next(iter(_jwks.values()))
        return key


def _required_claims() -> list[dict]:
    """The required claims now in force (the file may change while the gateway runs)."""
    path = os.environ.get("FOUNDRY_GATEWAY_REQUIRED_CLAIMS_FILE")
    if not path:
        return []
    try:
        with open(path, encoding="utf-8") as f:
            document = json.load(f)
    except (OSError, ValueError) as error:
        # Fail closed: a broken requirement file must not let every token through.
        raise _refuse(f"the gateway cannot read its required claims: {type(error).__name__}") from None
    return [r for r in document if isinstance(r, dict)] if isinstance(document, list) else []


def _check_required_claims(claims: dict) -> None:
    """Refuse a token that lacks a claim its audience requires, as APIM's `required-claims` does."""
    audience = claims.get("aud")
    audiences = set(audience) if isinstance(audience, list) else {audience}
    for requirement in _required_claims():
        if requirement.get("audience") not in audiences:
            continue
        name = str(requirement.get("claim", ""))
        accepted = [str(v) for v in requirement.get("values", [])]
        value = claims.get(name)
        if value is None:
            raise _refuse(f"{ENTRA_REFUSAL} The token has no {name} claim.")
        if not isinstance(value, str) or value not in accepted:
            raise _refuse(f"{ENTRA_REFUSAL} Its {name} claim is not an accepted value.")


def _verify_jwt(token: str) -> dict | None:
    """The claims of a valid token, None when JWT auth is not configured or the token is no JWT."""
    url = os.environ.get("FOUNDRY_GATEWAY_JWKS_URL")
    if not url or token.count(".") != 2:
        return None
    audiences = [a for a in os.environ.get("FOUNDRY_GATEWAY_JWT_AUDIENCES", "").split(",") if a]
    issuer = os.environ.get("FOUNDRY_GATEWAY_JWT_ISSUER") or None
    try:
        header = jwt.get_unverified_header(token)
        key = _signing_key(url, header.get("kid", ""))
        if key is None:
            raise _refuse("bearer token signed by an unknown key")
        claims = jwt.decode(
            token,
            key=key.key,
            algorithms=["RS256"],
            audience=audiences,
            issuer=issuer,
            options={"require": ["exp", "aud"]},
        )
    except jwt.InvalidAudienceError:
        raise _refuse("bearer token is not for this gateway (audience)") from None
    except jwt.PyJWTError as error:
        raise _refuse(f"bearer token rejected: {type(error).__name__}") from None
    except OSError as error:
        raise _refuse(f"cannot fetch the key set to check the bearer token: {error}") from None
    _check_required_claims(claims)
    return claims


def identify(headers: Mapping[str, str]) -> UserAPIKeyAuth:
    """The caller's identity, or a 401 `ProxyException`."""
    master_key = os.environ.get("LITELLM_MASTER_KEY", "")
    presented = _presented_credentials(headers)
    if not presented:
        raise _refuse("no credentials: send api-key or Authorization: Bearer")
    for credential in presented:
        if master_key and hmac.compare_digest(credential.encode(), master_key.encode()):
            return UserAPIKeyAuth(api_key=master_key, user_role=LitellmUserRoles.PROXY_ADMIN)
    for credential in presented:
        claims = _verify_jwt(credential)
        if claims is not None:
            subject = str(claims.get("sub") or claims.get("appid") or "jwt")
            return UserAPIKeyAuth(
                api_key=master_key, user_id=subject, user_role=LitellmUserRoles.PROXY_ADMIN
            )
    raise _refuse("invalid api key or bearer token")


async def user_api_key_auth(request: Request, api_key: str) -> UserAPIKeyAuth:  # noqa: ARG001
    return identify(request.headers)
