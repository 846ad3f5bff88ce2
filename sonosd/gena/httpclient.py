# -*- test-case-name: tests.gena.test_httpclient -*-
"""HTTP connection pools that do not log every connection they open.

Twisted's client factories announce "Starting factory" and "Stopping factory" at info level
for every connection. A daemon that renews hundreds of subscriptions would fill its log
with them, so every HTTP client of sonosd takes its pool from here.
"""

from __future__ import annotations

from typing import Any

from twisted.web.client import HTTPConnectionPool, _HTTP11ClientFactory


class _QuietClientFactory(_HTTP11ClientFactory):
    noisy = False


def quiet_pool(reactor: Any, persistent: bool = False) -> HTTPConnectionPool:
    """An ``HTTPConnectionPool`` whose connections are not logged one by one."""
    pool = HTTPConnectionPool(reactor, persistent=persistent)
    pool._factory = _QuietClientFactory
    return pool
