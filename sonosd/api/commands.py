# -*- test-case-name: tests.api.test_site -*-
"""Speaker commands over REST: ``POST /api/v1/speakers/{id}/{command}``.

The resource goes through :mod:`sonosd.control.dispatch` (arguments, the call, the error
fields), as the WebSocket and MQTT do. Authorisation (the ``control`` scope) is checked by the
site before a request reaches ``CommandResource``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from twisted.python.failure import Failure
from twisted.web.resource import IResource, Resource
from twisted.web.server import NOT_DONE_YET, Request

from sonosd.api.responses import json_error, json_response
from sonosd.control.dispatch import ControllerLike, execute, failure_fields, parse_args
from sonosd.delivery.clientjson import MAX_BYTES, JsonRefused
from sonosd.delivery.metrics import ApiMetrics

#: The largest request body a command accepts (``sonosd.delivery.clientjson.MAX_BYTES``).
MAX_BODY = MAX_BYTES


#: Builds the resource for ``POST /api/v1/speakers/{id}/{command}`` (the control hook).
CommandFactory = Callable[[str, str], IResource]


class CommandResource(Resource):
    """``POST /api/v1/speakers/{speaker}/{command}`` with a JSON object of arguments.

    @param controller: The controller, or ``None`` (every command answers 503
        ``not_available``).
    """

    isLeaf = True

    def __init__(
        self,
        controller: ControllerLike | None,
        speaker: str,
        command: str,
        metrics: ApiMetrics | None = None,
    ) -> None:
        super().__init__()
        self._controller = controller
        self._speaker = speaker
        self._command = command
        self._metrics = metrics

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
        except JsonRefused as refused:
            if self._metrics is not None:
                self._metrics.client_errors["rest", refused.reason] += 1
            return json_error(request, 400, "bad_request", str(refused))
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


def default_commands(
    controller: ControllerLike | None, metrics: ApiMetrics | None = None
) -> CommandFactory:
    """The command hook used when the service is given none: ``CommandResource`` (counting
    refused bodies in ``metrics``)."""

    def build(speaker: str, command: str) -> IResource:
        return CommandResource(controller, speaker, command, metrics)

    return build
