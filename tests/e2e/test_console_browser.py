"""The saga console in headless Chromium: sign in, find two orders' sagas, read one's timeline.

Needs Debian's `chromium` and `chromium-driver` (`scripts/install-browser.sh`) and the `selenium`
package; skips without them. Screenshots go to `artifacts/` (kept by CI).
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from functools import partial
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.conftest import ADMIN_TOKEN, LiveApp
from tests.e2e.shop import ADDRESS, DECLINED_CARD, new_product, order_body
from tests.identity_provider import shared_provider
from tests.waiting import eventually_blocking

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
ARTIFACTS = Path(__file__).parents[2] / "artifacts"
ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--disable-dev-shm-usage", "--window-size=1366,768", "--lang=en-US",
]  # fmt: skip

if not (CHROMIUM.exists() and CHROMEDRIVER.exists()) and not os.environ.get("CI"):
    # CI installs Chromium first (.ci/run), so there a missing browser fails the test instead
    pytest.skip(
        "Chromium is not installed: run scripts/install-browser.sh (Debian chromium, chromium-driver)",
        allow_module_level=True,
    )
webdriver = pytest.importorskip("selenium.webdriver", reason="the selenium package is not installed")

from selenium.webdriver import Chrome  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.remote.webdriver import WebDriver  # noqa: E402
from selenium.webdriver.remote.webelement import WebElement  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[Chrome]:
    """Headless Chromium with a fresh profile; never downloads anything."""
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in [*FLAGS, f"--user-data-dir={tmp_path / 'profile'}"]:
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver: Chrome = webdriver.Chrome(
        service=webdriver.ChromeService(executable_path=str(CHROMEDRIVER)), options=options
    )
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(tmp_path / "profile", ignore_errors=True)


def finished(http: httpx.Client, saga_id: str) -> bool:
    """Whether the saga has reached a final status."""
    status = http.get(f"/api/sagas/{saga_id}", headers=ADMIN).json()["status"]
    return status in ("COMPLETED", "COMPENSATED")


def place_two_orders(url: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """One order that completes, one whose card is declined; both sagas finished."""
    with httpx.Client(base_url=url, timeout=30, headers=ADMIN) as http:  # an operator orders for customers
        product = new_product(http, ADMIN, quantity=5)
        completed = http.post("/api/orders", json=order_body(product), headers=ADMIN).json()
        failed = http.post(
            "/api/orders", json=order_body(product, payment=DECLINED_CARD), headers=ADMIN
        ).json()
        for order in (completed, failed):
            assert eventually_blocking(partial(finished, http, order["saga_id"]), bool), order["saga_id"]
    assert (completed["status"], failed["status"]) == ("COMPLETED", "FAILED")
    return completed, failed


def wait_for(driver: WebDriver, css: str, timeout: float = 15) -> WebElement:
    """The first element matching `css`, once it exists."""
    element: WebElement = WebDriverWait(driver, timeout).until(lambda d: d.find_element(By.CSS_SELECTOR, css))
    return element


def shown(driver: WebDriver, route: str) -> None:
    """Wait until the console has rendered `route` (a `#/...` hash)."""
    wait_for(driver, f'main[data-route="{route}"]')


def visit(driver: WebDriver, route: str) -> None:
    """Go to `route` within the console and wait until it is rendered."""
    driver.execute_script("location.hash = arguments[0]", route)
    shown(driver, route)


def open_saga(driver: WebDriver, saga_id: str) -> None:
    """Follow the saga's link from the current page and wait for its timeline picture."""
    route = f"#/saga/{saga_id}"
    driver.find_element(By.CSS_SELECTOR, f'a[href="{route}"]').click()
    shown(driver, route)
    wait_for(driver, "#timeline svg .tl-row")


def step_classes(driver: WebDriver) -> dict[str, str]:
    """Each step chip's name and its status class."""
    chips = driver.find_elements(By.CSS_SELECTOR, "li.step")
    return {
        chip.get_attribute("data-step") or "": (chip.get_attribute("class") or "").split()[-1]
        for chip in chips
    }


def test_shows_both_sagas_their_steps_and_timeline_when_an_operator_signs_in(
    live_app: LiveApp, browser: Chrome
) -> None:
    completed, failed = place_two_orders(live_app.url)
    ARTIFACTS.mkdir(exist_ok=True)

    browser.get(f"{live_app.url}/console")
    wait_for(browser, "#token").send_keys(ADMIN_TOKEN)
    browser.find_element(By.CSS_SELECTOR, "#login button[type=submit]").click()
    shown(browser, "#/sagas")
    visit(browser, "#/sagas?type=place-order")
    rows = browser.find_element(By.CSS_SELECTOR, "table.grid tbody").text
    assert completed["saga_id"] in rows and failed["saga_id"] in rows
    browser.save_screenshot(str(ARTIFACTS / "console-sagas.png"))

    visit(browser, f"#/orders?customer_id={failed['customer_id']}")
    orders = browser.find_element(By.CSS_SELECTOR, "table.grid tbody").text
    assert failed["order_id"] in orders and "FAILED" in orders and "payment declined" in orders

    visit(browser, "#/sagas?type=place-order")
    open_saga(browser, completed["saga_id"])
    assert set(step_classes(browser).values()) == {"step-succeeded"}
    assert len(step_classes(browser)) == 5  # place-order since version 2: no create_order step

    browser.back()
    shown(browser, "#/sagas?type=place-order")
    open_saga(browser, failed["saga_id"])
    steps = step_classes(browser)
    assert (steps["process_payment"], steps["reserve_inventory"]) == ("step-failed", "step-compensated")
    timeline = browser.find_element(By.ID, "timeline")
    assert timeline.find_elements(By.CSS_SELECTOR, 'svg g.tl-row-failed[data-step="process_payment"]')
    # the release, then the saga's on_compensated hook (marks the order FAILED)
    assert len(timeline.find_elements(By.CSS_SELECTOR, 'svg g[data-phase="compensation"]')) == 2
    assert "payment.declined" in browser.find_element(By.CSS_SELECTOR, "section table.grid").text
    browser.save_screenshot(str(ARTIFACTS / "console-laptop.png"))
    height = browser.execute_script("return document.documentElement.scrollHeight")
    browser.set_window_size(1366, max(768, int(height) + 140))
    browser.save_screenshot(str(ARTIFACTS / "console.png"))

    log = browser.get_log("browser")  # type: ignore[no-untyped-call]  # selenium leaves it untyped
    errors = [entry for entry in log if entry["level"] == "SEVERE"]
    assert not errors, errors


def test_lists_the_outbox_and_shows_a_message_as_it_renders_when_mail_goes_to_the_outbox(
    live_app: LiveApp, browser: Chrome
) -> None:
    customer = f"cust-{uuid.uuid4().hex[:8]}"
    address = f"{customer}@example.com"
    token = shared_provider().token(customer, email=address)
    with httpx.Client(base_url=live_app.url, timeout=30) as http:
        product = new_product(http, ADMIN, quantity=5)
        body = {
            **order_body(product),
            "shipping_address": {**ADDRESS, "name": "Ada <img src=x onerror=alert(1)>"},
        }
        del body["customer_id"]
        order = http.post("/api/orders", json=body, headers={"Authorization": f"Bearer {token}"}).json()
        listed = eventually_blocking(
            lambda: http.get("/api/notifications/outbox", headers=ADMIN).json()["items"],
            lambda items: any(m["recipient"] == address for m in items),
        )
    [message] = [m for m in listed if m["recipient"] == address]

    browser.get(f"{live_app.url}/console")
    wait_for(browser, "#token").send_keys(ADMIN_TOKEN)
    browser.find_element(By.CSS_SELECTOR, "#login button[type=submit]").click()
    shown(browser, "#/sagas")
    browser.find_element(By.CSS_SELECTOR, 'nav a[href="#/outbox"]').click()
    shown(browser, "#/outbox")
    assert address in browser.find_element(By.CSS_SELECTOR, "table.grid tbody").text
    route = f"#/outbox/{message['name']}"
    browser.find_element(By.CSS_SELECTOR, f'a[href="{route}"]').click()
    shown(browser, route)
    assert "Thank you for your order" in browser.find_element(By.CSS_SELECTOR, "pre.mail-text").text
    browser.switch_to.frame(browser.find_element(By.CSS_SELECTOR, "iframe.mail-html"))
    rendered = browser.find_element(By.TAG_NAME, "body").text
    images = browser.find_elements(By.TAG_NAME, "img")
    browser.switch_to.default_content()
    ARTIFACTS.mkdir(exist_ok=True)
    browser.save_screenshot(str(ARTIFACTS / "console-outbox.png"))

    assert "Thank you for your order" in rendered and order["order_id"] in rendered
    assert "Dear Ada <img src=x onerror=alert(1)>," in rendered and images == []  # text, not markup
    log = browser.get_log("browser")  # type: ignore[no-untyped-call]  # selenium leaves it untyped
    assert not [entry for entry in log if entry["level"] == "SEVERE"], log
