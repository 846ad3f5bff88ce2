"""Tests for the simulator's admin API (sonosd.sim.admin): in memory through StubTreq, and
over loopback against a running household with a raw GENA subscriber."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from functools import partial
from typing import Any
from xml.etree import ElementTree

import attrs
import pytest
from soco.events_base import parse_event_xml
from treq.client import HTTPClient
from treq.testing import StubTreq
from twisted.internet import reactor
from twisted.internet.defer import Deferred
from twisted.internet.protocol import ClientCreator, Protocol
from twisted.internet.task import Clock, deferLater
from twisted.trial.unittest import SynchronousTestCase, TestCase
from twisted.web._newclient import ParseError, ResponseFailed
from twisted.web.client import Agent, HTTPConnectionPool

from sonosd.config import SimulateConfig
from sonosd.sim.activity import ActivityGenerator
from sonosd.sim.admin import ROUTES, AdminResource
from sonosd.sim.catalog import STATIONS
from sonosd.sim.didl import format_duration
from sonosd.sim.household import Household, Speaker
from sonosd.sim.neighbourhood import Neighbourhood
from sonosd.sim.service import HouseholdService
from sonosd.sim.soap import NOT_UTF8
from tests.conftest import free_loopback_base
from tests.daemon_helpers import until
from tests.gena_wire import Received, Receiver, gena_call
from tests.paths import ROOT
from tests.sim.test_tls import CONTROL, GET_VOLUME, SOAP_HEADERS
from tests.sim_fakes import FakePresence, RecordingManager

#: What soap/faults answers with no fault set.
NO_SOAP_FAULTS = {
    "padding": 0,
    "doctype": False,
    "drip": 0.0,
    "error_code": "",
    "didl_doctype": False,
    "rewrite_action": "",
    "rewrite_name": "",
    "rewrite_value": "",
    "nesting": 0,
    "not_utf8": False,
    "status_line": "",
    "header_bytes": 0,
    "cut": False,
    "description": False,
    "art": False,
}


class AdminTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.clock = Clock()
        self.household = Household(
            self.clock, speakers=3, seed=5, models=("S18", "S14"), transition_delay=0
        )
        self.managers = []
        for speaker in self.household.speakers:
            manager = RecordingManager(self.clock, speaker.uid, speaker.address, None, "")
            speaker.manager = manager
            speaker.network = FakePresence(address=speaker.address)
            self.managers.append(manager)
        self.activity = ActivityGenerator(self.clock, self.household, 0.0, seed=1)
        self.http = StubTreq(AdminResource(self.household, self.activity))

    def request(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        data = json.dumps(body).encode() if body is not None else b""
        return self.request_bytes(method, path, data)

    def request_bytes(self, method: str, path: str, data: bytes) -> tuple[int, Any]:
        response = self.successResultOf(self.http.request(method, f"http://admin{path}", data=data))
        return response.code, json.loads(self.successResultOf(response.content()))

    def test_index_and_household(self) -> None:
        """GET / lists the routes; GET /household shows ID, speakers, groups and ZGS."""
        status, index = self.request("GET", "/")
        assert status == 200 and "POST /speakers/{id}/reboot" in index["routes"]
        status, household = self.request("GET", "/household")
        assert household["household_id"] == self.household.household_id
        assert len(household["speakers"]) == 3 and len(household["groups"]) == 3
        assert household["zone_group_state"].startswith("<ZoneGroupState>")

    def test_speaker_state_has_the_documented_keys(self) -> None:
        """GET /speakers/{id} answers exactly the keys the admin API table lists for it (and
        the battery's and the current track's, given in brackets there), both ways."""
        text = (ROOT / "docs" / "simulator.md").read_text()
        [row] = [line for line in text.splitlines() if line.startswith("| `GET /speakers/{id}` |")]
        cell = row.split("|")[2]
        top = re.findall(r"`([a-z_]+)`", re.sub(r"\([^)]*\)", "", cell))
        brackets = dict(re.findall(r"`([a-z_]+)` \(([^)]*)\)", cell))
        self.http = StubTreq(AdminResource(Household(Clock(), speakers=2, models=("S18", "S27"))))
        one, roam = (self.request("GET", f"/speakers/{index}")[1] for index in (0, 1))
        assert sorted(one) == sorted(roam) == sorted(top)
        assert (one["battery"], one["night_mode"], one["dialog_mode"]) == (None, None, None)
        battery = re.findall(r"`([a-z_]+)`", brackets["battery"])
        assert sorted(roam["battery"]) == sorted(battery)
        state = one
        assert sorted(state["current"]) == sorted(re.findall(r"`([a-z_]+)`", brackets["current"]))

    def test_speakers_by_index_uid_address_and_name(self) -> None:
        """A speaker is found by index, UID, address or room name."""
        kitchen = self.household.speakers[1]
        for key in ("1", kitchen.uid, kitchen.address, "kitchen"):
            status, state = self.request("GET", f"/speakers/{key}")
            assert (status, state["uid"]) == (200, kitchen.uid)
        status, error = self.request("GET", "/speakers/nowhere")
        assert status == 404 and "nowhere" in error["error"]
        status, state = self.request("GET", "/speakers/Living%20Room")
        assert (status, state["uid"]) == (200, self.household.speakers[0].uid)

    def test_state_changes_are_evented(self) -> None:
        """PATCH state sets values through the model, so the GENA manager is told."""
        status, state = self.request(
            "PATCH", "/speakers/0/state", {"volume": 55, "bass": -4, "play_mode": "shuffle"}
        )
        assert status == 200
        assert (state["volume"], state["bass"], state["play_mode"]) == (55, -4, "SHUFFLE")
        assert self.managers[0].of("RenderingControl")[0]["Volume"]["Master"] == "55"
        assert "CurrentPlayMode" in self.managers[0].of("AVTransport")[-1]

    def test_bad_requests(self) -> None:
        """Unknown keys, bad values, bad JSON and wrong methods get 400/405 with a message."""
        assert self.request("PATCH", "/speakers/0/state", {"colour": 1})[0] == 400
        assert self.request("PATCH", "/speakers/0/state", {"volume": 101})[0] == 400
        assert self.request("PATCH", "/speakers/0/state", {"mute": "yes"})[0] == 400
        assert self.request("GET", "/speakers/0/reboot")[0] == 405
        assert self.request("GET", "/no/such/thing")[0] == 404
        response = self.successResultOf(
            self.http.request("POST", "http://admin/speakers/0/burst", data=b"{nope")
        )
        assert response.code == 400
        volume = self.household.speakers[0].rendering.volume
        big = json.dumps({"volume": 9, "name": "x" * 65536}).encode()
        status, error = self.request_bytes("PATCH", "/speakers/0/state", big)
        assert (status, error) == (413, {"error": "request body too large"})
        assert self.household.speakers[0].rendering.volume == volume

    def test_a_bad_state_value_changes_nothing(self) -> None:
        """PATCH state checks every value before it applies any: a 400 naming the bad key
        leaves the good ones of the same body unapplied and unevented."""
        speaker = self.household.speakers[0]
        volume, events = speaker.rendering.volume, len(self.managers[0].of("RenderingControl"))
        for bad, message in (
            ({"mute": "yes"}, "mute must be true or false"),
            ({"position": "soon"}, "position must be H:MM:SS, got 'soon'"),
            ({"transport": "ROCKING"}, "transport must be PLAYING, PAUSED_PLAYBACK or STOPPED"),
        ):
            status, error = self.request("PATCH", "/speakers/0/state", {"volume": 7, **bad})
            assert (status, error["error"]) == (400, message)
        assert speaker.rendering.volume == volume != 7
        assert len(self.managers[0].of("RenderingControl")) == events

    def test_text_xml_cannot_carry_is_refused(self) -> None:
        """A name or queue metadata holding a character XML cannot carry (U+FFFE, a control
        character) is a 400 naming the key, and the state is unchanged: the speaker could
        neither answer nor event it."""
        speaker = self.household.speakers[0]
        name, queue = speaker.name, list(speaker.transport.queue)
        events = len(self.managers[0].of("DeviceProperties"))
        status, error = self.request("PATCH", "/speakers/0/state", {"name": "Kit\ufffechen"})
        assert status == 400 and error["error"].startswith("name: character '\\ufffe'")
        song = "x-file-cifs://sim-nas/Music/a.flac"
        status, error = self.request("POST", "/speakers/0/queue", {"uri": song, "metadata": "\x01"})
        assert status == 400 and error["error"].startswith("metadata: character '\\x01'")
        assert (speaker.name, speaker.transport.queue) == (name, queue)
        assert len(self.managers[0].of("DeviceProperties")) == events

    def test_upnp_errors_are_409(self) -> None:
        """A change the speaker refuses answers 409 with the UPnP error code."""
        status, error = self.request("PATCH", "/speakers/0/state", {"night_mode": True})
        assert (status, error["upnp_error"]) == (409, 402)
        status, error = self.request("POST", "/speakers/0/pause")
        assert (status, error["upnp_error"]) == (409, 701)

    def test_transport_commands_run_on_the_coordinator(self) -> None:
        """play, next, previous, pause and stop sent for a group member act on its group's
        coordinator, and answer the member's state (which follows the coordinator's)."""
        self.request("POST", "/speakers/1/join", {"coordinator": "0"})
        coordinator, member = (self.household.speakers[i].transport for i in (0, 1))
        answers = []
        for command in ("play", "next", "next", "previous", "pause", "stop"):
            status, state = self.request("POST", f"/speakers/1/{command}")
            self.clock.advance(0)
            answers.append((status, coordinator.state, coordinator.track_no))
        assert answers == [
            (200, "PLAYING", 1),
            (200, "PLAYING", 2),
            (200, "PLAYING", 3),
            (200, "PLAYING", 2),
            (200, "PAUSED_PLAYBACK", 2),
            (200, "STOPPED", 2),
        ]
        assert (member.state, member.track_no) == ("STOPPED", 0)  # its source is x-rincon:
        assert state["coordinator"] == self.household.speakers[0].uid

    def test_join_unjoin_and_queue(self) -> None:
        """join, unjoin and queue edits act on the household."""
        status, state = self.request("POST", "/speakers/1/join", {"coordinator": "0"})
        assert status == 200 and state["coordinator"] == self.household.speakers[0].uid
        status, state = self.request("POST", "/speakers/1/unjoin")
        assert state["coordinator"] == self.household.speakers[1].uid
        status, added = self.request("POST", "/speakers/2/queue", {"songs": 3})
        assert added["queue_length"] == 11
        status, _ = self.request("DELETE", "/speakers/2/queue")
        assert self.household.speakers[2].transport.queue == []

    def test_queue_takes_a_uri_and_a_position(self) -> None:
        """POST queue with a uri (and its DIDL) or a number of songs inserts them at the
        1-based position (0, left out or past the end: at the end) and answers the first
        track's number and the queue's length."""
        transport = self.household.speakers[2].transport
        length = len(transport.queue)
        song = "x-file-cifs://sim-nas/Music/Queued.flac"
        status, added = self.request("POST", "/speakers/2/queue", {"uri": song, "position": 1})
        assert (status, added) == (200, {"first_track": 1, "queue_length": length + 1})
        assert transport.queue[0].uri == song
        status, added = self.request("POST", "/speakers/2/queue", {"songs": 2, "position": 3})
        assert added == {"first_track": 3, "queue_length": length + 3}
        for position in (0, 10**6):
            status, added = self.request(
                "POST", "/speakers/2/queue", {"uri": song, "position": position}
            )
            assert added["first_track"] == added["queue_length"] == len(transport.queue)
            assert transport.queue[-1].uri == song
        status, error = self.request("POST", "/speakers/2/queue", {"songs": 1, "position": -1})
        assert status == 400 and "position" in error["error"]

    def test_pair_route_bonds_a_stereo_pair(self) -> None:
        """POST pair makes the named speaker the invisible right half of this speaker's
        room; pairing a bonded speaker again, or an unknown one, is refused."""
        left, right, other = self.household.speakers
        status, state = self.request("POST", "/speakers/0/pair", {"right": "1"})
        assert status == 200 and state["coordinator"] == left.uid
        assert (right.invisible, right.pair_partner, right.name) == (True, left.uid, left.name)
        assert f"{left.uid}:LF,LF;{right.uid}:RF,RF" in self.household.zone_group_state()
        status, error = self.request("POST", "/speakers/2/pair", {"right": "1"})
        assert status == 409 and "bonded" in error["error"]
        assert self.request("POST", "/speakers/2/pair", {"right": "9"})[0] == 404
        assert self.request("GET", "/speakers/2/pair")[0] == 405
        assert not other.invisible

    def test_separate_route_frees_the_right_speaker(self) -> None:
        """POST separate on either half of a pair makes the right speaker visible again, a
        group of its own keeping the room name; a speaker in no pair is refused with 409."""
        left, right, _ = self.household.speakers
        self.request("POST", "/speakers/0/pair", {"right": "1"})
        status, state = self.request("POST", "/speakers/1/separate")
        assert (status, state["invisible"], state["coordinator"]) == (200, False, right.uid)
        assert (right.pair_partner, right.name, left.channel_map) == (None, left.name, "")
        status, error = self.request("POST", "/speakers/0/separate")
        assert status == 409 and "not in a stereo pair" in error["error"]
        assert self.request("GET", "/speakers/0/separate")[0] == 405
        self.request("POST", "/speakers/0/pair", {"right": "1"})
        assert self.request("POST", "/speakers/0/separate")[0] == 200
        assert not right.invisible

    def test_satellite_routes_bond_and_free_a_surround(self) -> None:
        """POST add-satellite on a soundbar bonds the named speaker as its invisible
        satellite on the channel given; POST remove-satellite on the satellite frees it with
        its own room name; speakers that cannot do either are refused with 409."""
        one, beam, other = self.household.speakers
        name = other.name
        body = {"satellite": "2", "channel": "LR"}
        status, state = self.request("POST", "/speakers/1/add-satellite", body)
        assert (status, state["satellites"]) == (200, [other.uid])
        assert (other.invisible, other.ht_primary, other.name) == (True, beam.uid, beam.name)
        assert f"{beam.uid}:LF,RF;{other.uid}:LR" in self.household.zone_group_state()
        status, error = self.request("POST", "/speakers/0/add-satellite", body)
        assert status == 409 and "not a soundbar" in error["error"]
        sub = {"satellite": "0", "channel": "SW"}
        status, error = self.request("POST", "/speakers/1/add-satellite", sub)
        assert status == 409 and "cannot play SW" in error["error"]
        assert self.request("GET", "/speakers/1/add-satellite")[0] == 405
        status, state = self.request("POST", "/speakers/2/remove-satellite")
        assert (status, state["invisible"], state["name"]) == (200, False, name)
        assert (state["coordinator"], beam.satellites) == (other.uid, [])
        status, error = self.request("POST", "/speakers/2/remove-satellite")
        assert status == 409 and "not a home-theatre satellite" in error["error"]
        assert not one.invisible

    def test_faults(self) -> None:
        """reboot, offline, online, address and burst reach the speaker and its manager."""
        speaker = self.household.speakers[0]
        status, reboot = self.request("POST", "/speakers/0/reboot", {"downtime": 3})
        assert status == 200 and reboot["boot_seq"] == speaker.boot_seq + 1
        assert self.managers[0].calls == ["forget_all"]
        self.clock.advance(3)
        assert speaker.network is not None and speaker.network.mode == "up"
        status, _ = self.request("POST", "/speakers/0/offline", {"mode": "hang"})
        assert speaker.network.mode == "hang" and self.managers[0].paused
        self.request("POST", "/speakers/0/online")
        assert speaker.network.mode == "up" and not self.managers[0].paused
        status, state = self.request("POST", "/speakers/0/address", {"address": "127.0.0.99"})
        assert (status, state["address"]) == (200, "127.0.0.99")
        for address in ("192.168.1.20", "0.0.0.0", "128.0.0.1"):
            status, error = self.request("POST", "/speakers/0/address", {"address": address})
            assert (status, speaker.address) == (400, "127.0.0.99")
            assert error["error"] == (
                "address: expected a loopback address (127.0.0.0/8): the simulator takes no "
                f"address off this machine, got {address!r}"
            )
        status, error = self.request("POST", "/speakers/0/address", {"address": "kitchen"})
        assert status == 400 and error["error"].startswith("address: expected an IPv4 address")
        taken = self.household.speakers[1].address
        status, error = self.request("POST", "/speakers/0/address", {"address": taken})
        assert (status, error["error"], speaker.address) == (
            400,
            f"address: {taken} is already used by another speaker",
            "127.0.0.99",
        )
        status, _ = self.request("POST", "/speakers/0/burst", {"count": 7})
        assert status == 200
        assert self.request("POST", "/speakers/0/offline", {"mode": "sleep"})[0] == 400

    def test_gena_faults_pass_through(self) -> None:
        """GENA faults are read and set on the speaker's manager; DELETE resets them."""
        status, _faults = self.request(
            "PATCH", "/speakers/1/gena/faults", {"drop_next": 2, "renew_status": 503, "delay": 1}
        )
        assert status == 200
        manager = self.managers[1]
        assert (manager.faults.drop_next, manager.faults.renew_status) == (2, 503)
        assert manager.faults.delay == 1.0
        assert self.request("PATCH", "/speakers/1/gena/faults", {"drop_next": -1})[0] == 400
        assert self.request("PATCH", "/speakers/1/gena/faults", {"explode": 1})[0] == 400
        for seq in (0, 4294967296, "1", True):
            assert self.request("PATCH", "/speakers/1/gena/faults", {"next_seq": seq})[0] == 400
        assert self.request("PATCH", "/speakers/1/gena/faults", {"next_seq": 4294967295})[0] == 200
        assert manager.faults.next_seq == 4294967295
        hostile = {"answer_sid": "", "answer_timeout": "Second-0", "answer_status_line": "x"}
        assert self.request("PATCH", "/speakers/1/gena/faults", hostile)[0] == 200
        assert (manager.faults.answer_sid, manager.faults.answer_timeout) == ("", "Second-0")
        for name in ("answer_sid", "answer_timeout"):
            assert self.request("PATCH", "/speakers/1/gena/faults", {name: 1})[0] == 400
        assert self.request("PATCH", "/speakers/1/gena/faults", {"answer_sid": None})[0] == 200
        assert manager.faults.answer_sid is None
        for only in ("UNSUBSCRIBE", "SUBSCRIBE", ""):
            assert self.request("PATCH", "/speakers/1/gena/faults", {"answer_only": only})[0] == 200
            assert manager.faults.answer_only == only
        status, error = self.request("PATCH", "/speakers/1/gena/faults", {"answer_only": "NOTIFY"})
        assert status == 400 and "answer_only" in error["error"]
        unsubscribe = {"unsubscribe_status": 503, "unsubscribe_hang": True}
        assert self.request("PATCH", "/speakers/1/gena/faults", unsubscribe)[0] == 200
        assert (manager.faults.unsubscribe_status, manager.faults.unsubscribe_hang) == (503, True)
        assert self.request("PATCH", "/speakers/1/gena/faults", {"unsubscribe_hang": 1})[0] == 400
        status, gena = self.request("GET", "/speakers/1/gena")
        assert gena["faults"]["drop_next"] == 2 and gena["subscriptions"] == []
        self.request("DELETE", "/speakers/1/gena/faults")
        assert manager.faults.drop_next == 0
        status, sent = self.request(
            "POST",
            "/speakers/1/gena/unknown-sid",
            {"callback": "http://127.0.0.1:9/", "service": "RenderingControl"},
        )
        assert (status, sent["status"]) == (200, 412)

    def test_activity(self) -> None:
        """The activity rate is read and set."""
        status, activity = self.request("PATCH", "/activity", {"rate": 2})
        assert status == 200 and activity["running"]
        self.clock.advance(10)
        status, activity = self.request("GET", "/activity")
        assert activity["changes"] > 0
        self.request("PATCH", "/activity", {"rate": 0})
        assert not self.activity.running

    def test_content_and_accounts(self) -> None:
        """GET /content shows favourites with kinds, playlists, alarms and accounts; PUT
        /accounts replaces the accounts and events the MusicServices version."""
        status, content = self.request("GET", "/content")
        assert status == 200
        assert {f["kind"] for f in content["favorites"]} >= {"station", "album"}
        assert content["playlists"][0]["id"] == "SQ:1"
        assert content["alarms"]["version"] == self.household.alarm_list_version()
        assert {a["service"] for a in content["accounts"]} == {"Spotify", "TIDAL"}
        status, accounts = self.request("PUT", "/accounts", {"services": ["Apple Music", 2311]})
        assert status == 200
        assert [a["type"] for a in accounts["accounts"]] == [2311, 52231]
        assert self.managers[0].of("MusicServices")[-1]["ServiceListVersion"].endswith(":2")
        for body in ({"services": "Spotify"}, {"services": ["Napster"]}):
            status, error = self.request("PUT", "/accounts", body)
            assert status == 400 and error["error"], body
        status, _ = self.request("DELETE", "/accounts")
        assert status == 405


class ModeAdminTests(SynchronousTestCase):
    """The household and firmware mode switches of the admin API, over two households."""

    def setUp(self) -> None:
        self.clock = Clock()
        config = SimulateConfig(speakers=4, households=2, models=("S18", "S27"))
        self.neighbourhood = Neighbourhood.build(self.clock, config, seed=3)
        self.managers = []
        for speaker in self.neighbourhood.speakers:
            manager = RecordingManager(self.clock, speaker.uid, speaker.address, None, "")
            speaker.manager = manager
            speaker.network = FakePresence(address=speaker.address)
            self.managers.append(manager)
        self.http = StubTreq(AdminResource(self.neighbourhood))

    def request(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        data = json.dumps(body).encode() if body is not None else b""
        response = self.successResultOf(self.http.request(method, f"http://admin{path}", data=data))
        return response.code, json.loads(self.successResultOf(response.content()))

    def test_households_are_listed_and_switched_apart(self) -> None:
        """GET /households lists both; PATCH modes on one leaves the other alone."""
        status, households = self.request("GET", "/households")
        assert status == 200 and len(households) == 2
        second = households[1]["household_id"]
        assert [s["household_id"] for s in households[1]["speakers"]] == [second, second]
        status, changed = self.request(
            "PATCH", f"/households/{second}/modes", {"upnp": False, "upnp_off_ssdp": "silent"}
        )
        assert status == 200 and changed["modes"]["upnp"] is False
        first, other = self.neighbourhood.households
        assert first.modes.upnp and not other.modes.upnp
        assert self.managers[2].calls == ["unsubscribe_all"] and self.managers[0].calls == []
        status, household = self.request(
            "PATCH", "/household/modes", {"large_household": True, "large_household_players": 1}
        )
        assert household["modes"]["large_household"] and first.modes.large_household
        assert self.request("GET", "/households/1")[1]["household_id"] == second
        assert self.request("GET", "/households/5")[0] == 404
        assert self.request("PATCH", "/household/modes", {"upnp": "off"})[0] == 400
        assert self.request("PATCH", "/household/modes", {"colour": 1})[0] == 400
        assert self.request("PATCH", "/household/modes", {"upnp_off_ssdp": "loud"})[0] == 400
        for mode in ("regroup_delay", "topology_settle"):
            for delay in (-1, 61, "2", True):
                assert self.request("PATCH", "/household/modes", {mode: delay})[0] == 400
            status, household = self.request("PATCH", "/household/modes", {mode: 2})
            assert (status, household["modes"][mode]) == (200, 2.0)
        status, household = self.request(
            "PATCH", "/household/modes", {"upnp_off_forbidden": ["scpd"]}
        )
        assert household["modes"]["upnp_off_forbidden"] == ["scpd"]
        for bad in ("scpd", ["album art"]):
            body = {"upnp_off_forbidden": bad}
            assert self.request("PATCH", "/household/modes", body)[0] == 400

    def test_household_mode_ranges_are_the_documented_ones(self) -> None:
        """PATCH /household/modes takes large_household_players 1-1000 and regroup_delay and
        topology_settle 0-60 s, both ends included; one past an end is a 400 naming the key
        and leaves the modes as they were."""
        ranges = {"large_household_players": (1, 1000), "regroup_delay": (0, 60)}
        ranges["topology_settle"] = (0, 60)
        for key, (low, high) in ranges.items():
            for value in (low, high):
                status, household = self.request("PATCH", "/household/modes", {key: value})
                assert (status, household["modes"][key]) == (200, value), key
            for value in (low - 1, high + 1):
                status, error = self.request("PATCH", "/household/modes", {key: value})
                assert status == 400 and key in error["error"], (key, value, error)
                assert getattr(self.neighbourhood.household.modes, key) == high

    def test_leave_and_rejoin_household(self) -> None:
        """POST leave-household takes a speaker out of its household's ZoneGroupState,
        rejoin-household brings it back."""
        status, body = self.request("POST", "/speakers/1/leave-household", {})
        assert (status, body["left_household"]) == (200, True)
        first = self.neighbourhood.households[0]
        uid = first.speakers[1].uid
        assert uid not in first.zone_group_state()
        status, body = self.request("POST", "/speakers/1/rejoin-household", {})
        assert (status, body["left_household"]) == (200, False)
        assert uid in first.zone_group_state()

    def test_speakers_are_numbered_across_households(self) -> None:
        """Index 3 is the second household's second speaker."""
        status, state = self.request("GET", "/speakers/3")
        assert status == 200 and state["uid"] == self.neighbourhood.households[1].speakers[1].uid
        assert len(self.request("GET", "/speakers")[1]) == 4

    def test_portable_routes(self) -> None:
        """battery, sleep, bluetooth and wake act on a portable; a One refuses with 409."""
        status, state = self.request(
            "PATCH", "/speakers/1/battery", {"level": 30, "power_source": "SONOS_CHARGING_RING"}
        )
        assert status == 200
        assert state["battery"] == {
            "level": 30,
            "power_source": "SONOS_CHARGING_RING",
            "charging": True,
            "temperature": 25,
        }
        status, state = self.request("POST", "/speakers/1/sleep", {"mode": "hang"})
        assert (status, state["asleep"], state["vanished"]) == (200, True, "sleeping")
        assert state["network"] == "hang"
        status, state = self.request("POST", "/speakers/1/wake")
        assert (status, state["asleep"], state["network"]) == (200, False, "up")
        status, state = self.request("POST", "/speakers/1/bluetooth")
        assert state["vanished"] == "switch to bluetooth"
        assert self.request("POST", "/speakers/0/sleep")[0] == 409
        assert self.request("PATCH", "/speakers/0/battery", {"level": 5})[0] == 409
        assert self.request("PATCH", "/speakers/1/battery", {"level": 101})[0] == 400
        assert self.request("PATCH", "/speakers/1/battery", {"colour": 1})[0] == 400
        assert self.request("POST", "/speakers/1/sleep", {"mode": "nap"})[0] == 400

    def test_https_only_switch(self) -> None:
        """PATCH modes sets https_only and tells the network presence to serve TLS."""
        status, state = self.request("PATCH", "/speakers/2/modes", {"https_only": True})
        assert status == 200 and state["https_only"] is True
        speaker = self.neighbourhood.speakers[2]
        assert isinstance(speaker.network, FakePresence)
        assert speaker.network.calls == ["secure True"]
        assert self.request("PATCH", "/speakers/2/modes", {})[1]["https_only"] is True
        assert self.request("PATCH", "/speakers/2/modes", {"https_only": 1})[0] == 400
        assert self.request("PATCH", "/speakers/2/modes", {"upnp": False})[0] == 400


METHODS = ("GET", "POST", "PATCH", "PUT", "DELETE")


def documented_routes() -> set[tuple[str, str]]:
    """(method, path) of every row of the admin API table in docs/simulator.md: a row names
    ``GET /a`` / ``PATCH /a/b``, ``GET``, ``PATCH``, ``DELETE /a`` (methods sharing a path)
    or ``POST /a/play``, ``/pause`` (siblings sharing a method)."""
    text = (ROOT / "docs" / "simulator.md").read_text()
    section = text.split("## Admin API", 1)[1].split("\n## ", 1)[0]
    routes = set()
    for line in section.splitlines():
        if not line.startswith("| `"):
            continue
        pending: list[str] = []
        method, path = "", ""
        for token in re.findall(r"`([^`]+)`", line.split("|")[1]):
            if token in METHODS:
                pending.append(token)
            elif token.split(" ", 1)[0] in METHODS:
                method, path = token.split(" ", 1)
                routes.update((m, path) for m in (*pending, method))
                pending = []
            else:
                assert token.startswith("/") and method, token
                routes.add((method, path.rpartition("/")[0] + token))
    return routes


def served_routes() -> set[tuple[str, str]]:
    """(method, path) of every route GET / lists, with GET / itself."""
    routes = {("GET", "/")}
    for route in ROUTES:
        methods, path = route.split(" ", 1)
        head, _, last = path.rpartition("/")
        for method in methods.split("|"):
            routes.update((method, f"{head}/{action}") for action in last.split("|"))
    return routes


def test_every_route_is_documented() -> None:
    """The routes GET / lists are exactly the rows of the admin API table in
    docs/simulator.md, both ways (each method and, for a row of several actions, each
    action)."""
    documented, served = documented_routes(), served_routes()
    assert sorted(served - documented) == [], "served but not in the table"
    assert sorted(documented - served) == [], "in the table but not served"


@pytest.mark.parametrize("path", sorted({path for _, path in documented_routes()}))
def test_documented_routes_answer_and_other_methods_are_405(path: str) -> None:
    """Each documented route is answered by the admin API (whatever its body, never "no such
    route" nor 405), and every method the table does not give the path answers 405 naming
    the ones it does, on a fresh household each time."""
    allowed = {method for method, p in documented_routes() if p == path}
    for method in METHODS:
        clock = Clock()
        household = Household(clock, speakers=3, seed=5, transition_delay=0)
        for speaker in household.speakers:
            speaker.manager = RecordingManager(clock, speaker.uid, speaker.address, None, "")
            speaker.network = FakePresence(address=speaker.address)
        http = StubTreq(AdminResource(household, ActivityGenerator(clock, household, 0.0, seed=1)))
        url = "http://admin" + path.replace("{id}", "0").replace("{n}", "0")
        answered = http.request(method, url, data=b"")
        clock.advance(60)
        http.flush()
        response = answered.result
        content = response.content()
        http.flush()
        body = json.loads(content.result)
        if method in allowed:
            assert response.code not in (404, 405), (method, path, body)
        else:
            assert response.code == 405, (method, path, body)
            named = body["error"].split("; use ", 1)
            assert named[0] == f"method {method} not allowed", body
            assert sorted(named[1].split(", ")) == sorted(allowed), body


def fresh_admin() -> tuple[Clock, Household, list[RecordingManager], StubTreq]:
    """A household of a Sonos One and a Beam (the Beam has night and dialog mode) with
    recording GENA managers, and its admin API in memory."""
    clock = Clock()
    household = Household(clock, speakers=2, seed=5, models=("S18", "S14"), transition_delay=0)
    managers = []
    for speaker in household.speakers:
        speaker.manager = RecordingManager(clock, speaker.uid, speaker.address, None, "")
        speaker.network = FakePresence(address=speaker.address)
        managers.append(speaker.manager)
    return clock, household, managers, StubTreq(AdminResource(household))


def admin_call(http: StubTreq, method: str, path: str, body: Any) -> tuple[int, Any]:
    """One admin request in memory: its status and decoded JSON."""
    answered = http.request(method, f"http://admin{path}", data=json.dumps(body).encode())
    http.flush()
    response = answered.result
    content = response.content()
    http.flush()
    return response.code, json.loads(content.result)


def playing_a_stream(speaker: Speaker) -> None:
    """The speaker's source is a radio station, not its queue."""
    speaker.transport.set_uri(STATIONS[0].uri, "", STATIONS[0])


#: Every state key the speaker can refuse (409), with a state in which it does: the set-up,
#: the key and its value, the UPnP error.
REFUSED_STATE_KEYS = [
    ("transport", lambda s: s.transport.clear_queue(), "PLAYING", 701),
    ("transport", lambda s: None, "PAUSED_PLAYBACK", 701),
    ("track", lambda s: None, 9, 711),
    ("track", playing_a_stream, 1, 701),
    ("position", lambda s: None, "1:00:00", 711),
    ("position", playing_a_stream, "0:00:10", 701),
    ("play_mode", playing_a_stream, "SHUFFLE", 712),
    ("play_mode", lambda s: None, "BACKWARDS", 712),
    ("crossfade", playing_a_stream, True, 800),
    ("night_mode", lambda s: None, True, 402),
    ("dialog_mode", lambda s: None, True, 402),
]


@pytest.mark.parametrize(
    ("key", "setup", "value", "code"),
    REFUSED_STATE_KEYS,
    ids=[f"{key}-{value}" for key, _, value, _ in REFUSED_STATE_KEYS],
)
def test_a_refused_state_key_changes_nothing(
    key: str, setup: Callable[[Speaker], object], value: Any, code: int
) -> None:
    """PATCH state is all or nothing: when the speaker refuses one key (409 with its UPnP
    error), the keys before it in the same body (volume, mute, name, status light, group
    mute, sleep timer, and a play mode or a track where the source takes them) are not
    applied either: every speaker's state, every event sent and every timer are as before."""
    clock, household, managers, http = fresh_admin()
    one = household.speakers[0]  # a Sonos One on its queue, stopped at track 1 of 8
    setup(one)
    body: dict[str, Any] = {
        "volume": 3 if one.rendering.volume != 3 else 4,
        "mute": not one.rendering.mute,
        "name": "Studio",
        "led": not one.led_on,
        "group_mute": not one.group_mute(),
        "sleep_timer": 600,
    }
    if one.transport.on_queue and one.transport.queue and key not in ("play_mode", "track"):
        body.update(play_mode="REPEAT_ALL", track=2)
    body[key] = value
    before = admin_call(http, "GET", "/speakers", None)
    evented = [list(m.notifications) for m in managers]
    timers = clock.getDelayedCalls()
    status, error = admin_call(http, "PATCH", "/speakers/0/state", body)
    assert (status, error["upnp_error"]) == (409, code), error
    assert admin_call(http, "GET", "/speakers", None) == before
    assert [m.notifications for m in managers] == evented
    assert clock.getDelayedCalls() == timers
    body.pop(key)
    status, state = admin_call(http, "PATCH", "/speakers/0/state", body)
    assert (status, state["name"], state["sleep_timer"]) == (200, "Studio", 600)


@pytest.mark.parametrize(
    ("path", "body", "status"),
    [
        ("/household/modes", {"upnp": False, "regroup_delay": 99}, 400),
        ("/households/0/modes", {"large_household_players": 2, "upnp_off_ssdp": "loud"}, 400),
        ("/speakers/0/modes", {"https_only": "yes"}, 400),
        ("/speakers/0/battery", {"level": 5, "power_source": "USB_POWER"}, 409),
        ("/speakers/0/gena/faults", {"drop_next": 2, "renew_status": 42}, 400),
        ("/speakers/0/soap/faults", {"padding": 10, "doctype": True, "drip": -1}, 400),
    ],
)
def test_every_refused_patch_changes_nothing(path: str, body: dict[str, Any], status: int) -> None:
    """Every PATCH route answered with an error (a bad value, a Sonos One that has no
    battery) applies nothing of its body: the households, every speaker, their GENA and SOAP
    faults and what their GENA managers were told are as before."""
    _, _, managers, http = fresh_admin()

    def everything() -> list[Any]:
        return [
            admin_call(http, "GET", "/households", None),
            admin_call(http, "GET", "/speakers", None),
            [admin_call(http, "GET", f"/speakers/{n}/soap/faults", None) for n in (0, 1)],
            [(attrs.asdict(m.faults), m.calls, m.notifications) for m in managers],
        ]

    before = everything()
    answered, error = admin_call(http, "PATCH", path, body)
    assert answered == status and error["error"], error
    assert everything() == before


def test_state_keys_apply_in_order_and_together() -> None:
    """The keys of one PATCH state are tried in the body's order, each on the state the
    earlier ones make: a position past the first track's end is taken after a track long
    enough for it, and play, then a track, is taken from a speaker with no source yet."""
    clock, household, _, http = fresh_admin()
    one = household.speakers[0]
    queue = one.transport.queue
    longest = max(range(len(queue)), key=lambda n: queue[n].duration)
    assert queue[longest].duration > queue[0].duration + 1
    position = format_duration(queue[0].duration + 1)
    status, error = admin_call(http, "PATCH", "/speakers/0/state", {"position": position})
    assert (status, error["upnp_error"]) == (409, 711)
    status, state = admin_call(
        http, "PATCH", "/speakers/0/state", {"track": longest + 1, "position": position}
    )
    assert (status, state["track"], state["position"]) == (200, longest + 1, position)
    one.transport.clear_source()
    status, error = admin_call(http, "PATCH", "/speakers/0/state", {"track": 3})
    assert (status, error["upnp_error"]) == (409, 701)
    status, state = admin_call(
        http, "PATCH", "/speakers/0/state", {"transport": "PLAYING", "track": 3}
    )
    clock.advance(0)
    assert status == 200 and state["track"] == 3
    assert (one.transport.state, one.transport.track_no) == ("PLAYING", 3)


EVENT_PATHS = {
    "AVTransport": "/MediaRenderer/AVTransport/Event",
    "RenderingControl": "/MediaRenderer/RenderingControl/Event",
    "GroupRenderingControl": "/MediaRenderer/GroupRenderingControl/Event",
    "ZoneGroupTopology": "/ZoneGroupTopology/Event",
}


class LoopbackAdminTests(TestCase):
    """The admin API of a running three-speaker household, watched by a raw GENA subscriber."""

    timeout = 60

    def setUp(self) -> Deferred[Any]:
        config = SimulateConfig(
            speakers=3, base_address=free_loopback_base(count=6), admin="tcp:0:interface=127.0.0.1"
        )
        self.service = HouseholdService(reactor, config, transition_delay=0.01)
        self.household = self.service.household
        self.service.startService()
        self.addCleanup(self.service.stopService)
        self.receiver = Receiver()
        port = reactor.listenTCP(0, self.receiver, interface="127.0.0.1")
        self.addCleanup(port.stopListening)
        self.callback = f"<http://127.0.0.1:{port.getHost().port}/>".encode()
        self.http = HTTPClient(Agent(reactor, pool=HTTPConnectionPool(reactor, persistent=False)))
        assert self.service.admin_ready is not None
        return self.service.admin_ready

    async def admin(self, method: str, path: str, body: object = None) -> tuple[int, Any]:
        """Call the admin API; returns (status, decoded JSON)."""
        data = json.dumps(body).encode() if body is not None else None
        response = await self.http.request(method, f"{self.service.admin_url}{path}", data=data)
        return response.code, json.loads(await response.content())

    async def subscribe(self, speaker: Speaker, service: str) -> str:
        """Subscribe the raw subscriber; return the SID once its SEQ 0 NOTIFY arrived."""
        url = f"http://{speaker.address}:{speaker.port}{EVENT_PATHS[service]}".encode()
        status, headers = await gena_call(
            b"SUBSCRIBE",
            url,
            {b"CALLBACK": self.callback, b"NT": b"upnp:event", b"TIMEOUT": b"Second-600"},
        )
        assert status == 200, status
        [sid] = headers.getRawHeaders(b"SID") or []
        await until(lambda: self.of(sid.decode()), f"the initial {service} NOTIFY")
        return sid.decode()

    def of(self, sid: str) -> list[Received]:
        """The NOTIFYs of one subscription received so far, in arrival order."""
        return [r for r in self.receiver.received if r.notify.sid == sid]

    async def test_burst_group_rendering_notifies_each_change_last_change_once(self) -> None:
        """POST burst sends one GroupRenderingControl NOTIFY per change but merges an
        AVTransport burst into one moderated NOTIFY."""
        speaker = self.household.speakers[0]
        group = await self.subscribe(speaker, "GroupRenderingControl")
        transport = await self.subscribe(speaker, "AVTransport")
        status, _ = await self.admin(
            "POST", "/speakers/0/burst", {"count": 5, "service": "GroupRenderingControl"}
        )
        assert status == 200
        await until(lambda: len(self.of(group)) == 6, "five GroupRenderingControl NOTIFYs")
        assert [r.notify.seq for r in self.of(group)] == [0, 1, 2, 3, 4, 5]
        mutes = [parse_event_xml(r.notify.body)["group_mute"] for r in self.of(group)[1:]]
        assert mutes == ["1", "0", "1", "0", "1"]
        status, _ = await self.admin(
            "POST", "/speakers/0/burst", {"count": 7, "service": "AVTransport"}
        )
        assert status == 200
        await until(lambda: len(self.of(transport)) >= 2, "the moderated AVTransport NOTIFY")
        # Let three more moderation windows pass: an unmerged burst would send more.
        await deferLater(reactor, 3 * self.service.config.moderation)
        [_, merged] = self.of(transport)
        assert parse_event_xml(merged.notify.body)["current_crossfade_mode"] == "1"

    async def test_reboot_is_evented_to_every_topology_subscriber(self) -> None:
        """POST reboot brings the speaker back with BootSeq + 1, and every other speaker's
        ZoneGroupTopology subscriber gets a ZoneGroupState saying so."""
        rebooted, *others = self.household.speakers
        before = rebooted.boot_seq
        sids = [await self.subscribe(other, "ZoneGroupTopology") for other in others]
        status, answer = await self.admin("POST", "/speakers/0/reboot", {"downtime": 0.5})
        assert (status, answer["boot_seq"]) == (200, before + 1)

        def evented(sid: str) -> bool:
            return any(boot_seq(r, rebooted.uid) == str(before + 1) for r in self.of(sid)[1:])

        for sid in sids:
            await until(partial(evented, sid), "the new BootSeq evented")
        status, state = await self.admin("GET", "/speakers/0")
        assert (status, state["boot_seq"], state["network"]) == (200, before + 1, "up")

    async def test_nothing_is_sent_or_bound_off_this_machine(self) -> None:
        """An unknown-SID NOTIFY to a callback off loopback, and an address change to one,
        are 400s naming the key: nothing is sent, the speaker stays where it listens."""
        speaker = self.household.speakers[1]
        sent = speaker.gena
        assert sent is not None
        before = sent.stats()
        status, error = await self.admin(
            "POST", "/speakers/1/gena/unknown-sid", {"callback": "http://192.0.2.20:9/"}
        )
        assert status == 400 and error["error"].startswith("callback: expected a host on this")
        status, error = await self.admin("POST", "/speakers/1/address", {"address": "10.0.0.2"})
        assert status == 400 and error["error"].startswith("address: expected a loopback")
        assert sent.stats() == before
        status, state = await self.admin("GET", "/speakers/1")
        assert (status, state["address"], state["network"]) == (200, speaker.address, "up")

    async def test_address_change_moves_location_and_notifies(self) -> None:
        """POST address: the ZoneGroupState's Location follows (evented) and the speaker's
        later NOTIFYs come from the new address."""
        moved = self.household.speakers[1]
        old = moved.address
        new = old.rsplit(".", 1)[0] + ".6"
        topology = await self.subscribe(self.household.speakers[0], "ZoneGroupTopology")
        rendering = await self.subscribe(moved, "RenderingControl")
        assert self.of(rendering)[0].peer == old
        status, state = await self.admin("POST", "/speakers/1/address", {"address": new})
        assert (status, state["address"]) == (200, new)
        location = f"http://{new}:1400/xml/device_description.xml"
        await until(
            lambda: any(
                member_attribute(r, moved.uid, "Location") == location
                for r in self.of(topology)[1:]
            ),
            "the new Location evented",
        )
        volume = 13 if moved.rendering.volume == 12 else 12
        status, _ = await self.admin("PATCH", "/speakers/1/state", {"volume": volume})
        assert status == 200
        await until(lambda: len(self.of(rendering)) >= 2, "the volume NOTIFY")
        assert {r.peer for r in self.of(rendering)[1:]} == {new}

    async def get_volume(self, speaker: Speaker) -> bytes:
        """The raw answer of a SOAP GetVolume to ``speaker``, checked to be a 200."""
        response = await self.http.post(
            f"http://{speaker.address}:{speaker.port}{CONTROL}",
            data=GET_VOLUME.encode(),
            headers=SOAP_HEADERS,
        )
        body: bytes = await response.content()
        assert response.code == 200, (response.code, body[:200])
        return body

    async def test_soap_faults_route(self) -> None:
        """GET, PATCH and DELETE soap/faults read, set and clear the hostile answers: padding
        puts that much whitespace inside the envelope, doctype declares a DTD whose entity
        expands to 5 MB in the answer, and after DELETE the answer is plain again."""
        speaker = self.household.speakers[0]
        plain = await self.get_volume(speaker)
        status, faults = await self.admin("GET", "/speakers/0/soap/faults")
        assert (status, faults) == (200, NO_SOAP_FAULTS)
        status, faults = await self.admin("PATCH", "/speakers/0/soap/faults", {"padding": 50_000})
        assert (status, faults["padding"]) == (200, 50_000)
        padded = await self.get_volume(speaker)
        assert len(padded) == len(plain) + 50_000
        assert b" " * 50_000 in padded or b"\n" * 50_000 in padded
        root = ElementTree.fromstring(padded)
        assert root.tag == "{http://schemas.xmlsoap.org/soap/envelope/}Envelope"
        assert ElementTree.fromstring(plain).findtext(".//CurrentVolume") == root.findtext(
            ".//CurrentVolume"
        )
        await self.admin("DELETE", "/speakers/0/soap/faults")
        status, faults = await self.admin("PATCH", "/speakers/0/soap/faults", {"doctype": True})
        assert (status, faults["doctype"]) == (200, True)
        hostile = await self.get_volume(speaker)
        assert b"<!DOCTYPE" in hostile and len(hostile) < 10_000
        expanded = ElementTree.fromstring(hostile).findtext(".//CurrentVolume")
        assert expanded is not None and len(expanded) >= 5_000_000
        status, faults = await self.admin("DELETE", "/speakers/0/soap/faults")
        assert (status, faults) == (200, NO_SOAP_FAULTS)
        assert await self.get_volume(speaker) == plain
        status, error = await self.admin("PATCH", "/speakers/0/soap/faults", {"padding": -1})
        assert status == 400 and "padding" in error["error"]

    async def test_soap_faults_nest_garble_and_reach_the_description(self) -> None:
        """PATCH nesting and not_utf8 put elements nested that deep and bytes that are not
        UTF-8 at the end of the envelope (the out-arguments unchanged); status_line replaces
        the status line; with description the device description is answered so too."""
        speaker = self.household.speakers[0]
        await self.admin("PATCH", "/speakers/0/soap/faults", {"nesting": 5, "not_utf8": True})
        hostile = await self.get_volume(speaker)
        assert hostile.endswith(
            b"</s:Body>" + b"<Nested>" * 5 + b"</Nested>" * 5 + NOT_UTF8 + b"</s:Envelope>"
        )
        with self.assertRaises(UnicodeDecodeError):
            hostile.decode("utf-8")
        root = ElementTree.fromstring(hostile.replace(NOT_UTF8, b""))
        assert root.findtext(".//CurrentVolume") == str(speaker.rendering.volume)
        description_url = f"http://{speaker.address}:{speaker.port}/xml/device_description.xml"
        plain = await (await self.http.get(description_url)).content()
        assert b"<Nested>" not in plain
        await self.admin("PATCH", "/speakers/0/soap/faults", {"description": True})
        described = await (await self.http.get(description_url)).content()
        assert described.endswith(b"<Nested>" * 5 + b"</Nested>" * 5 + NOT_UTF8 + b"</root>")
        status, faults = await self.admin(
            "PATCH", "/speakers/0/soap/faults", {"status_line": "garbage", "nesting": 0}
        )
        assert (status, faults["status_line"]) == (200, "garbage")
        for request in (self.get_volume(speaker), self.http.get(description_url)):
            with self.assertRaises(ResponseFailed) as failed:
                await request
            [reason] = failed.exception.reasons
            assert reason.check(ParseError) and b"garbage" in str(reason.value).encode()
        await self.admin("DELETE", "/speakers/0/soap/faults")
        assert await (await self.http.get(description_url)).content() == plain

    async def test_soap_fault_rewrites_one_value(self) -> None:
        """PATCH rewrite_action, rewrite_name and rewrite_value make the speaker answer that
        action with the value in place of the out-argument so named; other actions and DELETE
        leave answers plain."""
        speaker = self.household.speakers[0]
        plain = await self.get_volume(speaker)
        status, faults = await self.admin(
            "PATCH",
            "/speakers/0/soap/faults",
            {
                "rewrite_action": "GetVolume",
                "rewrite_name": "CurrentVolume",
                "rewrite_value": "\u00b2",
            },
        )
        assert (status, faults["rewrite_value"]) == (200, "\u00b2")
        hostile = await self.get_volume(speaker)
        assert ElementTree.fromstring(hostile).findtext(".//CurrentVolume") == "\u00b2"
        await self.admin("DELETE", "/speakers/0/soap/faults")
        assert await self.get_volume(speaker) == plain
        status, error = await self.admin(
            "PATCH", "/speakers/0/soap/faults", {"rewrite_value": "9" * 65}
        )
        assert status == 400 and "rewrite_value" in error["error"]

    async def test_soap_fault_with_an_error_code_that_is_no_number(self) -> None:
        """PATCH error_code makes every action a UPnP fault (HTTP 500) carrying that text as
        its errorCode, escaped; a code that is no text, or over 64 characters, is a 400."""
        speaker = self.household.speakers[0]
        status, _ = await self.admin("PATCH", "/speakers/0/soap/faults", {"error_code": "<\u00b2"})
        assert status == 200
        response = await self.http.post(
            f"http://{speaker.address}:{speaker.port}{CONTROL}",
            data=GET_VOLUME.encode(),
            headers=SOAP_HEADERS,
        )
        body = await response.content()
        assert response.code == 500
        code = ElementTree.fromstring(body).findtext(
            ".//{urn:schemas-upnp-org:control-1-0}errorCode"
        )
        assert code == "<\u00b2"
        for bad in (7, "9" * 65):
            status, error = await self.admin(
                "PATCH", "/speakers/0/soap/faults", {"error_code": bad}
            )
            assert status == 400 and "error_code" in error["error"]
        await self.admin("DELETE", "/speakers/0/soap/faults")
        await self.get_volume(speaker)

    async def test_gena_route_reports_subscriptions_counters_and_paused(self) -> None:
        """GET gena lists the live subscription, counts NOTIFYs sent and dropped as they
        happen, and says paused while the speaker is offline and not once it is back."""
        speaker = self.household.speakers[0]
        sid = await self.subscribe(speaker, "RenderingControl")
        status, gena = await self.admin("GET", "/speakers/0/gena")
        assert status == 200 and gena["paused"] is False
        assert [(s["sid"], s["service"], s["seq"]) for s in gena["subscriptions"]] == [
            (sid, "RenderingControl", 0)
        ]
        before = gena["stats"]
        assert before["subscriptions"] == 1 and before["sent"] >= 1
        await self.admin("PATCH", "/speakers/0/gena/faults", {"drop_next": 1})
        volume = speaker.rendering.volume
        await self.admin("PATCH", "/speakers/0/state", {"volume": (volume + 1) % 100})
        await until(lambda: speaker.gena.stats()["dropped"] == before["dropped"] + 1, "the drop")
        await self.admin("PATCH", "/speakers/0/state", {"volume": (volume + 2) % 100})
        await until(lambda: len(self.of(sid)) == 2, "the NOTIFY after the dropped one")
        assert [r.notify.seq for r in self.of(sid)] == [0, 2]
        status, gena = await self.admin("GET", "/speakers/0/gena")
        assert gena["stats"]["sent"] == before["sent"] + 1
        assert gena["stats"]["dropped"] == before["dropped"] + 1
        assert gena["subscriptions"][0]["seq"] == 2
        assert (await self.admin("POST", "/speakers/0/offline", {"mode": "refuse"}))[0] == 200
        status, gena = await self.admin("GET", "/speakers/0/gena")
        assert (status, gena["paused"]) == (200, True)
        assert (await self.admin("POST", "/speakers/0/online"))[0] == 200
        status, gena = await self.admin("GET", "/speakers/0/gena")
        assert (status, gena["paused"]) == (200, False)

    async def test_soap_drip_answers_in_one_kib_pieces(self) -> None:
        """With drip set, a SOAP answer announces its full length but only its first 1 KiB
        is written until the drip interval passes; a short drip delivers the whole answer
        unchanged."""
        speaker = self.household.speakers[0]
        await self.admin("PATCH", "/speakers/0/soap/faults", {"padding": 3000})
        padded = await self.get_volume(speaker)
        status, faults = await self.admin("PATCH", "/speakers/0/soap/faults", {"drip": 0.01})
        assert (status, faults["drip"]) == (200, 0.01)
        assert await self.get_volume(speaker) == padded
        await self.admin("PATCH", "/speakers/0/soap/faults", {"drip": 3600})
        raw = RawClient()
        connected = await ClientCreator(reactor, lambda: raw).connectTCP(
            speaker.address, speaker.port
        )
        self.addCleanup(connected.transport.loseConnection)
        body = GET_VOLUME.encode()
        head = [f"POST {CONTROL} HTTP/1.1", f"Host: {speaker.address}:{speaker.port}"]
        head += [f"{name}: {value}" for name, value in SOAP_HEADERS.items()]
        head += [f"Content-Length: {len(body)}", "Connection: close"]
        connected.transport.write("\r\n".join(head).encode() + b"\r\n\r\n" + body)
        await until(lambda: len(raw.answer_body()) >= 1024, "the first 1 KiB piece")
        assert raw.answer_body() == padded[:1024]
        assert f"content-length: {len(padded)}".encode() in raw.data.lower()
        status, error = await self.admin("PATCH", "/speakers/0/soap/faults", {"drip": -1})
        assert status == 400 and "drip" in error["error"]
        await self.admin("DELETE", "/speakers/0/soap/faults")


class RawClient(Protocol):
    """An HTTP client that records the raw bytes of the answer as they arrive."""

    def __init__(self) -> None:
        self.data = b""

    def dataReceived(self, data: bytes) -> None:
        """Keep every byte received."""
        self.data += data

    def answer_body(self) -> bytes:
        """The bytes of the answer's body received so far."""
        _, _, body = self.data.partition(b"\r\n\r\n")
        return body


def member_attribute(received: Received, uid: str, name: str) -> str | None:
    """An attribute of member ``uid`` in the ZoneGroupState a ZoneGroupTopology NOTIFY
    carries (None when the NOTIFY carries no ZoneGroupState or does not list it)."""
    text = parse_event_xml(received.notify.body).get("zone_group_state")
    if not text:
        return None
    for member in ElementTree.fromstring(text).iter("ZoneGroupMember"):
        if member.get("UUID") == uid:
            return member.get(name)
    return None


def boot_seq(received: Received, uid: str) -> str | None:
    """The BootSeq of ``uid`` in a ZoneGroupTopology NOTIFY's ZoneGroupState."""
    return member_attribute(received, uid, "BootSeq")
