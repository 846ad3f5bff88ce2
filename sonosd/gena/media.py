# -*- test-case-name: tests.gena.test_media -*-
"""Clips the daemon serves to the speakers: short-lived, unguessable URLs on the listener.

A speaker plays an announcement by fetching its audio itself. The daemon therefore serves
the clips it makes (spoken text) on the NOTIFY listener's port, the one address every
speaker already reaches (``NotifyListener.callback_url``). ``MediaStore.add`` keeps a clip
under a random path (``/media/<22 random characters>.wav``) until ``remove`` or until its
time to live runs out; ``lookup`` is what the listener answers a ``GET``/``HEAD`` with. The
store is bounded in clips and bytes: the oldest clip goes first.
"""

from __future__ import annotations

import secrets
from collections import OrderedDict

import attrs
from twisted.internet.interfaces import IReactorTime

PREFIX = "/media/"
#: The most clips kept at once.
MAX_CLIPS = 64
#: The most bytes kept at once (all clips).
MAX_BYTES = 64 << 20


@attrs.frozen
class Clip:
    """One served clip."""

    body: bytes
    mime: str
    expires: float


class MediaStore:
    """Clips served at short-lived URLs; see the module docstring.

    @param clock: Tells when clips expire.
    """

    def __init__(
        self, clock: IReactorTime, max_clips: int = MAX_CLIPS, max_bytes: int = MAX_BYTES
    ) -> None:
        self._clock = clock
        self._clips: OrderedDict[str, Clip] = OrderedDict()
        self.max_clips = max_clips
        self.max_bytes = max_bytes
        #: How often each path was fetched (for tests and the log).
        self.fetches: dict[str, int] = {}

    def add(self, body: bytes, mime: str, ttl: float, suffix: str = ".wav") -> str:
        """Serve ``body`` for ``ttl`` seconds; its path (``/media/<token><suffix>``).

        @raise ValueError: The clip alone is larger than the store.
        """
        if len(body) > self.max_bytes:
            raise ValueError(f"a clip of {len(body)} bytes is over {self.max_bytes}")
        self._purge()
        path = f"{PREFIX}{secrets.token_urlsafe(16)}{suffix}"
        self._clips[path] = Clip(body, mime, self._clock.seconds() + ttl)
        while len(self._clips) > self.max_clips or self.size > self.max_bytes:
            oldest, _ = self._clips.popitem(last=False)
            self.fetches.pop(oldest, None)
        return path

    def remove(self, path: str) -> None:
        """Stop serving ``path`` (unknown paths are ignored)."""
        self._clips.pop(path, None)
        self.fetches.pop(path, None)

    def lookup(self, target: str) -> Clip | None:
        """The clip a request for ``target`` (query ignored) gets, or ``None``."""
        path = target.split("?", 1)[0]
        clip = self._clips.get(path)
        if clip is None:
            return None
        if clip.expires <= self._clock.seconds():
            self.remove(path)
            return None
        self.fetches[path] = self.fetches.get(path, 0) + 1
        return clip

    @property
    def size(self) -> int:
        """Bytes kept."""
        return sum(len(clip.body) for clip in self._clips.values())

    def __len__(self) -> int:
        return len(self._clips)

    def _purge(self) -> None:
        now = self._clock.seconds()
        for path in [p for p, clip in self._clips.items() if clip.expires <= now]:
            self.remove(path)
