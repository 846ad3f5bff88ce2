"""The speakers' GENA side: events from the speakers, up to a parsed event of one subscription.

Data path: a speaker's ``NOTIFY`` reaches :mod:`~sonosd.gena.listener` (over the lean HTTP of
:mod:`~sonosd.gena.notifyproto`), which checks its SID and source and hands it, parsed by
:mod:`~sonosd.gena.eventxml`, to the :class:`~sonosd.gena.subscription.Subscription` that owns
the SID. Subscriptions are made, renewed and ended over :mod:`~sonosd.gena.httpclient`;
:mod:`~sonosd.gena.sequence` tells a duplicate or a gap from the next ``SEQ``. The household
(:mod:`sonosd.household`) decides which subscriptions exist and what their events mean.

The daemon subscribes with :mod:`~sonosd.gena.core` (no SoCo: an idle daemon never loads it);
:mod:`~sonosd.gena.subscription` is the SoCo-compatible class built on it.

May import: nothing of sonosd but ``peerlog`` (SoCo, Twisted and treq; only
``subscription`` imports SoCo, and ``eventxml`` when a DIDL value is first used).

This package is public under its own name: ``sonosd.gena`` has the API of
``soco.events_twisted`` and works as ``soco.config.EVENTS_MODULE`` (``Subscription``,
``event_listener``). Its names are loaded from :mod:`~sonosd.gena.subscription` on first use,
so that importing one module of the package (the event parser, say) does not import the
HTTP client.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sonosd.gena.listener import INotifyListener as INotifyListener
    from sonosd.gena.listener import INotifySubscription as INotifySubscription
    from sonosd.gena.listener import NotifyListener as NotifyListener
    from sonosd.gena.subscription import DEFAULT_REQUEST_TIMEOUT as DEFAULT_REQUEST_TIMEOUT
    from sonosd.gena.subscription import INFINITE_RENEW_INTERVAL as INFINITE_RENEW_INTERVAL
    from sonosd.gena.subscription import MAX_RESPONSE_BODY as MAX_RESPONSE_BODY
    from sonosd.gena.subscription import RENEW_FRACTION as RENEW_FRACTION
    from sonosd.gena.subscription import SHUTDOWN_GRACE as SHUTDOWN_GRACE
    from sonosd.gena.subscription import GenaError as GenaError
    from sonosd.gena.subscription import GenaResponse as GenaResponse
    from sonosd.gena.subscription import GenaTimeout as GenaTimeout
    from sonosd.gena.subscription import Subscription as Subscription
    from sonosd.gena.subscription import SubscriptionDeferred as SubscriptionDeferred
    from sonosd.gena.subscription import SubscriptionGone as SubscriptionGone
    from sonosd.gena.subscription import UsageError as UsageError
    from sonosd.gena.subscription import build_http_client as build_http_client
    from sonosd.gena.subscription import check_response as check_response
    from sonosd.gena.subscription import close_default_listener as close_default_listener
    from sonosd.gena.subscription import default_listener as default_listener
    from sonosd.gena.subscription import parse_timeout as parse_timeout
    from sonosd.gena.subscription import renew_headers as renew_headers
    from sonosd.gena.subscription import subscribe_headers as subscribe_headers

#: The public names and the module of the package that holds each.
_PUBLIC = {
    **dict.fromkeys(
        (
            "DEFAULT_REQUEST_TIMEOUT",
            "INFINITE_RENEW_INTERVAL",
            "MAX_RESPONSE_BODY",
            "RENEW_FRACTION",
            "SHUTDOWN_GRACE",
            "GenaError",
            "GenaResponse",
            "GenaTimeout",
            "Subscription",
            "SubscriptionDeferred",
            "SubscriptionGone",
            "UsageError",
            "build_http_client",
            "check_response",
            "close_default_listener",
            "default_listener",
            "parse_timeout",
            "renew_headers",
            "subscribe_headers",
            "event_listener",
        ),
        "sonosd.gena.subscription",
    ),
    **dict.fromkeys(
        ("INotifyListener", "INotifySubscription", "NotifyListener"), "sonosd.gena.listener"
    ),
}

__all__ = sorted(name for name in _PUBLIC if name != "event_listener")


def __getattr__(name: str) -> Any:
    """A public name, from the module that holds it (``event_listener`` is made on first use)."""
    module = _PUBLIC.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)


def __dir__() -> list[str]:
    return sorted([*globals(), *_PUBLIC])
