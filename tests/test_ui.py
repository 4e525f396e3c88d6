"""The ``/ui`` pages in a real headless Chromium (Debian's, driven by Playwright).

A real ``memos serve`` holds two tenants' memories; the browser logs in with
their keys, walks the pages, searches, and never sees the other tenant's
items. With ``MEMOS_UI_SHOTS=benchmarks/results/ui`` the pages' screenshots go
there (how the README's were made); otherwise the test leaves no files behind.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from service_helpers import SECRET, ServeProcess, Tenants, tenants

from memos.client import Memos

SHOTS = os.environ.get("MEMOS_UI_SHOTS")
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
BOB_SECRET = "bob's vault code is 4321"


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ServeProcess, Tenants]]:
    home = tmp_path_factory.mktemp("ui") / "home"
    found = tenants(home)
    found.mem.close()
    server = ServeProcess(home)
    alice = Memos.connect(server.url, api_key=found.alice)
    notes = [
        "Alice's daughter starts school in September",
        "Alice prefers green tea to coffee in the morning",
        "The team offsite is in Porto on the 12th of May",
        "Alice is allergic to peanuts",
    ]
    added = [
        alice.add(text, cube="notes", tags=["family"] if i == 0 else [])
        for i, text in enumerate(notes)
    ]
    alice.update(added[1].id, "Alice prefers jasmine green tea to coffee in the morning")
    alice.search("tea", cube="notes", k=2)
    alice.context("peanuts", cube="notes")
    Memos.connect(server.url, api_key=found.bob).add(BOB_SECRET, cube="notes")
    yield server, found
    server.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is a dev extra")
    if CHROMIUM is None:
        pytest.skip("no chromium executable (apt-get install chromium); the browser tests need it")
    with sync_api.sync_playwright() as driver:
        try:
            launched = driver.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        except Exception as exc:  # a browser that cannot start on this machine
            pytest.skip(f"chromium at {CHROMIUM} did not start: {exc}")
        yield launched
        launched.close()


def _login(browser: Any, url: str, key: str) -> Any:
    page = browser.new_page(viewport={"width": 1200, "height": 900})
    page.goto(f"{url}/ui")
    assert "/ui/login" in page.url  # no key yet: the login page
    page.fill("input[name=key]", key)
    page.click("button[type=submit]")
    page.wait_for_selector("#tenant")
    return page


def _shot(page: Any, name: str) -> None:
    if SHOTS:
        Path(SHOTS).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(SHOTS) / f"{name}.png"), full_page=True)


def test_pages_load_and_search_works(served: tuple[ServeProcess, Tenants], browser: Any) -> None:
    server, found = served
    page = _login(browser, server.url, found.alice)
    assert page.text_content("#tenant") == "alice"
    assert page.locator(".cube").count() == 1 and "plaintext" in page.content()
    _shot(page, "cubes")

    page.click("text=notes")
    page.wait_for_selector("#items")
    assert page.locator("#items tr").count() == 1 + 5  # header and alice's five memories
    assert page.locator("#retention-histogram tr").count() == 10
    assert page.locator("svg.plot polyline").count() >= 1
    page.fill("input[name=q]", "which tea does she drink")
    page.click("form.search button")
    page.wait_for_selector("#hits")
    first = page.locator("#hits tr.hit").first
    assert "jasmine green tea" in first.text_content()
    _shot(page, "search")

    first.locator("a").click()
    page.wait_for_selector("#history")
    assert page.locator("#history tr").count() == 1 + 2  # two versions
    assert page.locator("#delete").count() == 1  # alice's key can write
    _shot(page, "item")

    page.click("text=Jobs & models")
    page.wait_for_selector("#jobs")
    assert found.job_id[:8] in page.content()
    assert found.snapshot_id[:8] in page.content() and found.adapter_id[:8] in page.content()
    _shot(page, "jobs")
    page.close()


def test_another_tenants_items_never_appear(
    served: tuple[ServeProcess, Tenants], browser: Any
) -> None:
    server, found = served
    bob = _login(browser, server.url, found.bob)
    bob.goto(f"{server.url}/ui/cubes/notes?q=flowerpot+spare+key")
    content = bob.content()
    assert BOB_SECRET in content
    assert SECRET not in content and "green tea" not in content
    assert found.snapshot_id[:8] not in content
    bob.goto(f"{server.url}/ui/items/{found.item_id}")
    assert bob.text_content("h1") == "UnknownItemError" or "NotFound" in bob.text_content("h1")
    assert SECRET not in bob.content()
    bob.goto(f"{server.url}/ui/jobs")
    assert found.job_id[:8] not in bob.content()
    bob.close()


def test_read_only_keys_only_read(served: tuple[ServeProcess, Tenants], browser: Any) -> None:
    server, found = served
    page = _login(browser, server.url, found.alice_read)
    page.goto(f"{server.url}/ui/items/{found.item_id}")
    page.wait_for_selector("#history")
    assert page.locator("#delete").count() == 0
    cookies = {c["name"]: c["value"] for c in page.context.cookies()}
    answer = httpx.post(
        f"{server.url}/ui/items/{found.item_id}/delete", cookies=cookies, follow_redirects=False
    )
    assert answer.status_code == 403
    page.close()


def test_writers_delete_and_restore(served: tuple[ServeProcess, Tenants], browser: Any) -> None:
    server, found = served
    page = _login(browser, server.url, found.alice)
    page.goto(f"{server.url}/ui/items/{found.item_id}")
    page.click("#delete")
    page.wait_for_selector("#restore")
    assert page.text_content(".state") == "deleted"
    page.click("#restore")
    page.wait_for_selector("#delete")
    page.close()


def test_bad_keys_and_cross_site_posts_are_refused(
    served: tuple[ServeProcess, Tenants], browser: Any
) -> None:
    server, found = served
    page = browser.new_page()
    page.goto(f"{server.url}/ui/login")
    page.fill("input[name=key]", "not-a-key")
    page.click("button[type=submit]")
    page.wait_for_selector("#login-error")
    page.goto(f"{server.url}/ui/login")
    page.fill("input[name=key]", found.revoked)
    page.click("button[type=submit]")
    page.wait_for_selector("#login-error")
    page.close()
    cross = httpx.post(
        f"{server.url}/ui/items/{found.item_id}/delete",
        cookies={"memos_ui_key": found.alice},
        headers={"Origin": "https://evil.example"},
    )
    assert cross.status_code == 403
    assert Memos.connect(server.url, api_key=found.alice).get(found.item_id).state != "deleted"
