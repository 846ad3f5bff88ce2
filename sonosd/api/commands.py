# -*- test-case-name: tests.test_api_commands -*-
"""Speaker commands over the API: ``POST /api/v1/speakers/{id}/{command}`` and the WebSocket.

Both call ``Controller.execute(speaker_id, command, args) -> Deferred[dict]`` (see
``docs/design.md``, "Control"); failures are ``ControlError(code, status, message,
upnp_error)``, read here by attribute so that this module does not depend on the control
module's import. Authorisation (the ``control`` scope) is checked by the site before a request
reaches ``CommandResource``.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any, Protocol

from twisted.internet.defer import Deferred, maybeDeferred
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web.resource import IResource, Resource
from twisted.web.server import NOT_DONE_YET, Request

from sonosd.api.responses import error_body, json_error, json_response

log = Logger()

#: The largest request body a command accepts.
MAX_BODY = 65_536


class ControllerLike(Protocol):
    """What the API needs from ``sonosd.control.Controller``."""

    def execute(
        self, speaker_id: str, command: str, args: Mapping[str, Any]
    ) -> Deferred[dict[str, Any]]:
        """Run ``command`` on the speaker; fire with its JSON result."""


#: Builds the resource for ``POST /api/v1/speakers/{id}/{command}`` (the control hook).
CommandFactory = Callable[[str, str], IResource]


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
    """A command's JSON arguments (an object; an empty body is ``{}``).

    @raise ValueError: The body is not a JSON object.
    """
    if not body.strip():
        return {}
    args = json.loads(body)
    if not isinstance(args, dict):
        raise ValueError("the body must be a JSON object of arguments")
    return args


class CommandResource(Resource):
    """``POST /api/v1/speakers/{speaker}/{command}`` with a JSON object of arguments.

    @param controller: The controller, or ``None`` (every command answers 503
        ``not_available``).
    """

    isLeaf = True

    def __init__(self, controller: ControllerLike | None, speaker: str, command: str) -> None:
        super().__init__()
        self._controller = controller
        self._speaker = speaker
        self._command = command

    def render_GET(self, request: Request) -> bytes:
        """Commands change state, so they are never run by GET."""
        request.setHeader(b"allow", b"POST")
        return json_error(request, 405, "method_not_allowed", "commands are POST requests")

    def render_POST(self, request: Request) -> bytes | int:
        """Parse the arguments, run the command, answer its result or its error."""
        if self._controller is None:
            return json_error(request, 503, "not_available", "commands are not available")
        content_type = (request.getHeader("content-type") or "").split(";")[0].strip().lower()
        body = request.content.read(MAX_BODY + 1) if request.content is not None else b""
        if len(body) > MAX_BODY:
            return json_error(request, 413, "too_large", "the request body is too large")
        if body.strip() and content_type != "application/json":
            return json_error(request, 415, "bad_content_type", "send application/json")
        try:
            args = parse_args(body)
        except ValueError as error:
            return json_error(request, 400, "bad_request", str(error))
        finished = [False]
        request.notifyFinish().addBoth(lambda _: finished.__setitem__(0, True))

        def answered(result: dict[str, Any]) -> None:
            if not finished[0]:
                request.write(json_response(request, {"result": result}))
                request.finish()

        def failed(failure: Failure) -> None:
            status, error = failure_fields(failure)
            if not finished[0]:
                request.write(json_response(request, {"error": error}, status))
                request.finish()

        execute(self._controller, self._speaker, self._command, args).addCallbacks(answered, failed)
        return NOT_DONE_YET


def default_commands(controller: ControllerLike | None) -> CommandFactory:
    """The command hook used when the service is given none: ``CommandResource``."""

    def build(speaker: str, command: str) -> IResource:
        return CommandResource(controller, speaker, command)

    return build
