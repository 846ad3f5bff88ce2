"""README.md's Configuration section shows what the loader does: its error line is the one a
file with that mistake gets, and its minimal configuration is a valid file that follows one
speaker's household with the API on loopback. (The commands it shows run on real processes in
tests/test_daemon_process.py and tests/test_tap.py.)"""

from __future__ import annotations

import re

import pytest

from sonosd.config import ConfigError, endpoint_is_local, parse_config
from tests.paths import ROOT

TEXT = (ROOT / "README.md").read_text(encoding="utf-8")
SECTION = TEXT[TEXT.index("## Configuration") : TEXT.index("## Deployment")]


def test_the_error_line_shown_is_the_loaders() -> None:
    """ "A mistake stops it with one line that names the file, the line, the key and the bad
    value": the README's line is what a file with that host on its third line gets."""
    [shown] = re.findall(r"```text\n\$ twistd -n sonosd -c config.yaml\n(.*)\n```", SECTION)
    wrong = "api:\n  listen: tcp:8080:interface=127.0.0.1\ndevices: [{host: 42}]\n"
    with pytest.raises(ConfigError) as caught:
        parse_config(wrong, "config.yaml", {})
    assert str(caught.value) == shown


def test_the_minimal_configuration_follows_one_household_on_loopback() -> None:
    """The minimal file names one speaker and follows its household (follow_household is on
    unless written false), with the API on loopback (no token needed)."""
    [minimal] = re.findall(r"```yaml\n(.*?)```", SECTION, re.S)
    config = parse_config(minimal, "config.yaml", {})
    assert [device.host for device in config.devices] == ["192.168.1.20"]
    assert config.follow_household is True
    assert endpoint_is_local(config.api.listen)
    assert config.api.tokens == ()
