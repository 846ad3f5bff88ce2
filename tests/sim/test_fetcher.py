"""Tests for sim.fetcher: what a speaker finds when it fetches a URI over loopback."""

from __future__ import annotations

from twisted.internet import reactor
from twisted.trial.unittest import TestCase

from sonosd.sim.addresses import loopback_host
from sonosd.sim.fetcher import Fetcher, audio_duration
from tests.audio_helpers import mp3_bytes, serve_audio, wav_bytes


def test_durations_and_hosts() -> None:
    """WAV and MP3 durations are measured; other bytes have none; only loopback is reachable."""
    assert audio_duration(wav_bytes(2.0)) == 2.0
    mp3 = audio_duration(mp3_bytes(1.5))
    assert mp3 is not None and abs(mp3 - 1.5) < 0.05
    assert audio_duration(b"not audio at all") is None
    assert loopback_host("127.3.4.5") and loopback_host("localhost")
    assert not loopback_host("192.168.1.2") and not loopback_host("example.com")


class FetcherTests(TestCase):
    def setUp(self) -> None:
        self.fetcher = Fetcher(reactor, timeout=5.0, max_bytes=100_000)
        self.addCleanup(self.fetcher.close)
        self.server = serve_audio(
            self,
            {
                "/clip.wav": (wav_bytes(1.0), "audio/wav"),
                "/page": (b"<html></html>", "text/html; charset=utf-8"),
                "/long.wav": (wav_bytes(60.0), "audio/wav"),
                "/empty.mp3": (b"", "audio/mpeg"),
            },
        )

    async def test_audio_is_measured(self) -> None:
        """A reachable WAV is playable for its duration."""
        probe = await self.fetcher.probe(self.server.url("/clip.wav"))
        assert probe.ok and probe.duration == 1.0 and probe.mime == "audio/wav"
        assert self.fetcher.fetched == [self.server.url("/clip.wav")]

    async def test_failures(self) -> None:
        """Missing files, pages, empty answers, closed ports and other hosts do not play."""
        cases = {
            self.server.url("/missing.wav"): "HTTP 404",
            self.server.url("/page"): "not audio (text/html)",
            self.server.url("/empty.mp3"): "empty answer",
            "http://127.0.0.1:9/a.mp3": "connection refused",
            "http://music.example/a.mp3": "unknown host music.example",
        }
        for uri, reason in cases.items():
            probe = await self.fetcher.probe(uri)
            assert (probe.ok, probe.reason) == (False, reason), uri

    async def test_longer_than_the_limit_is_a_stream(self) -> None:
        """An answer longer than max_bytes plays as a stream of unknown length."""
        probe = await self.fetcher.probe(self.server.url("/long.wav"))
        assert probe.ok and probe.duration is None

    async def test_other_schemes_need_no_fetch(self) -> None:
        """A URI that is not http(s) is not fetched."""
        probe = await self.fetcher.probe("x-file-cifs://nas/a.flac")
        assert probe.ok and self.fetcher.fetched == []
