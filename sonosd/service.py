# -*- test-case-name: tests.test_service -*-
"""The daemon's top service: builds every part from the configuration and orders them.

Children start in the order they are added and stop in the reverse order, so the thread pool
is added first (it stops last, after nothing can submit work) and the supervisor last (it
unsubscribes first, while the listener, the sinks and the pool still run).
"""

from __future__ import annotations

from typing import Any

from twisted.application.service import MultiService
from twisted.logger import Logger

from sonosd.blocking import SocoRunner
from sonosd.config import Config
from sonosd.hub import Hub
from sonosd.sinks.logsink import LogSink

log = Logger()


class SonosdService(MultiService):
    """Everything the daemon runs, built from a validated ``Config``.

    @param config: The validated configuration.
    @param reactor: The reactor every part is given.
    """

    def __init__(self, config: Config, reactor: Any) -> None:
        super().__init__()
        self.config = config
        self.reactor = reactor
        self.runner = SocoRunner(
            reactor, threads=config.soco.threads, timeout=config.soco.call_timeout
        )
        self.runner.setServiceParent(self)
        self.hub = Hub(reactor, replay=config.api.replay_buffer)
        self.hub.add_sink(LogSink())
