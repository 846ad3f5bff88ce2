# sonosd in a container. Build: docker build -t sonosd .
# Run (the speakers must reach the listener: host networking is simplest):
#     docker run -d --name sonosd --network host \
#         -v /srv/sonosd/config.yaml:/etc/sonosd/config.yaml:ro sonosd
# Bridge networking instead: publish the listener port and advertise the host's address,
#     docker run -d -p 1400:1400 -p 8080:8080 -v ...:/etc/sonosd/config.yaml:ro sonosd \
#         -c /etc/sonosd/config.yaml --advertise 192.168.1.10 --api tcp:8080
# (the file must then hold api tokens: an API beyond loopback without one is refused).
# docker-compose.yml has both; docs/deployment.md walks through them.

FROM python:3.11-slim AS build
# A C compiler for the compiled event reader (sonosd/gena/_shape.c, setup.py); only this stage
# has it: the image gets the wheel.
RUN apt-get update \
    && apt-get install -y --no-install-recommends gcc libc6-dev \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY setup.py setup.cfg pyproject.toml README.md LICENSE ./
COPY sonosd ./sonosd
COPY twisted ./twisted
RUN pip wheel --no-cache-dir --wheel-dir /wheels .

FROM python:3.11-slim
ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    STATE_DIRECTORY=/var/lib/sonosd \
    SONOSD_READY_URL=http://127.0.0.1:8080/api/v1/ready
COPY --from=build /wheels /wheels
# Install, then build Twisted's plugin cache now: the image is read-only for the daemon's
# user, and twistd would otherwise rescan (and fail to write the cache) at every start.
RUN pip install --no-cache-dir /wheels/*.whl \
    && rm -rf /wheels \
    && python -c "from twisted.plugin import IPlugin, getPlugins; list(getPlugins(IPlugin))" \
    && twistd --help | grep -q sonosd \
    && useradd --system --uid 10001 --user-group --home-dir /var/lib/sonosd --create-home \
        --shell /usr/sbin/nologin sonosd
COPY etc/sonosd.example.yaml /etc/sonosd/config.yaml
USER sonosd
WORKDIR /var/lib/sonosd
# 1400: GENA NOTIFY listener (listener.port); 8080: HTTP API (api.listen).
EXPOSE 1400 8080
# Healthy = ready: every followed speaker delivers its events (/api/v1/ready answers 200;
# 503, with reasons, while one is offline or its NOTIFYs cannot reach the container).
# /api/v1/health is the liveness check (200 while the daemon answers at all).
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen(os.environ['SONOSD_READY_URL'], timeout=4)"]
# twistd stays in the foreground (-n) without a pid file; SIGTERM (docker stop) exits 0.
ENTRYPOINT ["twistd", "-n", "--pidfile=", "sonosd"]
CMD ["-c", "/etc/sonosd/config.yaml"]
