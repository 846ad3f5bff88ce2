"""How many NOTIFYs per second the simulator pushes: N speakers, one subscriber.

Starts ``--speakers`` :class:`sonosd.sim.gena.SubscriptionManager` instances on loopback
addresses ``127.A.B.2 ..`` (the source addresses of their NOTIFYs), subscribes a subscriber to
each speaker's RenderingControl and AVTransport, then keeps every subscription's queue full with
realistic, varying changes (volume changes; track changes with DIDL metadata) for
``--duration`` seconds and prints the rate. The subscriber is a minimal raw HTTP server
answering ``200`` and closing; by default it runs in a second process so that it does not eat
the simulator's core.

    .venv/bin/python benchmarks/sim_notify_rate.py --speakers 100 --duration 5

Loopback only. Target: >= 2,000 NOTIFY/s from one core. LastChange moderation is off here
(``--moderation 0``, the default of this benchmark) so that every change is a NOTIFY; with
``--moderation 0.2`` (the simulator's default) each speaker gets ``--changes`` changes per
feeder tick instead, and the rate of changes absorbed is reported beside the NOTIFYs.
"""

from __future__ import annotations

import argparse
import os
import random
import resource
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any, cast

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from twisted.internet.protocol import Factory, Protocol
from twisted.web.iweb import IRequest

from sonosd.sim.gena import SubscriptionManager
from sonosd.sim.propertyset import EventValue

SERVER = "Linux UPnP/1.0 Sonos/85.0-65270 (ZPS16)"
DIDL = (
    '<DIDL-Lite xmlns:dc="http://purl.org/dc/elements/1.1/" '
    'xmlns:upnp="urn:schemas-upnp-org:metadata-1-0/upnp/" '
    'xmlns:r="urn:schemas-rinconnetworks-com:metadata-1-0/" '
    'xmlns="urn:schemas-upnp-org:metadata-1-0/DIDL-Lite/"><item id="-1" parentID="-1" '
    'restricted="true"><res protocolInfo="sonos.com-spotify:*:audio/x-spotify:*" '
    'duration="0:{m:02d}:{s:02d}">x-sonos-spotify:spotify%3atrack%3a{n}?sid=9&amp;flags=8224'
    "&amp;sn=1</res><r:streamContent></r:streamContent><upnp:albumArtURI>/getaa?s=1&amp;u="
    "x-sonos-spotify%3aspotify%253atrack%253a{n}%3fsid%3d9%26flags%3d8224%26sn%3d1"
    "</upnp:albumArtURI><dc:title>Track {n} &amp; friends</dc:title><upnp:class>"
    "object.item.audioItem.musicTrack</upnp:class><dc:creator>Artist {a}</dc:creator>"
    "<upnp:album>Album {a}</upnp:album></item></DIDL-Lite>"
)


class _Answer200(Protocol):
    """Answer every request with 200 once its headers (and body) are in, then close."""

    def __init__(self) -> None:
        self.buffer = b""

    def dataReceived(self, data: bytes) -> None:
        self.buffer += data
        head, sep, body = self.buffer.partition(b"\r\n\r\n")
        if not sep:
            return
        start = head.find(b"CONTENT-LENGTH: ")
        if start >= 0:
            end = head.find(b"\r\n", start)
            if len(body) < int(head[start + 16 : end]):
                return
        assert self.transport is not None
        self.transport.write(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
        self.transport.loseConnection()


def serve() -> None:
    """Run the subscriber: print its port, answer until stdin closes."""
    from twisted.internet import reactor as global_reactor
    from twisted.internet import stdio

    reactor: Any = global_reactor

    port = reactor.listenTCP(
        0, Factory.forProtocol(_Answer200), interface="127.0.0.1", backlog=1024
    )
    sys.stdout.write(f"{port.getHost().port}\n")
    sys.stdout.flush()

    class _Stop(Protocol):
        def connectionLost(self, reason: Any = None) -> None:
            reactor.stop()

    stdio.StandardIO(_Stop())
    reactor.run()


def _rc_change(rng: random.Random) -> Mapping[str, EventValue]:
    return {"Volume": {"Master": str(rng.randint(0, 100)), "LF": "100", "RF": "100"}}


def _avt_change(rng: random.Random) -> Mapping[str, EventValue]:
    n = rng.randrange(10**6)
    didl = DIDL.format(n=n, a=n % 97, m=rng.randint(2, 7), s=rng.randint(0, 59))
    return {
        "TransportState": rng.choice(("PLAYING", "PAUSED_PLAYBACK", "TRANSITIONING")),
        "CurrentPlayMode": "NORMAL",
        "NumberOfTracks": "43",
        "CurrentTrack": str(n % 43 + 1),
        "CurrentTrackURI": f"x-sonos-spotify:spotify%3atrack%3a{n}?sid=9&flags=8224&sn=1",
        "CurrentTrackDuration": "0:04:12",
        "CurrentTrackMetaData": didl,
        "r:NextTrackURI": f"x-sonos-spotify:spotify%3atrack%3a{n + 1}?sid=9",
        "r:NextTrackMetaData": "",
    }


def _full_state(service: str) -> Mapping[str, EventValue]:
    rng = random.Random(1)
    return _rc_change(rng) if service == "RenderingControl" else _avt_change(rng)


class _Request:
    """Just enough of twisted.web's IRequest for render_subscribe."""

    def __init__(self, headers: Mapping[bytes, bytes]) -> None:
        self.headers = headers
        self.code: int | None = None
        self.response: dict[bytes, bytes] = {}

    def getHeader(self, name: bytes) -> bytes | None:
        return self.headers.get(name.lower())

    def setHeader(self, name: bytes, value: bytes) -> None:
        self.response[name] = value

    def setResponseCode(self, code: int) -> None:
        self.code = code


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--speakers", type=int, default=100)
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument("--warmup", type=float, default=1.0)
    parser.add_argument("--backlog", type=int, default=2, help="NOTIFYs queued per speaker")
    parser.add_argument("--avt-share", type=float, default=0.2, help="share of track changes")
    parser.add_argument("--inline", action="store_true", help="subscriber in this process")
    parser.add_argument(
        "--moderation", type=float, default=0.0, help="LastChange moderation window (s)"
    )
    parser.add_argument(
        "--changes", type=int, default=5, help="changes per speaker per tick when moderated"
    )
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve()
        return

    from twisted.internet import reactor as global_reactor

    reactor: Any = global_reactor
    rng = random.Random(7)
    child = None
    if args.inline:
        listening = reactor.listenTCP(
            0, Factory.forProtocol(_Answer200), interface="127.0.0.1", backlog=1024
        )
        port = listening.getHost().port
    else:
        child = subprocess.Popen(
            [sys.executable, __file__, "--serve"], stdin=subprocess.PIPE, stdout=subprocess.PIPE
        )
        assert child.stdout is not None
        port = int(child.stdout.readline())

    a, b = rng.randint(1, 254), rng.randint(0, 200)
    managers = []
    for i in range(args.speakers):
        address = f"127.{a}.{b + i // 250}.{2 + i % 250}"
        uid = f"RINCON_000E58{i:06X}01400"
        manager = SubscriptionManager(
            reactor, uid, address, _full_state, SERVER, moderation=args.moderation
        )
        for service in ("RenderingControl", "AVTransport"):
            request = _Request(
                {
                    b"callback": f"<http://127.0.0.1:{port}/notify>".encode(),
                    b"nt": b"upnp:event",
                    b"timeout": b"Second-3600",
                }
            )
            manager.render_subscribe(cast(IRequest, request), service)
            assert request.code == 200, request.code
        managers.append(manager)

    def total(key: str) -> int:
        return sum(manager.stats()[key] for manager in managers)

    changes = [0]

    def change(manager: SubscriptionManager) -> None:
        changes[0] += 1
        if rng.random() < args.avt_share:
            manager.notify("AVTransport", _avt_change(rng))
        else:
            manager.notify("RenderingControl", _rc_change(rng))

    def feed() -> None:
        for manager in managers:
            if args.moderation > 0:
                for _ in range(args.changes):
                    change(manager)
                continue
            while manager.backlog() < args.backlog:
                change(manager)

    from twisted.internet.task import LoopingCall

    feeder = LoopingCall(feed)
    results: dict[str, float] = {}

    def begin() -> None:
        results["changes0"] = changes[0]
        results["sent0"] = total("sent")
        results["failed0"] = total("failed")
        results["t0"] = time.perf_counter()
        results["cpu0"] = time.process_time()

    def finish() -> None:
        elapsed = time.perf_counter() - results["t0"]
        cpu = time.process_time() - results["cpu0"]
        sent = total("sent") - results["sent0"]
        failed = total("failed") - results["failed0"]
        feeder.stop()
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(
            f"speakers={args.speakers} subscriptions={2 * args.speakers} "
            f"subscriber={'inline' if args.inline else 'separate process'}"
        )
        print(
            f"NOTIFY/s={sent / elapsed:,.0f} (answered {sent:,.0f} in {elapsed:.2f} s, "
            f"failed {failed:,.0f}); changes/s={(changes[0] - results['changes0']) / elapsed:,.0f}"
            f" (moderation {args.moderation:g} s); simulator CPU {100 * cpu / elapsed:.0f}% of "
            f"one core; max RSS {rss:.0f} MB"
        )
        stopped = [manager.stop() for manager in managers]
        from twisted.internet.defer import gatherResults

        gatherResults(stopped).addBoth(lambda _: reactor.stop())

    feeder.start(0.002)
    reactor.callLater(args.warmup, begin)
    reactor.callLater(args.warmup + args.duration, finish)
    reactor.run()
    if child is not None:
        assert child.stdin is not None
        child.stdin.close()
        child.wait(10)


if __name__ == "__main__":
    os.environ.setdefault("PYTHONHASHSEED", "0")
    main()
