# -*- test-case-name: tests.sim.test_soapargs -*-
"""Reading a SOAP action's arguments as lenient speakers do, failing with UPnP 402.

Every action handler of the simulator reads its in-arguments through these: a missing
argument, a number that is not one, a boolean that is not ``1``/``0`` is ``UPnPError(402)``
(Invalid Args), the answer real firmware gives.
"""

from __future__ import annotations

from collections.abc import Mapping

from sonosd.sim.soap import UPnPError

Args = Mapping[str, str]


def required(args: Args, name: str) -> str:
    """The argument ``name``; 402 when it is missing."""
    if name not in args:
        raise UPnPError(402, f"missing argument {name}")
    return args[name]


def integer(args: Args, name: str, default: int | None = None) -> int:
    """The argument ``name`` as an integer (``default`` when missing, if given); else 402."""
    if name not in args:
        if default is None:
            raise UPnPError(402, f"missing argument {name}")
        return default
    try:
        return int(args[name].strip())
    except ValueError:
        raise UPnPError(402, f"{name} is not an integer") from None


def boolean(args: Args, name: str) -> bool:
    """The argument ``name`` as a boolean (``1``/``0``, ``true``/``false``); else 402."""
    value = required(args, name).strip().lower()
    if value in ("1", "true", "yes"):
        return True
    if value in ("0", "false", "no"):
        return False
    raise UPnPError(402, f"{name} is not a boolean")


def flag(value: bool) -> str:
    """A boolean as Sonos writes it: ``1`` or ``0``."""
    return "1" if value else "0"
