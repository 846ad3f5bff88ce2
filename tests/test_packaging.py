"""Tests for the packaging and deployment files: the twistd plugin, the wheel, systemd, Docker."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import tomllib
import zipfile
from configparser import ConfigParser
from pathlib import Path

from sonosd import tap
from tests.paths import ROOT, openapi_spec

BIN = Path(sys.executable).parent
TWISTD = str(BIN / "twistd")


def run(
    *argv: str, cwd: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        list(argv), cwd=cwd, capture_output=True, text=True, timeout=300, check=False, env=env
    )


# -- the twistd plugin -----------------------------------------------------------------------------


def test_twistd_lists_sonosd(tmp_path: Path) -> None:
    """`twistd --help` (the venv's, editable install) lists the sonosd and sonos-sim plugins."""
    result = run(TWISTD, "--help", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    commands = re.findall(r"^\s{4}(\S+)\s", result.stdout, re.MULTILINE)
    assert "sonosd" in commands
    assert "sonos-sim" in commands


def test_twistd_sonosd_help_documents_every_option(tmp_path: Path) -> None:
    """`twistd sonosd --help` shows every option of sonosd.tap.Options with its text."""
    result = run(TWISTD, "sonosd", "--help", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    text = " ".join(result.stdout.split())
    for long_name, short, *_rest in [*tap.Options.optParameters, *tap.Options.optFlags]:
        assert f"--{long_name}" in text
        if short:
            assert f"-{short}, --{long_name}" in text
    assert "Validate the configuration, print 'ok'" in text


def test_plugin_file_imports_nothing_of_sonosd(tmp_path: Path) -> None:
    """Importing the plugin (as twistd does to list commands) loads no sonosd, SoCo or YAML."""
    code = (
        "import json, sys\n"
        "import twisted.plugins.sonosd_plugin, twisted.plugins.sonos_sim_plugin\n"
        "print(json.dumps(sorted(m for m in sys.modules\n"
        "    if m.split('.')[0] in {'sonosd', 'soco', 'yaml', 'jsonschema'})))\n"
    )
    result = run(sys.executable, "-c", code, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == []


def test_no_init_files_in_twisted_plugins() -> None:
    """twisted/ and twisted/plugins/ are namespace portions: no __init__.py of ours."""
    assert not (ROOT / "twisted" / "__init__.py").exists()
    assert not (ROOT / "twisted" / "plugins" / "__init__.py").exists()


# -- metadata --------------------------------------------------------------------------------------


def test_metadata_is_written_once() -> None:
    """pyproject.toml holds only the build system and tools; setup.cfg holds the metadata;
    setup.py only the compiled module."""
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert "project" not in pyproject
    assert set(pyproject) == {"build-system", "tool"}
    setup = ConfigParser()
    setup.read(ROOT / "setup.cfg")
    assert setup["metadata"]["name"] == "sonosd"
    assert setup["options.package_data"]["sonosd"].strip() == "*.json"
    setup_py = (ROOT / "setup.py").read_text()
    assert "ext_modules=" in setup_py and "optional=True" in setup_py
    for metadata_key in ("name=", "version=", "packages=", "install_requires="):
        assert metadata_key not in setup_py, metadata_key


def _source_copy(tmp_path: Path) -> Path:
    """The files a source distribution holds, copied so the build writes nothing here."""
    src = tmp_path / "src"
    src.mkdir()
    for name in ("setup.py", "setup.cfg", "pyproject.toml", "README.md", "LICENSE"):
        shutil.copy(ROOT / name, src / name)
    # A module the checkout's editable install compiled in place is not a source.
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "dropin.cache", "*.so")
    shutil.copytree(ROOT / "sonosd", src / "sonosd", ignore=ignore)
    shutil.copytree(ROOT / "twisted", src / "twisted", ignore=ignore)
    return src


def _installed(wheel: Path, tmp_path: Path) -> tuple[Path, dict[str, str]]:
    """``wheel`` installed on its own into ``tmp_path/site``, and the environment in which
    ``python -S`` imports sonosd from there: no .pth files, so the checkout's editable install
    is out of sight; the dependencies come from this venv's site-packages."""
    site = tmp_path / "site"
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "--no-input"]
    installed = run(
        *pip, "install", "--no-deps", "--no-index", "--target", str(site), str(wheel),
        cwd=tmp_path,
    )  # fmt: skip
    assert installed.returncode == 0, installed.stdout + installed.stderr
    env = {
        "PATH": os.environ.get("PATH", ""),
        "PYTHONPATH": os.pathsep.join([str(site), sysconfig.get_paths()["purelib"]]),
    }
    return site, env


def test_wheel_install_exposes_the_plugin(tmp_path: Path) -> None:
    """A wheel of the project, installed on its own, gives twistd the sonosd command (and
    carries the dashboard's files); the plugin cache built as docs/deployment.md says is
    what twistd then uses."""
    src = _source_copy(tmp_path)
    dist = tmp_path / "dist"
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "--no-input"]
    built = run(
        *pip, "wheel", "--no-deps", "--no-build-isolation", "--no-index", "-w", str(dist),
        str(src), cwd=tmp_path,
    )  # fmt: skip
    assert built.returncode == 0, built.stdout + built.stderr
    (wheel,) = dist.glob("sonosd-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    assert "twisted/plugins/sonosd_plugin.py" in names
    assert "twisted/plugins/sonos_sim_plugin.py" in names
    assert "sonosd/config.schema.json" in names
    assert "sonosd/tap.py" in names
    # The compiled event reader (setup.py): built with the wheel, where a compiler is.
    assert [name for name in names if re.fullmatch(r"sonosd/gena/_shape\..*\.so", name)]
    for package in ("gena", "household", "control", "delivery", "api", "sinks", "sim"):
        assert f"sonosd/{package}/__init__.py" in names, package
    for static in (ROOT / "sonosd" / "api" / "static").iterdir():
        assert f"sonosd/api/static/{static.name}" in names, static.name
    assert not {"twisted/__init__.py", "twisted/plugins/__init__.py"} & names
    assert not [name for name in names if name.endswith("dropin.cache")]

    site, env = _installed(wheel, tmp_path)
    twistd = [sys.executable, "-S", "-c", "from twisted.scripts.twistd import run; run()"]
    where = run(
        sys.executable, "-S", "-c", "import sonosd; print(sonosd.__file__)", cwd=tmp_path, env=env
    )
    assert where.stdout.strip() == str(site / "sonosd" / "__init__.py"), where.stderr
    # docs/deployment.md's step after the install: Twisted's plugin cache built once (the
    # service cannot write there), so that twistd finds it current and never rewrites it.
    build_cache = "from twisted.plugin import IPlugin, getPlugins; list(getPlugins(IPlugin))"
    cached = run(sys.executable, "-S", "-c", build_cache, cwd=tmp_path, env=env)
    assert cached.returncode == 0, cached.stderr
    cache = site / "twisted" / "plugins" / "dropin.cache"
    built_at = cache.stat().st_mtime_ns
    public = "import sonosd.gena as g; print(g.Subscription.__module__, g.__file__)"
    gena = run(sys.executable, "-S", "-c", public, cwd=tmp_path, env=env)
    assert gena.stdout.split() == [
        "sonosd.gena.subscription",
        str(site / "sonosd" / "gena" / "__init__.py"),
    ], gena.stderr
    listing = run(*twistd, "--help", cwd=tmp_path, env=env)
    assert listing.returncode == 0, listing.stderr
    assert re.search(r"^\s{4}sonosd\s", listing.stdout, re.MULTILINE), listing.stdout
    example = str(ROOT / "etc" / "sonosd.example.yaml")
    checked = run(*twistd, "-n", "sonosd", "-c", example, "--check-config", cwd=tmp_path, env=env)
    assert (checked.returncode, checked.stdout) == (0, "ok\n"), checked.stderr
    assert checked.stderr.startswith(f"warning: {example}: nothing will be followed")
    assert cache.stat().st_mtime_ns == built_at


def test_without_a_c_compiler_the_wheel_reads_events_with_python(tmp_path: Path) -> None:
    """docs/deployment.md: where no C compiler is, the install goes on without the compiled
    event reader, and the daemon reads events with the standard library's parsers
    (``listener.reader`` is ``python``)."""
    src = _source_copy(tmp_path)
    dist = tmp_path / "dist"
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "--no-input"]
    no_compiler = {**os.environ, "CC": "/bin/false", "LDSHARED": "/bin/false"}
    built = subprocess.run(
        [*pip, "wheel", "--no-deps", "--no-build-isolation", "--no-index", "-w", str(dist),
         str(src)],
        cwd=tmp_path, capture_output=True, text=True, timeout=300, check=False, env=no_compiler,
    )  # fmt: skip
    assert built.returncode == 0, built.stdout + built.stderr
    (wheel,) = dist.glob("sonosd-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "sonosd/gena/eventxml.py" in names
    assert not [name for name in names if name.endswith(".so")], names
    site, env = _installed(wheel, tmp_path)
    body = (
        ROOT.parent / "shared/reference/samples/events/avtransport_full_PLAYING_node-sonos-ts.xml"
    )
    script = (
        "import sys; from sonosd.gena import eventxml; "
        "print(eventxml.__file__, eventxml.reader()); "
        "print(eventxml.parse_event_xml(open(sys.argv[1], 'rb').read())['transport_state'])"
    )
    read = run(sys.executable, "-S", "-c", script, str(body), cwd=tmp_path, env=env)
    assert read.stdout.split() == [
        str(site / "sonosd" / "gena" / "eventxml.py"),
        "python",
        "PLAYING",
    ], read.stderr


# -- systemd ---------------------------------------------------------------------------------------


def _unit_settings(text: str) -> dict[str, list[str]]:
    settings: dict[str, list[str]] = {}
    for line in text.splitlines():
        if "=" in line and not line.startswith(("#", ";", "[")):
            key, value = line.split("=", 1)
            settings.setdefault(key.strip(), []).append(value.strip())
    return settings


def test_systemd_unit_verifies(tmp_path: Path) -> None:
    """`systemd-analyze verify` accepts the unit (with twistd's path as installed here)."""
    analyze = shutil.which("systemd-analyze")
    assert analyze, "systemd-analyze is missing: `make sysdeps` installs the systemd package"
    text = (ROOT / "etc" / "sonosd.service").read_text()
    assert "/opt/sonosd/bin/twistd" in text
    unit = tmp_path / "sonosd.service"
    unit.write_text(text.replace("/opt/sonosd/bin/twistd", TWISTD))
    result = run(analyze, "verify", "--man=no", str(unit), cwd=tmp_path)
    assert (result.returncode, result.stderr, result.stdout) == (0, "", "")


def test_systemd_unit_verify_catches_mistakes(tmp_path: Path) -> None:
    """The verify check is not vacuous: an unknown key or a missing binary is reported."""
    analyze = shutil.which("systemd-analyze")
    assert analyze
    unit = tmp_path / "broken.service"
    unit.write_text("[Service]\nExecStart=/nonexistent/twistd\nProtectSystm=strict\n")
    result = run(analyze, "verify", "--man=no", str(unit), cwd=tmp_path)
    assert "ProtectSystm" in result.stderr
    assert "/nonexistent/twistd" in result.stderr


def _documented_exposure() -> float:
    """The exposure level docs/deployment.md gives for the unit."""
    text = (ROOT / "docs" / "deployment.md").read_text()
    found = re.search(
        r"`systemd-analyze security sonosd` rates its exposure \*\*([\d.]+)\*\*", text
    )
    assert found, "docs/deployment.md gives no exposure level"
    return float(found.group(1))


def test_systemd_unit_exposure_is_the_documented_one(tmp_path: Path) -> None:
    """`systemd-analyze security --offline=true` rates the unit no more exposed than
    docs/deployment.md says (a setting dropped, or a weaker one, fails this)."""
    analyze = shutil.which("systemd-analyze")
    assert analyze, "systemd-analyze is missing: `make sysdeps` installs the systemd package"
    unit = tmp_path / "sonosd.service"
    unit.write_text((ROOT / "etc" / "sonosd.service").read_text())
    result = run(analyze, "security", "--offline=true", "--no-pager", str(unit), cwd=tmp_path)
    found = re.search(r"Overall exposure level for sonosd\.service: ([\d.]+)", result.stdout)
    assert found, (result.stdout, result.stderr)
    assert float(found.group(1)) <= _documented_exposure(), result.stdout


def test_systemd_unit_settings() -> None:
    """The unit runs twistd in the foreground, unprivileged and hardened, restarting on failure."""
    settings = _unit_settings((ROOT / "etc" / "sonosd.service").read_text())
    (start,) = settings["ExecStart"]
    assert start.split() == [
        "/opt/sonosd/bin/twistd", "-n", "--pidfile=", "sonosd", "-c", "/etc/sonosd/config.yaml",
    ]  # fmt: skip
    expected = {
        "DynamicUser": "yes",
        "NoNewPrivileges": "yes",
        "ProtectSystem": "strict",
        "ProtectHome": "yes",
        "PrivateTmp": "yes",
        "PrivateMounts": "yes",
        "StateDirectory": "sonosd",
        "ConfigurationDirectory": "sonosd",
        "RestrictAddressFamilies": "AF_INET AF_INET6 AF_UNIX",
        "Restart": "on-failure",
        "Type": "notify",
        "NotifyAccess": "main",
        "ExecReload": "/bin/kill -HUP $MAINPID",
    }
    for key, value in expected.items():
        assert settings[key] == [value], key
    assert "User" not in settings
    # The watchdog is pinged at half its period; the check before start uses the same
    # options as the start (no pid file).
    (watchdog,) = settings["WatchdogSec"]
    assert watchdog.endswith("s") and int(watchdog[:-1]) >= 30
    # docs/deployment.md: restarted 5 s after a failure; killed when stuck for a minute;
    # /run/sonosd for the stream's socket.
    assert (settings["RestartSec"], watchdog) == (["5s"], "60s")
    assert settings["RuntimeDirectory"] == ["sonosd"]
    (check,) = settings["ExecStartPre"]
    assert check.split() == [*start.split(), "--check-config"]


# -- Docker ----------------------------------------------------------------------------------------


def _instructions(text: str) -> list[tuple[str, str]]:
    """Dockerfile instructions (continuation lines joined, comments dropped)."""
    joined = re.sub(r"\\\n", " ", text)
    result = []
    for line in joined.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            result.append((word.upper(), " ".join(rest.split())))
    return result


def test_dockerfile() -> None:
    """The image: slim Python 3.11, from a wheel, plugin cache built, user sonosd (uid 10001),
    ports, health check, twistd -n."""
    steps = _instructions((ROOT / "Dockerfile").read_text())
    froms = [rest for word, rest in steps if word == "FROM"]
    assert all(rest.startswith("python:3.11-slim") for rest in froms)
    runs = " ".join(rest for word, rest in steps if word == "RUN")
    assert "getPlugins(IPlugin)" in runs
    assert "twistd --help | grep -q sonosd" in runs
    users = [rest for word, rest in steps if word == "USER"]
    assert users and users[-1] not in {"root", "0"}
    # docs/deployment.md: installed from a wheel; the user sonosd is uid 10001.
    assert "pip wheel " in runs and "pip install --no-cache-dir /wheels/*.whl" in runs
    # The build stage has a C compiler: the wheel carries the compiled event reader.
    (build, _) = [rest for word, rest in steps if word == "RUN"][:2]
    assert "apt-get install" in build and " gcc " in f"{build} "
    assert "--uid 10001 --user-group --home-dir /var/lib/sonosd" in runs
    assert users[-1] == "sonosd"
    assert ("EXPOSE", "1400 8080") in steps
    (health,) = [rest for word, rest in steps if word == "HEALTHCHECK"]
    env = " ".join(rest for word, rest in steps if word == "ENV")
    assert "SONOSD_READY_URL" in health
    assert "SONOSD_READY_URL=http://127.0.0.1:8080/api/v1/ready" in env
    # The daemon keeps its state (pending alarm skips) in its user's home, its workdir.
    assert "STATE_DIRECTORY=/var/lib/sonosd" in env.split()
    assert "--home-dir /var/lib/sonosd --create-home" in runs
    assert ("WORKDIR", "/var/lib/sonosd") in steps
    (entry,) = [rest for word, rest in steps if word == "ENTRYPOINT"]
    assert json.loads(entry) == ["twistd", "-n", "--pidfile=", "sonosd"]
    (cmd,) = [rest for word, rest in steps if word == "CMD"]
    assert json.loads(cmd) == ["-c", "/etc/sonosd/config.yaml"]
    assert any(word == "COPY" and rest.endswith("/etc/sonosd/config.yaml") for word, rest in steps)


def test_dockerignore_keeps_what_the_build_copies() -> None:
    """Every path the Dockerfile copies from the context survives .dockerignore."""
    patterns = [
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    steps = _instructions((ROOT / "Dockerfile").read_text())
    sources = []
    for word, rest in steps:
        if word == "COPY" and not rest.startswith("--from"):
            sources.extend(rest.split()[:-1])
    assert sources
    for source in sources:
        assert patterns[0] == "*" and f"!{source.rstrip('/')}" in [
            pattern.rstrip("/") for pattern in patterns
        ], source
        assert (ROOT / source).exists(), source


def test_health_url_in_docker_matches_the_default_api() -> None:
    """The health check polls the API's default endpoint (port 8080 on loopback)."""
    from sonosd.config import ApiConfig

    assert ApiConfig().listen == "tcp:8080:interface=127.0.0.1"


def _served_paths() -> set[str]:
    """The paths under /api/v1 the daemon's API serves (its children)."""
    from twisted.internet.testing import MemoryReactorClock

    from sonosd.api.site import ApiService
    from sonosd.config import ApiConfig
    from sonosd.delivery.hub import Hub
    from sonosd.household.state import HouseholdState

    reactor = MemoryReactorClock()
    api = ApiService(
        reactor,
        ApiConfig(),
        Hub(reactor),
        HouseholdState(),
        readiness=dict,
        diagnostics=dict,
    )
    return {f"/api/v1/{name.decode()}" for name in api.v1.children}


def _health_url(test: list[str]) -> str:
    (url,) = re.findall(r"http://[^'\"]+", " ".join(test))
    return url


def test_docker_compose_examples_match_the_code(tmp_path: Path) -> None:
    """docker-compose.yml: host networking and a bridge with advertise; ports, health
    endpoint, configuration path and state volume as the code and the Dockerfile have them."""
    import yaml

    from sonosd.config import ListenerConfig, endpoint_is_local, load_config

    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    steps = _instructions((ROOT / "Dockerfile").read_text())
    (cmd,) = [json.loads(rest) for word, rest in steps if word == "CMD"]
    config_path = cmd[cmd.index("-c") + 1]
    env = " ".join(rest for word, rest in steps if word == "ENV").split()
    (state_directory,) = [e.split("=", 1)[1] for e in env if e.startswith("STATE_DIRECTORY=")]
    assert "sonosd-state" in compose["volumes"]
    services = compose["services"]
    assert set(services) == {"sonosd", "sonosd-bridge"}
    served = _served_paths()
    configs = {}
    for name, service in services.items():
        assert service["build"] == "."
        assert service["restart"] == "unless-stopped"
        volume, state = service["volumes"]
        source, target, mode = volume.split(":")
        assert (target, mode) == (config_path, "ro"), name
        # The state directory the image names (pending alarm skips) is a named volume.
        assert state == f"sonosd-state:{state_directory}", name
        text = (ROOT / source).read_text()
        for secret in service.get("secrets", []):
            file = compose["secrets"][secret]["file"]
            assert file.startswith("./etc/compose/"), file
            token = tmp_path / secret
            token.write_text("x" * 24)
            text = text.replace(f"/run/secrets/{secret}", str(token))
        config_file = tmp_path / f"{name}.yaml"
        config_file.write_text(text)
        config = load_config(str(config_file), {})
        configs[name] = config
        assert config.devices, name
        url = _health_url(service["healthcheck"]["test"])
        assert url.startswith("http://127.0.0.1:")
        port = int(url.split(":")[2].split("/")[0])
        assert f"tcp:{port}" in config.api.listen, (name, config.api.listen)
        assert "/" + url.split("/", 3)[3] in served
        assert url.endswith("/api/v1/ready")
    host = services["sonosd"]
    assert host["network_mode"] == "host"
    assert "ports" not in host
    assert endpoint_is_local(configs["sonosd"].api.listen)
    bridge = services["sonosd-bridge"]
    assert "network_mode" not in bridge
    assert bridge["profiles"] == ["bridge"]
    published = {entry.split(":")[0]: entry.split(":")[1] for entry in bridge["ports"]}
    listener = configs["sonosd-bridge"].listener
    assert listener.port == ListenerConfig().port == 1400
    assert published[str(listener.port)] == str(listener.port)
    api_port = configs["sonosd-bridge"].api.listen.split(":")[1]
    assert published[api_port] == api_port
    assert not endpoint_is_local(configs["sonosd-bridge"].api.listen)
    assert configs["sonosd-bridge"].api.tokens
    command = bridge["command"]
    assert command[:2] == ["-c", config_path]
    assert command[2] == "--advertise" and command[3].startswith("${SONOSD_ADVERTISE")
    assert "advertise" in tap.Options()


def test_supervisors_wait_for_a_clean_stop() -> None:
    """systemd's TimeoutStopSec and Compose's stop_grace_period outlast the longest clean stop
    docs/deployment.md gives with the defaults (the UNSUBSCRIBEs, then the push sinks
    together, each step within subscription.shutdown_timeout), so SIGTERM ends in status 0,
    not SIGKILL."""
    import yaml

    from sonosd.config import SubscriptionConfig

    longest = 2 * SubscriptionConfig().shutdown_timeout + 0.5
    settings = _unit_settings((ROOT / "etc" / "sonosd.service").read_text())
    (stop,) = settings["TimeoutStopSec"]
    assert stop.endswith("s") and float(stop[:-1]) > longest, stop
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    for name, service in compose["services"].items():
        grace = service["stop_grace_period"]
        assert grace.endswith("s") and float(grace[:-1]) > longest, name


def test_license_matches_setup_cfg() -> None:
    """setup.cfg says MIT, and the LICENSE file is the MIT licence, shipped in the image."""
    setup = ConfigParser()
    setup.read(ROOT / "setup.cfg")
    assert setup["metadata"]["license"] == "MIT"
    assert setup["metadata"]["license_files"].strip() == "LICENSE"
    assert (ROOT / "LICENSE").read_text().startswith("MIT License\n")
    steps = _instructions((ROOT / "Dockerfile").read_text())
    assert any(word == "COPY" and "LICENSE" in rest.split() for word, rest in steps)


def test_make_demo_leaves_no_pid_file(tmp_path: Path) -> None:
    """`make demo` runs twistd with --pidfile= (no twistd.pid that would stop `twistd -n
    sonos-sim` starting in the checkout), and twistd.pid is ignored by git anyway."""
    make = shutil.which("make")
    assert make
    result = run(make, "-n", "-C", str(ROOT), "demo", cwd=tmp_path)
    demo = [line for line in result.stdout.splitlines() if "twistd" in line and "sonosd" in line]
    (line,) = demo
    words = line.split()
    assert words[words.index("sonosd") - 1] == "--pidfile="
    # The configuration the dashboard's browser test runs as the demo.
    assert words[-2:] == ["-c", "etc/sonosd.demo.yaml"]
    assert "twistd.pid" in (ROOT / ".gitignore").read_text().split()


# -- make ------------------------------------------------------------------------------------------


def test_make_test_runs_every_check(tmp_path: Path) -> None:
    """`make test` is ruff check, ruff format --check, mypy and pytest with branch coverage,
    in three workers."""
    make = shutil.which("make")
    assert make, "make is missing"
    result = run(make, "-n", "-C", str(ROOT), "lint", "typecheck", "unit", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    for command in ("ruff check", "ruff format --check", "mypy", "pytest --cov --cov-branch"):
        assert command in out, command
    assert re.search(r"pytest .*-n 3\b", out), out
    makefile = (ROOT / "Makefile").read_text()
    assert re.search(r"^test: lint typecheck unit$", makefile, re.MULTILINE)
    assert re.search(r"^unit: .*sysdeps", makefile, re.MULTILINE)
    assert (ROOT / ".ci" / "run").read_text().rstrip().endswith("exec make test")


def test_readme_names_every_system_package_make_test_installs() -> None:
    """The README's sentence on what `make test` installs names each Debian package of the
    Makefile's APT_PACKAGES (it named three of six)."""
    [packages] = re.findall(r"^APT_PACKAGES := (.+)$", (ROOT / "Makefile").read_text(), re.M)
    readme = (ROOT / "README.md").read_text()
    sentence = readme[readme.index("`make test` needs Python") :].split(").\n", 1)[0]
    named = set(re.findall(r"`([^`]+)`", sentence)) - {"make test", ".venv"}
    assert named == set(packages.split()), sentence


# -- what the docs tell users to type -----------------------------------------------------------


def _user_facing_texts() -> dict[str, str]:
    """README, docs/*.md, etc/* and the Dockerfile, by path."""
    paths = [ROOT / "README.md", ROOT / "Dockerfile", *sorted((ROOT / "docs").glob("*.md"))]
    paths += sorted(path for path in (ROOT / "etc").rglob("*") if path.is_file())
    return {str(path.relative_to(ROOT)): path.read_text(encoding="utf-8") for path in paths}


def _anchors(page: Path) -> set[str]:
    """The anchors GitHub gives the headings of ``page`` (lower case, punctuation dropped,
    spaces to hyphens), code blocks left out."""
    anchors = set()
    in_code = False
    for line in page.read_text(encoding="utf-8").splitlines():
        if line.startswith("```"):
            in_code = not in_code
        heading = None if in_code else re.match(r"#+ (.*)", line)
        if heading:
            words = re.sub(r"[^\w\- ]", "", heading.group(1).strip().lower())
            anchors.add(words.replace(" ", "-"))
    return anchors


def test_every_relative_link_of_the_docs_resolves() -> None:
    """Each link of README.md and docs/*.md to a file of the checkout names a file that
    exists, and each #anchor into a page names one of its headings."""
    pages = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
    checked = 0
    for page in pages:
        text = page.read_text(encoding="utf-8")
        for target, anchor in re.findall(r"\]\(([^)\s#]*)(?:#([^)\s]+))?\)", text):
            if re.match(r"\w+:", target):
                continue  # http:, https:, mailto:
            linked = page.parent / target if target else page
            assert linked.exists(), (page.name, target)
            if anchor and linked.suffix == ".md":
                assert anchor in _anchors(linked), (page.name, target, anchor)
            checked += 1
    assert checked > 100


def test_no_doc_installs_sonosd_from_pypi() -> None:
    """sonosd is not on PyPI: no page says ``pip install sonosd`` (a checkout or a wheel
    built from one is installed instead)."""
    for path, text in _user_facing_texts().items():
        assert not re.search(r"pip install (?:-\S+ )*sonosd(?![\w./*-])", text), path


def test_the_stream_socket_has_one_name() -> None:
    """README, the docs and the example configurations name the local stream's socket alike
    (the README said stream.sock, docs/api.md events.sock)."""
    sockets = set()
    for text in _user_facing_texts().values():
        sockets |= set(re.findall(r"/run/sonosd/[\w.-]+\.sock", text))
    assert sockets == {"/run/sonosd/stream.sock", "/run/sonosd/api.sock"}
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    api = (ROOT / "docs" / "api.md").read_text(encoding="utf-8")
    assert "unix:/run/sonosd/stream.sock" in readme and "/run/sonosd/stream.sock" in api


def test_resuming_is_taught_with_the_parameter_the_api_takes() -> None:
    """Examples resume with ``last_id`` (the API's parameter), never ``since``."""
    spec = openapi_spec()
    components = spec["components"]["parameters"]
    parameters = {
        (components[p["$ref"].rsplit("/", 1)[1]] if "$ref" in p else p)["name"]
        for p in spec["paths"]["/events"]["get"]["parameters"]
    }
    assert "last_id" in parameters and "since" not in parameters
    for path, text in _user_facing_texts().items():
        assert not re.search(r"[?&]since=", text), path
