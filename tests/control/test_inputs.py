"""Tests for control.inputs: line-in, TV, speech enhancement, sub and surround through the
whole daemon against a household with an Amp (home theatre, line-in) and a Play:5 (line-in)."""

from __future__ import annotations

from twisted.trial.unittest import TestCase

from tests.control.daemon_commands import grouped, start
from tests.control.test_controller_daemon import arrives, event_of


class InputTests(TestCase):
    timeout = 120

    async def test_line_in_and_tv(self) -> None:
        """line_in plays a speaker's line-in (its own or another room's); tv switches the
        Amp to TV; speakers without the input answer 409 not_supported."""
        daemon, client = await start(self)
        kitchen, play5, amp = (daemon.speaker(i) for i in range(3))
        mark = len(client.messages())
        status, body = await daemon.post("Office", "line_in")
        self.assertEqual(status, 200, body)
        self.assertEqual(play5.transport.uri, f"x-rincon-stream:{play5.uid}")
        await play5.transport.settled()
        self.assertEqual(play5.transport.state, "PLAYING")
        await arrives(
            client.messages,
            mark,
            event_of(play5, "AVTransport", av_transport_uri=f"x-rincon-stream:{play5.uid}"),
            "the line-in evented",
        )
        status, body = await daemon.post("Kitchen", "line_in", {"source": "Office", "play": False})
        self.assertEqual((status, kitchen.transport.uri), (200, f"x-rincon-stream:{play5.uid}"))
        status, body = await daemon.post("Living Room", "tv")
        self.assertEqual(status, 200, body)
        self.assertEqual(amp.transport.uri, f"x-sonos-htastream:{amp.uid}:spdif")
        for speaker, command in (("Kitchen", "line_in"), ("Kitchen", "tv"), ("Office", "tv")):
            status, body = await daemon.post(speaker, command)
            self.assertEqual((status, body["error"]["code"]), (409, "not_supported"), command)
            self.assertEqual(body["error"]["upnp_error"], 714)

    async def test_line_in_plays_on_the_coordinator_and_tv_leaves_the_group(self) -> None:
        """line_in sent to a group member plays on its group's coordinator (the answer names
        it); tv on a grouped soundbar takes it out of its group (docs/control.md), and the
        topology shows it on its own."""
        daemon, client = await start(self)
        kitchen, play5, amp = (daemon.speaker(i) for i in range(3))
        await grouped(daemon, kitchen, play5)
        await grouped(daemon, amp, play5)
        status, body = await daemon.post("Kitchen", "line_in", {"source": "Office"})
        self.assertEqual(status, 200, body)
        uri = f"x-rincon-stream:{play5.uid}"
        self.assertEqual(
            body["result"], {"coordinator": play5.uid, "source": play5.uid, "uri": uri}
        )
        self.assertEqual(play5.transport.uri, uri)
        self.assertEqual(kitchen.group.coordinator, play5.uid)
        mark = len(client.messages())
        status, body = await daemon.post("Living Room", "tv")
        self.assertEqual((status, body["result"]["coordinator"]), (200, amp.uid), body)
        self.assertEqual(amp.transport.uri, f"x-sonos-htastream:{amp.uid}:spdif")
        self.assertEqual((amp.group.coordinator, kitchen.group.coordinator), (amp.uid, play5.uid))
        await arrives(
            client.messages,
            mark,
            lambda m: (
                m["type"] == "topology.changed"
                and any(
                    g["coordinator"] == amp.uid
                    and {x["uid"] for x in g["members"]} >= {amp.uid}
                    and play5.uid not in {x["uid"] for x in g["members"]}
                    for g in m["groups"]
                )
            ),
            "the soundbar on its own",
        )

    async def test_home_theatre_sound(self) -> None:
        """speech_enhancement, sub and surround set the Amp's EQ values, read them back and
        are evented; a Sonos One answers 409 not_supported."""
        daemon, client = await start(self)
        amp = daemon.speaker(2)
        mark = len(client.messages())
        status, body = await daemon.post("Living Room", "sub", {"gain": -4, "enabled": True})
        self.assertEqual((status, body["result"]["sub"]), (200, {"enabled": True, "gain": -4}))
        self.assertEqual(amp.rendering.sub_gain, -4)
        await arrives(client.messages, mark, event_of(amp, "RenderingControl", sub_gain=-4), "sub")
        status, body = await daemon.post(
            "Living Room", "surround", {"tv_level": 3, "music_level": -2, "full_volume": True}
        )
        self.assertEqual(
            body["result"]["surround"],
            {"enabled": True, "tv_level": 3, "music_level": -2, "full_volume": True},
        )
        self.assertEqual(
            (amp.rendering.surround_level, amp.rendering.music_surround_level), (3, -2)
        )
        status, body = await daemon.post(
            "Living Room", "speech_enhancement", {"speech_enhancement": True}
        )
        self.assertEqual((status, body["result"]), (200, {"speech_enhancement": True}))
        self.assertTrue(amp.rendering.dialog_level)
        status, body = await daemon.post("Living Room", "sub")
        self.assertEqual(body["result"]["sub"]["gain"], -4)
        for command, args in (
            ("sub", {"gain": 2}),
            ("surround", {"enabled": False}),
            ("speech_enhancement", {"speech_enhancement": True}),
        ):
            status, body = await daemon.post("Kitchen", command, args)
            self.assertEqual((status, body["error"]["code"]), (409, "not_supported"), command)
            self.assertEqual(body["error"]["upnp_error"], 402, command)
        status, body = await daemon.post("Living Room", "sub", {"gain": 16})
        self.assertEqual((status, body["error"]["code"]), (400, "bad_argument"))
