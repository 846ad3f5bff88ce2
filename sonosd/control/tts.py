# -*- test-case-name: tests.control.test_tts -*-
"""Text to speech with a local command (``espeak-ng``, ``piper``...): text in, WAV bytes out.

The command is an argument list, run without a shell (``announce.tts_command``): ``{text}``
in an argument becomes the text (without it the text is written to the command's standard
input, as piper reads it), ``{file}`` becomes a temporary WAV file the command writes
(without it the WAV is read from standard output). The command runs with a timeout (killed
when it is over), its output is bounded, and a failure says why in one line
(``TtsError``): not installed, exit status and the end of its standard error, no audio.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from twisted.internet.defer import Deferred
from twisted.internet.error import ProcessDone, ProcessExitedAlready, ProcessTerminated
from twisted.internet.interfaces import IDelayedCall
from twisted.internet.protocol import ProcessProtocol
from twisted.python.failure import Failure

#: The largest WAV accepted (bytes).
MAX_AUDIO = 32 << 20
_STDERR_KEPT = 2000
_ENVIRONMENT = ("PATH", "HOME", "LANG", "LC_ALL", "ESPEAK_DATA_PATH")


class TtsError(Exception):
    """The text could not be spoken; the message says why."""


class _Collect(ProcessProtocol):
    def __init__(self, stdin: bytes | None, limit: int) -> None:
        self.done: Deferred[int] = Deferred()
        self._stdin = stdin
        self._limit = limit
        self.out: list[bytes] = []
        self.size = 0
        self.err = b""
        self.too_big = False
        self.timed_out = False

    def connectionMade(self) -> None:
        if self._stdin is not None:
            self.transport.write(self._stdin)  # type: ignore[union-attr]
        self.transport.closeStdin()  # type: ignore[union-attr]

    def outReceived(self, data: bytes) -> None:
        self.size += len(data)
        if self.size > self._limit:
            if not self.too_big:
                self.too_big = True
                with contextlib.suppress(ProcessExitedAlready):
                    self.transport.signalProcess("KILL")  # type: ignore[union-attr]
        else:
            self.out.append(data)

    def errReceived(self, data: bytes) -> None:
        self.err = (self.err + data)[-_STDERR_KEPT:]

    def processEnded(self, reason: Failure) -> None:
        if reason.check(ProcessDone):
            self.done.callback(0)
        elif reason.check(ProcessTerminated):
            value: Any = reason.value
            self.done.callback(value.exitCode if value.exitCode is not None else -1)
        else:  # pragma: no cover - Twisted ends processes with one of the two
            self.done.callback(-1)


class TextToSpeech:
    """Runs the text-to-speech command; see the module docstring.

    @param reactor: Spawns the process and times it out.
    @param command: The argument list (``("espeak-ng", "-w", "{file}", "{text}")``).
    @param timeout: Seconds the command may run.
    """

    def __init__(
        self,
        reactor: Any,
        command: Sequence[str],
        timeout: float = 20.0,
        max_audio: int = MAX_AUDIO,
    ) -> None:
        self._reactor = reactor
        self.command = tuple(command)
        self.timeout = timeout
        self.max_audio = max_audio

    async def speak(self, text: str) -> bytes:
        """The WAV of ``text``.

        @raise TtsError: The command is missing, failed, timed out or made no audio.
        """
        executable = shutil.which(self.command[0])
        if executable is None:
            raise TtsError(f"the text-to-speech command {self.command[0]!r} is not installed")
        with tempfile.TemporaryDirectory(prefix="sonosd-tts-") as directory:
            target = Path(directory) / "speech.wav"
            uses_text = any("{text}" in arg for arg in self.command)
            uses_file = any("{file}" in arg for arg in self.command)
            args = [
                arg.replace("{file}", str(target)).replace("{text}", text) for arg in self.command
            ]
            collect = _Collect(None if uses_text else text.encode() + b"\n", self.max_audio)
            environment = {k: v for k, v in os.environ.items() if k in _ENVIRONMENT}
            process = self._reactor.spawnProcess(
                collect, executable, [executable, *args[1:]], env=environment, path=directory
            )
            timer: IDelayedCall = self._reactor.callLater(self.timeout, _kill, process, collect)
            try:
                status = await collect.done
            finally:
                if timer.active():
                    timer.cancel()
            name = self.command[0]
            if collect.timed_out:
                raise TtsError(f"{name} did not finish within {self.timeout:g} s")
            if collect.too_big:
                raise TtsError(f"{name} wrote more than {self.max_audio} bytes")
            if status != 0:
                detail = collect.err.decode("utf-8", "replace").strip().splitlines()
                reason = f": {detail[-1]}" if detail else ""
                raise TtsError(f"{name} failed with exit status {status}{reason}")
            audio = target.read_bytes() if uses_file and target.exists() else b"".join(collect.out)
        if len(audio) > self.max_audio:
            raise TtsError(f"{name} wrote more than {self.max_audio} bytes")
        if not audio.startswith(b"RIFF"):
            raise TtsError(f"{name} made no WAV audio")
        return audio


def _kill(process: Any, collect: _Collect) -> None:
    collect.timed_out = True
    with contextlib.suppress(ProcessExitedAlready):
        process.signalProcess("KILL")
