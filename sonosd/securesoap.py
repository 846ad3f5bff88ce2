# -*- test-case-name: tests.test_securesoap -*-
"""SOAP over HTTPS (port 1443) for speakers that refuse it over HTTP.

Some Sonos firmware (reported for S2 models: Arc, Era 100 and 300, Move 2, Beam Gen 2)
answers ``403 Forbidden`` to SOAP control requests on ``http://<ip>:1400`` and serves them on
``https://<ip>:1443``, while its device description and events stay on HTTP. Every speaker
advertises that port (``SSLPort="1443"`` in the topology). Its certificate is self-signed
and names no address of the speaker, so it **cannot be verified**: these requests are
encrypted but the speaker is not authenticated (as for everything else a speaker serves on
its plain HTTP port).

SoCo sends each SOAP request with ``requests.post(service.base_url + control_url)`` (and
reads service descriptions with ``requests.get``) through the ``requests`` name of
``soco.services``; each service copies its ``base_url`` from the speaker when the ``SoCo``
object is made. Rather than rewrite the services of every ``SoCo`` object the daemon and
SoCo itself create, ``install()`` puts a ``SecureSoap`` in place of that one name: it
forwards everything to ``requests`` unchanged, except that, per speaker address,

- a request over HTTP answered 403 is sent once over HTTPS; if that is answered with
  anything but 403, the address is remembered as HTTPS-only (one log line) and that answer
  is returned; if not (nothing listens on 1443, or 403 there too: UPnP is switched off), the
  403 stands;
- a request to a remembered address goes over HTTPS directly; if no connection can be made
  there, it is sent over HTTP again, and an answer other than 403 forgets the address (the
  speaker takes HTTP again, or another speaker has the address now).
"""

from __future__ import annotations

import threading
import warnings
from types import ModuleType
from typing import Any
from urllib.parse import SplitResult, urlsplit

import requests
from twisted.logger import Logger
from urllib3.exceptions import InsecureRequestWarning

log = Logger()

#: The port speakers serve HTTPS on (``SSLPort`` in the device description and topology).
TLS_PORT = 1443


class SecureSoap:
    """What ``soco.services`` calls ``requests``: see the module docstring.

    @param http: The real ``requests`` module (or what stands for it).
    @param port: The HTTPS port of the speakers.
    @ivar secure: The addresses known to take SOAP over HTTPS only.
    """

    def __init__(self, http: ModuleType | Any = requests, port: int = TLS_PORT) -> None:
        self._http = http
        self.port = port
        self.secure: set[str] = set()
        self._lock = threading.Lock()

    def __getattr__(self, name: str) -> Any:
        # Everything else (exceptions, other methods) is the real module's.
        return getattr(self._http, name)

    def post(self, url: str, **kwargs: Any) -> requests.Response:
        """``requests.post``, over HTTPS for a speaker that wants it."""
        return self._request("post", url, kwargs)

    def get(self, url: str, **kwargs: Any) -> requests.Response:
        """``requests.get``, over HTTPS for a speaker that wants it."""
        return self._request("get", url, kwargs)

    def _request(self, method: str, url: str, kwargs: dict[str, Any]) -> requests.Response:
        send = getattr(self._http, method)
        parts = urlsplit(url)
        host = parts.hostname
        answer: requests.Response
        if parts.scheme != "http" or host is None:
            answer = send(url, **kwargs)
            return answer
        if host in self.secure:
            try:
                answer = send(self._over_tls(parts), verify=False, **kwargs)
                return answer
            except self._http.exceptions.ConnectionError:
                answer = send(url, **kwargs)
                if answer.status_code != 403:
                    self._forget(host)
                return answer
        answer = send(url, **kwargs)
        if answer.status_code != 403:
            return answer
        try:
            secure: requests.Response = send(self._over_tls(parts), verify=False, **kwargs)
        except self._http.exceptions.RequestException:
            return answer
        if secure.status_code == 403:
            return answer
        self._remember(host)
        return secure

    def _over_tls(self, parts: SplitResult) -> str:
        host = parts.hostname or ""
        netloc = f"[{host}]:{self.port}" if ":" in host else f"{host}:{self.port}"
        return parts._replace(scheme="https", netloc=netloc).geturl()

    def _remember(self, host: str) -> None:
        with self._lock:
            new = host not in self.secure
            self.secure.add(host)
        if new:
            log.info(
                "{host} refuses SOAP over HTTP: its control requests go over HTTPS (port "
                "{port}) from now on, without certificate verification (speakers' "
                "certificates are self-signed)",
                host=host,
                port=self.port,
            )

    def _forget(self, host: str) -> None:
        with self._lock:
            known = host in self.secure
            self.secure.discard(host)
        if known:
            log.info("{host} takes SOAP over HTTP again", host=host)


#: The one shim of the process (its memory of HTTPS-only speakers outlives a reinstall).
_shim: SecureSoap | None = None


def install(http: ModuleType | Any = None, port: int = TLS_PORT) -> SecureSoap:
    """Put the process's ``SecureSoap`` in place of ``soco.services.requests``.

    @param http: What the shim sends through (the daemon passes its bounded ``requests``,
        ``sonosd.household.socohttp``); by default what ``soco.services`` uses now.
    @return: The shim, the same one on every call: the speakers it knows to want HTTPS
        stay known when the daemon installs it again over a new ``http``.
    """
    global _shim
    import soco.services

    # Unverified HTTPS to speakers is deliberate (see the module docstring): no warning per
    # request. Only SoCo's speaker requests use requests in the daemon.
    warnings.filterwarnings("ignore", category=InsecureRequestWarning)
    current = soco.services.requests
    if http is None:
        http = _shim._http if isinstance(current, SecureSoap) and _shim else current
    if _shim is None:
        _shim = SecureSoap(http, port)
    else:
        _shim._http = http
    soco.services.requests = _shim
    return _shim
