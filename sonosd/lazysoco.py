# -*- test-case-name: tests.test_lazysoco -*-
"""SoCo loaded when the daemon first needs it, and configured before it is used.

``import soco`` (or any ``soco.*`` module: SoCo's ``__init__`` imports all of it) brings in
``requests``, ``urllib3``, ``lxml`` and ``xmltodict``: about 11 MB of an idle daemon's resident
memory (issue 17). An idle daemon needs none of it: its GENA side, event parsing, speaker
identification, topology and state reads are SoCo-free. SoCo is loaded by ``load()`` the
first time a SoCo object is built (``speaker``: a control command; a Python callback's SoCo
``Event``), and
every hook given to ``on_load`` (the daemon's settings, its bounded HTTP, SOAP over HTTPS:
``sonosd.service.configure_soco``) runs then, once, before ``load()`` returns to anyone:
no SoCo call can run unconfigured. Safe from any thread (the pool's threads build SoCo
objects too).
"""

from __future__ import annotations

import importlib
import sys
import threading
from collections.abc import Callable
from types import ModuleType
from typing import Any

#: The port speakers serve their HTTP (SOAP, descriptions, events) on.
SONOS_PORT = 1400

_lock = threading.RLock()
_hooks: list[Callable[[ModuleType], None]] = []
_configured: ModuleType | None = None
#: SoCo while its hooks run (a hook that builds a SoCo object calls ``load()`` again).
_configuring: ModuleType | None = None


def on_load(hook: Callable[[ModuleType], None]) -> None:
    """Call ``hook(soco)`` once SoCo is loaded: at the first ``load()``, or now if that has
    happened already."""
    with _lock:
        if _configured is None:
            _hooks.append(hook)
            return
    hook(_configured)


def load() -> ModuleType:
    """The ``soco`` package, imported and configured (every ``on_load`` hook run) on the
    first call."""
    global _configured, _configuring
    module = _configured
    if module is not None:
        return module
    with _lock:
        if _configured is not None:
            return _configured
        if _configuring is not None:
            # Called again by a hook, in this thread (others wait for the lock).
            return _configuring
        module = importlib.import_module("soco")
        _configuring = module
        try:
            for hook in _hooks:
                hook(module)
        finally:
            _configuring = None
        _configured = module
        return module


def loaded() -> bool:
    """Whether ``soco`` is in the process (loaded here or imported by anyone)."""
    return "soco" in sys.modules


def speaker(host: str, port: int = SONOS_PORT) -> Any:
    """A ``soco.SoCo`` for ``host`` (and ``port`` when it is not the usual one), SoCo loaded
    and configured first."""
    soco = load()
    if port == SONOS_PORT:
        return soco.SoCo(host)
    return soco.SoCo(host, port)


def loaded_module(name: str) -> ModuleType | None:
    """``sys.modules[name]`` when that module is loaded, else ``None``: for code that must
    recognise SoCo's (or requests') exceptions without loading SoCo to do so (an error that
    is one of them can only come from a loaded module)."""
    return sys.modules.get(name)
