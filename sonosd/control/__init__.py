"""Control: commands from the clients back to the speakers.

Data path (the way back): a channel (REST, WebSocket, MQTT) reads a command with
:mod:`~sonosd.control.dispatch`, which calls :class:`~sonosd.control.controller.Controller`;
:mod:`~sonosd.control.commandargs` checks its name and arguments before anything touches the
network; the controller routes it (to the group coordinator where it must) and runs SoCo's
blocking call in the one thread pool (:mod:`sonosd.blocking`), then maps errors to stable codes.

May import: :mod:`sonosd.household` (state and topology, to find speakers and coordinators),
:mod:`sonosd.delivery` (the error object), :mod:`sonosd.gena`, and the foundation modules.
"""
