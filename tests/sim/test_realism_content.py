"""Realism of the simulator's content and playback, driven by unmodified SoCo (issue 12, points
2, 3 and 5).

Each test states the real behaviour it checks and where that behaviour is recorded: the
captured samples in ``../shared/reference/samples`` (read here, not copied), the DIDL that SoCo's
own tests captured from speakers, SoCo's calls and what they expect back (its
``music_library``, ``alarms``, ``ShareLinkPlugin``, playlist methods), and issue threads of
projects that talk to real speakers. The expectations are those facts, never the simulator's
own constants.
"""

from __future__ import annotations

import datetime
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar
from xml.etree import ElementTree

import soco
import soco.alarms
from soco.data_structures import (
    DidlAudioBroadcast,
    DidlMusicAlbum,
    DidlMusicArtist,
    DidlMusicGenre,
    DidlMusicTrack,
    DidlPlaylistContainer,
)
from soco.music_services.accounts import Account
from soco.music_services.music_service import MusicService
from soco.plugins.sharelink import ShareLinkPlugin
from twisted.internet import reactor
from twisted.internet.task import deferLater
from twisted.trial.unittest import TestCase

from sonosd.config import SimulateConfig
from sonosd.sim.household import Household, Speaker
from sonosd.sim.service import HouseholdService
from tests.audio_helpers import serve_audio, wav_bytes
from tests.conftest import free_loopback_base
from tests.paths import ROOT
from tests.sim_fakes import RecordingManager
from tests.soco_helpers import in_thread, upnp_error_of

T = TypeVar("T")

SAMPLES = ROOT.parent / "shared" / "reference" / "samples"
NS_DIDL = "{urn:schemas-upnp-org:metadata-1-0/DIDL-Lite/}"
WAIT = 10.0


def _sample(path: str) -> str:
    return (SAMPLES / path).read_text(encoding="utf-8")


class ContentTestCase(TestCase):
    """A three-speaker household (One, Beam, Play:5) whose GENA managers record every change."""

    def setUp(self) -> None:
        base = free_loopback_base(count=4)
        self.service = HouseholdService(
            reactor,
            SimulateConfig(speakers=3, base_address=base),
            models=("S18", "S14", "S6"),
            transition_delay=0.01,
            manager_factory=RecordingManager,
        )
        self.household: Household = self.service.household
        self.service.startService()
        self.addCleanup(self.service.stopService)

    def speaker(self, index: int) -> Speaker:
        return self.household.speakers[index]

    def device(self, index: int) -> soco.SoCo:
        return soco.SoCo(self.speaker(index).address)

    def notified(self, index: int, service: str) -> list[dict[str, Any]]:
        manager: Any = self.speaker(index).manager
        return list(manager.of(service))

    async def call(self, fn: Callable[[], T]) -> T:
        """Run a blocking SoCo call in a thread."""
        return await in_thread(fn)

    async def upnp_error(self, fn: Callable[[], object]) -> str:
        """The UPnP error code a SoCo call fails with."""
        return await upnp_error_of(fn)

    async def until(self, check: Callable[[], bool], what: str) -> None:
        deadline = reactor.seconds() + WAIT
        while not check():
            if reactor.seconds() > deadline:
                raise AssertionError(f"gave up waiting for {what}")
            await deferLater(reactor, 0.02, lambda: None)


class SonosPlaylistTests(ContentTestCase):
    async def test_playlists_as_soco_reads_them(self) -> None:
        """Sonos playlists are SQ:<n> containers whose resource is savedqueues.rsq#<n>, their
        tracks SQ:<n>/<i> (SoCo's create_sonos_playlist and its integration tests)."""
        device = self.device(0)
        playlists = await self.call(device.get_sonos_playlists)
        assert playlists and all(isinstance(p, DidlPlaylistContainer) for p in playlists)
        for playlist in playlists:
            number = playlist.item_id.removeprefix("SQ:")
            assert number.isdigit() and playlist.parent_id == "SQ:"
            assert playlist.get_uri() == f"file:///jffs/settings/savedqueues.rsq#{number}"
        tracks = await self.call(lambda: device.music_library.browse(playlists[0]))
        assert [t.item_id for t in tracks] == [
            f"{playlists[0].item_id}/{n}" for n in range(1, len(tracks) + 1)
        ]

    async def test_create_add_reorder_remove_delete(self) -> None:
        """A playlist is created, filled, reordered as SoCo's reorder_sonos_playlist expects
        (positions of the list as it was, empty = remove), and deleted; each change raises
        SavedQueuesUpdateID on every speaker (reference §3.6)."""
        device = self.device(0)
        library = device.music_library
        before = self.notified(2, "ContentDirectory")
        playlist = await self.call(lambda: device.create_sonos_playlist("Road Trip"))
        assert playlist.item_id.startswith("SQ:")
        songs = list(await self.call(library.get_tracks))[:4]
        for song in songs:
            await self.call(lambda song=song: device.add_item_to_sonos_playlist(song, playlist))
        browsed = await self.call(lambda: library.browse(playlist))
        assert [t.get_uri() for t in browsed] == [s.get_uri() for s in songs]
        result = await self.call(
            lambda: device.reorder_sonos_playlist(playlist, "3,2,1,0", "0,1,2,3")
        )
        assert (result["change"], result["length"]) == (0, 4)
        reversed_ = await self.call(lambda: library.browse(playlist))
        assert [t.get_uri() for t in reversed_] == [s.get_uri() for s in reversed(songs)]
        result = await self.call(lambda: device.remove_from_sonos_playlist(playlist, 0))
        assert (result["change"], result["length"]) == (-1, 3)
        changes = self.notified(2, "ContentDirectory")[len(before) :]
        assert any("SavedQueuesUpdateID" in change for change in changes)
        await self.call(lambda: device.remove_sonos_playlist(playlist))
        titles = [p.title for p in await self.call(device.get_sonos_playlists)]
        assert "Road Trip" not in titles

    async def test_bad_playlist_ids_fail(self) -> None:
        """Removing a playlist that does not exist raises a UPnP error (SoCo's integration
        test test_remove_playlist_bad_id)."""
        device = self.device(0)
        assert await self.upnp_error(lambda: device.remove_sonos_playlist("SQ:-7"))
        assert await self.upnp_error(lambda: device.remove_sonos_playlist("SQ:999"))

    async def test_playlist_from_queue_has_the_queue(self) -> None:
        """create_sonos_playlist_from_queue saves the queue's URIs in order (SoCo's
        integration test test_create_from_queue)."""
        device = self.device(0)
        playlist = await self.call(lambda: device.create_sonos_playlist_from_queue("Saved"))
        saved = await self.call(lambda: device.music_library.browse(playlist))
        queue = await self.call(device.get_queue)
        assert saved.total_matches == queue.total_matches
        assert [t.get_uri() for t in saved] == [t.get_uri() for t in queue]

    async def test_play_a_playlist_through_the_queue(self) -> None:
        """A Sonos playlist plays as the app plays it: its tracks go to the queue, the queue
        plays from its first track."""
        device = self.device(1)
        playlist = (await self.call(device.get_sonos_playlists))[0]
        expected = [
            t.get_uri() for t in await self.call(lambda: device.music_library.browse(playlist))
        ]

        def play() -> None:
            device.clear_queue()
            device.add_to_queue(playlist)
            device.play_from_queue(0)

        await self.call(play)
        queue = await self.call(device.get_queue)
        assert [t.get_uri() for t in queue] == expected
        transport = self.speaker(1).transport
        await transport.settled()
        assert transport.state == "PLAYING" and transport.current().uri == expected[0]

    async def test_container_refused_by_set_av_transport_uri(self) -> None:
        """SetAVTransportURI of a saved queue answers UPnP 714 (sonos-api-docs issue #42)."""
        device = self.device(0)
        code = await self.upnp_error(
            lambda: device.play_uri("file:///jffs/settings/savedqueues.rsq#1")
        )
        assert code == "714"


class MusicLibraryTests(ContentTestCase):
    async def test_categories_and_ids(self) -> None:
        """Artists, albums and genres have the ids, classes and x-rincon-playlist resources
        of the real DIDL SoCo's tests captured (artist.xml, album.xml, genre.xml)."""
        device = self.device(0)
        library = device.music_library
        uid = self.speaker(0).uid
        artists = await self.call(library.get_artists)
        albums = await self.call(library.get_albums)
        genres = await self.call(library.get_genres)
        for items, cls, prefix in (
            (artists, DidlMusicArtist, "A:ARTIST/"),
            (albums, DidlMusicAlbum, "A:ALBUM/"),
            (genres, DidlMusicGenre, "A:GENRE/"),
        ):
            assert len(items) > 0
            for item in items:
                assert isinstance(item, cls)
                assert item.item_id.startswith(prefix)
                assert item.get_uri() == f"x-rincon-playlist:{uid}#{item.item_id}"
        assert all(album.creator for album in albums)
        assert [item.title for item in await self.call(library.browse)] == [
            "Artists",
            "Album Artists",
            "Albums",
            "Genres",
            "Composers",
            "Tracks",
            "Playlists",
        ]

    async def test_tracks_are_share_items(self) -> None:
        """Library tracks are items whose id is the share path (S://...) and whose resource is
        x-file-cifs: (SoCo's track.xml sample); the share lists as //host/share."""
        library = self.device(0).music_library
        tracks = await self.call(library.get_tracks)
        assert tracks.total_matches == len(tracks) > 0
        for track in tracks:
            assert isinstance(track, DidlMusicTrack)
            assert track.get_uri().startswith("x-file-cifs://")
            assert track.item_id == "S:" + track.get_uri().removeprefix("x-file-cifs:")
        shares = await self.call(library.list_library_shares)
        assert len(shares) == 1 and shares[0].startswith("//")

    async def test_search_as_soco_searches(self) -> None:
        """Searches are object ids ending in :term (SoCo's get_music_library_information and
        search_track), answered with the matching children."""
        library = self.device(0).music_library
        artists = await self.call(library.get_artists)
        artist = artists[0].title
        found = await self.call(lambda: library.get_artists(search_term=artist[:3].lower()))
        assert artist in [a.title for a in found]
        everything = await self.call(lambda: library.search_track(artist))
        albums = await self.call(lambda: library.get_albums_for_artist(artist))
        assert albums and all(isinstance(a, DidlMusicAlbum) for a in albums)
        tracks = await self.call(lambda: library.get_tracks_for_album(artist, albums[0].title))
        assert tracks and all(t.creator == artist for t in tracks)
        assert {t.title for t in tracks} <= {t.title for t in everything}
        word = tracks[1].title.split()[0]
        one = await self.call(lambda: library.search_track(artist, albums[0].title, word))
        assert tracks[1].title in [t.title for t in one]
        assert len(one) < len(tracks)

    async def test_unknown_object_is_701(self) -> None:
        """An unknown object answers UPnP 701, which SoCo's music_library turns into an empty
        result."""
        device = self.device(0)
        library = device.music_library
        empty = await self.call(lambda: library.get_artists(subcategories=["Nobody At All"]))
        assert len(empty) == 0
        code = await self.upnp_error(lambda: library._music_lib_search("A:NOPE", 0, 10))
        assert code == "701"

    async def test_album_plays_through_the_queue(self) -> None:
        """A library album queued with its x-rincon-playlist URI adds its tracks."""
        device = self.device(0)
        library = device.music_library
        album = (await self.call(library.get_albums))[0]
        tracks = await self.call(lambda: library.browse(album))

        def play() -> int:
            device.clear_queue()
            added: int = device.add_to_queue(album)
            return added

        assert await self.call(play) == 1
        queue = await self.call(device.get_queue)
        assert [t.get_uri() for t in queue] == [t.get_uri() for t in tracks]

    async def test_radio_containers(self) -> None:
        """R:0/0 lists audioBroadcast items R:0/0/<n> and R:0/1 radioShow containers (SoCo's
        audio_broadcast.xml and radio_show.xml samples)."""
        library = self.device(0).music_library
        stations = await self.call(library.get_favorite_radio_stations)
        assert stations and all(isinstance(s, DidlAudioBroadcast) for s in stations)
        assert all(s.item_id.startswith("R:0/0/") for s in stations)
        shows = await self.call(library.get_favorite_radio_shows)
        assert shows and all(s.item_id.startswith("R:0/1/") for s in shows)


class FavoriteTests(ContentTestCase):
    async def test_every_kind_has_a_reference(self) -> None:
        """Favourites carry the referenced object's DIDL in r:resMD (SoCo's DidlFavorite): a
        station, a track, a Sonos playlist, an album and a music-service playlist."""
        favorites = await self.call(self.device(0).music_library.get_sonos_favorites)
        kinds = {type(f.reference).__name__ for f in favorites}
        assert {
            "DidlAudioBroadcast",
            "DidlMusicTrack",
            "DidlPlaylistContainer",
            "DidlMusicAlbum",
        } <= kinds
        uris = [f.get_uri() for f in favorites]
        assert any(u.startswith("x-rincon-cpcontainer:") for u in uris)
        assert any(u.startswith("file:///jffs/settings/savedqueues.rsq#") for u in uris)
        assert any(u.startswith("x-sonosapi-stream:") for u in uris)

    async def test_each_plays_the_way_a_speaker_plays_it(self) -> None:
        """Containers play through the queue (and SetAVTransportURI refuses them with 714);
        stations and tracks play with SetAVTransportURI and their metadata."""
        device = self.device(0)
        favorites = await self.call(device.music_library.get_sonos_favorites)
        transport = self.speaker(0).transport
        for favorite in favorites:
            reference = favorite.reference
            if reference.item_class.startswith("object.container"):

                def queue(reference: Any = reference) -> int:
                    device.clear_queue()
                    device.add_to_queue(reference)
                    device.play_from_queue(0)
                    return int(device.queue_size)

                assert await self.call(queue) >= 1, favorite.title
                assert transport.on_queue
                code = await self.upnp_error(
                    lambda f=favorite: device.play_uri(f.get_uri(), f.resource_meta_data)
                )
                assert code == "714", favorite.title
            else:
                await self.call(
                    lambda f=favorite: device.play_uri(f.get_uri(), f.resource_meta_data)
                )
                assert transport.uri == favorite.get_uri()
                assert transport.current().title == favorite.title


class MusicServiceTests(ContentTestCase):
    async def test_list_available_services(self) -> None:
        """ListAvailableServices answers the descriptor list SoCo's MusicService parses; a
        service's type is its id * 256 + 7 (Spotify 2311, TuneIn 65031 in DIDL descriptors)."""
        device = self.device(0)
        document = await self.call(lambda: MusicService._get_music_services_data_xml(device))
        services = ElementTree.fromstring(document.encode()).findall("Service")
        types = {int(s.get("Id", "0")) * 256 + 7: s.get("Name") for s in services}
        assert types[2311] == "Spotify" and types[65031] == "TuneIn"
        assert {"Apple Music", "TIDAL", "Deezer"} <= set(types.values())
        assert all(s.find("Policy") is not None for s in services)

    async def test_accounts(self) -> None:
        """/status/accounts lists the household's accounts as SoCo's Account reads them."""
        accounts = await self.call(lambda: Account.get_accounts(self.device(0)))
        types = {account.service_type for account in accounts.values()}
        assert "2311" in types and "52231" not in types

    async def test_share_links(self) -> None:
        """SoCo's ShareLinkPlugin queues Spotify and TIDAL links the household has accounts
        for; a link of a service it lacks is refused with UPnP 800 (SoCo issue #969,
        node-sonos-ts issue #209)."""
        device = self.device(0)
        plugin = ShareLinkPlugin(device)
        before = await self.call(lambda: device.queue_size)
        album = "https://open.spotify.com/album/6wiUBliPe76YAVpNEdidpY"
        position = await self.call(lambda: plugin.add_share_link_to_queue(album))
        assert position == before + 1
        after = await self.call(lambda: device.queue_size)
        assert after > before + 1
        queue = await self.call(lambda: device.get_queue(start=before, max_items=100))
        assert all(t.get_uri().startswith("x-sonos-spotify:spotify%3atrack%3a") for t in queue)
        track = "https://tidal.com/browse/track/157273956"
        await self.call(lambda: plugin.add_share_link_to_queue(track))
        assert await self.call(lambda: device.queue_size) == after + 1
        apple = "https://music.apple.com/dk/album/amused-to-death/975952384"
        assert await self.upnp_error(lambda: plugin.add_share_link_to_queue(apple)) == "800"

    async def test_share_link_as_a_url_does_not_play(self) -> None:
        """A share link played as a plain URL is a web page, not audio: nothing plays."""
        device = self.device(0)
        await self.call(
            lambda: device.play_uri("https://open.spotify.com/track/7snQQk1zcKl8gZ92AnueZW")
        )
        transport = self.speaker(0).transport
        await self.until(lambda: transport.state == "STOPPED", "the failed start")
        assert transport.status != "OK"


class PlaybackFailureTests(ContentTestCase):
    async def failed(self, uri: str) -> tuple[str, list[dict[str, Any]]]:
        """Play ``uri``: the status it ended with and the AVTransport changes evented."""
        device = self.device(0)
        transport = self.speaker(0).transport
        mark = len(self.notified(0, "AVTransport"))
        await self.call(lambda: device.play_uri(uri, title="Clip"))
        await self.until(lambda: transport.state == "STOPPED", f"{uri} to stop")
        return transport.status, self.notified(0, "AVTransport")[mark:]

    async def test_unreachable_uris_stop_with_an_error(self) -> None:
        """A URL the speaker cannot fetch (closed port, unknown host, 404, a web page) starts
        (Play answers OK, SoCo issue #365) then stops with TransportStatus ERROR_NO_CONTENT
        and the URI in TransportErrorURI (noson-app issue #78); Play again answers 701
        (node-red-contrib-sonos-plus issue #314)."""
        server = serve_audio(self, {"/page": (b"<html></html>", "text/html")})
        for uri in (
            "http://127.0.0.1:9/closed.mp3",
            "http://no-such-host.invalid/a.mp3",
            server.url("/missing.mp3"),
            server.url("/page"),
        ):
            status, changes = await self.failed(uri)
            assert status == "ERROR_NO_CONTENT", uri
            states = [c["TransportState"] for c in changes if "TransportState" in c]
            assert "TRANSITIONING" in states and states[-1] == "STOPPED", uri
            assert any(c.get("TransportErrorURI") == uri for c in changes), uri
            code = await self.upnp_error(self.device(0).play)
            assert code == "701", uri

    async def test_unsupported_scheme_is_714(self) -> None:
        """An unknown URI scheme answers UPnP 714 Illegal MIME-Type (home-assistant/core
        issue #6933, #116649)."""
        code = await self.upnp_error(lambda: self.device(0).play_uri("ftp://127.0.0.1/a.mp3"))
        assert code == "714"

    async def test_reachable_audio_plays_for_its_duration(self) -> None:
        """A reachable WAV is fetched and plays for its real length, then the speaker stops."""
        server = serve_audio(self, {"/one.wav": (wav_bytes(0.6), "audio/wav")})
        device = self.device(0)
        transport = self.speaker(0).transport
        uri = server.url("/one.wav")
        await self.call(lambda: device.play_uri(uri, title="Clip"))
        await self.until(lambda: transport.state == "PLAYING", "playing")
        assert server.requests == ["/one.wav"]
        assert transport.current().duration == 1
        started = reactor.seconds()
        await self.until(lambda: transport.state == "STOPPED", "the end of the clip")
        assert reactor.seconds() - started >= 0.4


class QueueEditTests(ContentTestCase):
    async def test_range_removal_and_reordering(self) -> None:
        """remove_range_from_queue, reorder_queue and move_in_queue edit the queue as SoCo
        documents them (0-based arguments, 1-based on the wire)."""
        device = self.device(0)
        titles = [t.title for t in self.speaker(0).transport.queue]
        update_id = await self.call(lambda: device.remove_range_from_queue(1, 2))
        assert update_id == self.speaker(0).transport.queue_update_id
        del titles[1:3]
        assert [t.title for t in await self.call(device.get_queue)] == titles
        await self.call(lambda: device.move_in_queue(0, 2))
        titles.insert(2, titles.pop(0))
        assert [t.title for t in await self.call(device.get_queue)] == titles
        await self.call(lambda: device.reorder_queue(0, 2, 5))
        titles = titles[2:5] + titles[0:2] + titles[5:]
        assert [t.title for t in await self.call(device.get_queue)] == titles
        code = await self.upnp_error(lambda: device.remove_range_from_queue(50, 2))
        assert code == "402"

    async def test_add_multiple(self) -> None:
        """add_multiple_to_queue adds every item it sends."""
        device = self.device(0)
        tracks = list(await self.call(device.music_library.get_tracks))[:3]
        before = await self.call(lambda: device.queue_size)
        await self.call(lambda: device.add_multiple_to_queue(tracks))
        queue = await self.call(device.get_queue)
        assert [t.get_uri() for t in list(queue)[before:]] == [t.get_uri() for t in tracks]


class RampTests(ContentTestCase):
    async def test_ramp_moves_step_by_step(self) -> None:
        """ramp_to_volume answers the ramp time at 1.25 steps a second and the volume then
        moves one step at a time, each step evented (SoCo's ramp_to_volume)."""
        device = self.device(0)
        await self.call(lambda: setattr(device, "volume", 10))
        mark = len(self.notified(0, "RenderingControl"))
        ramp_time = await self.call(lambda: device.ramp_to_volume(13))
        assert ramp_time == int(3 / 1.25)
        assert self.speaker(0).rendering.volume == 10
        await self.until(lambda: self.speaker(0).rendering.volume == 13, "the ramp")
        volumes = [
            change["Volume"]["Master"]
            for change in self.notified(0, "RenderingControl")[mark:]
            if "Volume" in change
        ]
        assert volumes == ["11", "12", "13"]


class AlarmTests(ContentTestCase):
    async def test_alarm_lifecycle_through_soco(self) -> None:
        """soco.alarms creates, updates and removes an alarm; the list version goes up by one
        per change and is evented on every speaker; the list keeps the firmware's attributes
        (samples/soap/outarg_fragment_alarm-service.ListAlarms.xml)."""
        device = self.device(1)
        household_id = await self.call(lambda: device.household_id)
        alarms = soco.alarms.Alarms(household_id)
        await self.call(lambda: alarms.update(device))
        version = int(self.household.alarm_list_version().split(":")[1])
        alarm = soco.alarms.Alarm(
            device, start_time=datetime.time(6, 45), recurrence="ON_135", volume=15
        )
        await self.call(alarm.save)
        assert int(alarm.alarm_id) == version + 1
        alarm.enabled = False
        await self.call(alarm.save)
        assert self.household.alarm_list_version().endswith(f":{version + 2}")
        listed = await self.call(lambda: device.alarmClock.ListAlarms())
        element = ElementTree.fromstring(listed["CurrentAlarmList"]).find("Alarm")
        sample = ElementTree.fromstring(
            _sample("soap/outarg_fragment_alarm-service.ListAlarms.xml")
            .split("<CurrentAlarmList>")[1]
            .split("</CurrentAlarmList>")[0]
            .replace("&lt;", "<")
            .replace("&gt;", ">")
            .replace("&quot;", '"')
            .replace("&amp;", "&")
        )
        sample_alarm = sample.find("Alarm")
        assert element is not None and sample_alarm is not None
        assert list(element.attrib) == list(sample_alarm.attrib)
        await self.call(alarm.remove)
        assert self.household.alarm_list_version().endswith(f":{version + 3}")
        for index in range(3):
            versions = [c["AlarmListVersion"] for c in self.notified(index, "AlarmClock")]
            assert versions[-3:] == [
                f"{self.household.alarm_list.owner}:{version + n}" for n in (1, 2, 3)
            ]

    async def test_duplicate_alarm_is_801(self) -> None:
        """A second alarm for the same room, time and recurrence is UPnP 801 (sonos-api-docs,
        AlarmClock custom errors)."""
        device = self.device(0)
        existing = self.household.alarms[0]
        start = datetime.time.fromisoformat(existing.start_time)
        alarm = soco.alarms.Alarm(device, start_time=start, recurrence=existing.recurrence)
        assert await self.upnp_error(alarm.save) == "801"


def _didl_children(document: str) -> list[ElementTree.Element]:
    root = ElementTree.fromstring(document)
    return [child for child in root if child.tag in (f"{NS_DIDL}item", f"{NS_DIDL}container")]


class SampleShapeTests(ContentTestCase):
    async def test_queue_browse_matches_the_captured_answer(self) -> None:
        """Browse Q:0 answers the out-arguments and item shape of the captured answer
        (samples/soap/ContentDirectory_Browse_Q0_response_jishi.xml)."""
        answer = await self.call(
            lambda: self.device(0).contentDirectory.Browse(
                [
                    ("ObjectID", "Q:0"),
                    ("BrowseFlag", "BrowseDirectChildren"),
                    ("Filter", "*"),
                    ("StartingIndex", 0),
                    ("RequestedCount", 100),
                    ("SortCriteria", ""),
                ]
            )
        )
        envelope = ElementTree.fromstring(
            _sample("soap/ContentDirectory_Browse_Q0_response_jishi.xml")
        )
        response = envelope[0][0]
        assert list(answer) == [child.tag for child in response]
        captured = _didl_children(response.findtext("Result") or "")[0]
        ours = _didl_children(answer["Result"])[0]
        assert (ours.get("id"), ours.get("parentID")) == ("Q:0/1", "Q:0")
        assert set(ours.attrib) == set(captured.attrib)
        assert {child.tag for child in ours} <= {child.tag for child in captured}

    async def test_favorites_event_names_the_container(self) -> None:
        """A favourites change events SystemUpdateID, ContainerUpdateIDs FV:2,<n> and
        FavoritesUpdateID, as the captured event does
        (samples/events/contentdirectory_favorites_changed_jishi.xml)."""
        captured = ElementTree.fromstring(
            _sample("events/contentdirectory_favorites_changed_jishi.xml")
        )
        names = {prop[0].tag for prop in captured}
        mark = len(self.notified(0, "ContentDirectory"))
        self.household.set_favorites(self.household.favorites[:2])
        change = self.notified(0, "ContentDirectory")[mark]
        assert names <= set(change)
        assert change["ContainerUpdateIDs"].startswith("FV:2,")


def test_samples_directory_is_there() -> None:
    """The captured samples the realism tests read are beside the checkout."""
    assert Path(SAMPLES / "README.md").is_file()
