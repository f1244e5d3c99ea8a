"""Fixtures shared by the whole suite: a controller on a real store.

``store_url`` runs each store-backed test twice, on SQLite and on PostgreSQL
(a fresh database per test). PostgreSQL comes from ``VOE_TEST_PG_URL``
(default: the voe role that `.ci/postgres.sh` creates); where no server
answers, the PostgreSQL half skips and says so — in CI it always runs.
"""

from __future__ import annotations

import os
import sys
import threading
import time
import uuid
from contextlib import contextmanager
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))
from harness import free_port

PG_ADMIN_URL = os.environ.get("VOE_TEST_PG_URL", "postgresql+psycopg://voe:voe@127.0.0.1:5432/postgres")
EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "review-lab.yaml"


def child_ends_with_its_killed_parent(script: str, patience: float = 5.0) -> bool:
    """Run ``script`` (Python, printing the pid of a child process it
    started), SIGKILL it, and say whether the child is gone within
    ``patience`` seconds: a controller killed outright must leave no helper
    process behind to act after the next controller has taken over."""
    import subprocess

    parent = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    child = int(parent.stdout.readline())
    parent.kill()
    parent.wait()
    deadline = time.monotonic() + patience
    while time.monotonic() < deadline:
        try:
            os.kill(child, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.05)
    return False


def _pg_available() -> str | None:
    try:
        import psycopg

        with psycopg.connect(PG_ADMIN_URL.replace("+psycopg", ""), connect_timeout=2):
            return None
    except Exception as e:  # any failure means: no server to test against
        return str(e).splitlines()[0]


@contextmanager
def new_store(kind: str):
    """A store URL of this kind, empty: None for SQLite (Services opens the
    file in its data dir), a fresh PostgreSQL database dropped afterwards."""
    if kind == "sqlite":
        yield None
        return
    why = _pg_available()
    if why:
        if os.environ.get("CI"):
            pytest.fail(f"PostgreSQL must be available in CI: {why}")
        pytest.skip(f"no PostgreSQL at {PG_ADMIN_URL} ({why}); run .ci/postgres.sh")
    import psycopg

    name = f"voe_test_{uuid.uuid4().hex[:12]}"
    admin = PG_ADMIN_URL.replace("+psycopg", "")
    with psycopg.connect(admin, autocommit=True) as c:
        c.execute(f'CREATE DATABASE "{name}"')
    try:
        yield PG_ADMIN_URL.rsplit("/", 1)[0] + "/" + name
    finally:
        with psycopg.connect(admin, autocommit=True) as c:
            c.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request):
    with new_store(request.param) as url:
        yield url


@pytest.fixture
def services(tmp_path, store_url):
    from voe.controller.services import Services

    s = Services.open(tmp_path / "data", store_url)
    s.ensure_admin_token()
    yield s
    s.close()


@pytest.fixture
def admin_token(services) -> str:
    return (services.data_dir / "admin-token").read_text().strip()


@pytest.fixture
def api(services, admin_token):
    """A test client of the API, authenticated as admin."""
    from fastapi.testclient import TestClient

    from voe.api.app import create_app

    with TestClient(create_app(services), headers={"Authorization": f"Bearer {admin_token}"}) as c:
        yield c


@pytest.fixture
def live_controller(services, admin_token, monkeypatch):
    """The controller's API on a real TCP port over HTTPS, its CA in
    ``VOE_CA``, for tests that use the CLI or other processes. Yields (url,
    admin token)."""
    import uvicorn

    from voe.api.app import create_app
    from voe.process import GRACE
    from voe.tls import default_names, ensure

    tls = ensure(services.data_dir, default_names("127.0.0.1"))
    monkeypatch.setenv("VOE_CA", str(tls.ca))
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(services), host="127.0.0.1", port=port, log_level="warning",
                                           ssl_certfile=str(tls.cert), ssl_keyfile=str(tls.key),
                                           timeout_graceful_shutdown=GRACE))
    t = threading.Thread(target=server.run, daemon=True)
    t.start()
    deadline = time.monotonic() + 10
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.02)
    yield f"https://127.0.0.1:{port}", admin_token
    server.should_exit = True
    t.join(5)


@pytest.fixture(scope="module")
def ovs_plane(tmp_path_factory):
    """Open vSwitch (ovsdb-server and ovs-vswitchd, userspace datapath) in
    a lab network namespace of its own, for the tests of one module."""
    import shutil

    from voe.lab.netns import LabNetwork
    from voe.lab.ovs import OvsPlane

    if os.geteuid() != 0:
        pytest.skip("network namespaces and Open vSwitch need root (CI runs as root)")
    if shutil.which("ovs-vswitchd") is None:
        pytest.skip("Open vSwitch is not installed (scripts/setup.sh installs openvswitch-switch)")
    network = LabNetwork(f"voe-lab-{os.getpid()}", "10.79.0.0/24")
    network.create()
    plane = OvsPlane(network, tmp_path_factory.mktemp("ovs"))
    try:
        plane.start()
        yield plane
    finally:
        plane.stop()
        network.delete()
