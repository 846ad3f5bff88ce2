"""Unmodified SoCo drives the simulator over loopback (sonosd.sim.site, actions, service).

The household runs in the real reactor; SoCo's blocking calls run in threads. Each test gets
its own loopback block (so SoCo's per-IP singletons and per-household ZGS cache never mix
tests) and stops everything it started.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Callable
from typing import Any, TypeVar

import requests
import soco
import soco.alarms
import soco.music_library
from treq.client import HTTPClient
from twisted.internet import reactor
from twisted.internet.defer import Deferred
from twisted.trial.unittest import TestCase
from twisted.web.client import Agent, HTTPConnectionPool
from twisted.web.resource import Resource
from twisted.web.server import Site

from sonosd.config import SimulateConfig
from sonosd.sim.service import HouseholdService
from tests.audio_helpers import serve_audio
from tests.conftest import free_loopback_base
from tests.soco_helpers import in_thread, upnp_error_of

T = TypeVar("T")


class SimulatorTestCase(TestCase):
    """Starts a three-speaker household (S18, S14 soundbar, S18) with an admin API."""

    speakers = 3
    stereo_pair = False

    def setUp(self) -> Deferred[Any]:
        base = free_loopback_base(count=6)
        self.prefix = base.rsplit(".", 1)[0]
        config = SimulateConfig(
            speakers=self.speakers,
            base_address=base,
            admin="tcp:0:interface=127.0.0.1",
            stereo_pair=self.stereo_pair,
        )
        self.service = HouseholdService(
            reactor, config, models=("S18", "S14", "S18"), transition_delay=0.01
        )
        self.household = self.service.household
        self.service.startService()
        self.addCleanup(self.service.stopService)
        pool = HTTPConnectionPool(reactor, persistent=False)
        self.http = HTTPClient(Agent(reactor, pool=pool))
        assert self.service.admin_ready is not None
        return self.service.admin_ready

    def address(self, index: int) -> str:
        return self.household.speakers[index].address

    def device(self, index: int) -> soco.SoCo:
        return soco.SoCo(self.address(index))

    async def call(self, fn: Callable[[], T]) -> T:
        """Run a blocking SoCo call in a thread."""
        return await in_thread(fn)

    async def upnp_error(self, fn: Callable[[], object]) -> str:
        """The UPnP error code a SoCo call fails with."""
        return await upnp_error_of(fn)

    async def admin(self, method: str, path: str, body: object = None) -> tuple[int, Any]:
        """Call the admin API; returns (status, decoded JSON)."""
        kwargs: dict[str, Any] = {}
        if body is not None:
            kwargs["data"] = json.dumps(body).encode()
        response = await self.http.request(method, f"{self.service.admin_url}{path}", **kwargs)
        return response.code, json.loads(await response.content())


class IdentityTests(SimulatorTestCase):
    async def test_player_name_uid_household(self) -> None:
        """player_name, uid and household_id come back as the simulator holds them."""
        speaker = self.household.speakers[1]
        device = self.device(1)
        name, uid, household_id = await self.call(
            lambda: (device.player_name, device.uid, device.household_id)
        )
        assert (name, uid, household_id) == (speaker.name, speaker.uid, self.household.household_id)

    async def test_speaker_info(self) -> None:
        """get_speaker_info reads the device description: room, model, versions, MAC."""
        speaker = self.household.speakers[0]
        info = await self.call(self.device(0).get_speaker_info)
        assert info["zone_name"] == speaker.name
        assert info["uid"] == speaker.uid
        assert info["model_name"] == "Sonos One"
        assert info["model_number"] == "S18"
        assert info["software_version"] == speaker.model.software_version
        assert info["mac_address"] == speaker.identity.mac.replace(":", "-")

    async def test_zone_attributes_and_info(self) -> None:
        """GetZoneAttributes and GetZoneInfo answer with the speaker's values."""
        device = self.device(0)
        attributes = await self.call(device.deviceProperties.GetZoneAttributes)
        info = await self.call(device.deviceProperties.GetZoneInfo)
        assert attributes["CurrentZoneName"] == self.household.speakers[0].name
        assert info["IPAddress"] == self.address(0)
        assert info["SerialNumber"] == self.household.speakers[0].identity.serial

    async def test_rename_through_soco(self) -> None:
        """Setting player_name renames the speaker in the model and in the ZGS."""
        device = self.device(2)

        def rename() -> str:
            device.player_name = "Studio"
            device.zone_group_state.clear_cache()
            name: str = device.player_name
            return name

        assert await self.call(rename) == "Studio"
        assert self.household.speakers[2].name == "Studio"

    async def test_status_light(self) -> None:
        """status_light reads and writes the LED state."""
        device = self.device(0)

        def toggle() -> tuple[bool, bool]:
            before = device.status_light
            device.status_light = False
            return before, device.status_light

        assert await self.call(toggle) == (True, False)
        assert self.household.speakers[0].led_on is False


class RenderingTests(SimulatorTestCase):
    async def test_volume_mute_bass_treble_loudness(self) -> None:
        """Every rendering setting set through SoCo is read back and held by the model."""
        device = self.device(0)

        def change() -> tuple[Any, ...]:
            device.volume = 33
            device.mute = True
            device.bass = 4
            device.treble = -3
            device.loudness = False
            return device.volume, device.mute, device.bass, device.treble, device.loudness

        assert await self.call(change) == (33, True, 4, -3, False)
        r = self.household.speakers[0].rendering
        assert (r.volume, r.mute, r.bass, r.treble, r.loudness) == (33, True, 4, -3, False)
        assert await self.call(lambda: device.set_relative_volume(-5)) == 28

    async def test_soco_change_visible_in_admin_and_back(self) -> None:
        """A volume set by SoCo shows in the admin API; one set by the admin shows in SoCo."""
        device = self.device(1)

        def set_volume() -> None:
            device.volume = 12

        await self.call(set_volume)
        status, state = await self.admin("GET", "/speakers/1")
        assert status == 200 and state["volume"] == 12
        status, state = await self.admin("PATCH", "/speakers/1/state", {"volume": 64, "mute": True})
        assert status == 200
        assert await self.call(lambda: (device.volume, device.mute)) == (64, True)

    async def test_night_and_dialog_mode_on_soundbars_only(self) -> None:
        """night_mode/dialog_mode work on the Beam; a One refuses GetEQ with 402."""
        beam, one = self.device(1), self.device(0)

        def change() -> tuple[Any, Any]:
            beam.night_mode = True
            beam.dialog_mode = True
            return beam.night_mode, beam.dialog_mode

        assert await self.call(change) == (True, True)
        assert await self.call(lambda: one.night_mode) is None
        code = await self.upnp_error(
            lambda: one.renderingControl.GetEQ([("InstanceID", 0), ("EQType", "NightMode")])
        )
        assert code == "402"


class TransportTests(SimulatorTestCase):
    async def test_play_pause_stop(self) -> None:
        """play/pause/stop move the transport state the way a speaker does."""
        device = self.device(0)
        await self.call(device.play)
        state = await self.call(device.get_current_transport_info)
        assert state["current_transport_state"] in ("TRANSITIONING", "PLAYING")
        await self.household.speakers[0].transport.settled()
        state = await self.call(device.get_current_transport_info)
        assert state["current_transport_state"] == "PLAYING"
        await self.call(device.pause)
        assert self.household.speakers[0].transport.state == "PAUSED_PLAYBACK"
        await self.call(device.stop)
        state = await self.call(device.get_current_transport_info)
        assert state == {
            "current_transport_state": "STOPPED",
            "current_transport_status": "OK",
            "current_transport_speed": "1",
        }

    async def test_track_info_next_previous_seek(self) -> None:
        """Track info follows next/previous/seek, with full metadata from the queue."""
        device = self.device(0)
        queue = self.household.speakers[0].transport.queue
        info = await self.call(device.get_current_track_info)
        assert info["title"] == queue[0].title
        assert info["artist"] == queue[0].artist
        assert info["album"] == queue[0].album
        assert info["playlist_position"] == "1"
        assert info["album_art"].startswith(f"http://{self.address(0)}:1400/getaa?")
        await self.call(device.next)
        await self.call(device.next)
        await self.call(device.previous)
        await self.call(lambda: device.seek("0:01:05"))
        info = await self.call(device.get_current_track_info)
        assert (info["playlist_position"], info["title"], info["position"]) == (
            "2",
            queue[1].title,
            "0:01:05",
        )
        await self.call(lambda: device.seek(track=4))
        info = await self.call(device.get_current_track_info)
        assert info["playlist_position"] == "5"

    async def test_play_mode_cross_fade_actions(self) -> None:
        """play_mode, cross_fade and available_actions round-trip."""
        device = self.device(0)

        def change() -> tuple[Any, ...]:
            device.play_mode = "REPEAT_ALL"
            device.cross_fade = True
            return device.play_mode, device.cross_fade, device.available_actions

        mode, fade, actions = await self.call(change)
        assert (mode, fade) == ("REPEAT_ALL", True)
        assert actions == ["Set", "Play", "Stop", "Pause", "Seek", "Next", "Previous"]

    async def test_play_uri_and_media_info(self) -> None:
        """play_uri sets a single item and plays it; media info reports the URI."""
        device = self.device(0)
        uri = serve_audio(self).url("/song.mp3")
        await self.call(lambda: device.play_uri(uri, title="Test Stream"))
        media = await self.call(device.get_current_media_info)
        track = await self.call(device.get_current_track_info)
        assert media["uri"] == uri
        assert track["title"] == "Test Stream"
        assert self.household.speakers[0].transport.state in ("TRANSITIONING", "PLAYING")

    async def test_queue(self) -> None:
        """add_uri_to_queue, get_queue and clear_queue act on the speaker's queue."""
        device = self.device(0)
        before = len(self.household.speakers[0].transport.queue)
        position = await self.call(lambda: device.add_uri_to_queue("http://example.invalid/a.mp3"))
        assert position == before + 1
        queue = await self.call(device.get_queue)
        assert len(queue) == before + 1 and queue.total_matches == before + 1
        assert queue[0].title == self.household.speakers[0].transport.queue[0].title
        assert await self.call(lambda: device.queue_size) == before + 1
        await self.call(device.clear_queue)
        assert len(await self.call(device.get_queue)) == 0

    async def test_sleep_timer(self) -> None:
        """set_sleep_timer/get_sleep_timer round-trip (the remaining time counts down, so a
        slow machine may read a second or two less); None cancels."""
        device = self.device(0)
        await self.call(lambda: device.set_sleep_timer(600))
        assert 590 <= await self.call(device.get_sleep_timer) <= 600
        await self.call(lambda: device.set_sleep_timer(None))
        assert await self.call(device.get_sleep_timer) is None

    async def test_admin_transport_visible_in_soco(self) -> None:
        """Play and next through the admin API are what SoCo then reads."""
        device = self.device(2)
        status, _ = await self.admin("POST", "/speakers/2/next")
        assert status == 200
        status, _ = await self.admin("PATCH", "/speakers/2/state", {"transport": "PLAYING"})
        assert status == 200
        info = await self.call(device.get_current_track_info)
        assert info["playlist_position"] == "2"
        state = await self.call(device.get_current_transport_info)
        assert state["current_transport_state"] in ("TRANSITIONING", "PLAYING")


class ErrorTests(SimulatorTestCase):
    async def test_upnp_error_codes(self) -> None:
        """Each UPnP error a speaker answers comes back to SoCo with its code."""
        device = self.device(0)
        avt = device.avTransport
        cases: list[tuple[str, Callable[[], object]]] = [
            ("401", lambda: avt.NoSuchAction([("InstanceID", 0)])),
            (
                "402",
                lambda: device.renderingControl.SetVolume(
                    [("InstanceID", 0), ("Channel", "Master"), ("DesiredVolume", "loud")]
                ),
            ),
            ("701", lambda: avt.Pause([("InstanceID", 0)])),
            (
                "711",
                lambda: avt.Seek([("InstanceID", 0), ("Unit", "REL_TIME"), ("Target", "9:00:00")]),
            ),
            ("712", lambda: avt.SetPlayMode([("InstanceID", 0), ("NewPlayMode", "LOUD")])),
            (
                "714",
                lambda: avt.SetAVTransportURI(
                    [
                        ("InstanceID", 0),
                        ("CurrentURI", "http://example.invalid/page.html"),
                        ("CurrentURIMetaData", ""),
                    ]
                ),
            ),
            ("718", lambda: avt.Play([("InstanceID", 3), ("Speed", 1)])),
        ]
        for code, call in cases:
            assert await self.upnp_error(call) == code, code

    async def test_member_refuses_transport_with_800(self) -> None:
        """A grouped non-coordinator answers transport commands with 800."""
        living, kitchen = self.device(0), self.device(1)
        await self.call(lambda: kitchen.join(living))
        code = await self.upnp_error(
            lambda: kitchen.avTransport.Play([("InstanceID", 0), ("Speed", 1)])
        )
        assert code == "800"

    async def test_http_errors(self) -> None:
        """Unknown paths get 404, wrong methods 405, album art a PNG."""
        base = f"http://{self.address(0)}:1400"
        missing = await self.http.get(f"{base}/no/such/path")
        wrong = await self.http.post(f"{base}/xml/device_description.xml", data=b"")
        art = await self.http.get(f"{base}/getaa?s=1&u=x-file-cifs%3A%2F%2Fa")
        body = await art.content()
        await missing.content()
        await wrong.content()
        assert (missing.code, wrong.code, art.code) == (404, 405, 200)
        assert body.startswith(b"\x89PNG")

    async def test_art_redirect_fault(self) -> None:
        """With ``art_redirect`` set, album art answers 302 to that URL, and a PNG again once
        it is cleared."""
        speaker = self.household.speakers[0]
        url = f"http://{self.address(0)}:1400/getaa?s=1&u=x"
        speaker.art_redirect = "http://127.0.0.1:9/elsewhere.png"
        moved = await self.http.get(url, allow_redirects=False)
        await moved.content()
        assert moved.code == 302
        assert moved.headers.getRawHeaders(b"location") == [b"http://127.0.0.1:9/elsewhere.png"]
        speaker.art_redirect = None
        art = await self.http.get(url, allow_redirects=False)
        assert (art.code, (await art.content())[:4]) == (200, b"\x89PNG")

    async def test_art_type_fault(self) -> None:
        """Album art is served as ``image/png`` until ``art_type`` names another type."""
        speaker = self.household.speakers[0]
        url = f"http://{self.address(0)}:1400/getaa?s=1&u=x"
        art = await self.http.get(url)
        await art.content()
        assert art.headers.getRawHeaders(b"content-type") == [b"image/png"]
        speaker.art_type = "image/svg+xml"
        art = await self.http.get(url)
        assert (await art.content())[:4] == b"\x89PNG"
        assert art.headers.getRawHeaders(b"content-type") == [b"image/svg+xml"]


class GroupTests(SimulatorTestCase):
    async def test_join_unjoin_group_volume(self) -> None:
        """join/unjoin change SoCo's groups; group volume and mute act on all members."""
        living, kitchen = self.device(0), self.device(1)

        def grouped() -> tuple[Any, ...]:
            living.volume, kitchen.volume = 40, 20
            kitchen.join(living)
            group = living.group
            volume_before = group.volume
            group.volume = 50
            group.mute = True
            return (
                group.coordinator.ip_address,
                {m.ip_address for m in group.members},
                volume_before,
                group.volume,
                group.mute,
                kitchen.is_coordinator,
            )

        coordinator, members, before, after, muted, kitchen_coordinates = await self.call(grouped)
        assert coordinator == self.address(0)
        assert members == {self.address(0), self.address(1)}
        assert (before, after, muted, kitchen_coordinates) == (30, 50, True, False)

        def unjoined() -> tuple[int, bool]:
            kitchen.unjoin()
            return len(living.all_groups), kitchen.is_coordinator

        assert await self.call(unjoined) == (3, True)

    async def test_partymode_and_zones(self) -> None:
        """partymode puts every visible zone in one group; all_zones lists every speaker."""
        living = self.device(0)

        def party() -> tuple[int, int, int]:
            living.partymode()
            living.zone_group_state.clear_cache()
            return len(living.all_groups), len(living.all_zones), len(living.visible_zones)

        assert await self.call(party) == (1, 3, 3)

    async def test_favorites_and_alarms(self) -> None:
        """Sonos favorites (FV:2) and alarms (ListAlarms) parse in SoCo."""
        living = self.device(0)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            favorites = await self.call(living.get_sonos_favorites)
        assert [f["title"] for f in favorites["favorites"]] == [
            t.title for t in self.household.favorites
        ]
        library = await self.call(
            lambda: soco.music_library.MusicLibrary(living).get_sonos_favorites()
        )
        assert len(library) == len(self.household.favorites)
        alarms = await self.call(lambda: soco.alarms.get_alarms(living))
        assert {a.start_time.strftime("%H:%M:%S") for a in alarms} == {
            a.start_time for a in self.household.alarms
        }


class StereoPairTests(SimulatorTestCase):
    stereo_pair = True

    async def test_invisible_member(self) -> None:
        """With a stereo pair, visible_zones leaves out the right speaker."""
        living = self.device(0)
        zones = await self.call(
            lambda: (
                {z.ip_address for z in living.all_zones},
                {z.ip_address for z in living.visible_zones},
            )
        )
        assert zones == (
            {self.address(0), self.address(1), self.address(2)},
            {self.address(0), self.address(2)},
        )

    async def test_separate_and_pair_again_with_soco(self) -> None:
        """SoCo's separate_stereo_pair (RemoveBondedZones, sent to the hidden half) makes
        the right speaker a visible zone again, a second try fails with UPnP 800, and
        create_stereo_pair (AddBondedZones) pairs them again; meanwhile a volume set on the
        pair's visible speaker is the room's, read back from either half."""
        living, right = self.device(0), self.device(1)
        await self.call(lambda: setattr(living, "volume", 33))
        assert await self.call(lambda: right.volume) == 33

        def visible() -> set[str]:
            living.zone_group_state.clear_cache()
            return {z.ip_address for z in living.visible_zones}

        await self.call(right.separate_stereo_pair)
        assert await self.call(visible) == {self.address(0), self.address(1), self.address(2)}
        assert await self.upnp_error(right.separate_stereo_pair) == "800"
        await self.call(lambda: setattr(right, "volume", 12))
        assert await self.call(lambda: (living.volume, right.volume)) == (33, 12)
        await self.call(lambda: living.create_stereo_pair(right))
        assert await self.call(visible) == {self.address(0), self.address(2)}
        assert await self.call(lambda: right.volume) == 33


class HomeTheatreRuntimeTests(SimulatorTestCase):
    async def test_surround_added_and_removed_with_soco(self) -> None:
        """AddHTSatellite sent by SoCo to the Beam makes a One its LR surround, as SoCo's
        topology sees it (a satellite on its channel, hidden from visible_zones, the Beam
        has satellites); RemoveHTSatellite makes it a visible zone again; AddHTSatellite sent
        to a One fails with UPnP 401."""
        one, beam, surround = self.device(0), self.device(1), self.device(2)
        uid = self.household.speakers[2].uid
        beam_uid = self.household.speakers[1].uid
        add = [("HTSatChanMapSet", f"{beam_uid}:LF,RF;{uid}:LR")]

        def seen() -> tuple[set[str], bool, list[tuple[str, str]]]:
            one.zone_group_state.clear_cache()
            zones = one.all_zones
            return (
                {z.ip_address for z in one.visible_zones},
                beam.has_satellites,
                [(z.ip_address, z.channel) for z in zones if z.is_satellite],
            )

        await self.call(lambda: beam.deviceProperties.AddHTSatellite(add))
        assert await self.call(seen) == (
            {self.address(0), self.address(1)},
            True,
            [(self.address(2), "LR")],
        )
        remove = [("SatRoomUUID", uid)]
        await self.call(lambda: beam.deviceProperties.RemoveHTSatellite(remove))
        visible, has_satellites, satellites = await self.call(seen)
        assert visible == {self.address(0), self.address(1), self.address(2)}
        assert (has_satellites, satellites) == (False, [])
        assert await self.call(lambda: surround.player_name) == "Bedroom"
        refused = await self.upnp_error(lambda: one.deviceProperties.AddHTSatellite(add))
        assert refused == "401"


class _NotifySink(Resource):
    """Records NOTIFY requests (headers and body) and wakes up waiters."""

    isLeaf = True

    def __init__(self) -> None:
        super().__init__()
        self.received: list[tuple[dict[str, str], bytes]] = []
        self._waiters: list[tuple[int, Deferred[None]]] = []

    def render_NOTIFY(self, request: Any) -> bytes:
        headers = {
            k.decode().lower(): v[0].decode() for k, v in request.requestHeaders.getAllRawHeaders()
        }
        self.received.append((headers, request.content.read()))
        for count, waiter in list(self._waiters):
            if len(self.received) >= count:
                self._waiters.remove((count, waiter))
                waiter.callback(None)
        return b""

    def wait_for(self, count: int) -> Deferred[None]:
        waiter: Deferred[None] = Deferred()
        if len(self.received) >= count:
            waiter.callback(None)
        else:
            self._waiters.append((count, waiter))
        return waiter


class EventingTests(SimulatorTestCase):
    async def test_soco_change_is_notified(self) -> None:
        """A SUBSCRIBE gets SEQ 0, and a volume set through SoCo arrives as the next NOTIFY."""
        from soco.events_base import parse_event_xml

        sink = _NotifySink()
        port = reactor.listenTCP(0, Site(sink), interface="127.0.0.1")
        self.addCleanup(port.stopListening)
        callback = f"<http://127.0.0.1:{port.getHost().port}/>"
        response = await self.http.request(
            "SUBSCRIBE",
            f"http://{self.address(0)}:1400/MediaRenderer/RenderingControl/Event",
            headers={"CALLBACK": callback, "NT": "upnp:event", "TIMEOUT": "Second-300"},
        )
        await response.content()
        assert response.code == 200
        await sink.wait_for(1)
        device = self.device(0)

        def set_volume() -> None:
            device.volume = 42

        await self.call(set_volume)
        await sink.wait_for(2)
        headers, body = sink.received[1]
        assert headers["seq"] == "1"
        assert parse_event_xml(body)["volume"]["Master"] == "42"


class FaultTests(SimulatorTestCase):
    def get(self, url: str, timeout: float = 5.0) -> int:
        return requests.get(url, timeout=timeout).status_code

    async def test_reboot_refuses_then_returns_with_next_boot_seq(self) -> None:
        """Reboot: connections refused, then the speaker answers with BootSeq + 1 in the ZGS."""
        speaker = self.household.speakers[0]
        before = speaker.boot_seq
        url = f"http://{speaker.address}:1400/xml/device_description.xml"
        response = await self.http.request(
            "SUBSCRIBE",
            f"http://{speaker.address}:1400/MediaRenderer/AVTransport/Event",
            headers={"CALLBACK": "<http://127.0.0.1:9/>", "NT": "upnp:event"},
        )
        await response.content()
        sid = response.headers.getRawHeaders("sid")[0]
        # Down long enough that a GET sent from a thread of a loaded machine still finds it
        # down (with 0.2 s it came back first under make test at load average 7).
        await speaker.reboot(downtime=2.0)
        with self.assertRaises(requests.ConnectionError):
            await self.call(lambda: self.get(url))
        await speaker.when_up()
        assert await self.call(lambda: self.get(url)) == 200
        other = self.device(1)
        assert (
            await self.call(
                lambda: int(
                    other.zoneGroupTopology.GetZoneGroupState()["ZoneGroupState"]
                    .split(f'UUID="{speaker.uid}"')[1]
                    .split('BootSeq="')[1]
                    .split('"')[0]
                )
            )
            == before + 1
        )
        renewal = await self.http.request(
            "SUBSCRIBE",
            f"http://{speaker.address}:1400/MediaRenderer/AVTransport/Event",
            headers={"SID": sid, "TIMEOUT": "Second-300"},
        )
        await renewal.content()
        assert renewal.code == 412

    async def test_offline_refuse_and_hang(self) -> None:
        """Offline refuses connections (or accepts and never answers), online answers again."""
        status, _ = await self.admin("POST", "/speakers/2/offline", {"mode": "refuse"})
        assert status == 200
        url = f"http://{self.address(2)}:1400/xml/device_description.xml"
        with self.assertRaises(requests.ConnectionError):
            await self.call(lambda: self.get(url))
        status, _ = await self.admin("POST", "/speakers/2/offline", {"mode": "hang"})
        assert status == 200
        with self.assertRaises(requests.ReadTimeout):
            await self.call(lambda: self.get(url, timeout=0.3))
        status, state = await self.admin("POST", "/speakers/2/online")
        assert (status, state["network"]) == (200, "up")
        assert await self.call(lambda: self.get(url)) == 200

    async def test_address_change(self) -> None:
        """A speaker moved to a new address answers there, not at the old one, and ZGS follows."""
        old = self.address(1)
        new = f"{self.prefix}.6"
        status, state = await self.admin("POST", "/speakers/1/address", {"address": new})
        assert (status, state["address"]) == (200, new)
        with self.assertRaises(requests.ConnectionError):
            await self.call(lambda: self.get(f"http://{old}:1400/xml/device_description.xml"))
        moved = soco.SoCo(new)
        assert await self.call(lambda: moved.uid) == self.household.speakers[1].uid
        zones = await self.call(lambda: {z.ip_address for z in self.device(0).all_zones})
        assert new in zones and old not in zones
