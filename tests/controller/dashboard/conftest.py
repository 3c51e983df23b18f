"""Fixtures and helpers of the dashboard's browser tests: Debian's headless Chromium (the controller:
../conftest.py), our exporter processes, and page steps that wait on conditions, never on time.

Chromium trusts exactly the controller's certificate (its public key pinned with
--ignore-certificate-errors-spki-list), not any certificate.
"""

from __future__ import annotations

import base64
import hashlib
import os
import re
import shutil
import ssl
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from jumpstarter.client.v1 import client_pb2
from jumpstarter.testing import Process
from jumpstarter_controller.peers import Peer
from testsupport.lab_exporter import lab_exporter_config, start_lab_exporter
from testsupport.labcontroller import STEP, LabController

DOCS = Path(__file__).resolve().parents[3] / "docs" / "lab"
WRITE_SCREENSHOTS = "JMP_WRITE_SCREENSHOTS"
CHROMIUM = Path("/usr/bin/chromium")
# The exporter statuses a hook run goes through (jumpstarter.v1 ExporterStatus).
AVAILABLE, BEFORE_LEASE_HOOK, LEASE_READY, AFTER_LEASE_HOOK, AFTER_LEASE_HOOK_FAILED = 2, 3, 4, 5, 7
CHROMEDRIVER = Path("/usr/bin/chromedriver")


def exporter(
    lab: LabController,
    name: str,
    labels: dict[str, str],
    *,
    before: str = "",
    after: str = "",
    on_failure: str = "warn",
) -> Process:
    """Our `jmp exporter run` for a new exporter `name` (a MockPower), once registered; `before` and
    `after` are its beforeLease and afterLease hook scripts, `on_failure` what their failure does."""
    scripts = {"beforeLease": before, "afterLease": after}
    hooks = {
        kind: {"script": script, "timeout": 30, "onFailure": on_failure} for kind, script in scripts.items() if script
    }
    return start_lab_exporter(lab.commands, lab_exporter_config(lab, name, labels, hooks=hooks))


def dashboard_url(lab: LabController) -> str:
    match = re.search(r"dashboard on (https://\S+)", lab.process.output()[0])
    assert match is not None, lab.process.output()
    return match.group(1)


async def in_browser(call: Callable[[], Any]) -> Any:
    return await anyio.to_thread.run_sync(call)


def wait(browser: Any, condition: Callable[[Any], Any], timeout: float = STEP) -> Any:
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(browser, timeout, poll_frequency=0.02).until(condition)


def text_of(browser: Any, css: str) -> str:
    """The element's text, read in one step in the page (the live update may swap it at any time)."""
    found = browser.execute_script("const e = document.querySelector(arguments[0]); return e ? e.innerText : ''", css)
    return str(found)


def click(browser: Any, css: str) -> None:
    """Click, again if the live update replaced the element in between."""
    from selenium.common.exceptions import StaleElementReferenceException
    from selenium.webdriver.common.by import By

    def clicked(driver: Any) -> bool:
        try:
            driver.find_element(By.CSS_SELECTOR, css).click()
        except StaleElementReferenceException:
            return False
        return True

    wait(browser, clicked)


def shot(browser: Any, name: str) -> None:
    """Refresh the lab guide's screenshot of a page, only when asked (JMP_WRITE_SCREENSHOTS=1): a normal
    run leaves the tree as it was."""
    if os.environ.get(WRITE_SCREENSHOTS) != "1":
        return
    DOCS.mkdir(parents=True, exist_ok=True)
    browser.save_screenshot(str(DOCS / f"dashboard-{name}.png"))


def login_admin(browser: Any, lab: LabController) -> str:
    result = lab.admin("dashboard-login")
    assert result.returncode == 0, result
    link = result.stdout.strip()
    browser.get(link)
    click(browser, "#login")
    wait(browser, lambda b: b.current_url.endswith("/exporters"))
    return link


def login_token(browser: Any, url: str, token: str) -> None:
    from selenium.webdriver.common.by import By

    browser.get(url + "login")
    browser.find_element(By.NAME, "token").send_keys(token)
    click(browser, "#login")


def token_of(config: Path) -> str:
    return str(yaml.safe_load(config.read_text())["token"])


def live(browser: Any) -> None:
    """Wait until the page's change feed is connected (its dot turns green) and the page is up to date with it
    (a change between the page's making and the feed's first message fetches the page's main part again)."""
    wait(browser, lambda b: "on" in (b.find_element("id", "live").get_attribute("class") or ""))
    wait(browser, lambda b: b.execute_script("return document.body.dataset.synced === '1'"))


async def reported(peer: Peer, name: str, status: int) -> None:
    """Wait (bounded, polling GetExporter as the original's client does) until the exporter reports `status`."""
    with anyio.fail_after(STEP):
        while True:
            exporter = await peer.client.GetExporter(
                client_pb2.GetExporterRequest(name=f"{peer.parent}/exporters/{name}")
            )
            if exporter.status == status:
                return
            await anyio.sleep(0.05)


Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


async def scrape(lab: LabController, token: str) -> Samples:
    """Every sample of /metrics: (name, sorted labels) -> value, parsed as Prometheus reads it."""
    context = ssl.create_default_context(cafile=str(lab.state_dir / "ca.pem"))
    request = urllib.request.Request(dashboard_url(lab) + "metrics", headers={"Authorization": f"Bearer {token}"})

    def get() -> str:
        with urllib.request.urlopen(request, context=context, timeout=STEP) as answer:
            return str(answer.read().decode())

    text = await anyio.to_thread.run_sync(get)
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples[(name, tuple(sorted(labels.items())))]


def _spki_pin(certificate: Path) -> str:
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    cert = x509.load_pem_x509_certificate(certificate.read_bytes())
    der = cert.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return base64.b64encode(hashlib.sha256(der).digest()).decode()


@pytest.fixture
def browser_factory(tmp_path: Path) -> Iterator[Callable[[LabController], Any]]:
    """Opens Chromium trusting a given controller's certificate (for a test that starts its own controller)."""
    if not (CHROMIUM.exists() and CHROMEDRIVER.exists()) or shutil.which("chromium") is None:
        pytest.skip("needs Debian's chromium and chromium-driver (apt-get install chromium chromium-driver)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opened: list[Any] = []

    def open_for(lab: LabController) -> Any:
        options = webdriver.ChromeOptions()
        options.binary_location = str(CHROMIUM)
        pin = _spki_pin(lab.state_dir / "controller-tls" / "tls.crt")
        for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1280,800",
                         f"--user-data-dir={tmp_path / f'chromium{len(opened)}'}", "--disable-gpu",
                         # No calls home (there is no network here): each would stall a page load for seconds.
                         "--disable-background-networking", "--disable-component-update", "--no-first-run",
                         "--disable-sync", "--disable-default-apps", "--disable-extensions",
                         f"--ignore-certificate-errors-spki-list={pin}"):  # fmt: skip
            options.add_argument(argument)
        driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
        opened.append(driver)
        driver.set_page_load_timeout(30)
        return driver

    try:
        yield open_for
    finally:
        for driver in opened:
            driver.quit()


@pytest.fixture
def browser(lab: LabController, browser_factory: Callable[[LabController], Any]) -> Any:
    return browser_factory(lab)
