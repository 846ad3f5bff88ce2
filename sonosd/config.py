# -*- test-case-name: tests.test_config -*-
"""The daemon's configuration: frozen, typed objects loaded from YAML and validated.

The loader (``load_config``) turns a YAML file into a ``Config`` or raises ``ConfigError`` with
one line naming the file, the line, the key path and the bad value::

    config.yaml:3: devices[0].host: expected a host name or address, got 42

Validation has three steps: the YAML is composed with the line of every node kept (duplicate
keys are errors), the document is checked against the JSON Schema shipped beside this module
(``config.schema.json``, published as ``docs/config.schema.json``), and what a schema cannot say
is checked here (host names, Twisted endpoint strings, secrets from the environment or files).
Nothing here does I/O beyond reading the file (and the secret files) it is given.
"""

from __future__ import annotations

import ipaddress
import json
import math
import os
import re
from collections.abc import Callable, Mapping, Sequence
from importlib import resources
from types import MappingProxyType
from typing import Any

import attrs
import yaml
from jsonschema import Draft202012Validator, ValidationError, validators

from sonosd import tlsgate

DEFAULT_SERVICES: tuple[str, ...] = (
    "AVTransport",
    "RenderingControl",
    "GroupRenderingControl",
    "ZoneGroupTopology",
    "ContentDirectory",
    "DeviceProperties",
    "AlarmClock",
    "Queue",
)

#: Every service name a Sonos speaker (and so SoCo) knows.
SERVICES: tuple[str, ...] = (
    *DEFAULT_SERVICES,
    "SystemProperties",
    "MusicServices",
    "AudioIn",
    "GroupManagement",
    "ConnectionManager",
    "VirtualLineIn",
    "HTControl",
)

LOG_LEVELS: tuple[str, ...] = ("debug", "info", "warn", "error", "critical")
LOG_FORMATS: tuple[str, ...] = ("text", "json")


class ConfigError(Exception):
    """A configuration file is wrong; ``str()`` is the one line shown to the user."""


@attrs.frozen
class ListenerConfig:
    """Where the GENA NOTIFY listener binds and what address it advertises in CALLBACK."""

    interface: str = "0.0.0.0"
    port: int = 1400
    advertise: str | None = None
    max_body: int = 1_048_576
    idle_timeout: float = 30.0
    request_timeout: float = 15.0
    max_connections_per_host: int = 64


@attrs.frozen
class Token:
    """An API bearer token and the scopes it grants (``read``, ``control``)."""

    name: str
    secret: str = attrs.field(repr=False)
    scopes: frozenset[str] = frozenset({"read"})


@attrs.frozen
class ApiConfig:
    """The HTTP API site: endpoint string, tokens, CORS and per-client buffering."""

    listen: str = "tcp:8080:interface=127.0.0.1"
    tokens: tuple[Token, ...] = ()
    require_auth: bool | None = None
    ready_when_polling: bool = False
    cors_origins: tuple[str, ...] = ()
    replay_buffer: int = 10_000
    client_buffer: int = 1_000
    heartbeat: float = 15.0
    request_timeout: float = 15.0


@attrs.frozen
class Device:
    """One configured speaker: a host name or address, and optionally its expected room name."""

    host: str
    name: str | None = None


@attrs.frozen
class SubscriptionConfig:
    """How GENA subscriptions are kept alive."""

    timeout: int = 1800
    renew_fraction: float = 0.5
    request_timeout: float = 10.0
    backoff_initial: float = 1.0
    backoff_max: float = 300.0
    no_event_grace: float = 5.0
    poll_interval: float = 10.0
    availability_interval: float = 3.0
    silence_timeout: float = 20.0
    ping_timeout: float = 5.0
    asleep_interval: float = 60.0
    position_interval: float = 30.0
    shutdown_timeout: float = 5.0
    check_interval: float = 300.0


@attrs.frozen
class SocoConfig:
    """The one thread pool that runs SoCo's blocking calls."""

    threads: int = 10
    call_timeout: float = 20.0


@attrs.frozen
class AnnounceConfig:
    """Announcements: the text-to-speech command (or URL template), defaults, clip lifetime."""

    tts_command: tuple[str, ...] = ("espeak-ng", "-w", "{file}", "{text}")
    tts_url: str | None = None
    tts_timeout: float = 20.0
    volume: int | None = None
    timeout: float = 30.0
    media_ttl: float = 300.0


@attrs.frozen
class Webhook:
    """One webhook target; ``filter`` maps speakers/rooms/services/types to accepted values."""

    url: str
    secret: str | None = attrs.field(default=None, repr=False)
    timeout: float = 10.0
    retries: int = 5
    queue: int = 1_000
    filter: Mapping[str, tuple[str, ...]] = attrs.field(factory=dict)
    ca_file: str | None = None


@attrs.frozen
class MqttConfig:
    """The MQTT broker connection and topic layout."""

    host: str = "127.0.0.1"
    port: int = 1883
    tls: bool = False
    ca_file: str | None = None
    username: str | None = None
    password: str | None = attrs.field(default=None, repr=False)
    prefix: str = "sonos"
    client_id: str = "sonosd"
    keepalive: int = 30
    homeassistant: bool = False
    discovery_prefix: str = "homeassistant"


@attrs.frozen
class SinksConfig:
    """Where messages go besides the API: Python callbacks, webhooks, MQTT, a local stream."""

    callbacks: tuple[str, ...] = ()
    webhooks: tuple[Webhook, ...] = ()
    mqtt: MqttConfig | None = None
    stream: str | None = None


@attrs.frozen
class LogConfig:
    """Log format (``text`` or ``json``) and level."""

    format: str = "text"
    level: str = "info"
    messages: bool = True


@attrs.frozen
class SsdpConfig:
    """Where ``discovery: true`` searches: the SSDP port, how often, and announcements."""

    port: int = 1900
    interval: float = 300.0
    announcements: bool = False


@attrs.frozen
class SimulateConfig:
    """An in-process simulated household (demo and tests); docs/configuration.md and
    docs/simulator.md say what each field does."""

    speakers: int = 3
    base_address: str = "127.0.0.2"
    port: int = 1400
    rooms: tuple[str, ...] = ()
    activity: float = 0.0
    admin: str | None = None
    stereo_pair: bool = False
    ssdp_port: int | None = None
    models: tuple[str, ...] = ()
    households: int = 1
    home_theatre: bool = False
    moderation: float = 0.2
    large_household: bool = True
    large_household_players: int = 22
    upnp: bool = True
    upnp_off_ssdp: str = "answer"
    upnp_off_forbidden: tuple[str, ...] = ("description", "control", "event")
    https_only: tuple[int, ...] = ()
    tls_port: int = 1443


@attrs.frozen
class Config:
    """The whole validated configuration."""

    path: str
    listener: ListenerConfig = ListenerConfig()
    api: ApiConfig = ApiConfig()
    devices: tuple[Device, ...] = ()
    follow_household: bool = True
    discovery: bool = False
    ssdp: SsdpConfig = SsdpConfig()
    services: tuple[str, ...] = DEFAULT_SERVICES
    subscription: SubscriptionConfig = SubscriptionConfig()
    soco: SocoConfig = SocoConfig()
    announce: AnnounceConfig = AnnounceConfig()
    sinks: SinksConfig = SinksConfig()
    log: LogConfig = LogConfig()
    simulate: SimulateConfig | None = None
    state_dir: str | None = None
    #: The secrets written in the file itself (``api.tokens[0].token``): not a key of the
    #: file, so that ``config_warnings`` can say when the file is not private.
    inline_secrets: tuple[str, ...] = attrs.field(default=(), eq=False)


#: A key path inside the document: ``("devices", 0, "host")``.
KeyPath = tuple[str | int, ...]

#: Command-line overrides ``tap.Options`` may pass: option name -> key path it sets.
OVERRIDES: Mapping[str, KeyPath] = MappingProxyType(
    {
        "listen-interface": ("listener", "interface"),
        "listen-port": ("listener", "port"),
        "advertise": ("listener", "advertise"),
        "api": ("api", "listen"),
        "log-format": ("log", "format"),
        "log-level": ("log", "level"),
    }
)


def load_config(
    path: str,
    environ: Mapping[str, str] | None = None,
    overrides: Mapping[str, object] | None = None,
) -> Config:
    """Read, validate and build the configuration at ``path``; raise ``ConfigError``.

    @param path: the YAML file, named as the user gave it (error lines start with it).
    @param environ: where ``*_env`` secrets are looked up (default: ``os.environ``).
    @param overrides: values from the command line, keyed by option name (see ``OVERRIDES``);
        they replace the file's values and are validated like them.
    """
    try:
        with open(path, "rb") as stream:
            data = stream.read(MAX_FILE + 1)
    except OSError as error:
        reason = error.strerror or str(error)
        raise ConfigError(f"{path}: cannot read the configuration file: {reason}") from None
    if len(data) > MAX_FILE:
        raise ConfigError(f"{path}: the configuration file is over {MAX_FILE} bytes")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise ConfigError(
            f"{path}: cannot read the configuration file: not UTF-8 text "
            f"(byte {error.start} is {data[error.start]:#04x})"
        ) from None
    return parse_config(text, path, environ, overrides)


def parse_config(
    text: str,
    path: str = "config.yaml",
    environ: Mapping[str, str] | None = None,
    overrides: Mapping[str, object] | None = None,
) -> Config:
    """Validate and build the configuration from YAML ``text`` (``path`` names it in errors)."""
    document, source = _compose(text, path)
    if overrides:
        document = _apply_overrides(document, overrides, source)
    _check_schema(document, source)
    return _Builder(source, os.environ if environ is None else environ).build(document)


# -- YAML with line numbers --------------------------------------------------------------------

#: The largest configuration file read (bytes); real ones are a few kilobytes.
MAX_FILE = 1_048_576

_MERGE_TAG = "tag:yaml.org,2002:merge"
_TAGS = frozenset({"tag:yaml.org,2002:map", "tag:yaml.org,2002:seq"})
_MAX_NODES = 100_000
#: The deepest nesting of collections read (a configuration is under ten levels deep).
MAX_DEPTH = 100
_OPENS = (
    yaml.BlockMappingStartToken,
    yaml.BlockSequenceStartToken,
    yaml.FlowMappingStartToken,
    yaml.FlowSequenceStartToken,
)
_CLOSES = (yaml.BlockEndToken, yaml.FlowMappingEndToken, yaml.FlowSequenceEndToken)


@attrs.define
class _Source:
    """Where each value of the document came from, to name it in error messages."""

    file: str
    lines: dict[KeyPath, int] = attrs.Factory(dict)
    options: dict[KeyPath, str] = attrs.Factory(dict)

    def line(self, path: KeyPath) -> int | None:
        """The line of ``path``, or of its nearest ancestor whose line is known."""
        for end in range(len(path), -1, -1):
            line = self.lines.get(path[:end])
            if line is not None:
                return line
        return None

    def error(self, path: KeyPath, what: str, *values: object) -> ConfigError:
        """A ``ConfigError`` for ``path``: ``file:line: key.path: what, got value``."""
        option = self.options.get(path)
        where = self.file if option else _where(self.file, self.line(path))
        parts = [where]
        if path:
            parts.append(format_path(path) + (f" (from --{option})" if option else ""))
        message = what
        if values:
            message += ", got " + show_value(values[0], secret=_is_secret(path))
        parts.append(message)
        return ConfigError(": ".join(parts))


def _where(file: str, line: int | None) -> str:
    return file if line is None else f"{file}:{line}"


def format_path(path: KeyPath) -> str:
    """``("devices", 0, "host")`` -> ``devices[0].host``."""
    text = ""
    for part in path:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += f".{part}" if text else part
    return text


def show_value(value: object, secret: bool = False, limit: int = 120) -> str:
    """A short, unambiguous rendering of a bad value (JSON-like; secrets are hidden)."""
    if secret:
        return HIDDEN
    try:
        text = json.dumps(_head(value, [limit]), ensure_ascii=False, default=str, sort_keys=False)
    except (TypeError, ValueError):
        text = repr(value)
    if len(text) > limit:
        text = text[: limit - 3] + "..."
    return text


def _head(value: object, budget: list[int]) -> object:
    """The first ``budget[0]`` values of ``value`` (lists and mappings cut short with
    ``"..."``): what ``show_value`` can show of it, however far its aliases expand. A secret
    in it (the value of a ``token``, ``secret`` or ``password`` key) is ``<hidden>``."""
    budget[0] -= 1
    if isinstance(value, list | dict):
        items = value.items() if isinstance(value, dict) else enumerate(value)
        kept: list[tuple[object, object]] = []
        for key, item in items:
            if budget[0] <= 0:
                kept.append(("...", "..."))
                break
            if isinstance(value, dict) and key in _SECRET_KEYS:
                budget[0] -= 1
                kept.append((key, HIDDEN))
                continue
            kept.append((key, _head(item, budget)))
        if isinstance(value, dict):
            return dict(kept)
        return [item for _, item in kept]
    return value


#: The keys whose value is a secret written in the file.
_SECRET_KEYS = frozenset({"token", "secret", "password"})

#: How a secret is shown in an error message.
HIDDEN = "<hidden>"


def _is_secret(path: KeyPath) -> bool:
    """Whether the value at ``path`` is (or may be) a secret: a ``token``, ``secret`` or
    ``password``, or ``api.tokens`` or one of its entries when it is not the mapping asked
    for (``tokens: [3f1c0a9e...]``: a token written without its keys)."""
    if not path:
        return False
    return path[-1] in _SECRET_KEYS or (path[:2] == ("api", "tokens") and len(path) <= 3)


def _compose(text: str, file: str) -> tuple[object, _Source]:
    """Parse YAML ``text`` into plain values, keeping the line of every key path."""
    source = _Source(file)
    try:
        loader = yaml.SafeLoader(text)
    except yaml.reader.ReaderError as error:
        bad_line = text.count("\n", 0, error.position) + 1
        raise ConfigError(
            f"{file}:{bad_line}: invalid YAML: character #x{error.character:04x} is not allowed"
        ) from None
    try:
        _check_depth(text, file)
        node = loader.get_single_node()
        if node is None:
            raise ConfigError(f"{file}: the file is empty; expected a mapping of settings")
        return _NodeReader(loader, source).read(node, ()), source
    except RecursionError:
        # Aliases can nest what _check_depth saw shallow (``- &b [*a]`` on each line), and
        # reading them recurses: a traceback otherwise, if the value bound is not met first.
        raise ConfigError(f"{file}: invalid YAML: nested too deeply") from None
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        line = None if mark is None else mark.line + 1
        problem = error.problem or error.context or "invalid YAML"
        if error.problem and error.context and error.context.startswith("expected"):
            problem = f"{error.context}, {error.problem}"
        raise ConfigError(f"{_where(file, line)}: invalid YAML: {problem}") from None
    finally:
        loader.dispose()


def _check_depth(text: str, file: str) -> None:
    """Refuse a document nested over ``MAX_DEPTH`` levels before composing it: PyYAML
    composes collections recursively (a thousand levels end in RecursionError) and its
    scanner is quadratic in the depth of flow collections (5,000 levels: seconds of CPU).
    A scan error is left for the composer to report with its line. libyaml's scanner when
    PyYAML has it (PyPI's wheels do): it reads a thousand levels in microseconds."""
    scanner = getattr(yaml, "CSafeLoader", yaml.SafeLoader)(text)
    depth = 0
    try:
        while scanner.check_token():
            token = scanner.get_token()
            if isinstance(token, _OPENS):
                depth += 1
                if depth > MAX_DEPTH:
                    line = token.start_mark.line + 1
                    raise ConfigError(
                        f"{file}:{line}: invalid YAML: nested over {MAX_DEPTH} levels deep"
                    )
            elif isinstance(token, _CLOSES):
                depth -= 1
    except yaml.MarkedYAMLError as error:
        # libyaml looks ahead for a key, and may meet its own bound (1,000) first.
        if error.problem and "nesting depth" in error.problem and error.problem_mark:
            line = error.problem_mark.line + 1
            raise ConfigError(
                f"{file}:{line}: invalid YAML: nested over {MAX_DEPTH} levels deep"
            ) from None
    except yaml.YAMLError:
        return
    finally:
        scanner.dispose()


@attrs.define
class _NodeReader:
    """Builds plain values from composed YAML nodes, recording lines and refusing duplicates."""

    loader: yaml.SafeLoader
    source: _Source
    done: dict[int, object] = attrs.Factory(dict)
    active: set[int] = attrs.Factory(set)
    #: Values read so far, an alias counting as every value it stands for: what the schema
    #: check, the builder and error messages will walk (a "billion laughs" document is small
    #: to read once but expands beyond any bound).
    count: int = 0
    sizes: dict[int, int] = attrs.Factory(dict)

    def read(self, node: yaml.Node, path: KeyPath) -> object:
        self.source.lines.setdefault(path, node.start_mark.line + 1)
        key = id(node)
        if key in self.done:
            self._add(self.sizes[key], path)
            return self.done[key]
        if key in self.active:
            raise self.source.error(path, "a recursive YAML alias is not a setting")
        before = self.count
        self._add(1, path)
        self.active.add(key)
        try:
            if isinstance(node, yaml.MappingNode | yaml.SequenceNode) and node.tag not in _TAGS:
                raise ConfigError(
                    f"{self.source.file}:{node.start_mark.line + 1}: invalid YAML: "
                    f"unsupported tag {node.tag}"
                )
            if isinstance(node, yaml.MappingNode):
                value: object = self._mapping(node, path)
            elif isinstance(node, yaml.SequenceNode):
                value = [self.read(item, (*path, index)) for index, item in enumerate(node.value)]
            else:
                value = self.loader.construct_object(node, deep=True)
        finally:
            self.active.discard(key)
        self.done[key] = value
        self.sizes[key] = self.count - before
        return value

    def _add(self, values: int, path: KeyPath) -> None:
        self.count += values
        if self.count > _MAX_NODES:
            raise self.source.error(
                path,
                f"the document has more than {_MAX_NODES} values (aliases counted as expanded)",
            )

    def _mapping(self, node: yaml.MappingNode, path: KeyPath) -> dict[str, object]:
        own = sum(1 for key_node, _ in node.value if key_node.tag != _MERGE_TAG)
        self.loader.flatten_mapping(node)
        merged_count = len(node.value) - own
        result: dict[str, object] = {}
        seen: dict[str, int] = {}
        for index, (key_node, value_node) in enumerate(node.value):
            line = key_node.start_mark.line + 1
            if not isinstance(key_node, yaml.ScalarNode):
                kind = "list" if isinstance(key_node, yaml.SequenceNode) else "mapping"
                where = format_path(path)
                raise ConfigError(
                    f"{self.source.file}:{line}: {where + ': ' if where else ''}"
                    f"keys must be names, got a {kind}"
                )
            key = self.loader.construct_object(key_node, deep=True)
            if not isinstance(key, str):
                raise self.source.error(path, "keys must be names", key)
            child = (*path, key)
            if index >= merged_count:
                if key in seen:
                    self.source.lines[child] = line
                    raise self.source.error(
                        child,
                        f"duplicate key (first set on line {seen[key]})",
                        self.loader.construct_object(value_node, deep=True),
                    )
                seen[key] = line
                self.source.lines[child] = line
            elif key in result:
                continue
            result[key] = self.read(value_node, child)
        return result


def _apply_overrides(document: object, overrides: Mapping[str, object], source: _Source) -> object:
    """Return ``document`` with the command-line ``overrides`` set (sections are copied)."""
    if not isinstance(document, dict):
        return document
    result = dict(document)
    for option, value in overrides.items():
        if value is None:
            continue
        section, key = OVERRIDES[option]
        current = result.get(section)
        merged = dict(current) if isinstance(current, dict) else {}
        merged[key] = value
        result[section] = merged
        source.options[(section, key)] = option
    return result


# -- the JSON Schema -----------------------------------------------------------------------------


def schema_text() -> str:
    """The JSON Schema of the configuration file, as shipped in the package."""
    return resources.files("sonosd").joinpath("config.schema.json").read_text("utf-8")


SCHEMA: Mapping[str, Any] = json.loads(schema_text())


def _is_integer(checker: object, instance: object) -> bool:
    # JSON Schema counts 3.0 as an integer; the objects built from it must hold an int.
    return isinstance(instance, int) and not isinstance(instance, bool)


def _is_number(checker: object, instance: object) -> bool:
    # NaN passes every minimum and maximum (its comparisons are all false).
    if isinstance(instance, float):
        return math.isfinite(instance)
    return _is_integer(checker, instance)


_VALIDATOR = validators.extend(
    Draft202012Validator,
    type_checker=Draft202012Validator.TYPE_CHECKER.redefine_many(
        {"integer": _is_integer, "number": _is_number}
    ),
)(SCHEMA)

# Validators whose failure means "this value is not the kind of value expected here".
_KIND_VALIDATORS = frozenset(
    {
        "type",
        "enum",
        "const",
        "pattern",
        "format",
        "minimum",
        "maximum",
        "exclusiveMinimum",
        "exclusiveMaximum",
        "minLength",
        "maxLength",
        "anyOf",
        "oneOf",
    }
)


def _check_schema(document: object, source: _Source) -> None:
    errors = list(_VALIDATOR.iter_errors(document))
    if not errors:
        return
    located = [_locate(_leaf(error), source) for error in errors]
    path, what, values = min(located, key=lambda item: (source.line(item[0]) or 0, -len(item[0])))
    raise source.error(path, what, *values)


def _leaf(error: ValidationError) -> ValidationError:
    """The error that says most: inside ``anyOf``, the branch the value was meant for."""
    if error.validator not in ("anyOf", "oneOf") or not error.context:
        return error
    if error.validator in _schema_of(error).get("x-messages", {}):
        return error
    candidates = [
        sub
        for sub in error.context
        if not (sub.validator == "type" and sub.validator_value == "null")
    ]
    if not candidates or any(
        sub.validator == "type" and sub.absolute_path == error.absolute_path for sub in candidates
    ):
        return error
    return _leaf(max(candidates, key=lambda sub: len(sub.absolute_path)))


def _locate(error: ValidationError, source: _Source) -> tuple[KeyPath, str, tuple[object, ...]]:
    """The key path, the complaint and the bad value (if any) of one schema error."""
    path: KeyPath = tuple(error.absolute_path)
    schema = _schema_of(error)
    messages = schema.get("x-messages", {})
    instance: Any = error.instance
    if error.validator in messages:
        return path, messages[error.validator], ()
    if error.validator == "additionalProperties" and isinstance(instance, Mapping):
        known = list(schema.get("properties", {}))
        extra = [key for key in instance if key not in known]
        key = min(extra, key=lambda name: source.line((*path, name)) or 0)
        what = f"unknown key (known keys: {', '.join(known)})"
        if _SECRET_KEYS & set(known):
            # Beside a secret, a misspelt key (tokne:, pasword:) most likely holds one.
            return (*path, key), what + ", got " + HIDDEN, ()
        return (*path, key), what, (instance[key],)
    if error.validator == "required":
        required: list[str] = list(_bound(error))
        missing = [key for key in required if key not in instance]
        return path, f"missing required key {missing[0]}", ()
    if error.validator in _KIND_VALIDATORS and "x-expected" in schema:
        return path, "expected " + schema["x-expected"], (instance,)
    return path, _generic(error), (instance,)


def _schema_of(error: ValidationError) -> Mapping[str, Any]:
    return error.schema if isinstance(error.schema, Mapping) else {}


def _bound(error: ValidationError) -> Any:
    """The schema value the failed validator checked against (a limit, a list, ...)."""
    return error.validator_value


def _generic(error: ValidationError) -> str:
    bound = _bound(error)
    validator = str(error.validator)
    templates = {
        "type": "expected a value of type {}",
        "minimum": "expected a value of at least {}",
        "maximum": "expected a value of at most {}",
        "exclusiveMinimum": "expected a value above {}",
        "minItems": "expected at least {} item(s)",
        "maxItems": "expected at most {} item(s)",
        "uniqueItems": "expected no repeated items",
        "minLength": "expected at least {} character(s)",
        "maxLength": "expected at most {} character(s)",
    }
    template = templates.get(validator)
    return error.message if template is None else template.format(bound)


# -- semantic checks and the typed objects ------------------------------------------------------

_MIN_TOKEN = SCHEMA["$defs"]["token"]["properties"]["token"]["minLength"]
_HOST_LABEL = re.compile(r"(?!-)[A-Za-z0-9-]{1,63}(?<!-)\Z")
_ENDPOINT_OPTION = re.compile(r"unexpected keyword argument '(\w+)'")


def is_host(value: str) -> bool:
    """Whether ``value`` is an IP address or an RFC 1123 host name."""
    if is_address(value):
        return True
    name = value[:-1] if value.endswith(".") else value
    if not name or len(name) > 253:
        return False
    labels = name.split(".")
    if all(label.isdigit() for label in labels):
        return False
    return all(_HOST_LABEL.match(label) for label in labels)


def is_address(value: str) -> bool:
    """Whether ``value`` is an IPv4 or IPv6 address."""
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return False
    return True


#: Endpoint types that never use TLS; any other (``ssl:``, a plugin's) loads it first.
PLAIN_ENDPOINTS = frozenset({"tcp", "tcp6", "unix", "systemd"})


class _NoReactor:
    """What a parsed endpoint holds as its reactor while the configuration is checked: it is
    never asked to listen (twisted.internet.testing's reactor would cost a megabyte of test
    modules in the daemon)."""


def _parse_endpoint(description: str) -> Any:
    """``description`` parsed as twistd would (nothing listens), with TLS loaded first for
    an endpoint type that may use it (``sonosd.tlsgate``)."""
    from twisted.internet.endpoints import serverFromString

    if description.split(":", 1)[0].strip().lower() not in PLAIN_ENDPOINTS:
        tlsgate.enable()
    return serverFromString(_NoReactor(), description)


def endpoint_problem(description: str) -> str | None:
    """Why ``description`` is not a usable Twisted server endpoint string, or ``None``.

    The string is parsed as twistd would parse it, against an in-memory reactor: nothing
    listens. (An ``ssl:`` endpoint does read its key and certificate files.)
    """
    if description.split(":", 1)[0].strip().lower() == "ssl":
        tls_problem = ssl_files_problem(description)
        if tls_problem is not None:
            return tls_problem
    try:
        endpoint = _parse_endpoint(description)
    except TypeError as error:
        unknown = _ENDPOINT_OPTION.search(str(error))
        return f"unknown option {unknown.group(1)}" if unknown else str(error)
    except Exception as error:
        reason = getattr(error, "strerror", None) or str(error) or type(error).__name__
        # A key or certificate file of an ssl: endpoint: name it (the value shown after
        # "got" is cut at 120 characters, and a long path with it).
        filename = getattr(error, "filename", None)
        return f"{filename}: {reason}" if filename and str(filename) not in reason else reason
    port = getattr(endpoint, "_port", None)
    if isinstance(port, int) and not 0 <= port <= 65535:
        return f"port {port} is out of range"
    interface = getattr(endpoint, "_interface", "")
    if interface and not is_address(interface):
        return f"interface {interface} is not an IP address"
    return None


def ssl_files_problem(description: str) -> str | None:
    """What is wrong with the key and certificate files of ``ssl:`` endpoint
    ``description``, naming the file, or ``None``.

    Twisted reads the certificate and the key from the two files put together (``certKey``
    defaults to ``privateKey``, itself to ``server.pem``), and its own errors name neither
    the file nor the fault (``[('DECODER routines', '', 'unsupported')]``); with an encrypted
    key OpenSSL even asks for a passphrase on the terminal. So they are checked here first,
    as Twisted would load them.
    """
    from cryptography import x509
    from cryptography.exceptions import UnsupportedAlgorithm
    from cryptography.hazmat.primitives import serialization

    # Twisted's own splitting of an endpoint string (escapes included); private, so
    # tests/test_config.py's TLS file tests fail if it changes.
    from twisted.internet.endpoints import _parse

    arguments, named = _parse(description)
    positional = arguments[1:]
    key_file = named.get("privateKey", positional[1] if len(positional) > 1 else "server.pem")
    cert_file = named.get("certKey", positional[2] if len(positional) > 2 else "") or key_file
    try:
        with open(cert_file, "rb") as certificate, open(key_file, "rb") as key:
            both = certificate.read() + b"\n" + key.read()
    except OSError as error:
        return f"{error.filename}: {error.strerror}"
    one = cert_file == key_file

    def lacks(what: str) -> str:
        if one:
            return f"{key_file} holds no {what}"
        return f"neither {cert_file} nor {key_file} holds a {what}"

    try:
        private_key = serialization.load_pem_private_key(both, password=None)
    except TypeError:
        return (
            f"the private key in {key_file} is encrypted: sonosd cannot ask for its "
            "passphrase (keep it unencrypted, readable by sonosd only)"
        )
    except (ValueError, UnsupportedAlgorithm):
        return lacks("PEM private key")
    try:
        certificate_key = x509.load_pem_x509_certificates(both)[0].public_key()
    except ValueError:
        advice = " (name the certificate's file with certKey)" if one else ""
        return lacks("PEM certificate") + advice
    der, spki = serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    if certificate_key.public_bytes(der, spki) != private_key.public_key().public_bytes(der, spki):
        return f"the certificate in {cert_file} is not for the private key in {key_file}"
    return None


#: Why the simulator's admin API must listen on this machine only.
LOCAL_ADMIN = (
    "expected an endpoint on this machine only (tcp:PORT:interface=127.x.y.z, or a unix "
    "socket): the admin API changes the simulated household and takes no token"
)


def endpoint_is_local(description: str) -> bool:
    """Whether the server endpoint ``description`` (a valid one) is reachable from this
    machine only: a unix socket, or a TCP/SSL port bound to a loopback address. ``tcp:8080``
    (every interface) and a LAN address are not."""
    endpoint = _parse_endpoint(description)
    if not hasattr(endpoint, "_interface"):
        return hasattr(endpoint, "_address")  # UNIXServerEndpoint
    interface = str(getattr(endpoint, "_interface", "") or "").split("%", 1)[0]
    try:
        return ipaddress.ip_address(interface).is_loopback
    except ValueError:
        return False


def open_without_token(api: ApiConfig) -> bool:
    """Whether ``api`` listens beyond loopback with no token while not meant to be open to
    the network (``require_auth`` not false): every request would get 401. A start refuses
    it (``api.listen``), and so does a reload, which keeps the API where it listens."""
    return not api.tokens and api.require_auth is not False and not endpoint_is_local(api.listen)


def layout_problem(
    first: int, several: bool, stereo_pair: bool, home_theatre: bool
) -> tuple[str, str] | None:
    """What a simulated household lacks for the stereo pair or the home theatre asked for:
    ``(which, words)`` (``stereo_pair`` or ``home_theatre``, and ``needs ... speakers``), or
    ``None``. Both belong to the first household, of ``first`` speakers (``several``: there
    are other households). The ``simulate`` section and ``twistd sonos-sim``'s options say it
    in their own words."""
    where = f" in the first household (it has {first})" if several else ""
    if stereo_pair and first < 2:
        return "stereo_pair", f"needs at least 2 speakers{where}"
    needed = (2 if stereo_pair else 0) + 4
    if home_theatre and first < needed:
        besides = ", besides the stereo pair)" if stereo_pair else ")"
        return (
            "home_theatre",
            f"needs {needed} speakers{where} (soundbar, sub, two surrounds{besides}",
        )
    return None


@attrs.define
class _Builder:
    """Checks what the schema cannot and builds the frozen objects from a valid document."""

    source: _Source
    environ: Mapping[str, str]
    inline: list[str] = attrs.Factory(list)

    def fail(self, path: KeyPath, what: str, *values: object) -> ConfigError:
        return self.source.error(path, what, *values)

    def build(self, document: object) -> Config:
        assert isinstance(document, dict)
        doc: dict[str, Any] = document
        sections: dict[str, Any] = {}
        for name, reader in (
            ("listener", self._listener),
            ("api", self._api),
            ("subscription", self._subscription),
            ("soco", self._plain(SocoConfig)),
            ("announce", self._announce),
            ("sinks", self._sinks),
            ("log", self._plain(LogConfig)),
            ("ssdp", self._plain(SsdpConfig)),
            ("simulate", self._simulate),
        ):
            value = doc.get(name)
            if value is not None:
                sections[name] = reader(value, (name,))
        if doc.get("devices") is not None:
            sections["devices"] = self._devices(doc["devices"], ("devices",))
        for flag in ("discovery", "follow_household", "state_dir"):
            if flag in doc:
                sections[flag] = doc[flag]
        if "state_dir" not in doc:
            # systemd's StateDirectory= sets it (several directories: colon-separated).
            state_directory = self.environ.get("STATE_DIRECTORY", "").split(":")[0]
            if state_directory:
                sections["state_dir"] = state_directory
        if "services" in doc:
            sections["services"] = tuple(doc["services"])
        return Config(path=self.source.file, inline_secrets=tuple(self.inline), **sections)

    def _plain(self, kind: Callable[..., object]) -> Callable[[dict[str, Any], KeyPath], object]:
        def read(value: dict[str, Any], path: KeyPath) -> object:
            return kind(**value)

        return read

    def _host(self, value: str, path: KeyPath) -> str:
        if not is_host(value):
            raise self.fail(path, "expected a host name or address", value)
        return value

    def _endpoint(self, value: str, path: KeyPath) -> str:
        problem = endpoint_problem(value)
        if problem is not None:
            raise self.fail(
                path,
                "expected a Twisted server endpoint string such as "
                f"tcp:8080:interface=127.0.0.1 ({problem})",
                value,
            )
        return value

    def _file(self, value: str, path: KeyPath) -> str:
        if not os.path.isfile(value):
            raise self.fail(path, "no such file", value)
        return value

    def _secret(
        self, value: Mapping[str, Any], path: KeyPath, key: str, required: bool
    ) -> str | None:
        """The secret given inline (``key``), by ``key_env`` or by ``key_file``."""
        if key in value:
            self.inline.append(format_path((*path, key)))
            return str(value[key])
        env, file = f"{key}_env", f"{key}_file"
        if env in value:
            name = value[env]
            secret = self.environ.get(name)
            if secret is None:
                raise self.fail((*path, env), "environment variable is not set", name)
            if not secret:
                raise self.fail((*path, env), "environment variable is empty", name)
            return secret
        if file in value:
            try:
                with open(value[file], encoding="utf-8") as stream:
                    secret = stream.read().rstrip("\r\n")
            except (OSError, UnicodeDecodeError) as error:
                reason = getattr(error, "strerror", None) or str(error)
                if isinstance(error, UnicodeDecodeError):
                    bad = error.object[error.start]
                    reason = f"not UTF-8 text: byte {error.start} is {bad:#04x}"
                raise self.fail(
                    (*path, file), f"cannot read the secret file ({reason})", value[file]
                ) from None
            if not secret.strip():
                raise self.fail((*path, file), "the secret file is empty", value[file])
            return secret
        assert not required, "the schema requires one of the three keys"
        return None

    def _announce(self, value: dict[str, Any], path: KeyPath) -> AnnounceConfig:
        fields = dict(value)
        if "tts_command" in fields:
            fields["tts_command"] = tuple(fields["tts_command"])
        return AnnounceConfig(**fields)

    def _listener(self, value: dict[str, Any], path: KeyPath) -> ListenerConfig:
        if "interface" in value and not is_address(value["interface"]):
            raise self.fail((*path, "interface"), "expected an IP address", value["interface"])
        if value.get("advertise") is not None:
            self._host(value["advertise"], (*path, "advertise"))
        return ListenerConfig(**value)

    def _api(self, value: dict[str, Any], path: KeyPath) -> ApiConfig:
        fields = dict(value)
        if "listen" in fields:
            self._endpoint(fields["listen"], (*path, "listen"))
        tokens: list[Token] = []
        names: dict[str, int] = {}
        for index, item in enumerate(fields.get("tokens", ())):
            where = (*path, "tokens", index)
            if item["name"] in names:
                raise self.fail(
                    (*where, "name"),
                    f"duplicate token name (also tokens[{names[item['name']]}])",
                    item["name"],
                )
            names[item["name"]] = index
            secret = self._secret(item, where, "token", required=True)
            assert secret is not None
            if len(secret) < _MIN_TOKEN and "token" not in item:
                # The schema holds an inline token to this length; one read from the
                # environment or a file must be as long.
                source = "token_env" if "token_env" in item else "token_file"
                raise self.fail(
                    (*where, source),
                    f"expected a token of at least {_MIN_TOKEN} characters",
                    item[source],
                )
            scopes = frozenset(item.get("scopes", ("read",)))
            tokens.append(Token(name=item["name"], secret=secret, scopes=scopes))
        fields["tokens"] = tuple(tokens)
        if "cors_origins" in fields:
            fields["cors_origins"] = tuple(fields["cors_origins"])
        config = ApiConfig(**fields)
        if not config.tokens and config.require_auth is not False:
            self._check_open_api(config, path)
        return config

    def _check_open_api(self, config: ApiConfig, path: KeyPath) -> None:
        """Refuse an API that would need a token when none is configured: beyond loopback
        (unless ``require_auth: false`` says it is meant to be open), or with ``require_auth:
        true``. Otherwise every request would get 401 from the first minute on."""
        if config.require_auth:
            raise self.fail(
                (*path, "require_auth"),
                "every request needs a token, but api.tokens is empty: add a token",
                True,
            )
        if open_without_token(config):
            raise self.fail(
                (*path, "listen"),
                "the API listens beyond loopback and needs a token, but api.tokens is empty: "
                "add a token, or write require_auth: false to leave it open to the network",
                config.listen,
            )

    def _devices(self, value: Sequence[dict[str, Any]], path: KeyPath) -> tuple[Device, ...]:
        devices: list[Device] = []
        hosts: dict[str, int] = {}
        for index, item in enumerate(value):
            host = self._host(item["host"], (*path, index, "host"))
            if host.lower() in hosts:
                raise self.fail(
                    (*path, index, "host"),
                    f"duplicate device (also devices[{hosts[host.lower()]}])",
                    host,
                )
            hosts[host.lower()] = index
            devices.append(Device(host=host, name=item.get("name")))
        return tuple(devices)

    def _subscription(self, value: dict[str, Any], path: KeyPath) -> SubscriptionConfig:
        config = SubscriptionConfig(**value)
        if config.backoff_initial > config.backoff_max:
            raise self.fail(
                (*path, "backoff_initial"),
                f"expected at most backoff_max ({config.backoff_max:g})",
                config.backoff_initial,
            )
        return config

    def _sinks(self, value: dict[str, Any], path: KeyPath) -> SinksConfig:
        fields: dict[str, Any] = {}
        if "callbacks" in value:
            fields["callbacks"] = tuple(value["callbacks"])
        if "webhooks" in value:
            fields["webhooks"] = tuple(
                self._webhook(item, (*path, "webhooks", index))
                for index, item in enumerate(value["webhooks"])
            )
        if value.get("mqtt") is not None:
            fields["mqtt"] = self._mqtt(value["mqtt"], (*path, "mqtt"))
        if value.get("stream") is not None:
            fields["stream"] = self._endpoint(value["stream"], (*path, "stream"))
        return SinksConfig(**fields)

    def _webhook(self, value: dict[str, Any], path: KeyPath) -> Webhook:
        from urllib.parse import urlsplit

        url = value["url"]
        try:
            host = urlsplit(url).hostname or ""
            urlsplit(url).port  # noqa: B018 - raises ValueError on a bad port
        except ValueError:
            host = ""
        if not host or not is_host(host):
            raise self.fail((*path, "url"), "expected an http:// or https:// URL with a host", url)
        fields = {
            key: item
            for key, item in value.items()
            if key not in {"secret", "secret_env", "secret_file", "filter"}
        }
        fields["secret"] = self._secret(value, path, "secret", required=False)
        if fields.get("ca_file") is not None:
            self._file(fields["ca_file"], (*path, "ca_file"))
        fields["filter"] = MappingProxyType(
            {key: tuple(items) for key, items in value.get("filter", {}).items()}
        )
        return Webhook(**fields)

    def _mqtt(self, value: dict[str, Any], path: KeyPath) -> MqttConfig:
        fields = {
            key: item
            for key, item in value.items()
            if key not in {"password", "password_env", "password_file"}
        }
        if "host" in fields:
            self._host(fields["host"], (*path, "host"))
        if fields.get("ca_file") is not None:
            self._file(fields["ca_file"], (*path, "ca_file"))
        fields["password"] = self._secret(value, path, "password", required=False)
        return MqttConfig(**fields)

    def _simulate(self, value: dict[str, Any], path: KeyPath) -> SimulateConfig:
        fields = dict(value)
        for key in ("rooms", "models", "https_only", "upnp_off_forbidden"):
            if key in fields:
                fields[key] = tuple(fields[key])
        if fields.get("admin") is not None:
            self._endpoint(fields["admin"], (*path, "admin"))
            if not endpoint_is_local(fields["admin"]):
                raise self.fail((*path, "admin"), LOCAL_ADMIN, fields["admin"])
        config = SimulateConfig(**fields)
        if config.households > config.speakers:
            raise self.fail(
                (*path, "households"),
                f"{config.speakers} speakers cannot make {config.households} households",
                config.households,
            )
        # The pair and the home theatre belong to the first household, the largest one (the
        # size sonosd.sim.neighbourhood.split gives it; the simulator imports this module).
        first = -(-config.speakers // max(config.households, 1))
        problem = layout_problem(
            first, config.households > 1, config.stereo_pair, config.home_theatre
        )
        if problem is not None:
            which, words = problem
            what = "a stereo pair" if which == "stereo_pair" else "a home theatre"
            raise self.fail((*path, which), f"{what} {words}", True)
        for index, number in enumerate(config.https_only):
            if number >= config.speakers:
                raise self.fail(
                    (*path, "https_only", index),
                    f"expected a speaker index below {config.speakers}",
                    number,
                )
        where = (*path, "base_address")
        try:
            base = ipaddress.IPv4Address(config.base_address)
        except ValueError:
            raise self.fail(
                where, "expected an IPv4 loopback address (127.x.y.z)", config.base_address
            ) from None
        if not base.is_loopback:
            raise self.fail(
                where, "expected an IPv4 loopback address (127.x.y.z)", config.base_address
            )
        first = int(base) & 0xFF
        if first == 0 or first + config.speakers - 1 > 254:
            raise self.fail(
                where,
                f"{config.speakers} speakers from this address run past the end of its /24 "
                "(the first usable address is x.y.z.1, the last x.y.z.254)",
                config.base_address,
            )
        return config


#: Fields holding secrets: shown as ``<hidden>`` wherever the configuration is shown.
SECRET_FIELDS = frozenset({"secret", "password"})


def redacted(config: Config) -> dict[str, Any]:
    """``config`` as plain JSON values, every secret replaced by ``<hidden>`` (the
    diagnostics show it; a token's name and scopes are shown, never the token)."""

    def plain(instance: Any, attribute: Any, value: Any) -> Any:
        if attribute is not None and attribute.name in SECRET_FIELDS:
            return None if value is None else HIDDEN
        if isinstance(value, frozenset):
            return sorted(value)
        if isinstance(value, Mapping) and not isinstance(value, dict):
            return dict(value)
        return value

    def kept(attribute: Any, value: Any) -> bool:
        # Where the file wrote secrets is for config_warnings, not a setting.
        return attribute.name != "inline_secrets"

    result: dict[str, Any] = attrs.asdict(config, value_serializer=plain, filter=kept)
    return result


def config_warnings(config: Config) -> list[str]:
    """What is valid but probably not meant, one line each (``--check-config`` prints them,
    the daemon logs them at start)."""
    warnings = []
    if not config.devices and not config.discovery and config.simulate is None:
        warnings.append(
            f"{config.path}: nothing will be followed: devices is empty, discovery is off and "
            "simulate is not set; list a speaker under devices (one per household is enough)"
        )
    state_dir = config.state_dir
    if state_dir is not None and not (
        os.path.isdir(state_dir) and os.access(state_dir, os.W_OK | os.X_OK)
    ):
        warnings.append(
            f"{config.path}: state_dir: {state_dir} is not a directory the daemon can write: "
            "pending alarm skips will not survive a restart"
        )
    exposed = _exposed_secrets(config)
    if exposed is not None:
        warnings.append(exposed)
    return warnings


def _exposed_secrets(config: Config) -> str | None:
    """The warning for a file that holds secrets inline and that group or others may read,
    or ``None``."""
    if not config.inline_secrets:
        return None
    try:
        mode = os.stat(config.path).st_mode
    except OSError:
        return None
    if not mode & 0o044:
        return None
    return (
        f"{config.path}: {', '.join(config.inline_secrets)}: a secret written in a file that "
        f"group or others can read (mode {mode & 0o777:04o}): make the file private "
        f"(chmod 600 {config.path}) or give the secret with *_env or *_file"
    )
