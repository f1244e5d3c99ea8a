"""The console in a real browser (Debian's Chromium driven by Playwright)
against a controller and the lab: an operator's clicks, drags and what the
page shows must be what the controller did."""

from __future__ import annotations

import base64
import hashlib
import os
import shutil
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from voe.api.app import CONSOLE_DIST

playwright = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (pip install -e '.[test]')")
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium package is not installed"),
    pytest.mark.skipif(not (CONSOLE_DIST / "index.html").exists(), reason="the console is not built (scripts/setup.sh)"),
]
SHOTS = os.environ.get("VOE_SCREENSHOTS")  # a directory: save each view there, for the README


def launch(pw, stack):
    """Chromium trusting the controller's certificate, and only it, by the
    hash of its public key (its CA is in no trust store of this machine)."""
    cert = x509.load_pem_x509_certificate((stack.ca.parent / "server.pem").read_bytes())
    spki = cert.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    pin = base64.b64encode(hashlib.sha256(spki).digest()).decode()
    return pw.chromium.launch(executable_path=CHROMIUM,
                              args=["--no-sandbox", f"--ignore-certificate-errors-spki-list={pin}"])


@pytest.fixture
def page(stack):
    with playwright.sync_playwright() as pw:
        browser = launch(pw, stack)
        page = browser.new_page(viewport={"width": 1600, "height": 1000})
        page.set_default_timeout(20_000)
        page.goto(f"{stack.url}/#token={stack.token}")
        page.wait_for_selector(".react-flow__node-persona")
        yield page
        browser.close()


def badge(page, persona: str):
    return page.locator(f'[data-persona="{persona}"] .badge')


def test_sign_in_refuses_a_wrong_token_and_accepts_the_right_one(stack):
    with playwright.sync_playwright() as pw:
        browser = launch(pw, stack)
        page = browser.new_page()
        page.goto(stack.url + "/")
        page.fill("input[name=token]", "not-a-token")
        page.click("button[type=submit]")
        assert "unknown or revoked token" in page.locator("[role=alert]").inner_text()
        page.fill("input[name=token]", stack.token)
        page.click("button[type=submit]")
        page.wait_for_selector(".react-flow__node-persona")
        browser.close()


def until_still(page, *selectors: str, quiet_ms: int = 500) -> None:
    """Until the diagram stops moving: the viewport's transform and the
    boxes of ``selectors`` unchanged for ``quiet_ms``. A new persona is
    laid out after it appears, and the view glides to it: a drag begun
    meanwhile starts or ends where the elements no longer are."""
    page.wait_for_function("""([selectors, quiet]) => {
        const box = (s) => { const r = document.querySelector(s)?.getBoundingClientRect();
                             return r ? [r.x, r.y, r.width, r.height] : null; };
        const now = JSON.stringify([document.querySelector(".react-flow__viewport")?.style.transform,
                                    ...selectors.map(box)]);
        const seen = window.__voeStill ??= {};
        if (seen.last !== now) { seen.last = now; seen.since = performance.now(); return false; }
        return performance.now() - seen.since >= quiet;
    }""", arg=[list(selectors), quiet_ms], polling=100)


def test_create_cable_start_and_watch_it_run(stack, page):
    page.wait_for_selector('header .controllers[data-leader="solo"]')  # which controller leads, and its term
    page.click('[data-palette="server"]')  # a new Linux persona, named by the console
    page.wait_for_selector('[data-persona="server-1"]')
    assert stack.http.get("/api/v1/personas/server-1").json()["vnics"] == []

    # cable it: drag from the persona's plug to the "front" vSwitch
    plug, socket = '.react-flow__node[data-id="p:server-1"] .plug', '.react-flow__node[data-id="n:front"] .socket'
    until_still(page, plug, socket)
    page.drag_and_drop(plug, socket)
    page.wait_for_selector('[data-panel="persona"] input[name="vnics.0.ip"]')
    vnics = stack.http.get("/api/v1/personas/server-1").json()["vnics"]
    assert [v["network"] for v in vnics] == ["front"] and vnics[0]["ip"].startswith("10.0.1.")
    assert page.input_value('input[name="vnics.0.ip"]') == vnics[0]["ip"]  # proposed from the subnet

    # a refusal shows the API's message next to the field, and nothing is lost
    page.fill('input[name="vnics.0.ip"]', "10.0.2.77")
    page.click('[data-panel="persona"] button:has-text("Save")')
    error = page.locator('[data-vnic="0"] .error')
    error.wait_for()
    assert "10.0.1.0/24" in error.inner_text()
    assert stack.http.get("/api/v1/personas/server-1").json()["vnics"][0]["ip"] == vnics[0]["ip"]
    page.fill('input[name="vnics.0.ip"]', "10.0.1.77")
    page.fill('input[name="cpus"]', "2")
    page.click('[data-panel="persona"] button:has-text("Save")')
    page.locator('[data-panel="persona"] .ok').wait_for()
    saved = stack.http.get("/api/v1/personas/server-1").json()
    assert saved["vnics"][0]["ip"] == "10.0.1.77" and saved["cpus"] == 2

    page.click('[data-panel="persona"] button:has-text("Start")')
    page.wait_for_function('document.querySelector(\'[data-persona="server-1"] .badge\').textContent === "running"',
                           timeout=60_000)
    where = stack.status("server-1")["machine"]
    assert where is not None
    assert where["host"] in page.locator('[data-persona="server-1"] .sub').inner_text()
    assert "placed:" in page.locator("[data-why]").inner_text()  # why it landed there, from the console alone
    if SHOTS:
        page.screenshot(path=str(Path(SHOTS) / "console-virtual.png"))


def test_a_lab_fault_shows_suspect_fencing_then_running_elsewhere(stack, page):
    for p in ("web-1", "web-2"):
        assert stack.http.post(f"/api/v1/personas/{p}/start", json={"kind": "vm"}).status_code == 202
    page.wait_for_function('document.querySelector(\'[data-persona="web-1"] .badge\').textContent === "running"',
                           timeout=60_000)
    stack.lab("fault", "dl360-1", "os-crash")
    # fencing lasts milliseconds now, too short for a badge to be seen: the
    # node's trail keeps every state it went through, in order
    page.wait_for_function("""() => { const t = document.querySelector('[data-persona="web-1"] .trail');
        return t && t.textContent.includes('fencing') && t.textContent.endsWith('running')
          && document.querySelector('[data-persona="web-1"] .badge').textContent === 'running'; }""",
                           timeout=60_000)
    trail = page.locator('[data-persona="web-1"] .trail').inner_text().split(" → ")
    assert trail.index("suspect") < trail.index("fencing") < len(trail) - 1 and trail[-1] == "running", trail
    now = stack.status("web-1")["machine"]
    assert now["host"] != "dl360-1"
    assert f"on {now['host']}" in page.locator('[data-persona="web-1"] .sub').inner_text()
    # the event log panel tells the story, filterable by persona
    page.fill('input[aria-label="filter by persona"]', "web-1")
    assert page.locator('.eventlog tr[data-event-kind="fence"]').count() > 0
    # and the persona's history says where it was and why it moved
    page.click('.react-flow__node[data-id="p:web-1"]')
    history = page.locator('[data-panel="persona"] .history')
    history.locator("tr[data-generation]").nth(1).wait_for()
    assert "dl360-1" in history.inner_text()
    if SHOTS:
        page.click('header button:has-text("Physical")')
        page.wait_for_selector(".react-flow__node-switch")
        page.wait_for_timeout(1000)
        page.screenshot(path=str(Path(SHOTS) / "console-physical.png"))


def test_physical_view_shows_vms_in_their_host_and_port_vlans(stack, page):
    assert stack.http.post("/api/v1/personas/web-1/start", json={"kind": "vm"}).status_code == 202
    stack.wait("web-1", lambda s: s["state"] == "running", timeout=60)
    page.click('header button:has-text("Physical")')
    page.wait_for_selector('.react-flow__node[data-id="vm:web-1"]')
    host = page.locator('.react-flow__node[data-id="h:dl360-1"]').bounding_box()
    vm = page.locator('.react-flow__node[data-id="vm:web-1"]').bounding_box()
    assert host["x"] <= vm["x"] and vm["x"] + vm["width"] <= host["x"] + host["width"] + 1
    port = page.locator('[data-switch="sw1"] [data-port="1"]')
    port.wait_for()
    page.wait_for_function(
        """() => /T [0-9,]*100/.test(document.querySelector('[data-switch="sw1"] [data-port="1"]').textContent)""")


def test_group_start_with_clicks_alone(stack, page):
    page.select_option('header select[aria-label="group"]', "sample-app")
    page.click('header button:has-text("Start group")')
    members = stack.http.get("/api/v1/groups/sample-app").json()["members"]
    for m in members:
        page.wait_for_function(f"""() => {{ const b = document.querySelector('[data-persona="{m}"] .badge');
            return b && b.textContent === 'running'; }}""", timeout=120_000)
    assert page.locator('[data-count="running"]').inner_text() == f"running {len(members)}"


def test_the_palette_offers_templates_and_a_drop_clones_one(stack, tmp_path):
    from voe.images import samples

    if not samples.BUSYBOX.exists():
        pytest.skip("busybox-static is not installed (scripts/setup.sh installs it)")
    samples.build_tree(tmp_path / "apache", "apache", "Apache web server (stand-in)")
    assert stack.http.post("/api/v1/templates", json={"name": "apache", "source": str(tmp_path / "apache"),
                                                      "description": "Apache web server"}).status_code == 201
    with playwright.sync_playwright() as pw:
        browser = launch(pw, stack)
        page = browser.new_page(viewport={"width": 1600, "height": 1000})
        page.goto(f"{stack.url}/#token={stack.token}")
        item = page.locator('[data-palette="apache"]')
        assert "Apache web server (v1)" in item.inner_text()
        item.drag_to(page.locator(".react-flow__pane"))  # dropped on the diagram
        page.wait_for_selector('[data-persona="apache-1"]')
        image = stack.http.get("/api/v1/personas/apache-1/image").json()
        assert image["template"] == "apache" and (Path(image["path"]) / "etc/hostname").read_text() == "apache-1\n"
        assert page.input_value('input[name="image.nfs_root"]') == f"10.0.3.5:{image['path']}"
        browser.close()
