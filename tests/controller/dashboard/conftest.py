"""Fixtures of the dashboard's browser tests: Debian's headless Chromium (the controller: ../conftest.py).

Chromium trusts exactly the controller's certificate (its public key pinned with
--ignore-certificate-errors-spki-list), not any certificate.
"""

from __future__ import annotations

import base64
import hashlib
import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from testsupport.labcontroller import LabController

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")


def dashboard_url(lab: LabController) -> str:
    match = re.search(r"dashboard on (https://\S+)", lab.process.output()[0])
    assert match is not None, lab.process.output()
    return match.group(1)


def _spki_pin(certificate: Path) -> str:
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    cert = x509.load_pem_x509_certificate(certificate.read_bytes())
    der = cert.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return base64.b64encode(hashlib.sha256(der).digest()).decode()


@pytest.fixture
def browser(lab: LabController, tmp_path: Path) -> Iterator[Any]:
    if not (CHROMIUM.exists() and CHROMEDRIVER.exists()) or shutil.which("chromium") is None:
        pytest.skip("needs Debian's chromium and chromium-driver (apt-get install chromium chromium-driver)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    pin = _spki_pin(lab.state_dir / "controller-tls" / "tls.crt")
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1280,800",
                     f"--user-data-dir={tmp_path / 'chromium'}", "--disable-gpu",
                     # No calls home (there is no network here): each would stall a page load for seconds.
                     "--disable-background-networking", "--disable-component-update", "--no-first-run",
                     "--disable-sync", "--disable-default-apps", "--disable-extensions",
                     f"--ignore-certificate-errors-spki-list={pin}"):  # fmt: skip
        options.add_argument(argument)
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()
