"""Calling unmodified SoCo from trial tests: its blocking calls run in a thread."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from soco.exceptions import SoCoUPnPException
from twisted.internet.threads import deferToThread

T = TypeVar("T")


async def in_thread(fn: Callable[[], T]) -> T:
    """Run a blocking SoCo call in a thread."""
    result: T = await deferToThread(fn)
    return result


async def upnp_error_of(fn: Callable[[], object]) -> str:
    """The UPnP error code a SoCo call fails with (an AssertionError if it does not)."""

    def call() -> str:
        try:
            fn()
        except SoCoUPnPException as e:
            return str(e.error_code)
        raise AssertionError("no UPnP error")

    return await in_thread(call)
