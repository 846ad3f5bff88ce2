"""A standard library HTTP server in a thread of its own, for tests of the blocking clients
(sonosctl's urllib, SoCo's requests, the benchmarks' readers) against a stand-in."""

from __future__ import annotations

import contextlib
import http.server
import threading
from collections.abc import Iterator


@contextlib.contextmanager
def serving(handler: type[http.server.BaseHTTPRequestHandler]) -> Iterator[str]:
    """Answer with ``handler`` on a free loopback port while the block runs; its URL
    (``http://127.0.0.1:PORT``, no path). The server is shut and closed after the block."""
    server = http.server.HTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
