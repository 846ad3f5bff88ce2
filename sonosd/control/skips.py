# -*- test-case-name: tests.control.test_skips -*-
"""Pending alarm skips, kept in a small JSON file so that a restart does not lose them.

Sonos alarms have no "skip the next one" (no UPnP action, no attribute): ``alarms skip``
switches the alarm off and the daemon switches it on again after the occurrence it skips
(``sonosd.control.alarms``). That promise must outlive the daemon: a Raspberry Pi that
reboots in the night must not leave the alarm off for good. Each pending skip is written to
``<state_dir>/alarm-skips.json`` when it is made and removed when it is done; a daemon that
starts reads the file and finishes what is due (at once if the moment passed while it was
down).

The file is the daemon's own: written whole to a temporary file and renamed over the old one
(never half written), read within ``MAX_BYTES`` and ``MAX_SKIPS``. A file that cannot be read
or parsed is logged once and ignored (the skips then behave as if made without a state
directory); one that cannot be written is logged and the skips stay in memory.
"""

from __future__ import annotations

import datetime as dt
import json
import os
from collections.abc import Iterable
from typing import Any

import attrs
from twisted.logger import Logger

log = Logger()

#: The file's name inside ``state_dir``.
FILE_NAME = "alarm-skips.json"
#: The largest file read (bytes): a skip is ~200 bytes.
MAX_BYTES = 262_144
#: The most skips kept (a household has at most a few dozen alarms).
MAX_SKIPS = 1_000


@attrs.frozen
class Skip:
    """One skipped occurrence of an alarm.

    @ivar household: The alarm's household id (alarm ids are per household).
    @ivar alarm: The alarm's id.
    @ivar speaker: The uid of the speaker the skip was made through (asked first to enable it).
    @ivar skipped: The occurrence skipped (the daemon's local time).
    @ivar resumes: When the alarm is switched on again.
    """

    household: str | None
    alarm: int
    speaker: str
    skipped: dt.datetime
    resumes: dt.datetime

    @property
    def key(self) -> tuple[str | None, int]:
        """What identifies the alarm: its household and id."""
        return (self.household, self.alarm)

    def to_json(self) -> dict[str, Any]:
        """The skip as the file holds it."""
        return {
            "household": self.household,
            "alarm": self.alarm,
            "speaker": self.speaker,
            "skipped": self.skipped.isoformat(timespec="seconds"),
            "resumes": self.resumes.isoformat(timespec="seconds"),
        }

    @classmethod
    def from_json(cls, value: Any) -> Skip:
        """A skip from the file; ``ValueError`` naming what is wrong."""
        if not isinstance(value, dict):
            raise ValueError(f"expected an object, got {type(value).__name__}")
        household, alarm, speaker = value.get("household"), value.get("alarm"), value.get("speaker")
        if household is not None and not isinstance(household, str):
            raise ValueError("household: expected a string or null")
        if not isinstance(alarm, int) or isinstance(alarm, bool) or alarm < 0:
            raise ValueError("alarm: expected an id")
        if not isinstance(speaker, str):
            raise ValueError("speaker: expected a uid")
        times = []
        for name in ("skipped", "resumes"):
            text = value.get(name)
            if not isinstance(text, str):
                raise ValueError(f"{name}: expected a time")
            times.append(dt.datetime.fromisoformat(text))
        return cls(household, alarm, speaker, times[0], times[1])


def parse_skips(data: bytes) -> list[Skip]:
    """The skips of a file's content; ``ValueError`` naming what is wrong."""
    if len(data) > MAX_BYTES:
        raise ValueError(f"over {MAX_BYTES} bytes")
    try:
        document = json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ValueError(f"not JSON ({error})") from None
    entries = document.get("skips") if isinstance(document, dict) else None
    if not isinstance(entries, list):
        raise ValueError('expected {"skips": [...]}')
    if len(entries) > MAX_SKIPS:
        raise ValueError(f"over {MAX_SKIPS} skips")
    skips = []
    for index, entry in enumerate(entries):
        try:
            skips.append(Skip.from_json(entry))
        except ValueError as error:
            raise ValueError(f"skips[{index}]: {error}") from None
    return skips


def format_skips(skips: Iterable[Skip]) -> bytes:
    """The file's content for ``skips``."""
    document = {"skips": [skip.to_json() for skip in skips]}
    return json.dumps(document, indent=1).encode() + b"\n"


class SkipFile:
    """The pending skips of ``<state_dir>/alarm-skips.json`` (``state_dir`` None: none kept).

    @param state_dir: The directory (configuration key ``state_dir``).
    """

    def __init__(self, state_dir: str | None) -> None:
        self.path = None if state_dir is None else os.path.join(state_dir, FILE_NAME)
        self._warned = False

    def load(self) -> list[Skip]:
        """The skips the file holds; none when there is no file (or it is unusable: logged)."""
        if self.path is None:
            return []
        try:
            with open(self.path, "rb") as stream:
                data = stream.read(MAX_BYTES + 1)
        except FileNotFoundError:
            return []
        except OSError as error:
            log.warn(
                "cannot read the pending alarm skips ({path}): {reason}",
                path=self.path,
                reason=error.strerror or str(error),
            )
            return []
        try:
            return parse_skips(data)
        except ValueError as error:
            log.warn(
                "ignoring the pending alarm skips of {path}: {reason}",
                path=self.path,
                reason=str(error),
            )
            return []

    def save(self, skips: Iterable[Skip]) -> bool:
        """Write ``skips`` (the file is removed when there are none); False if it failed."""
        if self.path is None:
            return False
        pending = list(skips)
        try:
            if not pending:
                if os.path.exists(self.path):
                    os.remove(self.path)
                return True
            temporary = f"{self.path}.tmp"
            with open(temporary, "wb") as stream:
                stream.write(format_skips(pending))
            os.replace(temporary, self.path)
        except OSError as error:
            if not self._warned:
                self._warned = True
                log.warn(
                    "cannot keep the pending alarm skips in {path} ({reason}): a restart "
                    "before an alarm is back on leaves it off",
                    path=self.path,
                    reason=error.strerror or str(error),
                )
            return False
        self._warned = False
        return True
