"""The console in a real headless browser (Debian's chromium through its chromedriver,
``make browser``), served by ``ragline dev`` at /console: a question asked in the page
shows the cited answer, streamed; a queued item approved in the page is approved in the
API. Each view's screenshot is written where CONSOLE_SCREENSHOTS points (``docs`` for the
ones in docs/), else to a temporary directory, so a test run leaves the tree as it was."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.support import DevProcess, http_json, wait_until

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
SCREENSHOTS = ROOT / os.environ.get("CONSOLE_SCREENSHOTS", tempfile.mkdtemp(prefix="console-"))
DEADLINE = 30.0
PROFILES = """
[profiles.simple]
llm = "extractive"
[profiles.reviewed]
description = "Every answer goes to the review queue."
llm = "extractive"
review = true
"""
DOCUMENT = (
    b"# Quillfeather Lighthouse\n\n## Opening hours\n\n"
    b"The Quillfeather lighthouse opens at 7:15 on Saturdays and closes at noon.\n\n"
    b"## Tickets\n\nA ticket to the lantern gallery costs 4 crowns for adults.\n"
)
QUESTION = "When does the Quillfeather lighthouse open on Saturdays?"


@pytest.fixture(scope="module")
def stack(module_scratch: Path) -> Iterator[DevProcess]:
    profiles = module_scratch / "profiles.toml"
    profiles.write_text(PROFILES)
    process = DevProcess.start(
        module_scratch / "data", environment={"RAGLINE_PROFILES_FILE": str(profiles)}
    )
    try:
        process.wait_for_endpoints()
        yield process
    finally:
        process.stop()


@pytest.fixture(scope="module")
def endpoints(stack: DevProcess, s3_for: Any) -> dict[str, str]:
    endpoints = stack.wait_for_endpoints()
    s3_for(endpoints).put_object(
        Bucket=endpoints["bucket"], Key="lighthouse.md", Body=DOCUMENT, ContentType="text/markdown"
    )

    def ingested() -> bool:
        status, body = http_json("POST", f"{endpoints['api']}/query", {"question": QUESTION})
        return status == 200 and "7:15" in body["answer"]

    wait_until(ingested, timeout=DEADLINE, what="the lighthouse document to be answerable")
    return endpoints


@pytest.fixture(scope="module")
def s3_for() -> Any:
    import boto3

    def client(endpoints: dict[str, str]) -> Any:
        return boto3.client(
            "s3", endpoint_url=endpoints["s3"], region_name="us-east-1",
            aws_access_key_id="testing", aws_secret_access_key="testing",
        )  # fmt: skip

    return client


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage",
                     "--window-size=1280,900"):  # fmt: skip
        options.add_argument(argument)
    options.binary_location = shutil.which("chromium") or "/usr/bin/chromium"
    service = Service(executable_path=shutil.which("chromedriver") or "/usr/bin/chromedriver")
    driver = webdriver.Chrome(options=options, service=service)
    try:
        yield driver
    finally:
        driver.quit()


def _open_console(browser: Any, endpoints: dict[str, str], view: str = "") -> None:
    from selenium.webdriver.common.by import By

    browser.get(f"{endpoints['api']}/console/{view}")
    key = browser.find_element(By.ID, "api-key")
    key.clear()
    key.send_keys(endpoints["api_key"])


def _wait(browser: Any, condition: Any, what: str) -> Any:
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(browser, DEADLINE, poll_frequency=0.1).until(condition, message=what)


def test_a_question_asked_in_the_page_shows_the_cited_answer(
    browser: Any, endpoints: dict[str, str]
) -> None:
    from selenium.webdriver.common.by import By

    # GIVEN the console with the development key
    _open_console(browser, endpoints)
    # WHEN a question is typed and asked (streamed)
    browser.find_element(By.ID, "question").send_keys(QUESTION)
    assert browser.find_element(By.ID, "stream").is_selected()
    browser.find_element(By.ID, "ask").click()
    # THEN the page shows the answer, its citation of the uploaded object and its cost
    _wait(browser, lambda b: b.find_element(By.ID, "ask-status").text == "answered", "answer")
    assert "7:15" in browser.find_element(By.ID, "answer").text
    citations = browser.find_elements(By.CSS_SELECTOR, "#citations li")
    assert citations and f"s3://{endpoints['bucket']}/lighthouse.md" in citations[0].text
    meta = browser.find_element(By.ID, "answer-meta").text
    assert "extractive" in meta and "cost $0.000000" in meta
    assert browser.save_screenshot(str(SCREENSHOTS / "console-playground.png"))


def test_a_queued_item_approved_in_the_page_is_approved_in_the_api(
    browser: Any, endpoints: dict[str, str]
) -> None:
    from selenium.webdriver.common.by import By

    # GIVEN an answer of a profile that reviews every answer, queued
    status, answer = http_json(
        "POST", f"{endpoints['api']}/query", {"question": QUESTION, "profile": "reviewed"}
    )
    assert status == 200 and answer["review_id"], answer
    item_id = answer["review_id"]
    # WHEN a reviewer opens the queue in the console and the item in it
    _open_console(browser, endpoints, "#reviews")
    browser.find_element(By.ID, "tab-reviews").click()
    selector = f'#queue li[data-id="{item_id}"]'
    _wait(browser, lambda b: b.find_elements(By.CSS_SELECTOR, selector), "the queued item")
    browser.find_element(By.CSS_SELECTOR, selector).click()
    _wait(browser, lambda b: b.find_element(By.ID, "item-question").text == QUESTION, "item")
    # THEN it shows the passages the model was shown, the cited one ticked
    passages = browser.find_elements(By.CSS_SELECTOR, "#item-passages li")
    assert passages and "7:15" in passages[0].text
    assert passages[0].find_element(By.CSS_SELECTOR, "input.pick").is_selected()
    assert browser.save_screenshot(str(SCREENSHOTS / "console-review.png"))
    # WHEN the reviewer approves it
    browser.find_element(By.ID, "approve").click()
    _wait(
        browser,
        lambda b: b.find_element(By.ID, "item-outcome").text.startswith("approved by"),
        "the decision",
    )
    # THEN the API returns it approved, by the development key, with the answer given
    status, item = http_json("GET", f"{endpoints['api']}/reviews/{item_id}")
    assert status == 200 and item["state"] == "approved", item
    assert item["decided_by"] == endpoints["api_key"].split("_")[1]
    assert item["final_answer"] == answer["answer"]
