"""Settings: one YAML file plus environment overrides, validated once at start.

Only the composition root (``monitor.app``) and the CLI import this module; everything else takes
plain constructor arguments.

Environment overrides use ``SLICEWATCH__<SECTION>__<KEY>`` (double underscores, case-insensitive),
e.g. ``SLICEWATCH__KAFKA__BOOTSTRAP_SERVERS=broker:9092``. Values are parsed as YAML scalars.
Secrets: ``SLICEWATCH_DATABASE_URL`` or ``database.url_file``; ``kafka.security.sasl_plain_password_file``
or ``SLICEWATCH_KAFKA_SASL_PASSWORD``. Secrets are ``SecretStr`` and masked when printed. They are
read once, by :func:`load_settings` (:func:`resolve_secrets`): nothing reads a file or the
environment after that.

The overlay is written by hand (about 20 lines) rather than with pydantic-settings: it needs the
same YAML-scalar parsing of every value and the merge into a file's nested mapping, which
pydantic-settings would add as a second source with its own precedence rules.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import fields
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)

from monitor.alerts.rules import DEFAULT_RULES, Rule, rule_name_error
from monitor.errors import ConfigError
from monitor.records import QualityBar

RULE_FIELDS = frozenset(f.name for f in fields(Rule)) - {"name"}
BAR_FIELDS = frozenset(f.name for f in fields(QualityBar))

ENV_PREFIX = "SLICEWATCH__"
DEFAULT_SQLITE_URL = "sqlite:///slicewatch.db"


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TopicSettings(_Section):
    inference: str = "inference-events"
    feedback: str = "inference-feedback"
    promotions: str = "model-promotions"
    drift_events: str = "drift-events"
    dlq_suffix: str = ".dlq"

    def dlq(self, topic: str) -> str:
        return f"{topic}{self.dlq_suffix}"


class KafkaSecurity(_Section):
    """Passed through to kafka-python (``security_protocol``, ``sasl_*``, ``ssl_*``)."""

    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    sasl_mechanism: str | None = None
    sasl_plain_username: str | None = None
    sasl_plain_password: SecretStr | None = None
    sasl_plain_password_file: Path | None = None
    ssl_cafile: Path | None = None
    ssl_certfile: Path | None = None
    ssl_keyfile: Path | None = None
    ssl_check_hostname: bool = True

    def client_kwargs(self) -> dict[str, Any]:
        """The kafka-python keyword arguments (the password as resolved by :func:`resolve_secrets`)."""
        kw: dict[str, Any] = {"security_protocol": self.security_protocol}
        if self.sasl_mechanism:
            kw["sasl_mechanism"] = self.sasl_mechanism
        if self.sasl_plain_username:
            kw["sasl_plain_username"] = self.sasl_plain_username
        if self.sasl_plain_password is not None:
            kw["sasl_plain_password"] = self.sasl_plain_password.get_secret_value()
        for name in ("ssl_cafile", "ssl_certfile", "ssl_keyfile"):
            value = getattr(self, name)
            if value is not None:
                kw[name] = str(value)
        if self.security_protocol in ("SSL", "SASL_SSL"):
            kw["ssl_check_hostname"] = self.ssl_check_hostname
        return kw


class KafkaSettings(_Section):
    bootstrap_servers: str = "127.0.0.1:9092"
    group_id: str = "slicewatch"
    client_id: str = "slicewatch"
    topics: TopicSettings = TopicSettings()
    security: KafkaSecurity = KafkaSecurity()
    max_poll_records: int = Field(5000, ge=1)
    poll_timeout_ms: int = Field(500, ge=1)
    session_timeout_ms: int = Field(10000, ge=1000)
    heartbeat_interval_ms: int = Field(2000, ge=100)
    max_poll_interval_ms: int = Field(300000, ge=1000)
    auto_offset_reset: Literal["earliest", "latest"] = "earliest"


class DatabaseSettings(_Section):
    url: SecretStr | None = None
    url_file: Path | None = None
    pool_size: int = Field(5, ge=1)
    echo: bool = False
    connect_timeout_s: int = Field(5, ge=1)
    """A connection attempt to an unreachable or hung server fails after this long."""
    statement_timeout_s: float = Field(30.0, gt=0)
    """PostgreSQL ``statement_timeout`` (and ``lock_timeout``) of every statement the monitor runs."""

    def resolved_url(self) -> str:
        """The URL as resolved by :func:`resolve_secrets`, else the SQLite default."""
        return self.url.get_secret_value() if self.url is not None else DEFAULT_SQLITE_URL


class RetrySettings(_Section):
    initial_s: float = Field(0.5, gt=0)
    max_s: float = Field(30.0, gt=0)
    multiplier: float = Field(2.0, ge=1)


class IngestSettings(_Section):
    max_event_bytes: int = Field(256 * 1024, ge=256)
    dead_letter_value_cap_bytes: int = Field(16 * 1024, ge=0)
    retry: RetrySettings = RetrySettings()
    shutdown_grace_s: float = Field(6.0, gt=0)
    """SIGTERM: the batch in hand gets this long to be written and committed (the clients' close
    takes up to 2 s more: together under the 10 s a supervisor usually allows)."""
    rejoin_timeout_s: float = Field(60.0, gt=0)
    """Recreate the Kafka clients when the group membership stays unstable this long."""
    write_stall_s: float = Field(10.0, gt=0)
    """A batch write still running after this long pauses the partitions and is logged (hung database)."""
    revoke_wait_s: float = Field(3.0, ge=0)
    """On revoke, wait this long for the write in flight, so the next owner's rebuild sees its rows."""
    max_future_s: float = Field(600.0, ge=0)
    """Events stamped further ahead of the wall clock at ingest are dead-lettered (``future_event``)."""
    pending_label_ttl_s: float = Field(7 * 86400.0, gt=0)
    """A label whose prediction has not arrived after this long is dead-lettered (``unknown_request``)."""
    gc_gen0_threshold: int = Field(20_000, ge=0)
    """``slicewatch run`` and ``replay`` freeze the objects made at start (``gc.freeze``) and run
    Python's young-generation collection after this many new container objects instead of 700: a
    decoded batch makes about ten per event, so at 700 the collector ran every ~70 events and cost
    a quarter of the consumer's CPU (``benchmarks/README.md``). 0 keeps Python's defaults."""


class StatsSettings(_Section):
    bucket_seconds: int = Field(60, ge=1)
    window_buckets: int = Field(60, ge=1)
    """The main window (buckets of ``bucket_seconds``): every statistic, metrics with window="main"."""
    short_window_buckets: list[int] = Field(default_factory=lambda: [5, 15])
    """Shorter windows compared at the same time, from the same buckets (no second copy): only the
    statistics with a p-value, in the same multiple-testing correction (so they add no false
    alarms), so an abrupt change is found within minutes. Lengths not shorter than
    ``window_buckets`` are ignored; ``[]`` turns them off."""
    evaluate_every_s: float = Field(15.0, gt=0)
    checkpoint_every_s: float = Field(60.0, ge=0)
    """How often each model's window state is checkpointed (also on revoke and shutdown); 0: never,
    a takeover then replays the whole window from ``inference_log``."""
    allowed_lateness_s: float = Field(3600.0, ge=0)
    auto_reference_events: int = Field(5000, ge=10)
    max_features: int = Field(64, ge=1)
    """Features profiled (and so exported) when ``features`` is not set: the most present ones."""
    max_buffered_models: int = Field(100, ge=1)
    """Models without a reference profile whose events are buffered for an automatic one."""
    numeric_bins: int = Field(10, ge=2, le=100)
    top_k_categories: int = Field(20, ge=1, le=1000)
    min_samples: int = Field(200, ge=1)
    alpha: float = Field(0.01, gt=0, lt=1)
    correction: Literal["bh", "bonferroni"] = "bh"
    features: list[str] | None = None
    """Tracked input features; ``None`` tracks every feature seen in the reference."""
    protected_slices: dict[str, list[str]] = Field(default_factory=dict)
    """Slice key -> values that matter. A key is looked up in ``slice`` first, then ``input_features``."""
    quality_bars: dict[str, dict[str, QualityBar]] = Field(default_factory=dict)
    """model_id (or ``"*"`` for every model) -> slice (``"all"`` or ``"key=value"``) -> bar."""
    cohorts: list[list[str]] = Field(default_factory=list)
    """Groups of model ids serving side by side (a canary and the current model, experiment arms);
    their input distributions are compared with each other (signal ``cohort``)."""
    adwin_delta: float = Field(0.002, gt=0, lt=1)
    """Confidence of river's ADWIN on each slice's correctness stream (smaller: fewer false alarms)."""

    @field_validator("short_window_buckets")
    @classmethod
    def _short_windows(cls, v: list[int]) -> list[int]:
        if any(n < 1 for n in v):
            raise ValueError("short window lengths must be >= 1 bucket")
        return sorted(set(v))

    @field_validator("quality_bars", mode="before")
    @classmethod
    def _bar_specs(cls, v: Any) -> Any:
        """A key a bar does not have is an error (not silently dropped)."""
        if isinstance(v, dict):
            for model, slices in v.items():
                for slice_, spec in (slices.items() if isinstance(slices, dict) else ()):
                    unknown = sorted(set(spec) - BAR_FIELDS) if isinstance(spec, dict) else []
                    if unknown:
                        raise ValueError(f"quality bar {model}/{slice_}: unknown key(s) {unknown} "
                                         f"(known: {sorted(BAR_FIELDS)})")
        return v


class AlertSettings(_Section):
    rules: dict[str, Rule] = Field(default_factory=lambda: dict(DEFAULT_RULES))
    """``"<signal>.<statistic>"`` -> :class:`~monitor.alerts.rules.Rule` (the key is its name). A
    ``rules:`` block is merged into the defaults: a rule it names replaces the default of that name,
    the other defaults stay (a shipped file that tunes two rules keeps the others)."""
    promotion_watch_s: float = Field(3600.0, gt=0)
    lineage_lookback_s: float = Field(3600.0, gt=0)
    resolved_resend_s: float = Field(900.0, ge=0)
    alertmanager_url: str | None = None
    publish_retry: RetrySettings = RetrySettings()
    incident_group_s: float = Field(1800.0, gt=0)
    """Alerts of one model that fire within this long of an open incident's opening and share a cause
    with it (slice, feature, promotion, lineage change) join that incident (:mod:`monitor.alerts.incidents`)."""
    runbook_base_url: str = ""
    """Where ``docs/runbooks/`` is served (the pushed incidents' ``runbook_url``); empty: the repository path."""
    drift_event_version: Literal[1, 2] = 2
    """2: one drift event per incident transition (``schemas/drift-event.v2.schema.json``); 1: the
    previous contract, one event per alert firing and resolution (kept for one release)."""

    @field_validator("rules", mode="before")
    @classmethod
    def _rule_specs(cls, v: Any) -> Any:
        """A rule's name is its key; a key a rule does not have is an error (not silently dropped)."""
        if not isinstance(v, dict):
            return v
        out: dict[str, Any] = dict(DEFAULT_RULES)
        for name, spec in v.items():
            problem = rule_name_error(str(name))
            if problem is not None:
                raise ValueError(problem)
            if isinstance(spec, dict):
                unknown = sorted(set(spec) - RULE_FIELDS)
                if unknown:
                    raise ValueError(f"rule {name!r}: unknown key(s) {unknown} (known: {sorted(RULE_FIELDS)})")
                spec = {**spec, "name": name}
            out[name] = spec
        return out


class MetricsSettings(_Section):
    host: str = "127.0.0.1"
    port: int = Field(9731, ge=0, le=65535)
    max_models: int = Field(200, ge=1)
    created_series: bool = False
    """Export client_python's ``*_created`` series of counters (off: they double the counter series)."""


class RetentionSettings(_Section):
    """How long rows are kept (days; null: forever). See ``monitor.store.retention``."""

    inference_log_days: float | None = Field(30.0, gt=0)
    """``inference_log`` rows (and on PostgreSQL its daily partitions); never less than the window needs."""
    dead_letter_days: float | None = Field(30.0, gt=0)
    drift_event_days: float | None = Field(90.0, gt=0)
    resolved_alert_days: float | None = Field(90.0, gt=0)
    """Resolved alerts and incidents."""
    every_s: float = Field(3600.0, ge=0)
    """How often the running monitor makes the partitions ahead and applies retention (0: never;
    then ``slicewatch db retention`` from cron)."""
    partitions_ahead_days: int = Field(3, ge=1, le=60)
    batch_rows: int = Field(10_000, ge=100)
    """Rows deleted per transaction."""


class Settings(_Section):
    kafka: KafkaSettings = KafkaSettings()
    database: DatabaseSettings = DatabaseSettings()
    ingest: IngestSettings = IngestSettings()
    stats: StatsSettings = StatsSettings()
    alerts: AlertSettings = AlertSettings()
    metrics: MetricsSettings = MetricsSettings()
    retention: RetentionSettings = RetentionSettings()

    @model_validator(mode="after")
    def _retry_bounds(self) -> Settings:
        if self.ingest.retry.max_s < self.ingest.retry.initial_s:
            raise ValueError("ingest.retry.max_s must be >= ingest.retry.initial_s")
        return self


def _env_overrides(environ: dict[str, str]) -> dict[str, Any]:
    tree: dict[str, Any] = {}
    for key, raw in environ.items():
        if not key.upper().startswith(ENV_PREFIX):
            continue
        path = [p.lower() for p in key[len(ENV_PREFIX) :].split("__") if p]
        if not path:
            continue
        node = tree
        for part in path[:-1]:
            node = node.setdefault(part, {})
        node[path[-1]] = yaml.safe_load(raw) if raw else raw
    return tree


def merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    """``over`` deep-merged into ``base`` (nested mappings merge, anything else replaces)."""
    out = dict(base)
    for k, v in over.items():
        out[k] = merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out



def _env_variables(environ: Mapping[str, str]) -> dict[tuple[str, ...], str]:
    """The ``SLICEWATCH__*`` variables by the settings path they set."""
    out = {}
    for key in environ:
        if key.upper().startswith(ENV_PREFIX):
            path = tuple(p.lower() for p in key[len(ENV_PREFIX) :].split("__") if p)
            if path:
                out[path] = key
    return out


def _format_error(err: ValidationError, variables: Mapping[tuple[str, ...], str] | None = None) -> str:
    """One line per error at its settings path; an error inside a value set by an environment
    variable names that variable."""
    lines = []
    for e in err.errors():
        parts = tuple(str(p) for p in e["loc"])
        loc = ".".join(parts) or "<root>"
        var = next((v for path, v in (variables or {}).items() if parts[: len(path)] == path), None)
        lines.append(f"{loc}: {e['msg']}" + (f" (set by {var})" if var else ""))
    return "invalid configuration: " + "; ".join(lines)


def _read_secret(path: Path, what: str) -> str:
    try:
        return path.read_text().strip()
    except OSError as e:
        raise ConfigError(f"cannot read {what} from {path}: {e.strerror}") from e


def resolve_secrets(settings: Settings, environ: Mapping[str, str]) -> Settings:
    """The settings with the secrets read: ``database.url`` from ``SLICEWATCH_DATABASE_URL``, else
    ``database.url_file``, else as given; the SASL password as given, else from its file, else from
    ``SLICEWATCH_KAFKA_SASL_PASSWORD``. Called once, by :func:`load_settings`."""
    db = settings.database
    url = environ.get("SLICEWATCH_DATABASE_URL") or None
    if url is None and db.url_file is not None:
        url = _read_secret(db.url_file, "database.url_file")
    if url is not None:
        db = db.model_copy(update={"url": SecretStr(url), "url_file": None})
    sec = settings.kafka.security
    password = sec.sasl_plain_password.get_secret_value() if sec.sasl_plain_password is not None else None
    if password is None and sec.sasl_plain_password_file is not None:
        password = _read_secret(sec.sasl_plain_password_file, "kafka.security.sasl_plain_password_file")
    if password is None:
        password = environ.get("SLICEWATCH_KAFKA_SASL_PASSWORD")
    if password is not None:
        sec = sec.model_copy(update={"sasl_plain_password": SecretStr(password), "sasl_plain_password_file": None})
    kafka = settings.kafka.model_copy(update={"security": sec})
    return settings.model_copy(update={"database": db, "kafka": kafka})


def load_settings(path: Path | str | None = None, environ: Mapping[str, str] | None = None) -> Settings:
    """Read the YAML file (optional), apply environment overrides, validate and read the secrets,
    once. ``environ`` (default ``os.environ``) is read for the overrides and the secrets."""
    data: dict[str, Any] = {}
    if path is not None:
        try:
            loaded = yaml.safe_load(Path(path).read_text())
        except OSError as e:
            raise ConfigError(f"cannot read configuration file {path}: {e.strerror}") from e
        except yaml.YAMLError as e:
            raise ConfigError(f"configuration file {path} is not valid YAML: {e}") from e
        if loaded is not None and not isinstance(loaded, dict):
            raise ConfigError(f"configuration file {path} must hold a mapping at the top level")
        data = loaded or {}
    env = dict(os.environ if environ is None else environ)
    data = merge(data, _env_overrides(env))
    try:
        settings = Settings.model_validate(data)
    except ValidationError as e:
        where = f"{path} (with the SLICEWATCH__* environment overrides)" if path is not None else \
            "the SLICEWATCH__* environment overrides"
        raise ConfigError(f"{_format_error(e, _env_variables(env))} [in {where}]") from e
    return resolve_secrets(settings, env)
