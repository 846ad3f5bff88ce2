# -*- test-case-name: tests.sim.test_didl -*-
"""The simulated household's music: a small library of songs and radio stations.

All titles and names are invented. Songs live on a pretend NAS share (``x-file-cifs:``), as a
Sonos library does; stations are ``x-rincon-mp3radio:`` streams. Every song has a duration
and album art served by the speaker itself (``/getaa``).
"""

from __future__ import annotations

from sonosd.sim.didl import BROADCAST, Track, album_art_path

_ALBUMS: tuple[tuple[str, str, tuple[tuple[str, int], ...]], ...] = (
    (
        "The Lanterns",
        "Harbour Lights",
        (("Low Tide", 201), ("Paper Boats", 245), ("Fog Signal", 187), ("Breakwater", 262)),
    ),
    (
        "Mira Okafor",
        "Small Hours",
        (("Kettle Song", 174), ("Second Floor", 228), ("Amber", 199), ("Night Bus", 311)),
    ),
    (
        "Quiet Engines",
        "Telemetry",
        (("Uplink", 256), ("Ground Station", 233), ("Apogee", 289), ("Reentry", 204)),
    ),
    (
        "Los Ferrocarriles",
        "Andén 9",
        (("Vía Libre", 218), ("Señales", 192), ("Último Tren", 276), ("Estación", 240)),
    ),
    (
        "Ada & the Counters",
        "Off by One",
        (("Fencepost", 165), ("Overflow", 207), ("Null Terminator", 223), ("Heisenbug", 258)),
    ),
)


def _song(artist: str, album: str, number: int, title: str, seconds: int) -> Track:
    uri = f"x-file-cifs://sim-nas/Music/{artist}/{album}/{number:02d} {title}.flac".replace(
        " ", "%20"
    )
    return Track(
        uri=uri,
        title=title,
        artist=artist,
        album=album,
        duration=seconds,
        album_art=album_art_path(uri),
        protocol_info="x-file-cifs:*:audio/flac:*",
    )


#: Every song of the library, album by album.
SONGS: tuple[Track, ...] = tuple(
    _song(artist, album, number, title, seconds)
    for artist, album, tracks in _ALBUMS
    for number, (title, seconds) in enumerate(tracks, start=1)
)

#: Radio stations (streams: no duration, never end), each saying what it plays.
STATIONS: tuple[Track, ...] = (
    Track(
        uri="x-rincon-mp3radio://radio.sim.invalid/coastal-fm",
        title="Coastal FM",
        protocol_info="x-rincon-mp3radio:*:*:*",
        upnp_class=BROADCAST,
        stream_content="The Harbour Lights - Low Tide",
    ),
    Track(
        uri="x-rincon-mp3radio://radio.sim.invalid/night-jazz",
        title="Night Jazz 24",
        protocol_info="x-rincon-mp3radio:*:*:*",
        upnp_class=BROADCAST,
        stream_content="Marla Quintet - Blue Hour",
    ),
)
