"""docs/configuration.md documents every key of every section's table with the default the
code has: each key of the code's configuration classes has its row, each row names a key of
the code, and each default written there (as YAML) is the code's default."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import attrs
import pytest
import yaml

from sonosd import config
from sonosd.reload import RESTART_ONLY
from tests.paths import ROOT

TEXT = (ROOT / "docs" / "configuration.md").read_text(encoding="utf-8")
KEYS = TEXT[TEXT.index("## Keys") : TEXT.index("## Secrets")]

#: The class behind each table, by the section (or the line) that introduces it.
CLASSES: dict[str, type] = {
    "listener": config.ListenerConfig,
    "api": config.ApiConfig,
    "ssdp": config.SsdpConfig,
    "subscription": config.SubscriptionConfig,
    "soco": config.SocoConfig,
    "announce": config.AnnounceConfig,
    "sinks": config.SinksConfig,
    "webhook": config.Webhook,
    "mqtt": config.MqttConfig,
    "log": config.LogConfig,
    "simulate": config.SimulateConfig,
}


def _table_rows() -> Iterator[tuple[str, str, list[str]]]:
    """``(section, key, cells)`` of each row of the page's key | default | meaning tables (a
    row naming several spellings, ``secret`` / ``secret_env`` / ..., under the first)."""
    section = ""
    for line in KEYS.splitlines():
        heading = re.match(r"### `(\w+)`", line)
        if heading:
            section = heading.group(1)
        elif line.startswith("Each webhook"):
            section = "webhook"
        elif line.strip() == "`mqtt`:":
            section = "mqtt"
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if line.startswith("| `") and len(cells) == 3:
            yield section, re.findall(r"`(\w+)`", cells[0])[0], cells


def documented_rows() -> dict[str, dict[str, str]]:
    """``{section: {key: default as written}}`` from the page's tables."""
    tables: dict[str, dict[str, str]] = {}
    for section, key, cells in _table_rows():
        tables.setdefault(section, {})[key] = cells[1]
    return tables


ROWS = documented_rows()


def _default(field: Any) -> Any:
    default = field.default
    if isinstance(default, attrs.Factory):  # type: ignore[arg-type]
        default = default.factory()
    return list(default) if isinstance(default, tuple | frozenset) else default


def test_every_table_is_known() -> None:
    """Each table of keys belongs to a section this test knows the class of."""
    assert set(ROWS) == set(CLASSES)


@pytest.mark.parametrize("section", sorted(CLASSES))
def test_every_key_has_its_row(section: str) -> None:
    """The table lists exactly the keys of the section's class."""
    assert set(ROWS[section]) == {field.name for field in attrs.fields(CLASSES[section])}


@pytest.mark.parametrize(
    ("section", "key"), [(section, key) for section, rows in ROWS.items() for key in rows]
)
def test_the_default_written_is_the_codes(section: str, key: str) -> None:
    """A default written as YAML in backticks is the class's default; ``(required)`` and
    ``none`` (a secret) mean there is none."""
    field = attrs.fields_dict(CLASSES[section])[key]
    written = ROWS[section][key]
    if written in ("(required)", "none"):
        assert field.default in (attrs.NOTHING, None), (section, key)
        return
    quoted = re.fullmatch(r"`(.*)`", written)
    assert quoted, (section, key, written)
    value = yaml.safe_load(quoted.group(1))
    default = _default(field)
    assert value == default, (section, key, value, default)


RELOAD = TEXT[TEXT.index("- **Reload**") : TEXT.index("- **Unknown keys")]
APPLIED_TEXT, RESTART_TEXT = RELOAD.split("the daemon says so in one line:")


def _reload_keys(text: str) -> set[str]:
    """The configuration keys named in backticks in ``text`` (``api.tokens``, ``soco``)."""
    known = {field.name for field in attrs.fields(config.Config)}
    return {key for key in re.findall(r"`([\w.]+)`", text) if key.split(".")[0] in known}


def _leaf_keys() -> set[str]:
    """Every key of the file: ``section.key`` for the sections, the name of the others."""
    keys = set()
    for field in attrs.fields(config.Config):
        if field.name in ("path", "inline_secrets"):
            continue
        kind = CLASSES.get(field.name)
        if kind is None:
            keys.add(field.name)
        else:
            keys.update(f"{field.name}.{sub.name}" for sub in attrs.fields(kind))
    return keys


def test_the_reload_lists_are_the_codes() -> None:
    """The settings the page says need a restart are those ``plan_reload`` keeps until one,
    and every key of the file is in exactly one of its two lists (itself or its section):
    applied at once, or kept until a restart."""
    applied, restart = _reload_keys(APPLIED_TEXT), _reload_keys(RESTART_TEXT)
    assert restart == set(RESTART_ONLY)
    assert not applied & restart
    for key in _leaf_keys():
        named = {key, key.split(".")[0]}
        assert len(named & applied) + len(named & restart) == 1, key


def _schema_properties(section: str) -> dict[str, Any]:
    """The schema's properties of the keys in the table of ``section``."""
    schema = config.SCHEMA
    path = {"webhook": ("sinks", "webhooks"), "mqtt": ("sinks", "mqtt")}.get(section, (section,))
    node: Any = schema
    for name in path:
        node = _resolved(node["properties"][name])
        if "items" in node:
            node = _resolved(node["items"])
    return dict(node["properties"])


def _resolved(node: Any) -> Any:
    if "$ref" in node:
        node = {**config.SCHEMA["$defs"][node["$ref"].rsplit("/", 1)[1]], **node}
        node.pop("$ref")
    for branch in node.get("anyOf", ()):
        if branch.get("type") != "null":
            return _resolved(branch)
    return node


def documented_ranges() -> list[tuple[str, str, str, str]]:
    """``(section, key, low, high)`` for each ``low .. high`` a table's meaning gives."""
    return [
        (section, key, low, high)
        for section, key, cells in _table_rows()
        for low, high in re.findall(r"\b([\d,.]+) \.\. ([\d,.]+)\b", cells[2])
    ]


@pytest.mark.parametrize(("section", "key", "low", "high"), documented_ranges())
def test_a_range_written_is_the_schemas(section: str, key: str, low: str, high: str) -> None:
    """Each ``low .. high`` in a table is the key's minimum and maximum in the schema (by
    which the loader refuses a value out of it)."""
    schema = _resolved(_schema_properties(section)[key])
    if schema.get("type") == "array":  # a list of bounded items (simulate.https_only)
        schema = schema["items"]
    bounds = (schema.get("minimum", schema.get("minLength")), schema.get("maximum"))
    bounds = (bounds[0], bounds[1] if bounds[1] is not None else schema.get("maxLength"))
    assert bounds == (float(low.replace(",", "")), float(high.replace(",", ""))), (section, key)


def test_documented_ranges_are_found() -> None:
    """The ranges above are read from the page (a change of its wording would lose them)."""
    assert len(documented_ranges()) >= 21


def test_every_time_is_above_0_and_at_most_a_day() -> None:
    """ "Every time must be above 0 (``position_interval`` and ``check_interval`` may be 0)
    and at most 86400": each time of the schema, ``subscription``'s and the others'."""
    rule = TEXT[TEXT.index("Every time must be") :].split("\n\n")[0]
    zero_ok = set(re.findall(r"`(\w+)`", rule))
    assert zero_ok == {"position_interval", "check_interval"}
    times = 0
    for section, kind in CLASSES.items():
        properties = _schema_properties(section)
        for field in attrs.fields(kind):
            if not isinstance(field.default, float) or field.name not in properties:
                continue
            if section == "simulate" or field.name == "renew_fraction":
                continue  # rates, a fraction: bounded in their rows
            schema = _resolved(properties[field.name])
            times += 1
            assert schema["maximum"] == 86400, (section, field.name)
            if field.name in zero_ok:
                assert (schema["minimum"], "exclusiveMinimum" in schema) == (0, False)
            else:
                assert schema["exclusiveMinimum"] == 0, (section, field.name)
    assert times >= 20


def _blocks(kind: str) -> list[str]:
    return re.findall(rf"```{kind}\n(.*?)```", TEXT, re.S)


#: A file that makes each error line the page shows (the page's line numbers are those of a
#: longer file; the rest of the line is the same).
WRONG_FILES = {
    "devices[0].host": "devices:\n  - host: 42\n",
    "listener.prot": "listener:\n  prot: 1400\n",
    "api.tokens[0].token_env": "api:\n  tokens:\n    - {name: ha, token_env: SONOSD_HA_TOKEN}\n",
    "listener.port": "listener:\n  port: 1400\n  port: 1401\n",
}


def test_the_error_lines_shown_are_the_loaders() -> None:
    """Each error line at the top of the page is what the loader says of such a file."""
    shown = _blocks("text")[0].splitlines()
    assert len(shown) == len(WRONG_FILES)
    for line in shown:
        _, _, rest = line.split(":", 2)
        key = rest.strip().split(":", 1)[0]
        with pytest.raises(config.ConfigError) as caught:
            config.parse_config(WRONG_FILES[key], "config.yaml", {})
        assert str(caught.value).split(":", 2)[2] == rest, key


def test_the_secrets_example_loads(tmp_path: Path) -> None:
    """The Secrets section's example is a valid file: its inline token, the one from the
    environment and the ones from files (here written under tmp_path) are read."""
    [example] = [block for block in _blocks("yaml") if "token_env" in block]
    files = re.findall(r"_file: (\S+)", example)
    for index, path in enumerate(files):
        local = tmp_path / f"secret{index}"
        local.write_text(f"secret-from-file-{index}\n")
        example = example.replace(path, str(local))
    environ = {"SONOSD_HA_TOKEN": "t" * 24, "SONOSD_MQTT_PASSWORD": "mqtt-secret"}
    loaded = config.parse_config(example, "config.yaml", environ)
    tokens = {token.name: token.secret for token in loaded.api.tokens}
    assert tokens == {
        "script": "3f1c0a9e6b7d2c4e8a5f1b0d",
        "home-assistant": "t" * 24,
        "homeassistant": "secret-from-file-0",
    }
    assert loaded.sinks.webhooks[0].secret == "secret-from-file-1"
    assert loaded.sinks.mqtt is not None and loaded.sinks.mqtt.password == "mqtt-secret"
    assert loaded.inline_secrets == ("api.tokens[0].token",)


def _classes_of(kind: type) -> set[type]:
    """The attrs classes a ``kind`` holds, however deep (in tuples and optional fields)."""
    found: set[type] = set()
    for field in attrs.fields(kind):
        for name in re.findall(r"\w+", str(field.type)):
            inner = getattr(config, name, None)
            if isinstance(inner, type) and attrs.has(inner) and inner not in found:
                found |= {inner} | _classes_of(inner)
    return found


def test_for_developers_names_every_class() -> None:
    """ "For developers" names every attrs class a ``Config`` is made of."""
    section = TEXT[TEXT.index("## For developers") :]
    listed = set(re.search(r"\(attrs classes (.*?)\)", section, re.S).group(1).split())  # type: ignore[union-attr]
    names = {name.strip("`,") for name in listed}
    assert names == {kind.__name__ for kind in _classes_of(config.Config)}


def _section(heading: str) -> str:
    start = KEYS.index(heading)
    return KEYS[start : (KEYS + "\n### ").index("\n### ", start + 1)]


def _row(section: str, key: str) -> str:
    [line] = [line for line in _section(section).splitlines() if line.startswith(f"| `{key}`")]
    return line


def test_the_names_written_are_the_schemas() -> None:
    """The service names, log levels and formats, simulated models and UPnP-off choices
    the page lists are the schema's."""
    services = _section("### `services`")
    written = re.findall(r"`(\w+)`", services.split("The valid names")[1])
    default = re.findall(r"(\w+)", services.split("Default:")[1].split("]")[0])
    assert default == list(config.DEFAULT_SERVICES)
    assert [*default, *written[: len(config.SERVICES) - len(default)]] == list(config.SERVICES)
    simulate = _schema_properties("simulate")
    cases = [
        (_row("### `log`", "level"), _schema_properties("log")["level"]["enum"]),
        (_row("### `log`", "format").split("|")[3], _schema_properties("log")["format"]["enum"]),
        (_row("### `simulate`", "models"), simulate["models"]["items"]["enum"]),
        (_row("### `simulate`", "upnp_off_ssdp"), simulate["upnp_off_ssdp"]["enum"]),
        (
            _row("### `simulate`", "upnp_off_forbidden"),
            simulate["upnp_off_forbidden"]["items"]["enum"],
        ),
    ]
    for row, names in cases:
        for name in names:
            assert re.search(rf"\b{re.escape(name)}\b", row), (name, row)


@pytest.mark.parametrize(
    ("section", "written", "key"),
    [
        ("### `devices`", r"Default `(\[\])`", "devices"),
        ("### `follow_household`", r"`(true)` \(default\)", "follow_household"),
        ("### `discovery`", r"Default `(false)`", "discovery"),
        ("### `simulate`", r"`(null)` \(default\)", "simulate"),
    ],
)
def test_a_default_written_in_prose_is_the_codes(section: str, written: str, key: str) -> None:
    """The defaults of the keys without a table, written in their sections' sentences, are
    what a file that leaves them out gets."""
    [value] = re.findall(written, _section(section))
    default = getattr(config.parse_config("{}\n", environ={}), key)
    assert yaml.safe_load(value) == (list(default) if isinstance(default, tuple) else default)
