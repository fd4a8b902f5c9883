"""The one configuration loader: built-in defaults ← YAML file ← environment ← flags.

Every key is optional (SPEC §8). Every key is checked at load and every problem found is
raised at once (ConfigError: file, line, key and reason; exit 78), so that nothing fails
later in a sweep or under systemd. The result is a frozen Settings tree.
"""

from __future__ import annotations

import copy
import os
import re
from dataclasses import dataclass, field, replace
from datetime import timedelta
from pathlib import Path
from typing import Any

from deskctl.errors import ConfigError
from deskctl.vocab import (
    AUTOMATION_TRIGGERS,
    AVAILABILITY_STATES,
    BUILTIN_AVAILABILITY,
    CHANNELS,
    JOB_NAMES,
    PRIORITIES,
    REPORT_KINDS,
    ROUTING_MODES,
    SLA_TARGETS,
)

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")

DEFAULTS: dict[str, Any] = {
    "timezone": "UTC",
    "database": {"url": None},
    "attachments_dir": None,
    "export_dir": None,
    "channels": list(CHANNELS),
    "availability_states": list(AVAILABILITY_STATES),
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
    # SPEC §11, docs/outbound.md: how replies on non-email channels leave the desk, e.g.
    # chat: {command: [/usr/local/bin/send-chat], timeout: 10s}.
    "delivery": {},
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
        "retention": {"cron": "30 3 * * *"},
        "mail-poll": {"every": "1m"},  # off unless mail.maildir is set
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
    # SPEC §12: erase the content of conversations closed longer ago than this (e.g. 2y).
    "retention": {"closed_after": None},
    # SPEC §11: rules run in order on arrivals and events (docs/automations.md).
    "automations": [],
    "automation_reply_interval": "1h",
    # SPEC §11: the Maildir `mail-poll` ingests; spool: `ingest email -` only writes into it.
    "mail": {"maildir": None, "spool": False},
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
class ChannelDelivery:
    """How replies on one non-email channel are delivered (SPEC §11): a local command
    reading the JSON on stdin, or a signed HTTP POST. Exactly one of the two is set."""

    channel: str
    command: tuple[str, ...] | None
    webhook: str | None
    secret_env: str | None
    timeout: float  # seconds, per delivery attempt


@dataclass(frozen=True)
class Limits:
    """Size caps on what outsiders send (SPEC §13); byte sizes are in bytes."""

    message_bytes: int
    recipients: int
    header_bytes: int
    subject_chars: int
    query_chars: int


AUTOMATION_CONDITIONS = ("channel", "subject", "text", "from", "vip", "group", "hours")
AUTOMATION_ACTIONS = ("tag", "priority", "group", "assign", "watch", "note", "reply")


@dataclass(frozen=True)
class AutomationRule:
    """One rule of `automations:` (SPEC §11), checked at load. Groups, users and
    templates live in the database: the engine checks those names when it loads the
    rules against it (services/automations)."""

    name: str
    index: int                       # position in the list, for messages (automations[i])
    on: tuple[str, ...]
    # channel/group: names; subject/text: compiled patterns; from: a glob (lower case);
    # vip: bool; hours: ("inside" | "outside", business_hours name)
    conditions: dict[str, Any]
    # only the keys given: tag/watch tuples, priority/group/note/reply text, assign handle or None
    actions: dict[str, Any]
    stop: bool = False

    @property
    def key(self) -> str:
        return f"automations[{self.index}]"


@dataclass(frozen=True)
class MailSettings:
    """SPEC §11: `maildir` (absolute, with new/, cur/, tmp/) is polled by `mail-poll`;
    with `spool`, `ingest email -` only writes the message into it."""

    maildir: Path | None = None
    spool: bool = False


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
    retention_closed_after: timedelta | None
    raw: dict = field(repr=False, compare=False, default_factory=dict)
    routing: RoutingSettings = field(
        default_factory=lambda: RoutingSettings("pull", timedelta(minutes=2), {"default": 5}))
    reasons: tuple[str, ...] | None = None
    channel_rules: dict[str, Rules] = field(default_factory=dict)
    automations: tuple[AutomationRule, ...] = ()
    automation_reply_interval: timedelta = timedelta(hours=1)
    delivery: dict[str, ChannelDelivery] = field(default_factory=dict)
    mail: MailSettings = field(default_factory=MailSettings)
    # top-level key → where its value came from: "default", the file, "--db", an env var
    origins: dict = field(repr=False, compare=False, default_factory=dict)

    def rules_for(self, channel: str | None) -> Rules:
        """The rules of §8 as they apply to one channel (`rules.channels` overrides)."""
        return self.channel_rules.get(channel, self.rules) if channel else self.rules


def data_dir() -> Path:
    base = os.environ.get("XDG_DATA_HOME") or os.path.join(os.path.expanduser("~"), ".local", "share")
    return Path(base) / "deskctl"


def default_database_url() -> str:
    return f"sqlite:///{data_dir() / 'desk.db'}"


def sqlite_file(url: str) -> Path | None:
    """The file of a SQLite URL; None for PostgreSQL and in-memory SQLite."""
    from deskctl.db.urls import parse

    parsed = parse(url)
    if parsed.backend != "sqlite" or parsed.database in (None, "", ":memory:"):
        return None
    return Path(parsed.database).expanduser()


# The last place looked at (SPEC §9); a module constant so that tests can point it elsewhere.
SYSTEM_CONFIG = Path("/etc/deskctl/config.yaml")


def config_search_path() -> list[Path]:
    """Where a configuration file is looked for, in order (SPEC §9); never the current
    directory. Relative XDG directories are ignored, as the XDG base directory spec says."""
    home = os.environ.get("XDG_CONFIG_HOME") or os.path.join(os.path.expanduser("~"), ".config")
    dirs = [home, *(os.environ.get("XDG_CONFIG_DIRS") or "/etc/xdg").split(":")]
    found = [Path(d) / "deskctl" / "config.yaml" for d in dirs if d and os.path.isabs(d)]
    return [*found, SYSTEM_CONFIG]


def find_config_file(explicit: str | None) -> Path | None:
    """--config / DESKCTL_CONFIG, else the first file of config_search_path()."""
    if explicit:
        path = Path(explicit)
        if path.is_dir():
            raise ConfigError(str(path), None, "is a directory, not a file")
        if not path.exists():  # a device or pipe is fine: `--config /dev/null` means defaults
            raise ConfigError(str(path), None, "file not found")
        return path
    return next((path for path in config_search_path() if path.is_file()), None)


class _Report:
    """Every problem of one load. A value that fails is recorded and replaced by its
    default, so that checking goes on and the operator sees all problems at once."""

    def __init__(self, source: str | None, nodes: dict[str, tuple[int, str | None]]):
        self.source = source
        self.nodes = nodes  # dotted key → (line, the scalar as written in the file)
        self.problems: list[ConfigError] = []

    def add(self, key: str | None, reason: str, *, source: str | None = None) -> None:
        if source is None:
            source = self.source
            line = self.nodes.get(key, (None, None))[0] if key else None
        else:
            line = None
        self.problems.append(ConfigError(source, key, reason, line=line))

    def check(self, ok: bool, key: str, reason: str) -> bool:
        if not ok:
            self.add(key, reason)
        return ok

    def wrong_type(self, value: Any, key: str, expected: str) -> None:
        """`expected` (e.g. "must be a country code"), naming the YAML 1.1 surprise:
        an unquoted NO, off, yes or on is read as a boolean."""
        written = self.nodes.get(key, (None, None))[1]
        if isinstance(value, bool) and written and written.lower() not in ("true", "false"):
            self.add(key, f"{written} was read as {str(value).lower()} (a YAML 1.1 boolean); "
                          f"quote it: '{written}'")
        else:
            self.add(key, f"{expected}, not {value!r}")

    # -- typed readers: each returns the value, or `fallback` after recording why ----
    def text(self, value: Any, key: str, expected: str, *, optional: bool = True,
             fallback: str | None = None) -> str | None:
        if value is None and optional:
            return None
        if isinstance(value, str) and value.strip():
            return value
        self.wrong_type(value, key, expected)
        return fallback

    def flag(self, value: Any, key: str, fallback: bool = False) -> bool:
        if isinstance(value, bool):
            return value
        self.add(key, f"must be true or false, not {value!r}")
        return fallback

    def count(self, value: Any, key: str, fallback: int = 1) -> int:
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            return value
        self.add(key, f"must be a positive whole number, not {value!r}")
        return fallback

    def duration(self, value: Any, key: str, fallback: timedelta | None = None) -> timedelta | None:
        from deskctl.errors import UsageError
        from deskctl.timeparse import parse_duration

        if value is None:
            return None
        if isinstance(value, int) and not isinstance(value, bool):
            value = f"{value}s"
        if not isinstance(value, str):
            self.add(key, f"must be a duration such as 30m, 4h, 3d, not {value!r}")
            return fallback
        try:
            return parse_duration(value)
        except UsageError:
            self.add(key, f"invalid duration {value!r} (e.g. 30m, 4h, 1d12h)")
            return fallback

    def names(self, value: Any, key: str, fallback: tuple[str, ...]) -> tuple[str, ...]:
        """A list of names as used in filters: no blanks, commas or duplicates."""
        if not isinstance(value, list):
            self.add(key, f"must be a list of names, not {value!r}")
            return fallback
        good = []
        for i, item in enumerate(value):
            item_key = f"{key}[{i}]"
            if not isinstance(item, str) or not item.strip():
                self.wrong_type(item, item_key, "must be a name")
            elif not _NAME.match(item):
                self.add(item_key, f"invalid name {item!r} (letters, digits, - and _ only)")
            elif item in good:
                self.add(item_key, f"{item!r} is listed twice")
            else:
                good.append(item)
        return tuple(good)


_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]*$")
_TEMPLATE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")  # as services/outbound/templates
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
SUPPORTED_ENGINES = ("sqlite", "postgresql")


def load_settings(config_file: str | None = None, database_url: str | None = None,
                  database_origin: str = "--db") -> Settings:
    """Load and check settings; every problem found is raised at once (ConfigError, 78).

    `database_url` is the --db flag / DESKCTL_DATABASE_URL value; `database_origin` names
    where it came from ("--db" or "DESKCTL_DATABASE_URL") for messages and `config show`."""
    path = find_config_file(config_file)
    source = str(path) if path else None
    user_values: dict = {}
    nodes: dict[str, tuple[int, str | None]] = {}
    report = _Report(source, nodes)
    if path is not None:
        user_values = _read_yaml(path, report)
    merged = _merge(DEFAULTS, user_values, report, "")
    origins = {key: (source if key in user_values else "default") for key in DEFAULTS}
    if database_url:
        origins["database"] = database_origin
    settings = _build(merged, report, database_url, database_origin, origins)
    if report.problems:
        if len(report.problems) == 1:
            raise report.problems[0]
        # In file order, so that an editor can walk down the list.
        ordered = sorted(report.problems, key=lambda p: (p.line is None, p.line or 0))
        raise ConfigError.several(ordered)
    return settings


def _read_yaml(path: Path, report: _Report) -> dict:
    """The file's mapping; fills report.nodes with each key's line and written text."""
    import yaml

    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(report.source, None, f"cannot read: {exc}") from None
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        loaded = loader.construct_document(node) if node is not None else None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        why = exc.problem or "syntax error"
        if exc.context:
            why = f"{why} ({exc.context})"
        raise ConfigError(report.source, None, f"invalid YAML{where}: {why}") from None
    except yaml.YAMLError as exc:  # e.g. a control character: the reader names its position
        raise ConfigError(report.source, None, f"invalid YAML: {exc}") from None
    finally:
        loader.dispose()
    if loaded is None:
        return {}
    if not isinstance(loaded, dict):
        raise ConfigError(report.source, None, "the top level must be a mapping of keys")
    _map_nodes(node, "", report)
    return loaded


def _map_nodes(node, prefix: str, report: _Report, depth: int = 0) -> None:
    import yaml

    if depth > 20:  # aliases can nest deeply; the keys that matter are shallow
        return
    children: list[tuple[str, Any]] = []
    if isinstance(node, yaml.MappingNode):
        seen = set()
        for key_node, value_node in node.value:
            if not isinstance(key_node, yaml.ScalarNode):
                continue
            key = f"{prefix}.{key_node.value}" if prefix else key_node.value
            if key in seen:
                report.nodes.setdefault(key, (key_node.start_mark.line + 1, None))
                report.add(key, "appears twice in the same mapping (YAML would keep only the last)")
            seen.add(key)
            children.append((key, value_node))
    elif isinstance(node, yaml.SequenceNode):
        children = [(f"{prefix}[{i}]", item) for i, item in enumerate(node.value)]
    for key, child in children:
        written = child.value if isinstance(child, yaml.ScalarNode) else None
        report.nodes[key] = (child.start_mark.line + 1, written)
        _map_nodes(child, key, report, depth + 1)


def _merge(defaults: dict, given: dict, report: _Report, prefix: str) -> dict:
    result = copy.deepcopy(defaults)
    for key, value in given.items():
        dotted = f"{prefix}{key}"
        if key not in defaults:
            known = ", ".join(sorted(defaults))
            report.add(dotted, f"unknown key (known keys: {known})")
            continue
        # Free-form mappings and lists are replaced whole; fixed mappings merge key by key.
        if isinstance(defaults[key], dict) and key not in ("business_hours", "jobs", "channels", "capacity",
                                                                       "delivery"):
            if report.check(isinstance(value, dict), dotted, "must be a mapping"):
                result[key] = _merge(defaults[key], value, report, dotted + ".")
        elif key == "jobs":
            if not report.check(isinstance(value, dict), dotted, "must be a mapping of job names"):
                continue
            for job, job_value in value.items():
                if job not in JOB_NAMES:
                    report.add(f"jobs.{job}", f"unknown job (known: {', '.join(JOB_NAMES)})")
                    continue
                if job_value is None:
                    job_value = {"enabled": False}
                if report.check(isinstance(job_value, dict), f"jobs.{job}", "must be a mapping"):
                    result["jobs"][job] = {**result["jobs"][job], **job_value}
        else:
            result[key] = value
    return result


def _build(cfg: dict, report: _Report, database_url: str | None, database_origin: str,
           origins: dict[str, str]) -> Settings:
    timezone = _timezone(cfg["timezone"], "timezone", report)
    ddir = data_dir()
    url = _database_url(cfg["database"]["url"], database_url, database_origin, report)

    def directory(key: str, default: Path) -> Path:
        value = report.text(cfg[key], key, "must be a directory path")
        if not value:
            return default
        path = Path(value).expanduser()
        report.check(not path.exists() or path.is_dir(), key, f"{path} exists and is not a directory")
        return path

    channels = report.names(cfg["channels"], "channels", tuple(DEFAULTS["channels"]))
    states = report.names(cfg["availability_states"], "availability_states",
                          tuple(DEFAULTS["availability_states"]))
    for required in ("available", "away", "offline"):
        report.check(required in states, "availability_states", f"must include {required!r}")
    states += tuple(s for s in BUILTIN_AVAILABILITY if s not in states)

    rules_raw = dict(cfg["rules"])
    channels_raw = rules_raw.pop("channels")
    rules = Rules(**{key: report.flag(value, f"rules.{key}", DEFAULTS["rules"][key])
                     for key, value in rules_raw.items()})
    channel_rules = _channel_rules(channels_raw, rules, channels, report)

    bh_raw = cfg["business_hours"]
    business_hours: dict[str, BusinessHours] = {}
    if report.check(isinstance(bh_raw, dict), "business_hours", "must be a mapping of calendar names"):
        for name, value in bh_raw.items():
            calendar = _business_hours(str(name), value, report)
            if calendar is not None:
                business_hours[calendar.name] = calendar

    sla_raw = cfg["sla"]
    warning = sla_raw["warning"]
    if not report.check(isinstance(warning, (int, float)) and not isinstance(warning, bool) and 0 < warning < 1,
                        "sla.warning", "must be a number between 0 and 1 (share of a target elapsed)"):
        warning = DEFAULTS["sla"]["warning"]
    policies: tuple[SlaPolicy, ...] = ()
    if report.check(isinstance(sla_raw["policies"], list), "sla.policies", "must be a list of policies"):
        built = [_policy(i, p, report, business_hours, channels) for i, p in enumerate(sla_raw["policies"])]
        policies = tuple(p for p in built if p is not None)
        names = [p.name for p in policies]
        for i, name in enumerate(names):
            report.check(name not in names[:i], f"sla.policies[{i}].name", f"policy {name!r} is defined twice")

    jobs = {name: _job(name, value, report, timezone) for name, value in cfg["jobs"].items()}
    retention = report.duration(cfg["retention"]["closed_after"], "retention.closed_after")
    if retention is None:  # SPEC §12: off unless closed_after is set
        jobs["retention"] = replace(jobs["retention"], enabled=False)
    mail = _mail(cfg["mail"], report)
    if mail.maildir is None:  # SPEC §11: mail-poll runs only when mail.maildir is set
        jobs["mail-poll"] = replace(jobs["mail-poll"], enabled=False)

    return Settings(
        source=report.source,
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
        smtp=_smtp(cfg["smtp"], report),
        clock_override=report.flag(cfg["clock"]["override"], "clock.override"),
        service_user=report.text(cfg["service_user"], "service_user", "must be an OS user name"),
        limits=_limits(cfg["limits"], report),
        retention_closed_after=retention,
        raw=cfg,
        origins=origins,
        routing=_routing(cfg["routing"], channels, report),
        reasons=None if cfg["reasons"] is None else report.names(cfg["reasons"], "reasons", ()),
        channel_rules=channel_rules,
        automations=_automations(cfg["automations"], report, channels, business_hours),
        automation_reply_interval=(report.duration(cfg["automation_reply_interval"], "automation_reply_interval")
                                   or timedelta(hours=1)),
        delivery=_delivery(cfg["delivery"], channels, report),
        mail=mail,
    )


MAILDIR_FOLDERS = ("new", "cur", "tmp")


def _mail(raw: dict, report: _Report) -> MailSettings:
    """`mail.maildir` must be an existing Maildir: an absolute path (the daemon, cron and
    the mail server each run in their own directory) with new/, cur/ and tmp/. Nothing
    is created here: a typo must not start a spool that nothing polls."""
    spool = report.flag(raw["spool"], "mail.spool")
    value = report.text(raw["maildir"], "mail.maildir", "must be the path of a Maildir directory")
    if not value:
        report.check(not spool, "mail.spool", "spool mode needs mail.maildir (the Maildir to write into)")
        return MailSettings(None, False)
    path = Path(value).expanduser()
    if not path.is_absolute():
        report.add("mail.maildir", f"{value} must be an absolute path (the daemon and the mail server do not "
                                   "run in this directory)")
    elif not path.exists():
        report.add("mail.maildir", f"{path} does not exist (create it: mkdir -p {path}/new {path}/cur {path}/tmp)")
    elif not path.is_dir():
        report.add("mail.maildir", f"{path} is not a directory")
    else:
        missing = [name for name in MAILDIR_FOLDERS if not (path / name).is_dir()]
        if missing:
            report.add("mail.maildir", f"{path} is not a Maildir: no {', '.join(m + '/' for m in missing)} in it "
                                       f"(create: mkdir -p {' '.join(f'{path}/{m}' for m in missing)})")
    return MailSettings(path, spool)


def _timezone(name: Any, key: str, report: _Report) -> str:
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    if not isinstance(name, str) or not name:
        report.wrong_type(name, key, "must be a timezone name such as Europe/Paris")
        return "UTC"
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        report.add(key, f"unknown timezone {name!r} (e.g. Europe/Paris, America/New_York, UTC)")
        return "UTC"
    return name


def _channel_rules(raw: Any, rules: Rules, channels: tuple[str, ...], report: _Report) -> dict[str, Rules]:
    """`rules.channels.<channel>`: any rule of §8 for one channel, the others inherited."""
    from dataclasses import asdict

    if not report.check(isinstance(raw, dict), "rules.channels", "must be a mapping of channel names"):
        return {}
    global_rules = asdict(rules)
    out = {}
    for channel, overrides in raw.items():
        key = f"rules.channels.{channel}"
        if not report.check(channel in channels, key, f"unknown channel {channel!r} (channels: {', '.join(channels)})"):
            continue
        if not report.check(isinstance(overrides, dict), key, "must be a mapping of rules"):
            continue
        good = {}
        for name, value in overrides.items():
            if report.check(name in global_rules, f"{key}.{name}",
                            f"unknown rule (known: {', '.join(sorted(global_rules))})"):
                good[name] = report.flag(value, f"{key}.{name}", global_rules[name])
        out[channel] = Rules(**{**global_rules, **good})
    return out


DELIVERY_KEYS = ("command", "webhook", "secret_env", "timeout")
# A delivery attempt longer than this would overlap the next `notify` run.
MAX_DELIVERY_TIMEOUT = timedelta(minutes=5)


def _delivery(raw: Any, channels: tuple[str, ...], report: _Report) -> dict[str, ChannelDelivery]:
    """`delivery.<channel>`: a command or a webhook per non-email channel, checked now
    (the executable exists, the URL is http(s), the secret's variable is named) so that
    a typo fails at load rather than in every `notify` run."""
    import shutil
    from urllib.parse import urlsplit

    if not report.check(isinstance(raw, dict), "delivery", "must be a mapping of channel names"):
        return {}
    out = {}
    for channel, value in raw.items():
        key = f"delivery.{channel}"
        if channel == "email":
            report.add(key, "email is delivered by smtp (see smtp:), not by delivery")
            continue
        if not report.check(channel in channels, key,
                            f"unknown channel {channel!r} (channels: {', '.join(channels)})"):
            continue
        if not report.check(isinstance(value, dict), key, "must be a mapping with command or webhook"):
            continue
        for unknown in set(value) - set(DELIVERY_KEYS):
            report.add(f"{key}.{unknown}", f"unknown key (known: {', '.join(DELIVERY_KEYS)})")
        command, webhook, secret_env = value.get("command"), value.get("webhook"), value.get("secret_env")
        ok = report.check((command is None) != (webhook is None), key,
                          "needs exactly one of command (a program) or webhook (a URL)")
        argv: tuple[str, ...] | None = None
        if command is not None:
            if not isinstance(command, list) or not command or not all(isinstance(a, str) and a for a in command):
                report.add(f"{key}.command", "must be a list: the program and its arguments, e.g. "
                                             "[/usr/local/bin/send-chat, --account, acme] (no shell)")
                ok = False
            elif shutil.which(command[0]) is None:
                report.add(f"{key}.command", f"{command[0]!r} is not an executable file"
                                             + ("" if "/" in command[0] else " on PATH"))
                ok = False
            else:
                argv = tuple(command)
            if secret_env is not None:
                report.add(f"{key}.secret_env", "applies to webhook only (a command gets no signature)")
                ok = False
        if webhook is not None:
            parts = urlsplit(webhook) if isinstance(webhook, str) else None
            if not report.check(parts is not None and parts.scheme in ("http", "https") and bool(parts.hostname)
                                and not any(c in webhook for c in "\r\n "), f"{key}.webhook",
                                f"must be an http:// or https:// URL, not {webhook!r}"):
                ok = False
            elif parts is not None and parts.username is not None:
                report.add(f"{key}.webhook", "must not carry credentials (user:password@): the receiver "
                                             "checks the X-Deskctl-Signature header instead")
                ok = False
            if secret_env is None:
                report.add(f"{key}.secret_env", "is required with webhook: the environment variable "
                                                "holding the signing secret")
                ok = False
            elif not isinstance(secret_env, str) or not _ENV_NAME.match(secret_env):
                report.add(f"{key}.secret_env", f"{secret_env!r} is not an environment variable name "
                                                "(the secret itself never goes in the file)")
                ok = False
        timeout = report.duration(value.get("timeout", "10s"), f"{key}.timeout", timedelta(seconds=10))
        if timeout is None or not timedelta(0) < timeout <= MAX_DELIVERY_TIMEOUT:
            report.add(f"{key}.timeout", "must be a duration above 0 and at most 5m (e.g. 10s)")
            ok = False
        if ok:
            out[channel] = ChannelDelivery(channel=channel, command=argv, webhook=webhook if webhook else None,
                                           secret_env=secret_env, timeout=timeout.total_seconds())
    return out


def _routing(raw: dict, channels: tuple[str, ...], report: _Report) -> RoutingSettings:
    default = DEFAULTS["routing"]
    mode = raw["mode"]
    if not report.check(mode in ROUTING_MODES, "routing.mode", f"must be one of {', '.join(ROUTING_MODES)}"):
        mode = default["mode"]
    timeout = report.duration(raw["offer_timeout"], "routing.offer_timeout")
    if timeout is None:
        report.add("routing.offer_timeout", "is required (e.g. 2m)")
        timeout = timedelta(minutes=2)
    capacity_raw = raw["capacity"]
    if not report.check(isinstance(capacity_raw, dict), "routing.capacity",
                        "must map default and channels to numbers"):
        capacity_raw = {}
    capacity = {"default": 5}
    for key, value in capacity_raw.items():
        ok = report.check(key == "default" or key in channels, f"routing.capacity.{key}",
                          f"unknown channel {key!r} (default or one of: {', '.join(channels)})")
        ok = report.check(isinstance(value, int) and not isinstance(value, bool) and value >= 0,
                          f"routing.capacity.{key}", "must be a whole number, 0 or more") and ok
        if ok:
            capacity[key] = value
    return RoutingSettings(mode=mode, offer_timeout=timeout, capacity=capacity)


def _database_url(from_file: Any, given: str | None, origin: str, report: _Report) -> str:
    """The URL to use: --db / DESKCTL_DATABASE_URL, else database.url, else SQLite in the
    data directory. Only SQLite and PostgreSQL are supported; a SQLite file's directory
    must exist (a typo must not silently create a new, empty desk somewhere else)."""
    from deskctl.db.urls import normalize_url, parse

    key = "database.url"
    if given:
        url, source = given, origin
    else:
        url = report.text(from_file, key, "must be a database URL such as postgresql://desk@db/desk")
        source = None
    if not url:
        return default_database_url()

    def problem(reason: str) -> str:
        report.add(key, reason, source=source)
        return default_database_url()

    try:
        parsed = parse(normalize_url(url))  # without SQLAlchemy: config loads without it (SPEC §11 spool)
    except ValueError:  # not a URL, or a port that is not a number
        from deskctl.db.engine import redact

        reason = (f"invalid database URL {redact(url)!r} (e.g. sqlite:////var/lib/deskctl/desk.db "
                  "or postgresql://desk@db/desk)")
        if given:  # a malformed option value is a usage error (2), as for any option
            from deskctl.errors import UsageError

            raise UsageError(reason) from None
        return problem(reason)
    # Names only: asking SQLAlchemy for the driver would import (or fail to find) its plugin.
    backend, _, driver = parsed.drivername.partition("+")
    if backend not in SUPPORTED_ENGINES or driver not in ("", "pysqlite", "psycopg"):
        return problem(f"unsupported database {parsed.drivername!r}: deskctl supports sqlite "
                       "(sqlite:///PATH) and postgresql (postgresql://USER@HOST/NAME, psycopg 3)")
    file = sqlite_file(url)
    if file is not None:
        if not file.parent.is_dir():
            return problem(f"the directory {file.parent} of the SQLite database does not exist")
        if file.is_dir():
            return problem(f"{file} is a directory, not a SQLite database file")
    return url


def _smtp(raw: dict, report: _Report) -> SmtpSettings:
    default = DEFAULTS["smtp"]
    port = raw["port"]
    if not report.check(isinstance(port, int) and not isinstance(port, bool) and 0 < port < 65536,
                        "smtp.port", f"must be a port number (1-65535), not {port!r}"):
        port = default["port"]
    timeout = raw["timeout"]
    if not report.check(isinstance(timeout, (int, float)) and not isinstance(timeout, bool) and timeout > 0,
                        "smtp.timeout", f"must be a number of seconds greater than 0, not {timeout!r}"):
        timeout = default["timeout"]
    password_env = report.text(raw["password_env"], "smtp.password_env",
                               "must be the name of an environment variable")
    if password_env and not report.check(bool(_ENV_NAME.match(password_env)), "smtp.password_env",
                                         f"{password_env!r} is not an environment variable name "
                                         "(the password itself never goes in the file)"):
        password_env = default["password_env"]
    sender = report.text(raw["from"], "smtp.from", "must be an email address", optional=False,
                         fallback=default["from"])
    if sender != default["from"]:
        from email.utils import parseaddr

        from deskctl.errors import UsageError
        from deskctl.services.addresses import check_address

        try:  # a display name is welcome in From ("Support <support@example.com>")
            if "\r" in sender or "\n" in sender:
                raise UsageError("a line break")
            check_address(parseaddr(sender)[1], "smtp.from")
        except UsageError:
            report.add("smtp.from", f"invalid email address {sender!r}")
    return SmtpSettings(
        host=report.text(raw["host"], "smtp.host", "must be a host name"),
        port=port,
        starttls=report.flag(raw["starttls"], "smtp.starttls"),
        username=report.text(raw["username"], "smtp.username", "must be a user name"),
        password_env=password_env,
        sender=sender,
        timeout=float(timeout),
    )


_SIZE = re.compile(r"^(\d+)\s*(B|KB|MB|GB)?$", re.IGNORECASE)
_SIZE_UNITS = {"b": 1, "kb": 1024, "mb": 1024**2, "gb": 1024**3}


def _size(value: Any, key: str, report: _Report, fallback: str) -> int:
    """A byte size: an integer, or a number with B, KB, MB or GB (binary multiples)."""
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return value
    m = _SIZE.match(str(value).strip()) if isinstance(value, str) else None
    if not m or int(m.group(1)) <= 0:
        report.add(key, f"invalid size {value!r} (e.g. 25MB, 64KB)")
        return _size(fallback, key, report, fallback)
    return int(m.group(1)) * _SIZE_UNITS[(m.group(2) or "b").lower()]


def _limits(raw: dict, report: _Report) -> Limits:
    default = DEFAULTS["limits"]
    return Limits(
        message_bytes=_size(raw["message_bytes"], "limits.message_bytes", report, default["message_bytes"]),
        header_bytes=_size(raw["header_bytes"], "limits.header_bytes", report, default["header_bytes"]),
        **{key: report.count(raw[key], f"limits.{key}", default[key])
           for key in ("recipients", "subject_chars", "query_chars")},
    )


_RANGE = re.compile(r"^(\d{2}):(\d{2})-(\d{2}):(\d{2})$")


def _business_hours(name: str, raw: Any, report: _Report) -> BusinessHours | None:
    key = f"business_hours.{name}"
    if not report.check(isinstance(raw, dict), key, "must be a mapping (timezone, week, holidays, closed)"):
        return None
    for unknown in set(raw) - {"timezone", "week", "holidays", "closed"}:
        report.add(f"{key}.{unknown}", "unknown key (known: timezone, week, holidays, closed)")
    tz = _timezone(raw.get("timezone", "UTC"), f"{key}.timezone", report)
    week_raw = raw.get("week") or {}
    week: dict[int, tuple[tuple[int, int], ...]] = {}
    if not report.check(isinstance(week_raw, dict), f"{key}.week", "must map mon..sun to hour ranges"):
        week_raw = {}
    for day, ranges in week_raw.items():
        day_key = f"{key}.week.{day}"
        if not report.check(day in WEEKDAYS, day_key, "must be one of mon, tue, wed, thu, fri, sat, sun"):
            continue
        if ranges is None:
            ranges = []
        if not report.check(isinstance(ranges, list), day_key, 'must be a list such as ["09:00-18:00"]'):
            continue
        parsed = []
        for r in ranges:
            m = _RANGE.match(str(r))
            if not report.check(bool(m), day_key, f"invalid range {r!r} (HH:MM-HH:MM)"):
                continue
            h1, m1, h2, m2 = (int(x) for x in m.groups())
            start, end = h1 * 60 + m1, h2 * 60 + m2
            if report.check(m1 < 60 and m2 < 60 and 0 <= start < end <= 24 * 60, day_key,
                            f"empty or inverted range {r!r}"):
                parsed.append((start, end))
        parsed.sort()
        for (_, end), (start, _) in zip(parsed, parsed[1:], strict=False):
            report.check(start >= end, day_key, "ranges overlap")
        week[WEEKDAYS.index(day)] = tuple(parsed)
    country, subdiv = _holidays(raw.get("holidays"), f"{key}.holidays", report)
    closed = raw.get("closed") or []
    if not report.check(isinstance(closed, list), f"{key}.closed", "must be a list of dates (YYYY-MM-DD)"):
        closed = []
    from datetime import date

    days = set()
    for day in closed:
        try:
            days.add(date.fromisoformat(str(day)).isoformat())
        except ValueError:
            report.add(f"{key}.closed", f"invalid date {day!r} (YYYY-MM-DD)")
    return BusinessHours(name=name, timezone=tz, week=week, holidays_country=country,
                         holidays_subdiv=subdiv, closed=frozenset(days))


def _holidays(raw: Any, key: str, report: _Report) -> tuple[str | None, str | None]:
    """(country, subdivision) that the `holidays` package knows; checked here so that a
    typo fails at load rather than in every SLA sweep."""
    if raw is None:
        return None, None
    if not report.check(isinstance(raw, dict), key, "must be a mapping such as {country: FR}"):
        return None, None
    for unknown in set(raw) - {"country", "subdiv"}:
        report.add(f"{key}.{unknown}", "unknown key (known: country, subdiv)")
    country = report.text(raw.get("country"), f"{key}.country", "must be a country code such as FR")
    subdiv = raw.get("subdiv")
    if subdiv is not None and not isinstance(subdiv, str):
        if isinstance(subdiv, int) and not isinstance(subdiv, bool):
            subdiv = str(subdiv)  # numeric codes (French departments) need no quotes
        else:
            report.wrong_type(subdiv, f"{key}.subdiv", "must be a subdivision code")
            subdiv = None
    if country is None:
        report.check(subdiv is None, f"{key}.subdiv", "needs a country")
        return None, None
    import holidays

    supported = holidays.list_supported_countries()
    if country not in supported:
        report.add(f"{key}.country", f"unknown country code {country!r} for the holidays package "
                                     "(ISO 3166-1 alpha-2 in capitals, e.g. FR, DE, NO)")
        return None, None
    if subdiv is not None:
        try:
            holidays.country_holidays(country, subdiv=subdiv)
        except NotImplementedError:
            known = ", ".join(supported[country]) or "none"
            report.add(f"{key}.subdiv", f"unknown subdivision {subdiv!r} of {country} (known: {known})")
            return country, None
    return country, subdiv


def _policy(index: int, raw: Any, report: _Report, business_hours, channels) -> SlaPolicy | None:
    key = f"sla.policies[{index}]"
    if not report.check(isinstance(raw, dict), key, "must be a mapping"):
        return None
    allowed = {"name", "when", "hours", "pause_when_pending", *SLA_TARGETS}
    for unknown in set(raw) - allowed:
        report.add(f"{key}.{unknown}", f"unknown key (known: {', '.join(sorted(allowed))})")
    name = report.text(raw.get("name"), f"{key}.name", "is required: a policy name", optional=False,
                       fallback=f"policy-{index}")
    when_raw = raw.get("when") or {}
    if not report.check(isinstance(when_raw, dict), f"{key}.when", "must be a mapping"):
        when_raw = {}
    when: dict[str, tuple] = {}
    for cond, value in when_raw.items():
        ckey = f"{key}.when.{cond}"
        if cond == "vip":
            when[cond] = (report.flag(value, ckey),)
        elif cond in ("priority", "channel", "group", "location"):
            values = value if isinstance(value, list) else [value]
            if not all(isinstance(v, str) and v for v in values):
                bad_value = next(v for v in values if not (isinstance(v, str) and v))
                bad_key = ckey if not isinstance(value, list) else f"{ckey}[{values.index(bad_value)}]"
                report.wrong_type(bad_value, bad_key, "must be a name or a list of names")
                continue
            known = PRIORITIES if cond == "priority" else channels if cond == "channel" else None
            bad = [v for v in values if known is not None and v not in known]
            if report.check(not bad, ckey, f"unknown {cond} {bad[0] if bad else ''!r} "
                                           f"(known: {', '.join(known or ())})"):
                when[cond] = tuple(values)
        else:
            report.add(ckey, "unknown condition (vip, priority, channel, group, location)")
    hours = raw.get("hours", "24x7")
    if not isinstance(hours, str):
        report.wrong_type(hours, f"{key}.hours", "must be 24x7 or a business_hours name")
        hours = "24x7"
    elif not report.check(hours == "24x7" or hours in business_hours, f"{key}.hours",
                        f"unknown calendar {hours!r} (24x7 or a business_hours name)"):
        hours = "24x7"
    targets = {t: report.duration(raw.get(t), f"{key}.{t}") for t in SLA_TARGETS}
    return SlaPolicy(
        name=name,
        when=when,
        hours=hours,
        pause_when_pending=report.flag(raw.get("pause_when_pending", True), f"{key}.pause_when_pending", True),
        **targets,
    )


def _job(name: str, raw: dict, report: _Report, timezone: str) -> JobSettings:
    key = f"jobs.{name}"
    allowed = {"every", "cron", "after", "reports", "enabled"}
    for unknown in set(raw) - allowed:
        report.add(f"{key}.{unknown}", f"unknown key (known: {', '.join(sorted(allowed))})")
    every = report.duration(raw.get("every"), f"{key}.every")
    cron = raw.get("cron")
    if cron is not None:
        every = None
        if not isinstance(cron, str) or len(cron.split()) != 5:
            report.add(f"{key}.cron", f'must be a 5-field crontab expression such as "0 2 * * *", not {cron!r}')
            cron = None
        elif cron != DEFAULTS["jobs"].get(name, {}).get("cron"):  # the shipped one is known good
            from apscheduler.triggers.cron import CronTrigger

            try:
                CronTrigger.from_crontab(cron, timezone=timezone)
            except ValueError as exc:
                report.add(f"{key}.cron", f"invalid crontab expression {cron!r}: {exc}")
                cron = None
    enabled = report.flag(raw.get("enabled", True), f"{key}.enabled", True)
    if every is None and cron is None and enabled and raw.get("cron") is None:
        report.add(key, "needs `every` or `cron` (or `enabled: false`)")
        enabled = False
    reports = raw.get("reports") or []
    if not report.check(isinstance(reports, list), f"{key}.reports", "must be a list of report kinds"):
        reports = []
    bad = [r for r in reports if r not in REPORT_KINDS]
    report.check(not bad, f"{key}.reports", f"unknown report {bad[0] if bad else ''!r} "
                                            f"(known: {', '.join(REPORT_KINDS)})")
    after = report.duration(raw.get("after"), f"{key}.after")
    if name == "auto-unassign" and after is None:
        enabled = False  # SPEC §5: off unless `after` is set
    return JobSettings(name=name, every=every, cron=cron, after=after,
                       reports=tuple(r for r in reports if r in REPORT_KINDS), enabled=enabled)


def _automations(raw: Any, report: _Report, channels: tuple[str, ...],
                 business_hours: dict[str, BusinessHours]) -> tuple[AutomationRule, ...]:
    """`automations:` (SPEC §11): a list of rules {name, on, if, then, stop}."""
    if not report.check(isinstance(raw, list), "automations", "must be a list of rules"):
        return ()
    rules: list[AutomationRule] = []
    for index, item in enumerate(raw):
        if isinstance(item, dict) and True in item and "on" not in item:
            # YAML 1.1 reads a bare `on:` key as the boolean true; `config show` writes 'on'.
            item = raw[index] = {("on" if k is True else k): v for k, v in item.items()}
        rule = _automation(index, item, report, channels, business_hours)
        if rule is None:
            continue
        if any(r.name == rule.name for r in rules):
            report.add(f"{rule.key}.name", f"rule {rule.name!r} is defined twice")
            continue
        rules.append(rule)
    return tuple(rules)


def _automation(index: int, raw: Any, report: _Report, channels: tuple[str, ...],
                business_hours: dict[str, BusinessHours]) -> AutomationRule | None:
    key = f"automations[{index}]"
    if not report.check(isinstance(raw, dict), key, "must be a mapping (name, on, if, then, stop)"):
        return None
    allowed = ("name", "on", "if", "then", "stop")
    for unknown in set(raw) - set(allowed):
        report.add(f"{key}.{unknown}", f"unknown key (known: {', '.join(allowed)})")
    name = report.text(raw.get("name"), f"{key}.name", "is required: a rule name", optional=False)
    if name is not None and not _NAME.match(name):
        report.add(f"{key}.name", f"invalid name {name!r} (letters, digits, - and _ only)")
        name = None
    on_raw = raw.get("on")
    on_values = on_raw if isinstance(on_raw, list) else [on_raw] if isinstance(on_raw, str) else None
    on: tuple[str, ...] = ()
    if on_values is None or not on_values:
        report.add(f"{key}.on", f"is required: a list of events ({', '.join(AUTOMATION_TRIGGERS)})")
    else:
        bad = [v for v in on_values if v not in AUTOMATION_TRIGGERS]
        if report.check(not bad, f"{key}.on", f"unknown event {bad[0] if bad else ''!r} "
                                              f"(known: {', '.join(AUTOMATION_TRIGGERS)})"):
            on = tuple(dict.fromkeys(on_values))
    conditions = _automation_conditions(raw.get("if"), f"{key}.if", report, channels, business_hours)
    actions = _automation_actions(raw.get("then"), f"{key}.then", report)
    stop = report.flag(raw.get("stop", False), f"{key}.stop")
    if name is None or not on or conditions is None or actions is None:
        return None
    return AutomationRule(name=name, index=index, on=on, conditions=conditions, actions=actions, stop=stop)


def _pattern(value: Any, key: str, report: _Report):
    """A regular expression, compiled now: a bad one is a load error, not a failed ingest."""
    if not isinstance(value, str) or not value:
        report.wrong_type(value, key, "must be a regular expression")
        return None
    try:
        return re.compile(value)
    except re.error as exc:
        report.add(key, f"invalid regular expression {value!r}: {exc}")
        return None


def _name_list(value: Any, key: str, report: _Report, known: tuple[str, ...] | None = None,
               what: str = "name") -> tuple[str, ...] | None:
    """A name or a list of names; `known` (when given) is what they must be one of."""
    values = value if isinstance(value, list) else [value]
    good = report.names(values, key, ())
    if len(good) != len(values):
        return None
    bad = [v for v in good if known is not None and v not in known]
    if not report.check(not bad, key, f"unknown {what} {bad[0] if bad else ''!r} (known: {', '.join(known or ())})"):
        return None
    return good


_TAG = re.compile(r"^[^,\s][^,]{0,99}$")
_HANDLE = re.compile(r"^[a-z0-9._-]{1,64}$")  # as services/directory/staff


def _word_list(value: Any, key: str, report: _Report, pattern: re.Pattern, what: str) -> tuple[str, ...] | None:
    """A word or a list of words, each matching `pattern` (tags, handles)."""
    values = value if isinstance(value, list) else [value]
    bad = [v for v in values if not (isinstance(v, str) and pattern.match(v.strip()))]
    if bad or not values:
        report.wrong_type(bad[0] if bad else value, key, f"must be {what} or a list of them")
        return None
    return tuple(dict.fromkeys(v.strip() for v in values))


def _automation_conditions(raw: Any, key: str, report: _Report, channels: tuple[str, ...],
                           business_hours: dict[str, BusinessHours]) -> dict[str, Any] | None:
    if raw is None:
        return {}
    if not report.check(isinstance(raw, dict), key, "must be a mapping of conditions"):
        return None
    ok = True
    out: dict[str, Any] = {}
    for cond, value in raw.items():
        ckey = f"{key}.{cond}"
        if cond not in AUTOMATION_CONDITIONS:
            report.add(ckey, f"unknown condition (known: {', '.join(AUTOMATION_CONDITIONS)})")
            ok = False
            continue
        if cond in ("subject", "text"):
            parsed = _pattern(value, ckey, report)
        elif cond == "from":
            parsed = value.strip().lower() if isinstance(value, str) and value.strip() else None
            if parsed is None:
                report.wrong_type(value, ckey, "must be an address pattern such as *@bigcorp.example")
        elif cond == "vip":
            parsed = value if isinstance(value, bool) else report.wrong_type(value, ckey, "must be true or false")
        elif cond == "channel":
            parsed = _name_list(value, ckey, report, channels, "channel")
        elif cond == "group":
            parsed = _name_list(value, ckey, report)
        else:  # hours
            parsed = None
            if isinstance(value, dict) and len(value) == 1 and next(iter(value)) in ("inside", "outside"):
                mode, calendar = next(iter(value.items()))
                if calendar == "24x7" or (isinstance(calendar, str) and calendar in business_hours):
                    parsed = (mode, calendar)
                else:
                    report.add(f"{ckey}.{mode}", f"unknown calendar {calendar!r} (24x7 or a business_hours name"
                                                 f"{': ' + ', '.join(business_hours) if business_hours else ''})")
            else:
                report.add(ckey, "must be {inside: NAME} or {outside: NAME} (a business_hours name)")
        if parsed is None:
            ok = False
        else:
            out[cond] = parsed
    return out if ok else None


def _automation_actions(raw: Any, key: str, report: _Report) -> dict[str, Any] | None:
    if not report.check(isinstance(raw, dict) and bool(raw), key,
                        f"is required: a mapping of actions ({', '.join(AUTOMATION_ACTIONS)})"):
        return None
    ok = True
    out: dict[str, Any] = {}
    for action, value in raw.items():
        akey = f"{key}.{action}"
        if action not in AUTOMATION_ACTIONS:
            report.add(akey, f"unknown action (known: {', '.join(AUTOMATION_ACTIONS)})")
            ok = False
            continue
        parsed: Any = None
        if action in ("tag", "watch"):
            parsed = _word_list(value, akey, report, _TAG if action == "tag" else _HANDLE,
                                "a tag (no commas, at most 100 characters)" if action == "tag" else "a user handle")
        elif action == "priority":
            if report.check(value in PRIORITIES, akey, f"must be one of {', '.join(PRIORITIES)}, not {value!r}"):
                parsed = value
        elif action == "assign":
            if value is None:
                out[action] = None
                continue
            if isinstance(value, str) and _HANDLE.match(value):
                parsed = value
            else:
                report.wrong_type(value, akey, "must be a user handle, or null to unassign")
        elif action in ("group", "reply"):
            pattern = _NAME if action == "group" else _TEMPLATE_NAME
            if isinstance(value, str) and pattern.match(value):
                parsed = value
            else:
                report.wrong_type(value, akey, f"must be a {'group' if action == 'group' else 'team template'} name")
        else:  # note
            parsed = report.text(value, akey, "must be the note's text")
        if parsed is None:
            ok = False
        else:
            out[action] = parsed
    return out if ok else None
