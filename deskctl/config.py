"""The one configuration loader: built-in defaults ← YAML file ← environment ← flags.

Every key is optional (SPEC §8). A wrong key or value raises ConfigError naming the file,
the key and the problem (exit 78). The result is a frozen Settings tree.
"""

from __future__ import annotations

import copy
import os
import re
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

from deskctl.errors import ConfigError

JOB_NAMES = ("sla-sweep", "boomerang", "auto-close", "auto-unassign", "notify", "nightly-export", "route")
REPORT_KINDS = ("volume", "sla", "agents", "tags", "csat", "backlog", "conversations")
SLA_TARGETS = ("first_response", "next_response", "resolution")
PRIORITIES = ("low", "medium", "high", "urgent")
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
ROUTING_MODES = ("pull", "offer", "assign")
# Built-in availability states beyond config's list: `rona` is where an agent who let an
# offer expire lands (SPEC §10), whatever the desk's own list says.
BUILTIN_AVAILABILITY = ("rona",)

DEFAULTS: dict[str, Any] = {
    "timezone": "UTC",
    "database": {"url": None},
    "attachments_dir": None,
    "export_dir": None,
    "channels": ["email", "chat", "sms", "social", "web", "phone"],
    "availability_states": ["available", "away", "offline"],
    "rules": {
        "transfer_requires_claim": False,
        "transfer_to_user": True,
        "close_requires_tag": False,
        "agents_act_on_location": True,
        "close_requires_reason": False,
        # Per-channel overrides of the rules above (SPEC §10), e.g. email: {transfer_to_user: false}.
        "channels": {},
    },
    # The contact reasons `close --reason` accepts; null: any text.
    "reasons": None,
    # SPEC §10: pull (agents take work with `next`), offer or assign.
    "routing": {"mode": "pull", "offer_timeout": "2m", "capacity": {"default": 5}},
    "business_hours": {},
    "sla": {
        "warning": 0.75,
        "policies": [
            {
                "name": "default",
                "first_response": "4h",
                "next_response": "8h",
                "resolution": "3d",
                "hours": "24x7",
                "pause_when_pending": True,
            }
        ],
    },
    "jobs": {
        "sla-sweep": {"every": "1m"},
        "boomerang": {"every": "1m"},
        "auto-close": {"every": "1h", "after": "4d"},
        "auto-unassign": {"every": "5m", "after": None},
        "notify": {"every": "1m"},
        "nightly-export": {"cron": "0 2 * * *", "reports": ["volume", "sla", "agents", "tags", "csat"]},
        "route": {"every": "30s"},
    },
    "smtp": {
        "host": None,
        "port": 25,
        "starttls": False,
        "username": None,
        "password_env": "DESKCTL_SMTP_PASSWORD",
        "from": "support@example.com",
        "timeout": 30,
    },
    # SPEC §13: DESKCTL_NOW and --now are honoured only on test, demo and replay desks.
    "clock": {"override": False},
    # The OS account the daemon and cron run as; null: the OS user running the daemon.
    "service_user": None,
    "limits": {
        "message_bytes": "25MB",
        "recipients": 500,
        "header_bytes": "64KB",
        "subject_chars": 998,
        "query_chars": 1000,
    },
}


@dataclass(frozen=True)
class Rules:
    transfer_requires_claim: bool
    transfer_to_user: bool
    close_requires_tag: bool
    agents_act_on_location: bool
    close_requires_reason: bool = False


@dataclass(frozen=True)
class RoutingSettings:
    mode: str                      # pull | offer | assign
    offer_timeout: timedelta
    capacity: dict[str, int]       # "default" and channel names → open conversations per agent

    def capacity_for(self, channel: str) -> int:
        return self.capacity.get(channel, self.capacity["default"])


@dataclass(frozen=True)
class BusinessHours:
    name: str
    timezone: str
    # weekday index (0 = Monday) → ((start minute, end minute), ...)
    week: dict[int, tuple[tuple[int, int], ...]]
    holidays_country: str | None
    holidays_subdiv: str | None
    closed: frozenset[str]


@dataclass(frozen=True)
class SlaPolicy:
    name: str
    when: dict[str, tuple]  # vip: (bool,), priority/channel/group/location: (names...)
    first_response: timedelta | None
    next_response: timedelta | None
    resolution: timedelta | None
    hours: str  # "24x7" or a business_hours name
    pause_when_pending: bool


@dataclass(frozen=True)
class SlaSettings:
    warning: float
    policies: tuple[SlaPolicy, ...]


@dataclass(frozen=True)
class JobSettings:
    name: str
    every: timedelta | None
    cron: str | None
    after: timedelta | None
    reports: tuple[str, ...] = ()
    enabled: bool = True


@dataclass(frozen=True)
class SmtpSettings:
    host: str | None
    port: int
    starttls: bool
    username: str | None
    password_env: str | None
    sender: str
    timeout: float


@dataclass(frozen=True)
class Limits:
    """Size caps on what outsiders send (SPEC §13); byte sizes are in bytes."""

    message_bytes: int
    recipients: int
    header_bytes: int
    subject_chars: int
    query_chars: int


@dataclass(frozen=True)
class Settings:
    source: str | None
    timezone: str
    database_url: str
    data_dir: Path
    attachments_dir: Path
    export_dir: Path
    channels: tuple[str, ...]
    availability_states: tuple[str, ...]
    rules: Rules
    business_hours: dict[str, BusinessHours]
    sla: SlaSettings
    jobs: dict[str, JobSettings]
    smtp: SmtpSettings
    clock_override: bool
    service_user: str | None
    limits: Limits
    raw: dict = field(repr=False, compare=False, default_factory=dict)
    routing: RoutingSettings = field(
        default_factory=lambda: RoutingSettings("pull", timedelta(minutes=2), {"default": 5}))
    reasons: tuple[str, ...] | None = None
    channel_rules: dict[str, Rules] = field(default_factory=dict)

    def rules_for(self, channel: str | None) -> Rules:
        """The rules of §8 as they apply to one channel (`rules.channels` overrides)."""
        return self.channel_rules.get(channel, self.rules) if channel else self.rules


def data_dir() -> Path:
    base = os.environ.get("XDG_DATA_HOME") or os.path.join(os.path.expanduser("~"), ".local", "share")
    return Path(base) / "deskctl"


def find_config_file(explicit: str | None) -> Path | None:
    """--config / DESKCTL_CONFIG, else ./config/deskctl.yaml, else the XDG user file."""
    if explicit:
        path = Path(explicit)
        if path.is_dir():
            raise ConfigError(str(path), None, "is a directory, not a file")
        if not path.exists():  # a device or pipe is fine: `--config /dev/null` means defaults
            raise ConfigError(str(path), None, "file not found")
        return path
    project = Path("config") / "deskctl.yaml"
    if project.is_file():
        return project
    base = os.environ.get("XDG_CONFIG_HOME") or os.path.join(os.path.expanduser("~"), ".config")
    user = Path(base) / "deskctl" / "config.yaml"
    return user if user.is_file() else None


def load_settings(config_file: str | None = None, database_url: str | None = None) -> Settings:
    """Load settings. `database_url` is the --db flag / DESKCTL_DATABASE_URL value."""
    path = find_config_file(config_file)
    source = str(path) if path else None
    user_values: dict = {}
    if path is not None:
        import yaml

        try:
            loaded = yaml.safe_load(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(source, None, f"cannot read: {exc}") from None
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f" at line {mark.line + 1}" if mark else ""
            raise ConfigError(source, None, f"invalid YAML{where}") from None
        if loaded is None:
            loaded = {}
        if not isinstance(loaded, dict):
            raise ConfigError(source, None, "the top level must be a mapping of keys")
        user_values = loaded
    merged = _merge(DEFAULTS, user_values, source, "")
    return _build(merged, source, database_url)


def _merge(defaults: dict, given: dict, source: str | None, prefix: str) -> dict:
    result = copy.deepcopy(defaults)
    for key, value in given.items():
        dotted = f"{prefix}{key}"
        if key not in defaults:
            known = ", ".join(sorted(defaults))
            raise ConfigError(source, dotted, f"unknown key (known keys: {known})")
        # Free-form mappings and lists are replaced whole; fixed mappings merge key by key.
        if isinstance(defaults[key], dict) and key not in ("business_hours", "jobs", "channels", "capacity"):
            if not isinstance(value, dict):
                raise ConfigError(source, dotted, "must be a mapping")
            result[key] = _merge(defaults[key], value, source, dotted + ".")
        elif key == "jobs":
            if not isinstance(value, dict):
                raise ConfigError(source, dotted, "must be a mapping of job names")
            for job, job_value in value.items():
                if job not in JOB_NAMES:
                    raise ConfigError(source, f"jobs.{job}", f"unknown job (known: {', '.join(JOB_NAMES)})")
                if job_value is None:
                    job_value = {"enabled": False}
                if not isinstance(job_value, dict):
                    raise ConfigError(source, f"jobs.{job}", "must be a mapping")
                result["jobs"][job] = {**result["jobs"][job], **job_value}
        else:
            result[key] = value
    return result


def _check(cond: bool, source: str | None, key: str, problem: str) -> None:
    if not cond:
        raise ConfigError(source, key, problem)


def _duration(value: Any, source: str | None, key: str, *, allow_none: bool = True) -> timedelta | None:
    from deskctl.errors import UsageError
    from deskctl.timeparse import parse_duration

    if value is None and allow_none:
        return None
    if isinstance(value, int) and not isinstance(value, bool):
        value = f"{value}s"
    if not isinstance(value, str):
        raise ConfigError(source, key, "must be a duration such as 30m, 4h, 3d")
    try:
        return parse_duration(value)
    except UsageError:
        raise ConfigError(source, key, f"invalid duration {value!r} (e.g. 30m, 4h, 1d12h)") from None


def _names(value: Any, source: str | None, key: str) -> tuple[str, ...]:
    _check(isinstance(value, list) and all(isinstance(v, str) and v for v in value), source, key,
           "must be a list of names")
    return tuple(value)


def _build(cfg: dict, source: str | None, database_url: str | None) -> Settings:
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    def check_tz(name: Any, key: str) -> str:
        _check(isinstance(name, str), source, key, "must be a timezone name such as Europe/Paris")
        try:
            ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError):
            raise ConfigError(source, key, f"unknown timezone {name!r}") from None
        return name

    timezone = check_tz(cfg["timezone"], "timezone")
    ddir = data_dir()
    url = database_url or cfg["database"]["url"]
    _check(url is None or isinstance(url, str), source, "database.url", "must be a database URL")
    if not url:
        url = f"sqlite:///{ddir / 'desk.db'}"

    def directory(key: str, default: Path) -> Path:
        value = cfg[key]
        _check(value is None or isinstance(value, str), source, key, "must be a directory path")
        return Path(value).expanduser() if value else default

    channels = _names(cfg["channels"], source, "channels")
    states = _names(cfg["availability_states"], source, "availability_states")
    for required in ("available", "away", "offline"):
        _check(required in states, source, "availability_states", f"must include {required!r}")
    states += tuple(s for s in BUILTIN_AVAILABILITY if s not in states)

    rules_raw = dict(cfg["rules"])
    channels_raw = rules_raw.pop("channels")
    for key, value in rules_raw.items():
        _check(isinstance(value, bool), source, f"rules.{key}", "must be true or false")
    rules = Rules(**rules_raw)
    channel_rules = _channel_rules(channels_raw, rules_raw, channels, source)

    bh_raw = cfg["business_hours"]
    _check(isinstance(bh_raw, dict), source, "business_hours", "must be a mapping of calendar names")
    business_hours = {name: _business_hours(name, value, source, check_tz) for name, value in bh_raw.items()}

    sla_raw = cfg["sla"]
    warning = sla_raw["warning"]
    _check(isinstance(warning, (int, float)) and not isinstance(warning, bool) and 0 < warning < 1,
           source, "sla.warning", "must be a number between 0 and 1 (share of a target elapsed)")
    _check(isinstance(sla_raw["policies"], list), source, "sla.policies", "must be a list of policies")
    policies = tuple(
        _policy(i, p, source, business_hours, channels) for i, p in enumerate(sla_raw["policies"])
    )

    jobs = {name: _job(name, value, source) for name, value in cfg["jobs"].items()}

    smtp_raw = cfg["smtp"]
    port = smtp_raw["port"]
    _check(isinstance(port, int) and 0 < port < 65536, source, "smtp.port", "must be a port number")
    smtp = SmtpSettings(
        host=smtp_raw["host"],
        port=port,
        starttls=bool(smtp_raw["starttls"]),
        username=smtp_raw["username"],
        password_env=smtp_raw["password_env"],
        sender=smtp_raw["from"],
        timeout=float(smtp_raw["timeout"]),
    )
    return Settings(
        source=source,
        timezone=timezone,
        database_url=url,
        data_dir=ddir,
        attachments_dir=directory("attachments_dir", ddir / "attachments"),
        export_dir=directory("export_dir", ddir / "exports"),
        channels=channels,
        availability_states=states,
        rules=rules,
        business_hours=business_hours,
        sla=SlaSettings(warning=float(warning), policies=policies),
        jobs=jobs,
        smtp=smtp,
        clock_override=_flag(cfg["clock"]["override"], source, "clock.override"),
        service_user=_optional_name(cfg["service_user"], source, "service_user"),
        limits=_limits(cfg["limits"], source),
        raw=cfg,
        routing=_routing(cfg["routing"], channels, source),
        reasons=None if cfg["reasons"] is None else _names(cfg["reasons"], source, "reasons"),
        channel_rules=channel_rules,
    )


def _channel_rules(raw: Any, global_rules: dict, channels: tuple[str, ...], source: str | None) -> dict[str, Rules]:
    """`rules.channels.<channel>`: any rule of §8 for one channel, the others inherited."""
    _check(isinstance(raw, dict), source, "rules.channels", "must be a mapping of channel names")
    out = {}
    for channel, overrides in raw.items():
        key = f"rules.channels.{channel}"
        _check(channel in channels, source, key, f"unknown channel {channel!r} (channels: {', '.join(channels)})")
        _check(isinstance(overrides, dict), source, key, "must be a mapping of rules")
        for name, value in overrides.items():
            _check(name in global_rules, source, f"{key}.{name}",
                   f"unknown rule (known: {', '.join(sorted(global_rules))})")
            _check(isinstance(value, bool), source, f"{key}.{name}", "must be true or false")
        out[channel] = Rules(**{**global_rules, **overrides})
    return out


def _routing(raw: dict, channels: tuple[str, ...], source: str | None) -> RoutingSettings:
    mode = raw["mode"]
    _check(mode in ROUTING_MODES, source, "routing.mode", f"must be one of {', '.join(ROUTING_MODES)}")
    timeout = _duration(raw["offer_timeout"], source, "routing.offer_timeout", allow_none=False)
    _check(timeout > timedelta(0), source, "routing.offer_timeout", "must be longer than zero")
    capacity = raw["capacity"]
    _check(isinstance(capacity, dict), source, "routing.capacity", "must map default and channels to numbers")
    capacity = {"default": 5, **capacity}
    for key, value in capacity.items():
        _check(key == "default" or key in channels, source, f"routing.capacity.{key}",
               f"unknown channel {key!r} (default or one of: {', '.join(channels)})")
        _check(isinstance(value, int) and not isinstance(value, bool) and value >= 0, source,
               f"routing.capacity.{key}", "must be a whole number, 0 or more")
    return RoutingSettings(mode=mode, offer_timeout=timeout, capacity=capacity)


def _flag(value: Any, source: str | None, key: str) -> bool:
    _check(isinstance(value, bool), source, key, "must be true or false")
    return value


def _optional_name(value: Any, source: str | None, key: str) -> str | None:
    _check(value is None or (isinstance(value, str) and bool(value)), source, key, "must be a name")
    return value


_SIZE = re.compile(r"^(\d+)\s*(B|KB|MB|GB)?$", re.IGNORECASE)
_SIZE_UNITS = {"b": 1, "kb": 1024, "mb": 1024**2, "gb": 1024**3}


def _size(value: Any, source: str | None, key: str) -> int:
    """A byte size: an integer, or a number with B, KB, MB or GB (binary multiples)."""
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return value
    m = _SIZE.match(str(value).strip()) if isinstance(value, str) else None
    _check(bool(m) and int(m.group(1)) > 0, source, key, f"invalid size {value!r} (e.g. 25MB, 64KB)")
    return int(m.group(1)) * _SIZE_UNITS[(m.group(2) or "b").lower()]


def _limits(raw: dict, source: str | None) -> Limits:
    counts = {}
    for key in ("recipients", "subject_chars", "query_chars"):
        value = raw[key]
        _check(isinstance(value, int) and not isinstance(value, bool) and value > 0, source,
               f"limits.{key}", "must be a positive whole number")
        counts[key] = value
    return Limits(
        message_bytes=_size(raw["message_bytes"], source, "limits.message_bytes"),
        header_bytes=_size(raw["header_bytes"], source, "limits.header_bytes"),
        **counts,
    )


_RANGE = re.compile(r"^(\d{2}):(\d{2})-(\d{2}):(\d{2})$")


def _business_hours(name: str, raw: Any, source: str | None, check_tz) -> BusinessHours:
    key = f"business_hours.{name}"
    _check(isinstance(raw, dict), source, key, "must be a mapping")
    unknown = set(raw) - {"timezone", "week", "holidays", "closed"}
    _check(not unknown, source, f"{key}.{next(iter(unknown), '')}", "unknown key")
    tz = check_tz(raw.get("timezone", "UTC"), f"{key}.timezone")
    week_raw = raw.get("week") or {}
    _check(isinstance(week_raw, dict), source, f"{key}.week", "must map mon..sun to hour ranges")
    week: dict[int, tuple[tuple[int, int], ...]] = {}
    for day, ranges in week_raw.items():
        _check(day in WEEKDAYS, source, f"{key}.week.{day}", "must be one of mon, tue, ..., sun")
        _check(isinstance(ranges, list), source, f"{key}.week.{day}", 'must be a list such as ["09:00-18:00"]')
        parsed = []
        for r in ranges:
            m = _RANGE.match(str(r))
            _check(bool(m), source, f"{key}.week.{day}", f"invalid range {r!r} (HH:MM-HH:MM)")
            h1, m1, h2, m2 = (int(x) for x in m.groups())
            start, end = h1 * 60 + m1, h2 * 60 + m2
            _check(0 <= start < end <= 24 * 60, source, f"{key}.week.{day}", f"empty or inverted range {r!r}")
            parsed.append((start, end))
        week[WEEKDAYS.index(day)] = tuple(sorted(parsed))
    hol = raw.get("holidays") or {}
    _check(isinstance(hol, dict), source, f"{key}.holidays", "must be a mapping such as {country: FR}")
    closed = raw.get("closed") or []
    _check(isinstance(closed, list), source, f"{key}.closed", "must be a list of dates")
    from datetime import date

    for day in closed:
        try:
            date.fromisoformat(str(day))
        except ValueError:
            raise ConfigError(source, f"{key}.closed", f"invalid date {day!r}") from None
    return BusinessHours(
        name=name,
        timezone=tz,
        week=week,
        holidays_country=hol.get("country"),
        holidays_subdiv=hol.get("subdiv"),
        closed=frozenset(str(d) for d in closed),
    )


def _policy(index: int, raw: Any, source, business_hours, channels) -> SlaPolicy:
    key = f"sla.policies[{index}]"
    _check(isinstance(raw, dict), source, key, "must be a mapping")
    allowed = {"name", "when", "hours", "pause_when_pending", *SLA_TARGETS}
    unknown = set(raw) - allowed
    _check(not unknown, source, f"{key}.{next(iter(unknown), '')}", "unknown key")
    name = raw.get("name")
    _check(isinstance(name, str) and bool(name), source, f"{key}.name", "is required")
    when_raw = raw.get("when") or {}
    _check(isinstance(when_raw, dict), source, f"{key}.when", "must be a mapping")
    when: dict[str, tuple] = {}
    for cond, value in when_raw.items():
        ckey = f"{key}.when.{cond}"
        if cond == "vip":
            _check(isinstance(value, bool), source, ckey, "must be true or false")
            when[cond] = (value,)
        elif cond in ("priority", "channel", "group", "location"):
            values = value if isinstance(value, list) else [value]
            _check(all(isinstance(v, str) for v in values), source, ckey, "must be a name or a list of names")
            if cond == "priority":
                bad = [v for v in values if v not in PRIORITIES]
                _check(not bad, source, ckey, f"unknown priority {bad[0] if bad else ''!r}")
            when[cond] = tuple(values)
        else:
            raise ConfigError(source, ckey, "unknown condition (vip, priority, channel, group, location)")
    hours = raw.get("hours", "24x7")
    _check(hours == "24x7" or hours in business_hours, source, f"{key}.hours",
           f"unknown calendar {hours!r} (24x7 or a business_hours name)")
    return SlaPolicy(
        name=name,
        when=when,
        first_response=_duration(raw.get("first_response"), source, f"{key}.first_response"),
        next_response=_duration(raw.get("next_response"), source, f"{key}.next_response"),
        resolution=_duration(raw.get("resolution"), source, f"{key}.resolution"),
        hours=hours,
        pause_when_pending=bool(raw.get("pause_when_pending", True)),
    )


def _job(name: str, raw: dict, source: str | None) -> JobSettings:
    key = f"jobs.{name}"
    unknown = set(raw) - {"every", "cron", "after", "reports", "enabled"}
    _check(not unknown, source, f"{key}.{next(iter(unknown), '')}", "unknown key")
    every = _duration(raw.get("every"), source, f"{key}.every")
    cron = raw.get("cron")
    if cron is not None:
        _check(isinstance(cron, str) and len(cron.split()) == 5, source, f"{key}.cron",
               'must be a 5-field crontab expression such as "0 2 * * *"')
        every = None
    _check(every is not None or cron is not None or raw.get("enabled") is False, source, key,
           "needs `every` or `cron`")
    reports = tuple(raw.get("reports") or ())
    bad = [r for r in reports if r not in REPORT_KINDS]
    _check(not bad, source, f"{key}.reports", f"unknown report {bad[0] if bad else ''!r}")
    after = _duration(raw.get("after"), source, f"{key}.after")
    enabled = raw.get("enabled", True) is not False
    if name == "auto-unassign" and after is None:
        enabled = False  # SPEC §5: off unless `after` is set
    return JobSettings(name=name, every=every, cron=cron, after=after, reports=reports, enabled=enabled)
