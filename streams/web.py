"""Who may read the HTTP endpoints: loopback unless configured, a bearer token when exposed.

Every process that serves HTTP (worker, router, dashboard) goes through this module:

* :func:`require_token_when_exposed` refuses a listen address other than loopback without a
  token (a :class:`WebExposedWithoutToken` the CLI turns into exit code 2 and the reason).
* :func:`bearer_auth` is the one aiohttp middleware that checks ``Authorization`` on every
  path except ``/health`` (probes and orchestrators carry no token).
* :func:`faust_web_settings` is the Faust side, and the reason this module exists: Faust's
  ``web_bind`` defaults to every interface (the project set only ``web_host``, the name in
  Faust's URLs), Faust has no authentication of its own, and its built-in ``/table/``
  (table values by key: a key's detector state) and ``/router/`` (the other workers' URLs)
  pages are on by default. The middleware goes in through ``web_application_options``, which
  Faust passes to the ``aiohttp.web.Application`` it builds, so it also covers Faust's own
  pages.
* :func:`state_without_verdict`: what ``/query/state`` may show of a key (never its score).
"""
from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import ipaddress

from pydantic import SecretStr

from distillguard.errors import ConfigError

# Probes (k8s, docker healthchecks) call /health without credentials; it says "ok" or why
# not, and the counters (no key, no score).
OPEN_PATHS = frozenset({"/health"})
# A bearer token is a password an attacker may guess at full speed: ask for 128 bits or so
# (e.g. `openssl rand -hex 16` or `python -c "import secrets; print(secrets.token_urlsafe(24))"`).
MIN_TOKEN_CHARS = 16
# Faust's built-in pages, off: the workers never route table reads between each other
# (no @table_route), and /table/ would serve a key's raw state, score included.
FAUST_BUILTIN_PAGES_OFF = {"web_router_enabled": False, "web_tables_enabled": False,
                           "web_stats_enabled": False, "web_graph_enabled": False}


class WebExposedWithoutToken(ConfigError):
    """The web endpoint would listen beyond loopback with nobody asked for credentials."""


class WeakWebToken(ConfigError):
    """The web token is too short to stand against guessing."""


def is_loopback(bind: str) -> bool:
    """True when ``bind`` only accepts connections from this host (127.0.0.0/8, ::1, localhost)."""
    if bind.strip().lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(bind.strip().strip("[]")).is_loopback
    except ValueError:  # a host name: it resolves to whatever the network says, not loopback
        return False


def token_value(token: SecretStr | str | None) -> str | None:
    """The token's text, or None when unset or empty (an empty env var means unset)."""
    if token is None:
        return None
    text = token.get_secret_value() if isinstance(token, SecretStr) else token
    return text or None


def require_token_when_exposed(bind: str, token: SecretStr | str | None, *, setting: str,
                               token_setting: str = "DG_WEB_TOKEN") -> None:
    """Raise a :class:`~distillguard.errors.ConfigError` for an endpoint that would be open to
    the network (``bind`` not loopback, no token) or guarded by a guessable token."""
    text = token_value(token)
    if text is not None and len(text) < MIN_TOKEN_CHARS:
        raise WeakWebToken(f"{token_setting} has {len(text)} characters; use at least {MIN_TOKEN_CHARS} "
                           f"(e.g. `openssl rand -hex 16`)")
    if text is None and not is_loopback(bind):
        raise WebExposedWithoutToken(
            f"{setting}={bind} serves the web endpoints beyond loopback, and {token_setting} is not set: "
            f"they reveal alerts, scores and metrics to anyone who can connect. Set {token_setting} "
            f"(clients send 'Authorization: Bearer <token>'), or listen on 127.0.0.1")


def _presented_token(header: str) -> str | None:
    """The token in an ``Authorization`` header: ``Bearer <token>`` for programs and
    Prometheus, or ``Basic`` with the token as password, so that a browser can open the
    dashboard (it prompts for Basic credentials; it cannot be told to send a bearer token)."""
    scheme, _, value = header.strip().partition(" ")
    scheme = scheme.lower()
    if scheme == "bearer":
        return value.strip()
    if scheme == "basic":
        try:
            decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            return None
        return decoded.partition(":")[2]
    return None


def token_matches(header: str | None, token: str) -> bool:
    """Constant-time comparison of the presented token with ``token`` (no timing oracle).
    Digests are compared, not the texts: compare_digest returns at once on a length
    difference, which would tell a caller the token's length."""
    presented = _presented_token(header or "")
    if presented is None:
        return False
    return hmac.compare_digest(_digest(presented), _digest(token))


def _digest(text: str) -> bytes:
    # surrogatepass: aiohttp hands over a header's undecodable bytes as lone surrogates; such
    # a header is a wrong token (401), not a server error
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).digest()


def bearer_auth(token: SecretStr | str, *, open_paths: frozenset[str] = OPEN_PATHS):
    """An aiohttp middleware: 401 unless the request carries ``token`` (paths in
    ``open_paths`` excepted). The response says nothing about the path beyond that."""
    from aiohttp import web

    expected = token_value(token)
    if expected is None:
        raise ValueError("bearer_auth needs a token")

    @web.middleware
    async def require_token(request, handler):
        if request.path in open_paths or token_matches(request.headers.get("Authorization"), expected):
            return await handler(request)
        return web.json_response(
            {"error": "unauthorized", "detail": "send 'Authorization: Bearer <token>'"}, status=401,
            headers={"WWW-Authenticate": 'Bearer realm="distillguard", Basic realm="distillguard"'})

    return require_token


def web_middlewares(token: SecretStr | str | None) -> list:
    """The middlewares of a web app guarded by ``token``: none without one (loopback only,
    which :func:`require_token_when_exposed` has checked)."""
    return [bearer_auth(token)] if token_value(token) else []


# What /query/state shows of a key's state: what tests and operators check after a restart
# (events applied, last offset, size). Never the score, the alerting flag or the incident
# number, token or not: whoever holds a key could ask whether the detector has noticed it.
STATE_FIELDS_SHOWN = ("events", "last_offset", "bytes")


def state_without_verdict(info: dict) -> dict:
    """``info`` (a pipeline's ``describe_state``) without what the detector thinks of the key."""
    return {name: info[name] for name in STATE_FIELDS_SHOWN if name in info}


def web_setting_names(settings) -> tuple[str, str]:
    """The env names of ``settings``' listen address and token, for messages:
    ``DG_WEB_BIND`` / ``DG_WEB_TOKEN`` for the worker, ``DG_ROUTER_WEB_*`` for the router."""
    prefix = settings.model_config.get("env_prefix", "DG_")
    return f"{prefix}WEB_BIND", f"{prefix}WEB_TOKEN"


def check_web_settings(settings) -> None:
    """:func:`require_token_when_exposed` for a worker's or router's settings (``web_bind``,
    ``web_token``): the CLI calls it first, so that nothing starts on a bad configuration."""
    bind_name, token_name = web_setting_names(settings)
    require_token_when_exposed(settings.web_bind, settings.web_token, setting=bind_name, token_setting=token_name)


def faust_web_settings(settings) -> dict:
    """Keyword arguments for ``faust.App`` from a worker's or router's settings: listen on
    ``web_bind`` (Faust's default is every interface), the token middleware on every page,
    Faust's built-in pages off."""
    check_web_settings(settings)
    return {"web_bind": settings.web_bind,
            "web_application_options": {"middlewares": web_middlewares(settings.web_token)},
            **FAUST_BUILTIN_PAGES_OFF}
