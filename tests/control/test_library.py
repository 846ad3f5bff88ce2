"""Tests for control.library: favourites, Sonos playlists, the music library and share links,
through the whole daemon against the simulated household."""

from __future__ import annotations

import re
from typing import Any

from soco.data_structures_entry import from_didl_string
from twisted.trial.unittest import TestCase

from sonosd.control.library import CATEGORY_IDS, favorite_kind, kind_of
from sonosd.sim.didl import items_didl
from sonosd.sim.favorites import default_favorites, favorite_items
from tests.control.daemon_commands import start
from tests.control.test_controller_daemon import arrives, event_of
from tests.paths import ROOT


def test_kinds() -> None:
    """Each favourite kind is told from its resource and referenced object."""
    favorites = default_favorites("RINCON_X", (1, "Mix"))
    items = from_didl_string(items_didl(favorite_items(favorites)))
    assert [favorite_kind(item) for item in items] == [
        "station",
        "track",
        "playlist",
        "album",
        "container",
        "station",
    ]
    assert kind_of(items[1].reference) == "track"


def _queue_uris(daemon: Any, index: int = 0) -> list[str]:
    return [track.uri for track in daemon.speaker(index).transport.queue]


class FavoriteTests(TestCase):
    timeout = 120

    async def test_favorites_are_listed_with_kinds(self) -> None:
        """favorites lists every favourite of the household with its kind and URI."""
        daemon, _ = await start(self)
        status, body = await daemon.post("Kitchen", "favorites")
        self.assertEqual(status, 200, body)
        listed = body["result"]["favorites"]
        self.assertEqual(
            [(f["title"], f["uri"]) for f in listed],
            [(f.title, f.uri) for f in daemon.household.favorites],
        )
        self.assertEqual(
            {f["kind"] for f in listed}, {"station", "track", "playlist", "album", "container"}
        )

    async def test_favorite_playlist_plays_with_its_tracks_in_the_queue(self) -> None:
        """A favourite Sonos playlist plays as the app plays it: the queue becomes the
        playlist's tracks and plays from the first; the queue event arrives."""
        daemon, client = await start(self)
        kitchen = daemon.speaker(0)
        favorite = next(f for f in daemon.household.favorites if f.kind == "sonos_playlist")
        playlist = daemon.household.saved_queues.find(favorite.uri)
        mark = len(client.messages())
        status, body = await daemon.post("Kitchen", "play_favorite", {"name": favorite.title})
        self.assertEqual(status, 200, body)
        result = body["result"]
        self.assertEqual((result["kind"], result["queued"], result["position"]), ("playlist", 4, 1))
        self.assertEqual(_queue_uris(daemon), [t.uri for t in playlist.tracks])
        await kitchen.transport.settled()
        self.assertEqual(kitchen.transport.state, "PLAYING")
        self.assertEqual(kitchen.transport.current(), playlist.tracks[0])
        await arrives(
            client.messages,
            mark,
            event_of(kitchen, "AVTransport", number_of_tracks=len(playlist.tracks)),
            "the queue of the playlist evented",
        )

    async def test_every_kind_plays(self) -> None:
        """Stations play as streams; albums and service playlists through the queue, also
        added after the current track (mode next) or at the end (mode end)."""
        daemon, _ = await start(self)
        kitchen = daemon.speaker(0).transport
        for favorite in daemon.household.favorites:
            status, body = await daemon.post("Kitchen", "play_favorite", {"name": favorite.title})
            self.assertEqual(status, 200, (favorite.title, body))
            if favorite.kind == "station":
                self.assertEqual((kitchen.uri, body["result"]["queued"]), (favorite.uri, None))
            else:
                self.assertTrue(kitchen.on_queue, favorite.title)
                self.assertGreaterEqual(body["result"]["queued"], 1)
        album = next(f for f in daemon.household.favorites if f.kind == "album")
        before = len(kitchen.queue)
        status, body = await daemon.post(
            "Kitchen", "play_favorite", {"name": album.title, "mode": "end", "play": False}
        )
        self.assertEqual(body["result"]["position"], before + 1)
        self.assertEqual(len(kitchen.queue), before + body["result"]["queued"])
        # A favourite's title in any case names it (docs/control.md).
        station = next(f for f in daemon.household.favorites if f.kind == "station")
        status, body = await daemon.post(
            "Kitchen", "play_favorite", {"name": station.title.swapcase()}
        )
        self.assertEqual((status, body["result"]["favorite"]), (200, station.title), body)
        status, body = await daemon.post("Kitchen", "play_favorite", {"name": "nothing like this"})
        self.assertEqual((status, body["error"]["code"]), (404, "unknown_favorite"))
        # The refusal lists the known favourites.
        for favorite in daemon.household.favorites:
            self.assertIn(favorite.title, body["error"]["message"])


class QueueModeTests(TestCase):
    timeout = 120

    async def test_next_goes_right_after_the_current_track(self) -> None:
        """docs/control.md's queue modes: ``next`` puts a favourite, a Sonos playlist, a
        library item or a share link right after the current track (not played: the current
        track stays), ``end`` at the end; with ``play`` the speaker plays the item's first
        track. While a radio stream plays there is no current queue track: ``next`` queues
        at the end."""
        daemon, _ = await start(self)
        kitchen = daemon.speaker(0)
        transport = kitchen.transport
        household = daemon.household
        album = next(f for f in household.favorites if f.kind == "album")
        song = household.library.songs[3]
        link = "https://open.spotify.com/album/6wiUBliPe76YAVpNEdidpY"
        commands: list[tuple[str, dict[str, Any]]] = [
            ("play_favorite", {"name": album.title, "play": False}),
            ("playlists", {"action": "add", "name": "Morning Mix"}),
            ("library", {"action": "add", "id": "S:" + song.uri.removeprefix("x-file-cifs:")}),
            ("share_link", {"url": link, "play": False}),
        ]
        for command, args in commands:
            status, body = await daemon.post("Kitchen", "queue", {"action": "play", "track": 2})
            self.assertEqual(status, 200, body)
            current = transport.current()
            before = list(transport.queue)
            status, body = await daemon.post("Kitchen", command, {**args, "mode": "next"})
            self.assertEqual(status, 200, (command, body))
            result = body["result"]
            self.assertEqual(result["position"], 3, command)
            queued = transport.queue[2 : 2 + result["queued"]]
            self.assertEqual(transport.queue, [*before[:2], *queued, *before[2:]], command)
            self.assertEqual((transport.track_no, transport.current()), (2, current), command)
            before = list(transport.queue)
            status, body = await daemon.post("Kitchen", command, {**args, "mode": "end"})
            self.assertEqual(body["result"]["position"], len(before) + 1, (command, body))
            self.assertEqual(transport.queue[: len(before)], before, command)
        # play (the default of play_favorite): from the item's first track.
        status, body = await daemon.post(
            "Kitchen", "play_favorite", {"name": album.title, "mode": "next"}
        )
        first = body["result"]["position"]
        await transport.settled()
        self.assertEqual((transport.state, transport.track_no), ("PLAYING", first), body)
        station = next(f for f in household.favorites if f.kind == "station")
        status, body = await daemon.post("Kitchen", "play_favorite", {"name": station.title})
        self.assertEqual((status, transport.on_queue), (200, False), body)
        for command, args in commands:
            before = list(transport.queue)
            status, body = await daemon.post("Kitchen", command, {**args, "mode": "next"})
            self.assertEqual(status, 200, (command, body))
            self.assertEqual(body["result"]["position"], len(before) + 1, (command, body))
            self.assertEqual(transport.queue[: len(before)], before, command)


class PlaylistTests(TestCase):
    timeout = 120

    async def test_list_tracks_play_add(self) -> None:
        """playlists lists the Sonos playlists with their lengths, shows a playlist's tracks,
        plays one and adds one to the queue."""
        daemon, _client = await start(self)
        household = daemon.household
        status, body = await daemon.post("Office", "playlists")
        self.assertEqual(status, 200, body)
        self.assertEqual(
            [(p["id"], p["title"], p["tracks"]) for p in body["result"]["playlists"]],
            [(p.object_id, p.title, len(p.tracks)) for p in household.saved_queues],
        )
        dinner = household.saved_queues.by_title("Dinner Party")
        assert dinner is not None
        status, body = await daemon.post(
            "Office", "playlists", {"action": "tracks", "name": "dinner party", "count": 2}
        )
        self.assertEqual(body["result"]["total"], len(dinner.tracks))
        self.assertEqual(
            [i["uri"] for i in body["result"]["items"]], [t.uri for t in dinner.tracks[:2]]
        )
        status, body = await daemon.post(
            "Office",
            "playlists",
            {"action": "tracks", "id": dinner.object_id, "start": 1, "count": 2},
        )
        self.assertEqual(status, 200, body)
        self.assertEqual(
            [(i["position"], i["uri"]) for i in body["result"]["items"]],
            [(2, dinner.tracks[1].uri), (3, dinner.tracks[2].uri)],
        )
        self.assertEqual(body["result"]["start"], 1)
        status, body = await daemon.post(
            "Office", "playlists", {"action": "play", "id": dinner.object_id}
        )
        self.assertEqual(status, 200, body)
        self.assertEqual(_queue_uris(daemon, 1), [t.uri for t in dinner.tracks])
        status, body = await daemon.post(
            "Office", "playlists", {"action": "add", "name": "Morning Mix"}
        )
        morning = household.saved_queues.by_title("Morning Mix")
        assert morning is not None
        self.assertEqual(_queue_uris(daemon, 1), [t.uri for t in dinner.tracks + morning.tracks])

    async def test_save_replace_delete(self) -> None:
        """save stores the queue as a new playlist (409 if the title exists unless replace),
        delete removes it; each change events SavedQueuesUpdateID."""
        daemon, client = await start(self)
        household = daemon.household
        kitchen = daemon.speaker(0)
        mark = len(client.messages())
        status, body = await daemon.post(
            "Kitchen", "playlists", {"action": "save", "title": "Keep"}
        )
        self.assertEqual(status, 200, body)
        saved = household.saved_queues.by_title("Keep")
        assert saved is not None
        self.assertEqual(saved.tracks, kitchen.transport.queue)
        self.assertEqual(body["result"]["playlist"]["id"], saved.object_id)
        await arrives(
            client.messages,
            mark,
            lambda m: (
                m.get("type") == "event"
                and m.get("service") == "ContentDirectory"
                and "saved_queues_update_id" in (m.get("variables") or {})
            ),
            "SavedQueuesUpdateID evented",
        )
        status, body = await daemon.post(
            "Kitchen", "playlists", {"action": "save", "title": "keep"}
        )
        self.assertEqual((status, body["error"]["code"]), (409, "playlist_exists"))
        kitchen.transport.clear_queue()
        status, body = await daemon.post(
            "Kitchen", "playlists", {"action": "save", "title": "Keep", "replace": True}
        )
        self.assertEqual((status, body["result"]["replaced"]), (200, True))
        self.assertEqual((saved.tracks, household.saved_queues.by_title("Keep")), ([], saved))
        status, body = await daemon.post(
            "Kitchen", "playlists", {"action": "delete", "name": "Keep"}
        )
        self.assertEqual(status, 200, body)
        self.assertIsNone(household.saved_queues.by_title("Keep"))
        status, body = await daemon.post(
            "Kitchen", "playlists", {"action": "delete", "name": "Keep"}
        )
        self.assertEqual((status, body["error"]["code"]), (404, "unknown_playlist"))


class LibraryTests(TestCase):
    timeout = 120

    async def test_browse_and_search(self) -> None:
        """library browses categories and items (artists → albums → tracks) and searches."""
        daemon, _ = await start(self)
        library = daemon.household.library
        status, body = await daemon.post("Kitchen", "library", {"category": "artists"})
        self.assertEqual(status, 200, body)
        artists = body["result"]["items"]
        self.assertEqual([a["title"] for a in artists], library.artists())
        self.assertTrue(all(a["kind"] == "artist" and a["container"] for a in artists))
        status, body = await daemon.post("Kitchen", "library", {"id": artists[-1]["id"]})
        kinds = [item["kind"] for item in body["result"]["items"]]
        self.assertEqual(kinds[0], "all")
        album = body["result"]["items"][1]
        status, body = await daemon.post("Kitchen", "library", {"id": album["id"]})
        self.assertEqual(
            [t["title"] for t in body["result"]["items"]],
            [s.title for s in library.songs_of(album=album["title"])],
        )
        status, body = await daemon.post(
            "Kitchen", "library", {"action": "search", "category": "tracks", "term": "tide"}
        )
        self.assertEqual([t["title"] for t in body["result"]["items"]], ["Low Tide"])
        status, body = await daemon.post("Kitchen", "library", {"category": "genres"})
        self.assertEqual([g["title"] for g in body["result"]["items"]], library.genres())
        status, body = await daemon.post("Kitchen", "library", {"id": "A:ALBUM/Nothing"})
        self.assertEqual((status, body["error"]["code"]), (404, "unknown_item"))

    async def test_every_documented_category_browses(self) -> None:
        """Each category docs/control.md lists browses through the simulated speaker (the
        list is the daemon's); its answer holds what the simulated library has there, and a
        category that is not one is 400 bad_argument."""
        text = (ROOT / "docs" / "control.md").read_text("utf-8")
        listed = text.split("the music library. Categories: ", 1)[1].split(". Browse", 1)[0]
        categories = re.findall(r"`([a-z_]+)`", listed)
        self.assertEqual(sorted(categories), sorted(CATEGORY_IDS))
        daemon, _ = await start(self)
        library = daemon.household.library
        expected = {
            "artists": library.artists(),
            "genres": library.genres(),
            "tracks": [song.title for song in library.songs],
        }
        for category in categories:
            status, body = await daemon.post(
                "Kitchen", "library", {"category": category, "count": 1000}
            )
            self.assertEqual(status, 200, (category, body))
            result = body["result"]
            self.assertEqual(result["id"], CATEGORY_IDS[category])
            self.assertGreaterEqual(result["total"], len(result["items"]), category)
            if category in expected:
                titles = [item["title"] for item in result["items"]]
                self.assertEqual(sorted(titles), sorted(expected[category]), category)
        status, body = await daemon.post("Kitchen", "library", {"category": "podcasts"})
        self.assertEqual((status, body["error"]["code"]), (400, "bad_argument"), body)
        self.assertTrue(body["error"]["message"].startswith("category: "), body)

    async def test_play_and_add(self) -> None:
        """library play replaces the queue with an album and plays it; add queues a track."""
        daemon, client = await start(self)
        household = daemon.household
        album = household.library.albums()[2]
        album_id = "A:ALBUM/" + album.replace(" ", "%20")
        mark = len(client.messages())
        status, body = await daemon.post(
            "Living Room", "library", {"action": "play", "id": album_id}
        )
        self.assertEqual(status, 200, body)
        songs = household.library.songs_of(album=album)
        self.assertEqual(_queue_uris(daemon, 2), [s.uri for s in songs])
        living = daemon.speaker(2)
        await arrives(
            client.messages,
            mark,
            event_of(living, "AVTransport", number_of_tracks=len(songs)),
            "the album in the queue",
        )
        track_id = "S:" + household.library.songs[0].uri.removeprefix("x-file-cifs:")
        status, body = await daemon.post(
            "Living Room", "library", {"action": "add", "id": track_id}
        )
        self.assertEqual((status, body["result"]["position"]), (200, len(songs) + 1))
        self.assertEqual(living.transport.queue[-1], household.library.songs[0])


class ShareLinkTests(TestCase):
    timeout = 120

    async def test_share_links(self) -> None:
        """A Spotify link plays now (replacing the queue) or is queued; an Apple Music link
        of a household without Apple Music is 409 service_unavailable with UPnP 800."""
        daemon, client = await start(self)
        kitchen = daemon.speaker(0)
        mark = len(client.messages())
        status, body = await daemon.post(
            "Kitchen",
            "share_link",
            {"url": "https://open.spotify.com/playlist/37i9dQZF1DX4WYpdgoIcn6"},
        )
        self.assertEqual(status, 200, body)
        result = body["result"]
        self.assertEqual((result["service"], result["position"]), ("Spotify", 1))
        self.assertEqual(len(kitchen.transport.queue), result["queued"])
        self.assertTrue(all(t.uri.startswith("x-sonos-spotify:") for t in kitchen.transport.queue))
        await kitchen.transport.settled()
        self.assertEqual(kitchen.transport.state, "PLAYING")
        await arrives(
            client.messages,
            mark,
            event_of(kitchen, "AVTransport", number_of_tracks=result["queued"]),
            "the link's tracks in the queue",
        )
        status, body = await daemon.post(
            "Kitchen",
            "share_link",
            {"url": "https://tidal.com/browse/track/157273956", "play": False},
        )
        self.assertEqual((status, body["result"]["queued"]), (200, 1))
        queue = list(kitchen.transport.queue)
        status, body = await daemon.post(
            "Kitchen",
            "share_link",
            {"url": "https://music.apple.com/dk/album/amused-to-death/975952384"},
        )
        self.assertEqual(kitchen.transport.queue, queue)
        self.assertEqual((status, body["error"]["code"]), (409, "service_unavailable"))
        self.assertEqual(body["error"]["upnp_error"], 800)
        self.assertIn("Apple Music", body["error"]["message"])
        deezer = "https://www.deezer.com/en/album/12345"
        status, body = await daemon.post("Kitchen", "share_link", {"url": deezer, "play": False})
        self.assertEqual((status, body["error"]["code"]), (409, "service_unavailable"))
        self.assertIn("Deezer", body["error"]["message"])
        status, body = await daemon.post("Kitchen", "share_link", {"url": "https://example.com/x"})
        self.assertEqual((status, body["error"]["code"]), (400, "bad_argument"))
