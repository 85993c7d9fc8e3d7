"""Settings: sources and their precedence, parsing, and every problem reported at once."""

from __future__ import annotations

from ipaddress import ip_network
from pathlib import Path

import pytest
from cryptography.fernet import Fernet

from miro_bridge.config import AuthMode, Settings, load_settings
from miro_bridge.errors import ConfigError

KEY = Fernet.generate_key().decode()
OLD_KEY = Fernet.generate_key().decode()
SECRET = "client-secret-d41d8cd9"
REQUIRED = {
    "MIRO_CLIENT_ID": "3458764500000000001",
    "MIRO_CLIENT_SECRET": SECRET,
    "MIRO_OAUTH_REDIRECT_URI": "https://bridge.example/oauth/callback",
    "MIRO_ENCRYPTION_KEY": KEY,
}


def load(**environ: str) -> Settings:
    """Settings from the required variables plus `environ`."""
    return load_settings({**REQUIRED, **environ})


def problems_of(environ: dict[str, str], *, sandbox: bool = False) -> tuple[str, ...]:
    with pytest.raises(ConfigError) as info:
        load_settings(environ, sandbox=sandbox)
    return info.value.problems


def problem_of(**environ: str) -> str:
    """The one problem of the required variables plus `environ`."""
    (problem,) = problems_of({**REQUIRED, **environ})
    return problem


def write_toml(tmp_path: Path, text: str) -> str:
    path = tmp_path / "miro-bridge.toml"
    path.write_text(text)
    return str(path)


def test_defaults() -> None:
    settings = load()

    assert settings.client_id == "3458764500000000001"
    assert settings.client_secret == SECRET
    assert settings.encryption_keys == (KEY,)
    assert settings.webhook_secrets == ()
    assert settings.allow_plaintext_tokens is False
    assert settings.database_url == "sqlite:///./miro-bridge.db"
    assert settings.database_path == Path("miro-bridge.db")
    assert settings.cors_origins == ()
    assert settings.api_base_url == "https://api.miro.com"
    assert settings.oauth_authorize_url == "https://miro.com/oauth/authorize"
    assert settings.oauth_token_url == "https://api.miro.com/v1/oauth/token"
    assert settings.http_timeout_seconds == 10.0
    assert settings.auth_mode is AuthMode.HEADER
    assert settings.static_dir is None
    assert settings.legacy_base_url is None
    assert settings.force_https is False
    assert settings.trusted_proxies == (ip_network("127.0.0.1/32"), ip_network("::1/128"))
    assert settings.debug_toggles is False
    assert settings.max_body_bytes == 1048576
    assert settings.log_max_entries == 1000
    assert settings.log_max_payload_bytes == 1048576
    assert settings.log_retention_days == 7
    assert settings.cache_ttl_seconds == 86400.0
    assert (settings.host, settings.port) == ("127.0.0.1", 8000)
    assert settings.otel_exporter_otlp_endpoint is None
    assert settings.otel_service_name == "miro-bridge"
    assert (settings.jaeger_agent_host, settings.jaeger_agent_port) == (None, 4318)
    assert settings.logfire_token is None
    assert settings.logfire_base_url == "https://logfire-us.pydantic.dev"
    assert settings.sandbox is False


def test_environ_none_reads_os_environ(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("os.environ", {**REQUIRED, "PORT": "8123"})

    assert load_settings().port == 8123


def test_every_setting_is_read_from_its_variable(tmp_path: Path) -> None:
    settings = load(
        MIRO_WEBHOOK_SECRET="new, old",
        MIRO_ENCRYPTION_KEY=f"{KEY},{OLD_KEY}",
        MIRO_ALLOW_PLAINTEXT_TOKENS="yes",
        MIRO_DATABASE_URL="sqlite:////var/lib/bridge.db",
        MIRO_CORS_ORIGINS="https://miro.com",
        MIRO_API_BASE_URL="http://127.0.0.1:9000/",
        MIRO_OAUTH_AUTHORIZE_URL="http://127.0.0.1:9000/oauth/authorize",
        MIRO_OAUTH_TOKEN_URL="http://127.0.0.1:9000/v1/oauth/token",
        MIRO_HTTP_TIMEOUT_SECONDS="2.5",
        MIRO_AUTH_MODE="ID-Token",
        MIRO_STATIC_DIR=str(tmp_path),
        MIRO_LEGACY_BASE_URL="http://legacy.internal:5000",
        MIRO_FORCE_HTTPS="on",
        MIRO_TRUSTED_PROXIES="10.0.0.0/8, 192.0.2.7,fd00::/8",
        MIRO_DEBUG_TOGGLES="1",
        MIRO_MAX_BODY_BYTES="2048",
        MIRO_LOG_MAX_ENTRIES="10",
        MIRO_LOG_MAX_PAYLOAD_BYTES="4096",
        MIRO_LOG_RETENTION_DAYS="30",
        MIRO_CACHE_TTL_SECONDS="60",
        HOST="10.0.0.5",
        PORT="0",
        OTEL_EXPORTER_OTLP_ENDPOINT="http://collector:4318",
        OTEL_SERVICE_NAME="bridge-eu",
        JAEGER_AGENT_HOST="jaeger",
        JAEGER_AGENT_PORT="14318",
        LOGFIRE_TOKEN="pylf_v1_us_token",
        LOGFIRE_BASE_URL="https://logfire-eu.pydantic.dev",
    )

    assert settings.webhook_secrets == ("new", "old")
    assert settings.encryption_keys == (KEY, OLD_KEY)
    assert settings.allow_plaintext_tokens is True
    assert settings.database_path == Path("/var/lib/bridge.db")
    assert settings.cors_origins == ("https://miro.com",)
    assert settings.api_base_url == "http://127.0.0.1:9000"
    assert settings.oauth_authorize_url == "http://127.0.0.1:9000/oauth/authorize"
    assert settings.oauth_token_url == "http://127.0.0.1:9000/v1/oauth/token"
    assert settings.http_timeout_seconds == 2.5
    assert settings.auth_mode is AuthMode.ID_TOKEN
    assert settings.static_dir == tmp_path
    assert settings.legacy_base_url == "http://legacy.internal:5000"
    assert (settings.force_https, settings.debug_toggles) == (True, True)
    assert settings.trusted_proxies == (
        ip_network("10.0.0.0/8"),
        ip_network("192.0.2.7/32"),
        ip_network("fd00::/8"),
    )
    assert (settings.max_body_bytes, settings.log_max_entries) == (2048, 10)
    assert (settings.log_max_payload_bytes, settings.log_retention_days) == (4096, 30)
    assert settings.cache_ttl_seconds == 60.0
    assert (settings.host, settings.port) == ("10.0.0.5", 0)
    assert settings.otel_exporter_otlp_endpoint == "http://collector:4318"
    assert settings.otel_service_name == "bridge-eu"
    assert (settings.jaeger_agent_host, settings.jaeger_agent_port) == ("jaeger", 14318)
    assert settings.logfire_token == "pylf_v1_us_token"
    assert settings.logfire_base_url == "https://logfire-eu.pydantic.dev"


def test_toml_file_is_read_and_environment_beats_it(tmp_path: Path) -> None:
    config_file = write_toml(
        tmp_path,
        'MIRO_CLIENT_ID = "from-file"\nOTEL_SERVICE_NAME = "file-service"\nHOST = "10.0.0.1"\n',
    )

    settings = load(MIRO_CONFIG_FILE=config_file, HOST="10.0.0.2")

    assert settings.client_id == REQUIRED["MIRO_CLIENT_ID"]
    assert settings.host == "10.0.0.2"
    assert settings.otel_service_name == "file-service"


def test_toml_file_can_hold_the_required_settings(tmp_path: Path) -> None:
    config_file = write_toml(
        tmp_path,
        "\n".join(f'{name} = "{value}"' for name, value in REQUIRED.items()),
    )

    settings = load_settings({"MIRO_CONFIG_FILE": config_file})

    assert settings.client_secret == SECRET
    assert settings.encryption_keys == (KEY,)


def test_blank_variable_does_not_hide_the_file(tmp_path: Path) -> None:
    config_file = write_toml(tmp_path, 'OTEL_SERVICE_NAME = "file-service"\n')

    settings = load(MIRO_CONFIG_FILE=config_file, OTEL_SERVICE_NAME="  ")

    assert settings.otel_service_name == "file-service"


def test_overrides_beat_environment(tmp_path: Path) -> None:
    config_file = write_toml(tmp_path, "PORT = 7000\n")
    environ = {**REQUIRED, "MIRO_CONFIG_FILE": config_file, "HOST": "10.0.0.1", "PORT": "7001"}

    settings = load_settings(environ, overrides={"HOST": "10.0.0.2", "PORT": "7002"})

    assert (settings.host, settings.port) == ("10.0.0.2", 7002)


def test_unknown_override_is_a_problem() -> None:
    with pytest.raises(ConfigError) as info:
        load_settings(REQUIRED, overrides={"PROT": "1"})

    assert info.value.problems == ("overrides: unknown setting 'PROT'",)


def test_toml_native_types(tmp_path: Path) -> None:
    config_file = write_toml(
        tmp_path,
        """
        PORT = 9000
        MIRO_FORCE_HTTPS = true
        MIRO_HTTP_TIMEOUT_SECONDS = 2.5
        MIRO_CACHE_TTL_SECONDS = 600
        MIRO_MAX_BODY_BYTES = 4_096
        MIRO_CORS_ORIGINS = ["https://miro.com", "http://localhost:3000"]
        MIRO_WEBHOOK_SECRET = ["one", "two"]
        """.replace("        ", ""),
    )

    settings = load(MIRO_CONFIG_FILE=config_file)

    assert settings.port == 9000
    assert settings.force_https is True
    assert settings.http_timeout_seconds == 2.5
    assert settings.cache_ttl_seconds == 600.0
    assert settings.max_body_bytes == 4096
    assert settings.cors_origins == ("https://miro.com", "http://localhost:3000")
    assert settings.webhook_secrets == ("one", "two")


def test_toml_value_of_the_wrong_type_is_a_problem(tmp_path: Path) -> None:
    config_file = write_toml(
        tmp_path,
        "PORT = true\nMIRO_DEBUG_TOGGLES = 1\nMIRO_FORCE_HTTPS = [1]\nHOST = 8\n"
        "MIRO_CLIENT_SECRET = 1\n",
    )
    environ = {**REQUIRED, "MIRO_CLIENT_SECRET": "", "MIRO_CONFIG_FILE": config_file}

    assert problems_of(environ) == (
        "MIRO_CLIENT_SECRET must be a string, got int",
        "MIRO_FORCE_HTTPS must be true or false (or 1/0, yes/no, on/off), got [1]",
        "MIRO_DEBUG_TOGGLES must be true or false (or 1/0, yes/no, on/off), got 1",
        "HOST must be a string, got int",
        "PORT must be an integer from 0 to 65535, got True",
    )


def test_unknown_toml_key_is_a_problem(tmp_path: Path) -> None:
    config_file = write_toml(tmp_path, 'MIRO_CLIENTID = "x"\nPORT = 9000\nCOLOUR = "red"\n')

    problems = problems_of({**REQUIRED, "MIRO_CONFIG_FILE": config_file})

    assert problems == (
        f"MIRO_CONFIG_FILE {config_file!r}: unknown setting 'MIRO_CLIENTID'"
        " (did you mean MIRO_CLIENT_ID?)",
        f"MIRO_CONFIG_FILE {config_file!r}: unknown setting 'COLOUR'",
    )


def test_invalid_toml_is_a_problem(tmp_path: Path) -> None:
    config_file = write_toml(tmp_path, f'MIRO_CLIENT_SECRET = "{SECRET}\n')

    (problem,) = problems_of({**REQUIRED, "MIRO_CONFIG_FILE": config_file})

    assert problem.startswith(f"MIRO_CONFIG_FILE {config_file!r} is not valid TOML")
    assert SECRET not in problem


def test_unreadable_toml_file_is_a_problem(tmp_path: Path) -> None:
    missing = str(tmp_path / "absent.toml")

    problems = problems_of({**REQUIRED, "MIRO_CONFIG_FILE": missing})

    assert problems == (f"MIRO_CONFIG_FILE {missing!r} cannot be read: No such file or directory",)


def test_every_problem_is_reported_at_once() -> None:
    environ = {
        "MIRO_CLIENT_SECRET": SECRET,
        "PORT": "abc",
        "MIRO_FORCE_HTTPS": "maybe",
        "MIRO_HTTP_TIMEOUT_SECONDS": "0",
        "MIRO_MAX_BODY_BYTES": "0",
        "MIRO_API_BASE_URL": "ftp://api.miro.com",
        "MIRO_AUTH_MODE": "cookie",
        "MIRO_CORS_ORIGINS": "*",
    }

    problems = problems_of(environ)

    assert set(problems) == {
        "MIRO_CLIENT_ID is required (or run with --sandbox)",
        "MIRO_OAUTH_REDIRECT_URI is required (or run with --sandbox)",
        "MIRO_ENCRYPTION_KEY is required: set a Fernet key to encrypt stored tokens, or set"
        " MIRO_ALLOW_PLAINTEXT_TOKENS=true to store them unencrypted (or run with --sandbox)",
        "PORT must be an integer from 0 to 65535, got 'abc'",
        "MIRO_FORCE_HTTPS must be true or false (or 1/0, yes/no, on/off), got 'maybe'",
        "MIRO_HTTP_TIMEOUT_SECONDS must be a number of seconds greater than 0, got '0'",
        "MIRO_MAX_BODY_BYTES must be an integer of at least 1, got '0'",
        "MIRO_API_BASE_URL must be an absolute http(s) URL, got 'ftp://api.miro.com'",
        "MIRO_AUTH_MODE must be 'header' or 'id-token', got 'cookie'",
        "MIRO_CORS_ORIGINS must not be '*': browsers refuse a wildcard origin when credentials"
        " are allowed; list each origin",
    }
    assert len(problems) == len(set(problems))


def test_config_error_message_lists_each_problem() -> None:
    with pytest.raises(ConfigError) as info:
        load_settings({"PORT": "70000"}, sandbox=True)

    assert str(info.value) == (
        "invalid configuration:\n  - PORT must be an integer from 0 to 65535, got '70000'"
    )


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("PORT", "-1"),
        ("PORT", "8000.5"),
        ("JAEGER_AGENT_PORT", "0"),
        ("MIRO_LOG_MAX_ENTRIES", "0"),
        ("MIRO_LOG_MAX_PAYLOAD_BYTES", "lots"),
        ("MIRO_LOG_RETENTION_DAYS", "-7"),
        ("MIRO_CACHE_TTL_SECONDS", "-1"),
        ("MIRO_HTTP_TIMEOUT_SECONDS", "nan"),
        ("MIRO_HTTP_TIMEOUT_SECONDS", "inf"),
        ("MIRO_OAUTH_REDIRECT_URI", "/oauth/callback"),
        ("MIRO_OAUTH_TOKEN_URL", "api.miro.com/v1/oauth/token"),
        ("MIRO_LEGACY_BASE_URL", "http://"),
        ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:port"),
        ("LOGFIRE_BASE_URL", "logfire-eu.pydantic.dev"),
    ],
)
def test_out_of_range_numbers_and_bad_urls_are_problems(variable: str, value: str) -> None:
    problem = problem_of(**{variable: value})

    assert problem.startswith(f"{variable} must be")
    assert problem.endswith(f"got {value!r}")


def test_sandbox_needs_no_credentials_and_no_key() -> None:
    settings = load_settings({}, sandbox=True)

    assert settings.sandbox is True
    assert settings.client_id == "sandbox-client"
    assert settings.client_secret == "sandbox-secret"
    assert settings.oauth_redirect_uri == "http://127.0.0.1:8000/oauth/callback"
    assert settings.encryption_keys == ()


def test_sandbox_redirect_uses_the_resolved_host_and_port() -> None:
    settings = load_settings({"HOST": "localhost"}, sandbox=True, overrides={"PORT": "9100"})
    ipv6 = load_settings({"HOST": "::1"}, sandbox=True)

    assert settings.oauth_redirect_uri == "http://localhost:9100/oauth/callback"
    assert ipv6.oauth_redirect_uri == "http://[::1]:8000/oauth/callback"


def test_sandbox_keeps_credentials_that_are_set() -> None:
    settings = load_settings(REQUIRED, sandbox=True)

    assert settings.client_id == REQUIRED["MIRO_CLIENT_ID"]
    assert settings.client_secret == SECRET
    assert settings.oauth_redirect_uri == REQUIRED["MIRO_OAUTH_REDIRECT_URI"]


def test_plaintext_tokens_replace_the_encryption_key() -> None:
    environ = {**REQUIRED, "MIRO_ENCRYPTION_KEY": "", "MIRO_ALLOW_PLAINTEXT_TOKENS": "TRUE"}

    settings = load_settings(environ)

    assert settings.encryption_keys == ()
    assert settings.allow_plaintext_tokens is True


def test_missing_encryption_key_names_both_choices() -> None:
    problem = problem_of(MIRO_ENCRYPTION_KEY="")

    assert problem.startswith("MIRO_ENCRYPTION_KEY is required")
    assert "MIRO_ALLOW_PLAINTEXT_TOKENS=true" in problem


def test_invalid_encryption_key_is_a_problem_that_hides_the_key() -> None:
    not_a_key = "c2hvcnQta2V5LXZhbHVl"

    single = problem_of(MIRO_ENCRYPTION_KEY=not_a_key)
    second = problem_of(MIRO_ENCRYPTION_KEY=f"{KEY},{not_a_key}")

    assert single.startswith("MIRO_ENCRYPTION_KEY must be a Fernet key")
    assert second.startswith("MIRO_ENCRYPTION_KEY entry 2 must be a Fernet key")
    for problem in (single, second):
        assert not_a_key not in problem
        assert KEY not in problem


def test_secrets_are_absent_from_repr() -> None:
    settings = load(MIRO_WEBHOOK_SECRET="hook-secret-1", LOGFIRE_TOKEN="pylf_v1_us_token")

    text = repr(settings)

    assert "client_id='3458764500000000001'" in text
    for secret in (SECRET, KEY, "hook-secret-1", "pylf_v1_us_token"):
        assert secret not in text
        assert secret not in str(settings)


def test_secrets_are_absent_from_problems(tmp_path: Path) -> None:
    config_file = write_toml(tmp_path, f'MIRO_CLIENT_SECRET = "{SECRET}"\nPORT = "x"\n')
    environ = {
        "MIRO_CONFIG_FILE": config_file,
        "MIRO_ENCRYPTION_KEY": f"{KEY},broken-{SECRET}",
        "MIRO_DATABASE_URL": f"postgres://bridge:{SECRET}@db:port/bridge",
        "MIRO_WEBHOOK_SECRET": f"hook-{SECRET}",
        "LOGFIRE_TOKEN": f"pylf-{SECRET}",
    }

    with pytest.raises(ConfigError) as info:
        load_settings(environ)

    assert len(info.value.problems) == 5
    assert SECRET not in str(info.value)
    assert KEY not in str(info.value)


def test_cors_origins_from_a_comma_list() -> None:
    settings = load(MIRO_CORS_ORIGINS=" https://miro.com, HTTP://LocalHost:3000 ,,")

    assert settings.cors_origins == ("https://miro.com", "http://localhost:3000")


def test_cors_origins_from_a_json_list() -> None:
    settings = load(MIRO_CORS_ORIGINS='["https://miro.com", "http://localhost:3000"]')

    assert settings.cors_origins == ("https://miro.com", "http://localhost:3000")


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        (
            "*",
            "MIRO_CORS_ORIGINS must not be '*': browsers refuse a wildcard origin when"
            " credentials are allowed; list each origin",
        ),
        (
            '["*"]',
            "MIRO_CORS_ORIGINS must not be '*': browsers refuse a wildcard origin when"
            " credentials are allowed; list each origin",
        ),
        (
            "https://miro.com/app",
            "MIRO_CORS_ORIGINS must be an origin scheme://host[:port] with no path,"
            " got 'https://miro.com/app'",
        ),
        (
            "https://miro.com,http://localhost:3000/",
            "MIRO_CORS_ORIGINS entry 2 must be an origin scheme://host[:port] with no path,"
            " got 'http://localhost:3000/'",
        ),
        (
            "miro.com",
            "MIRO_CORS_ORIGINS must be an origin scheme://host[:port] with no path, got 'miro.com'",
        ),
        (
            "https://user@miro.com",
            "MIRO_CORS_ORIGINS must be an origin scheme://host[:port] with no path,"
            " got 'https://user@miro.com'",
        ),
        (
            '["https://miro.com"',
            "MIRO_CORS_ORIGINS is not a valid JSON list: Expecting ',' delimiter",
        ),
        ("[1]", "MIRO_CORS_ORIGINS must be a string, got int"),
    ],
)
def test_cors_origins_rejects_wildcards_paths_and_non_origins(value: str, problem: str) -> None:
    assert problem_of(MIRO_CORS_ORIGINS=value) == problem


def test_trusted_proxies_that_are_not_addresses_or_networks_are_problems() -> None:
    assert problem_of(MIRO_TRUSTED_PROXIES="127.0.0.1, proxy.internal, 10.0.0.1/8") == (
        "MIRO_TRUSTED_PROXIES entry 2 must be an IP address or a network (CIDR), got"
        " 'proxy.internal': 'proxy.internal' does not appear to be an IPv4 or IPv6 network;"
        " entry 3 must be an IP address or a network (CIDR), got '10.0.0.1/8':"
        " 10.0.0.1/8 has host bits set"
    )


def test_trusted_proxies_from_a_toml_list(tmp_path: Path) -> None:
    path = write_toml(tmp_path, 'MIRO_TRUSTED_PROXIES = ["10.1.0.0/16"]\n')
    settings = load(MIRO_CONFIG_FILE=path)
    assert settings.trusted_proxies == (ip_network("10.1.0.0/16"),)
    assert (
        load(MIRO_CONFIG_FILE=write_toml(tmp_path, "MIRO_TRUSTED_PROXIES = []\n")).trusted_proxies
        == ()
    )


@pytest.mark.parametrize(
    ("url", "path"),
    [
        ("sqlite:///./miro-bridge.db", Path("miro-bridge.db")),
        ("sqlite:///data/bridge.db", Path("data/bridge.db")),
        ("sqlite:////var/lib/miro/bridge.db", Path("/var/lib/miro/bridge.db")),
    ],
)
def test_database_path_from_a_sqlite_url(url: str, path: Path) -> None:
    assert load(MIRO_DATABASE_URL=url).database_path == path


@pytest.mark.parametrize(
    "url",
    [
        "postgresql://bridge:pw@db.internal:5433/bridge",
        "postgres://bridge@127.0.0.1/bridge",
        "postgresql:///bridge",  # libpq's defaults: the local socket
    ],
)
def test_database_url_may_name_postgresql(url: str) -> None:
    settings = load(MIRO_DATABASE_URL=url)
    assert settings.database_url == url
    assert settings.database_is_shared


def test_a_postgresql_url_may_come_from_a_file_and_never_shows(tmp_path: Path) -> None:
    url = f"postgresql://bridge:{SECRET}@db/bridge"
    (tmp_path / "url").write_text(url + "\n")
    settings = load(MIRO_DATABASE_URL_FILE=str(tmp_path / "url"))
    assert settings.database_url == url
    assert SECRET not in repr(settings)


@pytest.mark.parametrize(
    "url",
    [
        "mysql://bridge:pw@db/bridge",
        f"postgres://bridge:{SECRET}@db:port/bridge",
        "sqlite://bridge.db",
        "sqlite:///",
        "bridge.db",
    ],
)
def test_database_url_other_than_sqlite_or_postgresql_is_a_problem(url: str) -> None:
    problem = problem_of(MIRO_DATABASE_URL=url)
    assert problem == (
        "MIRO_DATABASE_URL must be sqlite:///relative/path.db, sqlite:////absolute/path.db, or"
        " postgresql://user:password@host:port/database (the value given is none of these)"
    )
    assert SECRET not in problem


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("true", True),
        ("True", True),
        ("1", True),
        ("yes", True),
        ("ON", True),
        (" on ", True),
        ("false", False),
        ("FALSE", False),
        ("0", False),
        ("no", False),
        ("Off", False),
    ],
)
def test_booleans(value: str, expected: bool) -> None:
    assert load(MIRO_DEBUG_TOGGLES=value).debug_toggles is expected


@pytest.mark.parametrize("value", ["2", "y", "enabled", "truthy"])
def test_other_boolean_words_are_problems(value: str) -> None:
    assert problem_of(MIRO_FORCE_HTTPS=value) == (
        f"MIRO_FORCE_HTTPS must be true or false (or 1/0, yes/no, on/off), got {value!r}"
    )


def test_static_dir_must_exist(tmp_path: Path) -> None:
    missing = tmp_path / "dist"

    assert problem_of(MIRO_STATIC_DIR=str(missing)) == (
        f"MIRO_STATIC_DIR must be an existing directory, got {str(missing)!r}"
    )


def test_public_origin_is_set_or_the_redirect_uris() -> None:
    assert load().public_origin == "https://bridge.example"
    assert load(MIRO_PUBLIC_URL="https://Bridge.example:8443/").public_origin == (
        "https://bridge.example:8443"
    )
    assert load(MIRO_RETURN_URL_MAX_LENGTH="512").return_url_max_length == 512
    assert "MIRO_PUBLIC_URL must be an origin" in problem_of(
        MIRO_PUBLIC_URL="https://bridge.example/app"
    )


def test_shape_templates_are_loaded_and_checked_at_start_up(tmp_path: Path) -> None:
    good = tmp_path / "templates.json"
    good.write_text(
        '{"Goal": {"elements": [{"shape": "hexagon", "width": 9, "height": 9},'
        ' {"shape": "circle", "width": 1, "height": 1}], "alias": ["Aim"]}}'
    )
    templates = load(MIRO_SHAPE_TEMPLATES=str(good)).shape_templates
    assert templates.template_for("Aim").shape == "hexagon"
    assert templates.warnings  # the second element is ignored: said at start-up
    assert load().shape_templates.template_for("Goal").shape == "round_rectangle"
    bad = tmp_path / "bad.json"
    bad.write_text('{"Goal": {"elements": [{"shape": "hexagon", "style": {"fontFamily": "X"}}]}}')
    problem = problem_of(MIRO_SHAPE_TEMPLATES=str(bad))
    assert problem.startswith("MIRO_SHAPE_TEMPLATES names a template file that cannot be used")
    assert "width must be a positive number" in problem
    assert "'X'" in problem
    assert "cannot be read" in problem_of(MIRO_SHAPE_TEMPLATES=str(tmp_path / "none.json"))


def test_secrets_can_be_read_from_files(tmp_path: Path) -> None:
    (tmp_path / "secret").write_text(f"{SECRET}\n")
    (tmp_path / "key").write_text(f"{KEY},{OLD_KEY}\r\n")
    (tmp_path / "hooks").write_text("one, two")
    environ = {k: v for k, v in REQUIRED.items() if k not in ("MIRO_CLIENT_SECRET",)}
    environ.pop("MIRO_ENCRYPTION_KEY")
    settings = load_settings(
        {
            **environ,
            "MIRO_CLIENT_SECRET_FILE": str(tmp_path / "secret"),
            "MIRO_ENCRYPTION_KEY_FILE": str(tmp_path / "key"),
            "MIRO_WEBHOOK_SECRET_FILE": str(tmp_path / "hooks"),
        }
    )
    assert settings.client_secret == SECRET  # the file's line break is not part of it
    assert settings.encryption_keys == (KEY, OLD_KEY)
    assert settings.webhook_secrets == ("one", "two")


def test_a_secret_set_twice_or_unreadable_is_a_problem(tmp_path: Path) -> None:
    (tmp_path / "secret").write_text("from-the-file")
    both = problem_of(MIRO_CLIENT_SECRET_FILE=str(tmp_path / "secret"))
    assert both == "set MIRO_CLIENT_SECRET or MIRO_CLIENT_SECRET_FILE, not both"
    environ = {k: v for k, v in REQUIRED.items() if k != "MIRO_ENCRYPTION_KEY"}
    missing = problems_of({**environ, "MIRO_ENCRYPTION_KEY_FILE": str(tmp_path / "none")})
    assert any("MIRO_ENCRYPTION_KEY_FILE" in p and "cannot be read" in p for p in missing)
    assert not any("from-the-file" in p for p in (both, *missing))


def test_the_console_token_is_a_long_secret_also_read_from_a_file(tmp_path: Path) -> None:
    assert load().console_token is None  # the console is off
    token = "an-operator-token-0123456789"
    assert load(MIRO_CONSOLE_TOKEN=token).console_token == token
    assert token not in repr(load(MIRO_CONSOLE_TOKEN=token))
    (tmp_path / "console").write_text(f"{token}\n")
    assert load(MIRO_CONSOLE_TOKEN_FILE=str(tmp_path / "console")).console_token == token
    short = problem_of(MIRO_CONSOLE_TOKEN="guessable")
    assert short == "MIRO_CONSOLE_TOKEN must be at least 16 characters long"
    assert "guessable" not in short
