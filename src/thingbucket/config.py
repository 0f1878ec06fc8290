"""One settings object, nested by concern, validated once at start.

Every setting has a nested environment name (``THINGBUCKET_SECURITY__SECRET_KEY``); the options that
are also CLI flags have a flat name too (``THINGBUCKET_PORT``). Two names for one setting that
disagree are refused rather than silently ranked.
"""

from __future__ import annotations

import os
import secrets
import stat
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

ENV_PREFIX = "THINGBUCKET_"

# Flat environment names (one per CLI flag) and the nested setting each stands for.
FLAT_NAMES: dict[str, tuple[str, str]] = {
    "HOST": ("server", "host"),
    "PORT": ("server", "port"),
    "PUBLIC_URL": ("server", "public_url"),
    "DATA_DIR": ("server", "data_dir"),
    "DEBUG": ("server", "debug"),
    "DATABASE_URL": ("database", "url"),
    "MQTT_HOST": ("mqtt", "host"),
    "MQTT_PORT": ("mqtt", "port"),
    "MQTT_URL": ("mqtt", "url"),
    "SECRET_KEY": ("security", "secret_key"),
    "LOG_LEVEL": ("server", "log_level"),
    "WORKERS": ("server", "workers"),
}

# Values that appear in docs and examples, or that people type when asked for "a secret".
PLACEHOLDER_SECRETS = frozenset(
    {"changeme", "changethis", "change-me", "secret", "password", "thingbucket", "example"}
)
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1", "[::1]"})


class ConfigError(Exception):
    """A configuration the server refuses; the message is one line naming the setting."""


class ServerSettings(BaseModel):
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=0, le=65535)
    public_url: str | None = None
    data_dir: Path = Path("./thingbucket-data")
    debug: bool = False
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    trusted_proxies: list[str] = Field(default_factory=list)
    # Server processes sharing the HTTP port; more than one only on PostgreSQL with an external
    # MQTT broker (or none): SQLite has one writer, the embedded broker one port.
    workers: int = Field(default=1, ge=1, le=64)


class DatabaseSettings(BaseModel):
    url: str | None = None
    pool_size: int = Field(default=10, ge=1, le=200)
    connect_timeout_s: float = Field(default=5.0, gt=0)


class StorageSettings(BaseModel):
    sqlite_synchronous: Literal["NORMAL", "FULL", "OFF"] = "NORMAL"
    sqlite_journal_mode: str = "WAL"
    busy_timeout_ms: int = 5000


class MqttSettings(BaseModel):
    # The embedded broker runs unless an external broker is named (url) or this is off.
    enabled: bool = True
    host: str = "127.0.0.1"
    port: int = Field(default=1883, ge=0, le=65535)
    url: str | None = None
    allow_anonymous: bool = False
    # Embedded broker: MQTT over TLS on tls_port when a certificate is given, and MQTT over
    # WebSocket (subprotocol "mqtt") on ws_port when set; both bind ``host`` like the main port.
    certfile: Path | None = None
    keyfile: Path | None = None
    tls_port: int = Field(default=8883, ge=0, le=65535)
    ws_port: int | None = Field(default=None, ge=0, le=65535)
    # External broker mode: thingbucket's own (privileged) credentials and client id.
    username: str | None = None
    password: SecretStr | None = None
    client_id: str | None = None
    share_group: str = Field(default="thingbucket", pattern=r"^[A-Za-z0-9_-]{1,64}$")
    # "dynsec": device tokens are provisioned into Mosquitto's dynamic security plugin.
    provision: Literal["none", "dynsec"] = "none"
    # Brokers that ask thingbucket (EMQX HTTP auth/authz): the hooks' shared secret. Without it
    # the hooks answer loopback clients only.
    hook_secret: SecretStr | None = None


class SecuritySettings(BaseModel):
    secret_key: SecretStr | None = None
    secret_key_previous: list[SecretStr] = Field(default_factory=list)
    argon2_memory_kib: int = 19456
    argon2_time_cost: int = 2
    argon2_parallelism: int = 1
    jwt_leeway_s: int = Field(default=60, ge=0, le=600)
    jwt_max_lifetime_s: int = 86_400
    jwt_max_future_iat_s: int = 600
    access_token_ttl_s: int = Field(default=3600, ge=60)
    refresh_token_ttl_s: int = Field(default=30 * 86_400, ge=60)
    login_max_failures_per_account: int = 5
    login_max_failures_per_address: int = 50
    login_window_s: int = 900


class LimitsSettings(BaseModel):
    head_bytes: int = 16 * 1024
    url_bytes: int = 8 * 1024
    query_params: int = 100
    ingest_body_bytes: int = 1024 * 1024
    control_body_bytes: int = 64 * 1024
    decompressed_bytes: int = 8 * 1024 * 1024
    compression_ratio: int = 20
    points_per_request: int = 10_000
    dimensions_per_property: int = 100
    text_value_bytes: int = 1024
    future_skew_s: int = 600
    page_max: int = 1000
    samples_per_response: int = 100_000
    buckets_per_query: int = Field(default=100_000, ge=1)
    json_depth: int = 32


class RateLimitSettings(BaseModel):
    """Token buckets of security.md §5.5: requests per second and the burst a bucket holds.

    A rate of 0 turns that bucket off (a warning beyond loopback, §6 row 16). Buckets are kept per
    process; ``max_buckets`` bounds their memory (full buckets are forgotten first).
    """

    model_config = ConfigDict(allow_inf_nan=False)

    # Per API key, access token or personal token.
    credential_per_s: float = Field(default=500.0, ge=0)
    credential_burst: int = Field(default=1000, ge=1)
    # Per thing (its device tokens and JWTs together).
    thing_per_s: float = Field(default=200.0, ge=0)
    thing_burst: int = Field(default=1000, ge=1)
    # Per organization: all its API keys and things together.
    organization_per_s: float = Field(default=1000.0, ge=0)
    organization_burst: int = Field(default=2000, ge=1)
    # Per source address: anonymous requests and failed authentications.
    address_per_s: float = Field(default=100.0, ge=0)
    address_burst: int = Field(default=200, ge=1)
    max_buckets: int = Field(default=100_000, ge=100)

    def rates_off(self) -> list[str]:
        """The buckets a rate of 0 turns off."""
        return [
            name
            for name in ("credential", "thing", "organization", "address")
            if getattr(self, f"{name}_per_s") == 0
        ]


class IngestSettings(BaseModel):
    queue_max_samples: int = Field(default=50_000, ge=1)
    # How many queued samples one SQLite transaction may take from the queue (group commit).
    group_commit_max_samples: int = Field(default=50_000, ge=1)
    postgres_writers: int = Field(default=4, ge=1, le=64)


class RetentionSettings(BaseModel):
    """The task that deletes samples older than their bucket's or property's retention."""

    enabled: bool = True
    interval_s: float = Field(default=3600.0, gt=0)
    first_run_after_s: float = Field(default=60.0, ge=0)
    # Rows per delete statement: each is its own short transaction, so ingest never waits long.
    batch_samples: int = Field(default=10_000, ge=1)


class ColdSettings(BaseModel):
    """The task that packs number samples older than ``after_days`` into compressed chunks,
    a UTC day per series at a time (replicas must agree on ``after_days``)."""

    enabled: bool = True
    after_days: int = Field(default=7, ge=1)
    interval_s: float = Field(default=900.0, gt=0)
    first_run_after_s: float = Field(default=120.0, ge=0)
    # Samples per chunk at most (a chunk ends on a minute, so one busy minute may hold more).
    chunk_samples: int = Field(default=100_000, ge=100)


class RollupSettings(BaseModel):
    """The background pass that rebuilds dirty rollup buckets (queries never wait for it)."""

    enabled: bool = True
    interval_s: float = Field(default=1.0, gt=0)
    batch_buckets: int = Field(default=500, ge=1)  # per writer job, so ingest is not held up


class MetricsSettings(BaseModel):
    allow_from: list[str] = Field(default_factory=list)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_nested_delimiter="__",
        extra="ignore",
        case_sensitive=False,
    )

    server: ServerSettings = Field(default_factory=ServerSettings)
    database: DatabaseSettings = Field(default_factory=DatabaseSettings)
    storage: StorageSettings = Field(default_factory=StorageSettings)
    mqtt: MqttSettings = Field(default_factory=MqttSettings)
    security: SecuritySettings = Field(default_factory=SecuritySettings)
    limits: LimitsSettings = Field(default_factory=LimitsSettings)
    ratelimit: RateLimitSettings = Field(default_factory=RateLimitSettings)
    ingest: IngestSettings = Field(default_factory=IngestSettings)
    retention: RetentionSettings = Field(default_factory=RetentionSettings)
    rollups: RollupSettings = Field(default_factory=RollupSettings)
    cold: ColdSettings = Field(default_factory=ColdSettings)
    metrics: MetricsSettings = Field(default_factory=MetricsSettings)

    @property
    def database_url(self) -> str:
        if self.database.url:
            return self.database.url
        return f"sqlite+aiosqlite:///{(self.server.data_dir / 'thingbucket.db').resolve()}"

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")

    @property
    def public_url(self) -> str:
        if self.server.public_url:
            return self.server.public_url.rstrip("/")
        host = self.server.host
        if host in ("0.0.0.0", "::", ""):  # noqa: S104 (mapping a wildcard bind to loopback)
            host = "127.0.0.1"
        if ":" in host and not host.startswith("["):
            host = f"[{host}]"
        return f"http://{host}:{self.server.port}"


def _set_path(tree: dict[str, Any], path: tuple[str, ...], value: Any) -> None:
    node = tree
    for part in path[:-1]:
        node = node.setdefault(part, {})
    node[path[-1]] = value


def _deep_merge(base: dict[str, Any], top: Mapping[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in top.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), dict):
            merged[key] = _deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def load_settings(
    overrides: Mapping[str, Any] | None = None, environ: Mapping[str, str] | None = None
) -> Settings:
    """Build the settings from the environment, flat names and CLI overrides (which win).

    Raises ConfigError with a one-line message on conflicting names or invalid values.
    """
    env = os.environ if environ is None else environ
    upper = {k.upper(): v for k, v in env.items() if k.upper().startswith(ENV_PREFIX)}
    flat: dict[str, Any] = {}
    for name, path in FLAT_NAMES.items():
        flat_name = ENV_PREFIX + name
        if flat_name not in upper:
            continue
        nested_name = ENV_PREFIX + "__".join(p.upper() for p in path)
        if nested_name in upper and upper[nested_name] != upper[flat_name]:
            raise ConfigError(
                f"{flat_name} and {nested_name} name the same setting "
                f"({'.'.join(path)}) with different values; set only one of them"
            )
        _set_path(flat, path, upper[flat_name])
    init = _deep_merge(flat, overrides or {})
    try:
        if environ is None:
            return Settings(**init)
        # An explicit environment (tests, subprocess set-ups) replaces os.environ for nested names.
        nested: dict[str, Any] = {}
        for key, value in upper.items():
            if "__" in key:
                parts = tuple(p.lower() for p in key[len(ENV_PREFIX) :].split("__"))
                _set_path(nested, parts, value)
        return Settings.model_validate(_deep_merge(nested, init))
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise ConfigError(f"invalid setting {where}: {first['msg']}") from None


def resolve_secret_key(settings: Settings) -> bytes:
    """The secret key: from the settings, else from ``<data dir>/secret_key`` (mode 0600)."""
    if settings.security.secret_key is not None:
        return settings.security.secret_key.get_secret_value().encode()
    path = settings.server.data_dir / "secret_key"
    if path.exists():
        mode = stat.S_IMODE(path.stat().st_mode)
        if mode & 0o077:
            raise ConfigError(
                f"{path} is readable by group or others (mode {mode:o}); "
                f"run 'chmod 600 {path}' (security.secret_key)"
            )
        key = path.read_bytes().strip()
        if len(key) < 32:
            raise ConfigError(f"{path} holds fewer than 32 bytes (security.secret_key)")
        return key
    settings.server.data_dir.mkdir(parents=True, exist_ok=True)
    key = secrets.token_urlsafe(32).encode()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(key + b"\n")
    return key


def is_loopback(host: str) -> bool:
    return host in LOOPBACK_HOSTS or host.startswith("127.")


def refusals(settings: Settings) -> list[str]:
    """Configurations of security.md §6 that must stop the server before it binds anything."""
    problems: list[str] = []
    for name in ("certfile", "keyfile"):
        path = getattr(settings.mqtt, name)
        if path is not None and not path.is_file():
            problems.append(f"mqtt.{name} {path} is not a readable file")
    sec = settings.security
    if sec.secret_key is not None:
        value = sec.secret_key.get_secret_value()
        if value.strip().lower() in PLACEHOLDER_SECRETS:
            problems.append(
                "security.secret_key is a placeholder value; set THINGBUCKET_SECURITY__SECRET_KEY "
                "to 32 or more random bytes, or unset it to have one generated in the data dir"
            )
        elif len(value.encode()) < 32:
            problems.append(
                "security.secret_key is shorter than 32 bytes; use 32 or more random bytes"
            )
    if settings.server.debug and not is_loopback(settings.server.host):
        problems.append(
            "server.debug is on while HTTP binds beyond loopback "
            f"({settings.server.host}); turn debug off or bind 127.0.0.1"
        )
    if settings.mqtt.allow_anonymous and not is_loopback(settings.mqtt.host):
        problems.append("mqtt.allow_anonymous is on while MQTT binds beyond loopback; turn it off")
    if settings.storage.sqlite_synchronous == "OFF":
        problems.append(
            "storage.sqlite_synchronous = OFF can lose acknowledged writes; use NORMAL or FULL"
        )
    if settings.storage.sqlite_journal_mode.upper() != "WAL":
        problems.append("storage.sqlite_journal_mode must be WAL")
    if sec.argon2_memory_kib < 19456 or sec.argon2_time_cost < 2 or sec.argon2_parallelism < 1:
        problems.append("security.argon2_* parameters are below m=19456 KiB, t=2, p=1; raise them")
    problems.extend(_database_url_refusals(settings))
    return problems


def workers_refusal(settings: Settings) -> str | None:
    """Why ``serve`` cannot run ``server.workers`` processes with these settings, if so (other
    commands run in one process whatever the setting says)."""
    if settings.server.workers == 1:
        return None
    if settings.is_sqlite:
        return "server.workers > 1 needs PostgreSQL (--database-url): SQLite has one writer"
    if settings.mqtt.enabled and not settings.mqtt.url:
        return (
            "server.workers > 1 needs an external MQTT broker (--mqtt-url) or "
            "mqtt.enabled = false: the embedded broker owns one port"
        )
    return None


def warnings(settings: Settings) -> list[str]:
    """Configurations of security.md §6 that start but are logged as a warning at every start."""
    found: list[str] = []
    off = settings.ratelimit.rates_off()
    if off and not is_loopback(settings.server.host):
        names = ", ".join(f"ratelimit.{name}_per_s" for name in off)
        found.append(
            f"{names} = 0 turns that rate limit off while HTTP binds beyond loopback "
            f"({settings.server.host})"
        )
    return found


def _database_url_refusals(settings: Settings) -> list[str]:
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        url = make_url(settings.database_url)
    except ArgumentError:
        return ["database.url is not a valid database URL"]
    if url.get_backend_name() not in ("sqlite", "postgresql"):
        return ["database.url must be sqlite+aiosqlite://... or postgresql+asyncpg://..."]
    if url.get_backend_name() == "postgresql" and url.get_driver_name() != "asyncpg":
        return ["database.url must use the asyncpg driver (postgresql+asyncpg://...)"]
    if (
        url.password
        and url.host
        and not is_loopback(url.host)
        and str(url.password).strip().lower() in PLACEHOLDER_SECRETS
    ):
        return ["database.url carries a placeholder password for a non-loopback host"]
    return []
