"""Audio the simulated speakers can fetch: WAV clips served over loopback by a tiny web server.

A simulated speaker really fetches the ``http`` URIs it is told to play (``sonosd.sim.fetcher``)
and plays them for their real duration, so tests that play a clip serve one.
"""

from __future__ import annotations

import io
import wave
from collections.abc import Mapping
from typing import Any

from twisted.internet import reactor as global_reactor
from twisted.internet.defer import Deferred
from twisted.web.resource import Resource
from twisted.web.server import Request, Site

reactor: Any = global_reactor


def wav_bytes(seconds: float, rate: int = 8000) -> bytes:
    """A silent mono 16-bit WAV file of ``seconds``."""
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(b"\0\0" * int(seconds * rate))
    return buffer.getvalue()


def mp3_bytes(seconds: float) -> bytes:
    """An MPEG-1 Layer III stream of silent 128 kbit/s, 44.1 kHz frames lasting ``seconds``."""
    frame = b"\xff\xfb\x90\x00" + bytes(413)
    return frame * round(seconds * 44100 / 1152)


class _Files(Resource):
    isLeaf = True

    def __init__(self, files: Mapping[str, tuple[bytes, str]]) -> None:
        super().__init__()
        self.files = dict(files)
        self.requests: list[str] = []

    def render_GET(self, request: Request) -> bytes:
        path = request.path.decode()
        self.requests.append(path)
        found = self.files.get(path)
        if found is None:
            request.setResponseCode(404)
            request.setHeader(b"content-type", b"text/html")
            return b"<html>not found</html>"
        body, mime = found
        request.setHeader(b"content-type", mime.encode())
        return body


class AudioServer:
    """Serves ``files`` (``{"/path": (body, content type)}``) on 127.0.0.1."""

    def __init__(self, files: Mapping[str, tuple[bytes, str]]) -> None:
        self.resource = _Files(files)
        site = Site(self.resource)
        site.noisy = False
        self.port = reactor.listenTCP(0, site, interface="127.0.0.1")

    def url(self, path: str) -> str:
        """The URL of ``path`` on this server."""
        return f"http://127.0.0.1:{self.port.getHost().port}{path}"

    @property
    def requests(self) -> list[str]:
        """The paths requested so far, in order."""
        return self.resource.requests

    def stop(self) -> Deferred[None]:
        """Stop listening."""
        stopped: Deferred[None] = self.port.stopListening()
        return stopped


def serve_audio(case: Any, files: Mapping[str, tuple[bytes, str]] | None = None) -> AudioServer:
    """An ``AudioServer`` stopped when ``case`` ends; by default one 1-second WAV at
    ``/clip.wav`` and a 3-second MP3 at ``/song.mp3``."""
    if files is None:
        files = {
            "/clip.wav": (wav_bytes(1.0), "audio/wav"),
            "/song.mp3": (mp3_bytes(3.0), "audio/mpeg"),
        }
    server = AudioServer(files)
    case.addCleanup(server.stop)
    return server
