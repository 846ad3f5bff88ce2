# sonosd: `make demo` runs the daemon against a simulated household; `make test` runs the checks.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# System packages the test suite needs (mosquitto: the MQTT sink's broker; systemd: systemd-analyze;
# chromium: the dashboard's browser tests, driven by Playwright, which cannot download its own;
# espeak-ng: the announcements' default text-to-speech command; iproute2: `ip`, which stages a
# Docker bridge container's address in a network namespace for the doctor's test; nginx: the
# reverse proxy of tests/test_reverse_proxy.py, which starts its own with a temporary config;
# gcc: the compiled event reader, sonosd/gena/_shape.c, which tests/gena/test_shape.py requires).
APT_PACKAGES := gcc libc6-dev mosquitto mosquitto-clients systemd chromium espeak-ng iproute2 nginx

.PHONY: demo test lint typecheck unit bench soak sysdeps compiler clean screenshots

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

# compat editable mode puts the checkout on sys.path, so twistd finds twisted/plugins/ here
# (and builds sonosd/gena/_shape.c in place; setup.py goes on without it where no compiler is).
$(STAMP): $(BIN)/python setup.py setup.cfg pyproject.toml sonosd/gena/_shape.c | compiler
	$(BIN)/pip install --quiet -e '.[test]' --config-settings editable_mode=compat
	$(BIN)/twistd --help > /dev/null
	touch $@

# A C compiler before the install, for `make demo` as for `make test` (only gcc, not sysdeps).
compiler:
	@command -v cc > /dev/null 2>&1 || $(MAKE) --no-print-directory sysdeps APT_PACKAGES="gcc libc6-dev"

sysdeps:
	@missing=""; for p in $(APT_PACKAGES); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "install ok installed" || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "installing system packages:$$missing"; \
	  $(NO_SERVICE_STARTS) \
	  (apt-get update -qq || true) && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing; \
	  status=$$?; $(SERVICE_STARTS_AGAIN) exit $$status; \
	fi

# Installing a package must start no service (nginx would take port 80, mosquitto 1883): while
# apt-get runs, a policy-rc.d that answers 101 ("action forbidden") tells invoke-rc.d and
# deb-systemd-invoke not to start anything. One already there (Docker images have one) is kept;
# ours is removed afterwards, whether the install succeeded or not.
POLICY_RC := /usr/sbin/policy-rc.d
NO_SERVICE_STARTS := ours=""; if [ ! -e $(POLICY_RC) ]; then \
	  printf '\043!/bin/sh\nexit 101\n' > $(POLICY_RC) && chmod 755 $(POLICY_RC) && ours=1; fi;
SERVICE_STARTS_AGAIN := if [ -n "$$ours" ]; then rm -f $(POLICY_RC); fi;

# --pidfile=: no twistd.pid in the checkout (it would stop `twistd -n sonos-sim` starting here).
demo: $(STAMP)
	$(BIN)/twistd -n --pidfile= sonosd -c etc/sonosd.demo.yaml

lint: $(STAMP)
	$(BIN)/ruff check sonosd tests benchmarks twisted
	$(BIN)/ruff format --check sonosd tests benchmarks twisted
	$(BIN)/lint-imports --no-cache

typecheck: $(STAMP)
	$(BIN)/mypy

# Three workers (pytest-xdist) on a 2-core machine: the suite waits on real processes and
# sockets much of the time. With two, the CPU stayed 41 % idle over a whole run (vmstat); with
# three, 23 %, and the run took 482 s against 587 s (same machine, same code, one after the other).
unit: $(STAMP) sysdeps
	$(BIN)/pytest --cov --cov-branch --cov-report=term -q -n 3

test: lint typecheck unit

# Refresh docs/dashboard.png and docs/dashboard-dark.png from the dashboard's browser tests.
screenshots: $(STAMP) sysdeps
	mkdir -p build/screenshots
	SONOSD_SCREENSHOTS=build/screenshots $(BIN)/pytest -q -p no:cacheprovider tests/api/test_dashboard_browser.py
	cp build/screenshots/dashboard.png build/screenshots/dashboard-dark.png docs/

bench: $(STAMP)
	$(BIN)/python -m benchmarks.run --out docs/benchmarks.md

# The chaos soak (benchmarks/soak.py): SOAK_SECONDS of faults (default 15 minutes), report in
# docs/soak.md. `make test` runs 30 seconds of it (a fault every 2.5 s) without touching the report.
SOAK_SECONDS ?= 900
SOAK_FAULT_INTERVAL ?= 20
soak: $(STAMP) sysdeps
	$(BIN)/python -m benchmarks.soak --duration $(SOAK_SECONDS) \
	  --fault-interval $(SOAK_FAULT_INTERVAL) --report docs/soak.md

clean:
	rm -rf $(VENV) build *.egg-info .coverage .mypy_cache .ruff_cache .pytest_cache twisted/plugins/dropin.cache
