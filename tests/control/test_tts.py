"""Tests for control.tts: the text-to-speech command run as a process, bounded in time and
output, with one-line failures."""

from __future__ import annotations

import sys

from twisted.internet import reactor
from twisted.trial.unittest import TestCase

from sonosd.control.announce import wav_seconds
from sonosd.control.tts import TextToSpeech, TtsError

#: A stand-in TTS reading the text on stdin and writing a WAV (its length: 0.1 s per word)
#: to standard output.
_STDOUT_TTS = (
    "import io, sys, wave\n"
    "words = sys.stdin.read().split()\n"
    "buffer = io.BytesIO()\n"
    "with wave.open(buffer, 'wb') as out:\n"
    "    out.setnchannels(1); out.setsampwidth(2); out.setframerate(8000)\n"
    "    out.writeframes(bytes(1600 * len(words)))\n"
    "sys.stdout.buffer.write(buffer.getvalue())\n"
)


class TtsTests(TestCase):
    timeout = 60

    async def test_espeak_ng_writes_a_wav(self) -> None:
        """The default espeak-ng command speaks the text into a WAV file."""
        tts = TextToSpeech(reactor, ("espeak-ng", "-w", "{file}", "{text}"))
        audio = await tts.speak("dinner is ready")
        seconds = wav_seconds(audio)
        assert audio.startswith(b"RIFF") and seconds is not None and 0.5 < seconds < 5

    async def test_text_on_stdin_wav_on_stdout(self) -> None:
        """Without {text} the text goes to standard input; without {file} the WAV is read
        from standard output."""
        tts = TextToSpeech(reactor, (sys.executable, "-c", _STDOUT_TTS))
        audio = await tts.speak("one two three four")
        assert wav_seconds(audio) == 0.4

    async def test_failures_are_one_line(self) -> None:
        """A missing command, a failing one, one making no WAV, a slow one and one writing
        too much each fail with a TtsError saying why."""
        cases = [
            (("no-such-tts-command", "{text}"), "is not installed", 5.0, 1 << 20),
            (
                (sys.executable, "-c", "import sys; sys.exit('broken voice')"),
                "exit status 1: broken voice",
                5.0,
                1 << 20,
            ),
            ((sys.executable, "-c", "print('hello')"), "made no WAV", 5.0, 1 << 20),
            (
                (sys.executable, "-c", "import time; time.sleep(30)"),
                "did not finish within 0.5 s",
                0.5,
                1 << 20,
            ),
            (
                (sys.executable, "-c", "import sys; sys.stdout.write('x' * 100000)"),
                "more than 1000 bytes",
                5.0,
                1000,
            ),
        ]
        for command, reason, timeout, limit in cases:
            tts = TextToSpeech(reactor, command, timeout=timeout, max_audio=limit)
            try:
                await tts.speak("hello")
            except TtsError as error:
                assert reason in str(error), (command, str(error))
            else:
                raise AssertionError(f"{command} did not fail")
