# -*- test-case-name: tests.test_tlsgate -*-
"""pyOpenSSL (and the cryptography library under it) loaded only once the daemon uses TLS.

Twisted imports pyOpenSSL as soon as the reactor, ``twisted.internet.endpoints`` or
``twisted.web.client`` is imported, whether or not anything uses TLS: about 15 MB of an idle
daemon's resident memory (issue 17). Each of those modules imports it inside
``try: ... except ImportError:`` and works without TLS when it is missing. So the daemon,
started by ``twistd``, defers it (``defer``): until ``enable`` is called, an import of
``OpenSSL`` fails, and Twisted's modules load in their "no TLS" form. Whatever needs TLS calls
``enable`` first: an ``ssl:`` (or any other non-plain) endpoint string in the configuration,
webhooks (HTTPS), Python callbacks (user code may use TLS), the embedded simulator.
``enable`` removes the gate, imports Twisted's TLS modules and gives the modules loaded
meanwhile what their ``try`` would have given them: the reactor's ``listenSSL`` and
``connectSSL`` (``posixbase``), ``wrapClientTLS`` and the TLS endpoints (``endpoints``), the
HTTPS policy of ``Agent`` (``web.client``). What stays unavailable in a process that started
without TLS is ``startTLS`` on a plain TCP connection, which sonosd never uses.

Only ``twistd sonosd`` defers TLS (``sonosd.tap``); importing sonosd elsewhere changes nothing.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import sys
from collections.abc import Sequence
from types import ModuleType

#: The package whose import is deferred.
GATED = "OpenSSL"


class _Gate(importlib.abc.MetaPathFinder):
    """Makes every import of ``OpenSSL`` fail with ``ImportError`` while installed."""

    def find_spec(
        self,
        fullname: str,
        path: Sequence[str] | None = None,
        target: ModuleType | None = None,
    ) -> importlib.machinery.ModuleSpec | None:
        if fullname == GATED or fullname.startswith(GATED + "."):
            raise ImportError(f"{fullname}: TLS is not in use (sonosd.tlsgate)", name=fullname)
        return None


_gate = _Gate()


def defer() -> bool:
    """Make imports of pyOpenSSL fail until ``enable`` is called.

    @return: Whether TLS is now deferred (``False`` when pyOpenSSL is already loaded: then
        nothing changes).
    """
    if GATED in sys.modules:
        return False
    if _gate not in sys.meta_path:
        sys.meta_path.insert(0, _gate)
    return True


def deferred() -> bool:
    """Whether TLS is deferred now (``OpenSSL`` cannot be imported)."""
    return _gate in sys.meta_path


def enable() -> None:
    """Allow TLS from now on, and give it to the Twisted modules loaded without it.

    Idempotent, and a no-op when TLS was never deferred.
    """
    if _gate not in sys.meta_path:
        return
    sys.meta_path.remove(_gate)
    from twisted.internet import ssl
    from twisted.protocols import tls

    posixbase = sys.modules.get("twisted.internet.posixbase")
    if posixbase is not None and getattr(posixbase, "tls", None) is None:
        from twisted.internet.interfaces import IReactorSSL
        from zope.interface import classImplements

        _give(posixbase, tls=tls, ssl=ssl)
        classImplements(posixbase.PosixReactorBase, IReactorSSL)  # type: ignore[misc]
    endpoints = sys.modules.get("twisted.internet.endpoints")
    if endpoints is not None and getattr(endpoints, "TLSMemoryBIOFactory", None) is None:
        from OpenSSL.SSL import Error as SSLError

        names = (
            "Certificate",
            "CertificateOptions",
            "KeyPair",
            "PrivateCertificate",
            "optionsForClientTLS",
            "trustRootFromCertificates",
        )
        _give(endpoints, SSLError=SSLError, **{name: getattr(ssl, name) for name in names})
        try:
            from twisted.protocols import _sni  # Twisted 25.5 and later
        except ImportError:  # pragma: no cover
            pass
        else:
            _give(
                endpoints,
                SNIConnectionCreator=_sni.SNIConnectionCreator,
                _TLSServerEndpoint=_sni.TLSServerEndpoint,
                autoReloadingDirectoryOfPEMs=_sni.autoReloadingDirectoryOfPEMs,
            )
        _give(endpoints, TLSMemoryBIOFactory=tls.TLSMemoryBIOFactory)
    client = sys.modules.get("twisted.web.client")
    if client is not None and getattr(client, "SSL", None) is None:
        from OpenSSL import SSL

        helpers = ("CertificateOptions", "optionsForClientTLS", "platformTrust")
        _give(client, SSL=SSL, **{name: getattr(ssl, name) for name in helpers})
        # Methods decorated with ``_requireSSL`` while pyOpenSSL was missing raise
        # NotImplementedError; ``functools.wraps`` kept the real method.
        for cls in list(vars(client).values()):
            if isinstance(cls, type) and cls.__module__ == client.__name__:
                for attribute, value in list(vars(cls).items()):
                    code = getattr(value, "__code__", None)
                    if code is not None and code.co_name == "raiseNotImplemented":
                        setattr(cls, attribute, value.__wrapped__)


def _give(module: ModuleType, **names: object) -> None:
    """Set ``names`` in ``module`` as its TLS imports would have."""
    for name, value in names.items():
        setattr(module, name, value)
