# -*- test-case-name: tests.control.test_dispatch -*-
"""A command from any client channel (REST, WebSocket, MQTT): its arguments, the call, its error.

Every channel calls ``Controller.execute(speaker_id, command, args) -> Deferred[dict]`` (see
``docs/design.md``, "Control") through :func:`execute`, reads arguments with
:func:`parse_args` and reports a failure with :func:`failure_fields`. Failures are
``ControlError(code, status, message, upnp_error)``, read here by attribute so that a channel
needs only :class:`ControllerLike`, not the controller's import.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

from twisted.internet.defer import Deferred, maybeDeferred
from twisted.logger import Logger
from twisted.python.failure import Failure

from sonosd.delivery.channel import error_body
from sonosd.delivery.clientjson import JsonRefused, check_size, decode

log = Logger()


class ControllerLike(Protocol):
    """What the API needs from ``sonosd.control.controller.Controller``."""

    def execute(
        self, speaker_id: str, command: str, args: Mapping[str, Any]
    ) -> Deferred[dict[str, Any]]:
        """Run ``command`` on the speaker; fire with its JSON result."""


def failure_fields(failure: Failure) -> tuple[int, dict[str, Any]]:
    """The HTTP status and the error object for a failed command.

    A ``ControlError`` (anything with ``code``, ``status`` and ``message``) is reported as it
    says; anything else is an internal error, logged, with no detail sent to the client.
    """
    error = failure.value
    code = getattr(error, "code", None)
    status = getattr(error, "status", None)
    if isinstance(code, str) and isinstance(status, int):
        message = getattr(error, "message", None) or str(error)
        fields = error_body(code, str(message))["error"]
        # Always present (null when the speaker gave no UPnP code), as docs/control.md shows.
        fields["upnp_error"] = getattr(error, "upnp_error", None)
        return status, fields
    log.failure("command failed unexpectedly", failure)
    fields = error_body("internal", "the command failed; see the daemon's log")["error"]
    fields["upnp_error"] = None
    return 500, fields


def execute(
    controller: ControllerLike, speaker: str, command: str, args: Mapping[str, Any]
) -> Deferred[dict[str, Any]]:
    """Call ``controller.execute``, turning a synchronous exception into a failed Deferred."""
    return maybeDeferred(controller.execute, speaker, command, args)


def parse_args(body: bytes) -> dict[str, Any]:
    """A command's JSON arguments (an object; an empty body is ``{}``), decoded within
    ``sonosd.delivery.clientjson``'s bounds (64 KiB, 32 levels).

    @raise JsonRefused: The body is not a JSON object, or breaks a bound (a ``ValueError``
        whose ``reason`` names the rule).
    """
    check_size(body)
    if not body.strip():
        return {}
    args = decode(body)
    if not isinstance(args, dict):
        raise JsonRefused("not_json", "the body must be a JSON object of arguments")
    return args
