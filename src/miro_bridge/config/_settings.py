"""The service's settings and how they are read.

Sources, lowest to highest precedence: the defaults below, the TOML file named by
`MIRO_CONFIG_FILE`, the environment, then the CLI's overrides. Each field of `Settings` carries
its variable name (also its key in the TOML file) and its parser in attrs metadata, so the class
is the one table of settings and `load_settings` walks it. A parser turns a raw value (a string
from the environment, or a native TOML value) into the field's type or raises `_Invalid` with the
rest of a sentence that starts with the variable's name. Parsers of secrets never quote the value.
"""

from __future__ import annotations

import contextlib
import difflib
import enum
import ipaddress
import json
import math
import os
import tomllib
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import SplitResult, urlsplit

import attrs
from cryptography.fernet import Fernet

from miro_bridge.errors import ConfigError
from miro_bridge.miro.templates import Templates, load_templates

CONFIG_FILE = "MIRO_CONFIG_FILE"
_T = TypeVar("_T")
Network = ipaddress.IPv4Network | ipaddress.IPv6Network
_SQLITE = "sqlite:///"
_POSTGRES_SCHEMES = ("postgresql", "postgres")
_SOURCE = "miro_bridge.config.source"


class AuthMode(enum.StrEnum):
    """How a request proves which Miro user it acts for (`MIRO_AUTH_MODE`)."""

    HEADER = "header"
    """Trust `X-User-Id`: for deployments where only the Node client can reach the service."""

    ID_TOKEN = "id-token"  # noqa: S105 -- a mode name, not a password
    """Require the app's ID token as `Authorization: Bearer`, verified with the client secret."""


class _Invalid(Exception):
    """A raw value cannot become a setting; the message follows the variable's name."""


@attrs.frozen
class _Source:
    """Where a setting comes from: its variable name and the parser of its raw value."""

    variable: str
    parse: Callable[[object], object]


def _env(variable: str, parse: Callable[[object], object]) -> dict[str, _Source]:
    """The attrs metadata that ties a `Settings` field to its variable."""
    return {_SOURCE: _Source(variable, parse)}


def _text(raw: object) -> str:
    if not isinstance(raw, str):
        raise _Invalid(f"must be a string, got {type(raw).__name__}")
    return raw.strip()


#: The console's token is all that guards it: long enough not to be guessed.
CONSOLE_TOKEN_MIN_LENGTH = 16


def _console_token(raw: object) -> str:
    token = _text(raw)
    if len(token) < CONSOLE_TOKEN_MIN_LENGTH:
        raise _Invalid(f"must be at least {CONSOLE_TOKEN_MIN_LENGTH} characters long")
    return token


_TRUE = frozenset({"true", "1", "yes", "on"})
_FALSE = frozenset({"false", "0", "no", "off"})


def _boolean(raw: object) -> bool:
    if isinstance(raw, bool):
        return raw
    word = raw.strip().lower() if isinstance(raw, str) else None
    if word in _TRUE | _FALSE:
        return word in _TRUE
    raise _Invalid(f"must be true or false (or 1/0, yes/no, on/off), got {raw!r}")


def _integer(low: int, high: int | None = None) -> Callable[[object], int]:
    wanted = f"from {low} to {high}" if high is not None else f"of at least {low}"

    def parse(raw: object) -> int:
        value = raw
        if isinstance(raw, str):
            with contextlib.suppress(ValueError):
                value = int(raw)
        if (
            not isinstance(value, int)
            or isinstance(value, bool)
            or value < low
            or (high is not None and value > high)
        ):
            raise _Invalid(f"must be an integer {wanted}, got {raw!r}")
        return value

    return parse


def _seconds(raw: object) -> float:
    value = raw
    if isinstance(raw, str):
        with contextlib.suppress(ValueError):
            value = float(raw)
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value < math.inf:
        raise _Invalid(f"must be a number of seconds greater than 0, got {raw!r}")
    return float(value)


def _split(url: str) -> SplitResult | None:
    """`url` split into parts, or None when it has no http(s) scheme, no host or a bad port."""
    try:
        parts = urlsplit(url)
        _ = parts.port  # raises ValueError for a port that is not a number from 0 to 65535
    except ValueError:
        return None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return None
    return parts


def _url(raw: object) -> str:
    url = _text(raw)
    if _split(url) is None:
        raise _Invalid(f"must be an absolute http(s) URL, got {url!r}")
    return url


def _base_url(raw: object) -> str:
    """An absolute URL that paths get appended to, so without a trailing slash."""
    return _url(raw).rstrip("/")


def _origin(raw: object) -> str:
    origin = _text(raw)
    if origin == "*":
        raise _Invalid(
            "must not be '*': browsers refuse a wildcard origin when credentials are allowed;"
            " list each origin"
        )
    parts = _split(origin)
    canonical = f"{parts.scheme}://{parts.netloc}".lower() if parts else ""
    if origin.lower() != canonical or "@" in canonical:
        raise _Invalid(f"must be an origin scheme://host[:port] with no path, got {origin!r}")
    return origin.lower()


def _public_origin(raw: object) -> str:
    return _origin(_text(raw).removesuffix("/"))


def _fernet_key(raw: object) -> str:
    key = _text(raw)
    try:
        Fernet(key)
    except ValueError:
        raise _Invalid("must be a Fernet key (32 url-safe base64-encoded bytes)") from None
    return key


def _network(raw: object) -> Network:
    text = _text(raw)
    try:
        return ipaddress.ip_network(text)
    except ValueError as exc:
        raise _Invalid(f"must be an IP address or a network (CIDR), got {text!r}: {exc}") from None


def _list(
    item: Callable[[object], _T], *, json_form: bool = False
) -> Callable[[object], tuple[_T, ...]]:
    """A parser of a comma-separated list (or a TOML list, or with `json_form` a JSON list)."""

    def parse(raw: object) -> tuple[_T, ...]:
        if json_form and isinstance(raw, str) and raw.lstrip().startswith("["):
            try:
                raw = json.loads(raw)
            except json.JSONDecodeError as exc:
                raise _Invalid(f"is not a valid JSON list: {exc.msg}") from None
        if isinstance(raw, str):
            raw = raw.split(",")
        if not isinstance(raw, list):
            raise _Invalid(f"must be a comma-separated list, got {type(raw).__name__}")
        entries = [entry for entry in raw if not (isinstance(entry, str) and not entry.strip())]
        values: list[_T] = []
        reasons: list[str] = []
        for number, entry in enumerate(entries, start=1):
            try:
                values.append(item(entry))
            except _Invalid as exc:
                reasons.append(f"entry {number} {exc}" if len(entries) > 1 else str(exc))
        if reasons:
            raise _Invalid("; ".join(reasons))
        return tuple(values)

    return parse


def _database_url(raw: object) -> str:
    # The value is never quoted: a PostgreSQL URL may carry a password.
    url = _text(raw)
    if url.startswith(_SQLITE) and url != _SQLITE:
        return url
    try:
        parts = urlsplit(url)
        _ = parts.port  # raises ValueError for a port that is not a number from 0 to 65535
    except ValueError:
        parts = None
    if parts is not None and parts.scheme in _POSTGRES_SCHEMES and not parts.fragment:
        return url
    raise _Invalid(
        "must be sqlite:///relative/path.db, sqlite:////absolute/path.db, or"
        " postgresql://user:password@host:port/database (the value given is none of these)"
    )


def _directory(raw: object) -> Path:
    path = Path(_text(raw)).expanduser()
    if not path.is_dir():
        raise _Invalid(f"must be an existing directory, got {str(path)!r}")
    return path


def _templates(raw: object) -> Templates:
    try:
        templates, _ = load_templates(Path(_text(raw)).expanduser())
    except ConfigError as error:
        listed = "".join(f"\n      {problem}" for problem in error.problems)
        raise _Invalid(f"names a template file that cannot be used:{listed}") from None
    return templates


def _auth_mode(raw: object) -> AuthMode:
    try:
        return AuthMode(_text(raw).lower())
    except ValueError:
        choices = " or ".join(repr(mode.value) for mode in AuthMode)
        raise _Invalid(f"must be {choices}, got {raw!r}") from None


@attrs.frozen
class Settings:
    """Everything the service is configured with; `load_settings` builds one.

    The metadata of each field names its environment variable. Secrets are left out of the repr.
    """

    client_id: str = attrs.field(metadata=_env("MIRO_CLIENT_ID", _text))
    client_secret: str = attrs.field(repr=False, metadata=_env("MIRO_CLIENT_SECRET", _text))
    oauth_redirect_uri: str = attrs.field(metadata=_env("MIRO_OAUTH_REDIRECT_URI", _url))
    webhook_secrets: tuple[str, ...] = attrs.field(
        default=(), repr=False, metadata=_env("MIRO_WEBHOOK_SECRET", _list(_text))
    )
    encryption_keys: tuple[str, ...] = attrs.field(
        default=(), repr=False, metadata=_env("MIRO_ENCRYPTION_KEY", _list(_fernet_key))
    )
    """Fernet keys; the first encrypts, all decrypt (rotation)."""
    allow_plaintext_tokens: bool = attrs.field(
        default=False, metadata=_env("MIRO_ALLOW_PLAINTEXT_TOKENS", _boolean)
    )
    database_url: str = attrs.field(
        default="sqlite:///./miro-bridge.db",
        repr=False,  # a PostgreSQL URL may carry a password
        metadata=_env("MIRO_DATABASE_URL", _database_url),
    )
    """`sqlite:///path` (one process) or `postgresql://...` (shared by several instances)."""
    database_pool_size: int = attrs.field(
        default=10, metadata=_env("MIRO_DATABASE_POOL_SIZE", _integer(1, 1000))
    )
    """PostgreSQL: connections each instance keeps (and operations it runs at once)."""
    database_timeout_seconds: float = attrs.field(
        default=5.0, metadata=_env("MIRO_DATABASE_TIMEOUT_SECONDS", _seconds)
    )
    """PostgreSQL: the longest wait for a pooled connection before a 503."""
    cors_origins: tuple[str, ...] = attrs.field(
        default=(), metadata=_env("MIRO_CORS_ORIGINS", _list(_origin, json_form=True))
    )
    api_base_url: str = attrs.field(
        default="https://api.miro.com", metadata=_env("MIRO_API_BASE_URL", _base_url)
    )
    oauth_authorize_url: str = attrs.field(
        default="https://miro.com/oauth/authorize", metadata=_env("MIRO_OAUTH_AUTHORIZE_URL", _url)
    )
    oauth_token_url: str = attrs.field(
        default="https://api.miro.com/v1/oauth/token", metadata=_env("MIRO_OAUTH_TOKEN_URL", _url)
    )
    http_timeout_seconds: float = attrs.field(
        default=10.0, metadata=_env("MIRO_HTTP_TIMEOUT_SECONDS", _seconds)
    )
    auth_mode: AuthMode = attrs.field(
        default=AuthMode.HEADER, metadata=_env("MIRO_AUTH_MODE", _auth_mode)
    )
    static_dir: Path | None = attrs.field(
        default=None, metadata=_env("MIRO_STATIC_DIR", _directory)
    )
    legacy_base_url: str | None = attrs.field(
        default=None, metadata=_env("MIRO_LEGACY_BASE_URL", _base_url)
    )
    force_https: bool = attrs.field(default=False, metadata=_env("MIRO_FORCE_HTTPS", _boolean))
    trusted_proxies: tuple[Network, ...] = attrs.field(
        default=(ipaddress.ip_network("127.0.0.1"), ipaddress.ip_network("::1")),
        metadata=_env("MIRO_TRUSTED_PROXIES", _list(_network)),
    )
    """Peers whose `X-Forwarded-Proto`/`-For`/`-Host` are believed."""
    debug_toggles: bool = attrs.field(default=False, metadata=_env("MIRO_DEBUG_TOGGLES", _boolean))
    max_body_bytes: int = attrs.field(
        default=1048576, metadata=_env("MIRO_MAX_BODY_BYTES", _integer(1))
    )
    log_max_entries: int = attrs.field(
        default=1000, metadata=_env("MIRO_LOG_MAX_ENTRIES", _integer(1))
    )
    log_max_payload_bytes: int = attrs.field(
        default=1048576, metadata=_env("MIRO_LOG_MAX_PAYLOAD_BYTES", _integer(1))
    )
    log_rate_per_minute: int = attrs.field(
        default=6000, metadata=_env("MIRO_LOG_RATE_PER_MINUTE", _integer(1))
    )
    """Client log entries one caller (a user, else an address) may send a minute."""
    log_quota_bytes: int = attrs.field(
        default=10 * 1024 * 1024, metadata=_env("MIRO_LOG_QUOTA_BYTES", _integer(1))
    )
    """Bytes of client log entries one caller may have stored a day."""
    log_retention_days: int = attrs.field(
        default=7, metadata=_env("MIRO_LOG_RETENTION_DAYS", _integer(1))
    )
    cache_ttl_seconds: float = attrs.field(
        default=86400.0, metadata=_env("MIRO_CACHE_TTL_SECONDS", _seconds)
    )
    job_lease_seconds: float = attrs.field(
        default=60.0, metadata=_env("MIRO_JOB_LEASE_SECONDS", _seconds)
    )
    """How long a claimed unit of job work holds without its worker renewing it (a quarter
    of it); after that any instance may take it again (its worker died)."""
    sync_interval_seconds: float = attrs.field(
        default=300.0, metadata=_env("MIRO_SYNC_INTERVAL_SECONDS", _seconds)
    )
    """How often boards read in the last hour are re-listed from Miro (not in API.md)."""
    host: str = attrs.field(default="127.0.0.1", metadata=_env("HOST", _text))
    port: int = attrs.field(default=8000, metadata=_env("PORT", _integer(0, 65535)))
    otel_exporter_otlp_endpoint: str | None = attrs.field(
        default=None, metadata=_env("OTEL_EXPORTER_OTLP_ENDPOINT", _url)
    )
    otel_service_name: str = attrs.field(
        default="miro-bridge", metadata=_env("OTEL_SERVICE_NAME", _text)
    )
    jaeger_agent_host: str | None = attrs.field(
        default=None, metadata=_env("JAEGER_AGENT_HOST", _text)
    )
    jaeger_agent_port: int = attrs.field(
        default=4318, metadata=_env("JAEGER_AGENT_PORT", _integer(1, 65535))
    )
    logfire_token: str | None = attrs.field(
        default=None, repr=False, metadata=_env("LOGFIRE_TOKEN", _text)
    )
    logfire_base_url: str = attrs.field(
        default="https://logfire-us.pydantic.dev", metadata=_env("LOGFIRE_BASE_URL", _base_url)
    )
    shape_templates: Templates = attrs.field(
        default=Templates(), metadata=_env("MIRO_SHAPE_TEMPLATES", _templates)
    )
    """The client's node templates (a JSON file in its own format); default: built-in only."""
    webhook_max_events: int = attrs.field(
        default=100, metadata=_env("MIRO_WEBHOOK_MAX_EVENTS", _integer(1))
    )
    """Events one webhook request may carry (more: 413)."""
    webhook_events_per_minute: int = attrs.field(
        default=60, metadata=_env("MIRO_WEBHOOK_EVENTS_PER_MINUTE", _integer(1))
    )
    """Webhook events taken per board per minute (more are counted `limited`, not processed)."""
    idempotency_max_keys: int = attrs.field(
        default=10_000, metadata=_env("MIRO_IDEMPOTENCY_MAX_KEYS", _integer(1))
    )
    """Idempotency-Keys one user may hold (stored for 48 hours) before new ones get 429."""
    shapes_max: int = attrs.field(default=100, metadata=_env("MIRO_SHAPES_MAX", _integer(1)))
    """How many shapes one synchronous `POST .../shapes` creates (more: 413, use `/ops`)."""
    public_url: str | None = attrs.field(
        default=None, metadata=_env("MIRO_PUBLIC_URL", _public_origin)
    )
    """This service's public origin; default: the origin of `MIRO_OAUTH_REDIRECT_URI`."""
    return_url_max_length: int = attrs.field(
        default=2048, metadata=_env("MIRO_RETURN_URL_MAX_LENGTH", _integer(1))
    )
    console_token: str | None = attrs.field(
        default=None, repr=False, metadata=_env("MIRO_CONSOLE_TOKEN", _console_token)
    )
    """The operator's console (`/_console`) is on when set: the token its login form takes."""
    sandbox: bool = False
    """Talk to the bundled sandbox Miro; set by the CLI's `--sandbox`, not by a variable."""

    @property
    def public_origin(self) -> str:
        """Where this service is reached from outside (`scheme://host[:port]`): same-site
        checks and redirects use it, never a request's `Host` header."""
        if self.public_url is not None:
            return self.public_url
        parts = urlsplit(self.oauth_redirect_uri)
        return f"{parts.scheme}://{parts.netloc}".lower()

    @property
    def database_is_shared(self) -> bool:
        """Whether several instances may share the database (PostgreSQL), not one (SQLite)."""
        return not self.database_url.startswith(_SQLITE)

    @property
    def database_path(self) -> Path:
        """The SQLite file of `database_url`, relative to the working directory unless absolute."""
        return Path(self.database_url.removeprefix(_SQLITE))


_SOURCES: dict[str, _Source] = {
    field.name: field.metadata[_SOURCE]
    for field in attrs.fields(Settings)
    if _SOURCE in field.metadata
}
#: Secret settings (left out of the repr) may also be read from a file: `<VARIABLE>_FILE`.
_SECRET_FILES: dict[str, str] = {
    name: f"{_SOURCES[name].variable}_FILE"
    for name in _SOURCES
    if not attrs.fields_dict(Settings)[name].repr
}
_VARIABLES = frozenset(source.variable for source in _SOURCES.values()) | frozenset(
    _SECRET_FILES.values()
)


def own_redirect_uri(host: str, port: int) -> str:
    """The service's own OAuth callback at `host:port`: the sandbox's default redirect URI."""
    return f"{base_url(host, port)}/oauth/callback"


def base_url(host: str, port: int) -> str:
    """`http://host:port`, with an IPv6 host in brackets."""
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def load_settings(
    environ: Mapping[str, str] | None = None,
    *,
    sandbox: bool = False,
    overrides: Mapping[str, str] | None = None,
) -> Settings:
    """Read the settings from the defaults, the TOML file, `environ` and `overrides`, in rising
    precedence.

    `environ` defaults to `os.environ`. `overrides` maps variable names to the CLI's values
    (`{"PORT": "9000"}`). `sandbox` makes the Miro credentials and the encryption key optional.
    A blank value counts as not set. Raises `ConfigError` listing every problem at once.
    """
    environ = os.environ if environ is None else environ
    overrides = {} if overrides is None else overrides
    file_values, problems = _read_config_file(environ.get(CONFIG_FILE))
    problems += [
        f"overrides: unknown setting {name!r}" for name in overrides if name not in _VARIABLES
    ]

    values: dict[str, Any] = {
        field.name: field.default
        for field in attrs.fields(Settings)
        if field.default is not attrs.NOTHING
    }
    invalid: set[str] = set()
    layers = (overrides, environ, file_values)
    for name, source in _SOURCES.items():
        raw = _lookup(source.variable, layers)
        if name in _SECRET_FILES:
            try:
                raw = _secret(source.variable, raw, _lookup(_SECRET_FILES[name], layers))
            except _Invalid as exc:
                problems.append(str(exc))
                invalid.add(name)
                continue
        if raw is None:
            continue
        try:
            values[name] = source.parse(raw)
        except _Invalid as exc:
            problems.append(f"{source.variable} {exc}")
            invalid.add(name)

    if sandbox:
        values.setdefault("client_id", "sandbox-client")
        values.setdefault("client_secret", "sandbox-secret")
        values.setdefault("oauth_redirect_uri", own_redirect_uri(values["host"], values["port"]))
    else:
        problems += [
            f"{_SOURCES[name].variable} is required (or run with --sandbox)"
            for name in ("client_id", "client_secret", "oauth_redirect_uri")
            if name not in values and name not in invalid
        ]
        if not (
            values["encryption_keys"]
            or values["allow_plaintext_tokens"]
            or "encryption_keys" in invalid
        ):
            problems.append(
                "MIRO_ENCRYPTION_KEY is required: set a Fernet key to encrypt stored tokens,"
                " or set MIRO_ALLOW_PLAINTEXT_TOKENS=true to store them unencrypted"
                " (or run with --sandbox)"
            )
    if problems:
        raise ConfigError(problems)
    return Settings(**(values | {"sandbox": sandbox}))


def _secret(variable: str, raw: object | None, path: object | None) -> object | None:
    """A secret's raw value: set directly, or read from the file `<variable>_FILE` names.

    The file is read once, here; its trailing line break is not part of the secret. Both
    forms at once is a problem (which one would win is not obvious to whoever set them).
    """
    if path is None:
        return raw
    if raw is not None:
        raise _Invalid(f"set {variable} or {variable}_FILE, not both")
    if not isinstance(path, str):
        raise _Invalid(f"{variable}_FILE must be a path, got {type(path).__name__}")
    try:
        text = Path(path.strip()).expanduser().read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
        raise _Invalid(f"{variable}_FILE {path!r} cannot be read: {reason or exc}") from None
    secret = text.removesuffix("\n").removesuffix("\r")
    return secret if secret.strip() else None  # blank counts as not set, as in the environment


def _lookup(variable: str, layers: Iterable[Mapping[str, object]]) -> object | None:
    """The value of the first layer that sets `variable` to something not blank, else None."""
    for layer in layers:
        raw = layer.get(variable)
        if raw is not None and not (isinstance(raw, str) and not raw.strip()):
            return raw
    return None


def _read_config_file(path: str | None) -> tuple[dict[str, Any], list[str]]:
    """The settings in the TOML file at `path` (none when `path` is blank), and its problems."""
    if path is None or not path.strip():
        return {}, []
    try:
        with Path(path).expanduser().open("rb") as file:
            table = tomllib.load(file)
    except OSError as exc:
        return {}, [f"{CONFIG_FILE} {path!r} cannot be read: {exc.strerror or exc}"]
    except tomllib.TOMLDecodeError as exc:
        return {}, [f"{CONFIG_FILE} {path!r} is not valid TOML: {exc}"]
    problems = []
    for key in table:
        if key not in _VARIABLES:
            close = difflib.get_close_matches(key, _VARIABLES, n=1)
            hint = f" (did you mean {close[0]}?)" if close else ""
            problems.append(f"{CONFIG_FILE} {path!r}: unknown setting {key!r}{hint}")
    return table, problems
