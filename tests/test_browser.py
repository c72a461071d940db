"""The page in a real browser: Debian's Chromium driven by Playwright (never `playwright install`)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import REAL_NOTE

CHROMIUM = Path("/usr/bin/chromium")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic"]
WOMBAT = """## Wombat-Cache: Cubic KV-cache Compression

- 链接: https://example.org/wombat
- 2026-03-05

Wombat-Cache 把 KV-cache 切成立方体块并量化，长上下文推理时显存减少 64%。
"""

pytestmark = [
    pytest.mark.slow,
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian chromium at /usr/bin/chromium "
                       "(apt-get install chromium chromium-driver; test.sh does it)"),
]


@pytest.fixture
def page(served: str) -> Iterator:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.set_default_timeout(60_000)
        page.goto(served, wait_until="domcontentloaded")
        try:
            yield page
        finally:
            browser.close()


def ask(page, question: str) -> None:  # type: ignore[no-untyped-def]
    box = page.locator("#rag-question textarea")
    box.fill(question)
    box.press("Enter")


def test_ask_see_sources_preview_then_upload_rebuild_and_find(page, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from playwright.sync_api import expect

    ask(page, "哪篇工作把 MoE 专家拆成原子专家?")
    card = page.locator("#rag-sources .rag-card").first
    expect(card).to_contain_text(REAL_NOTE)
    expect(card).to_contain_text("OmniMoE")
    expect(card.locator("mark").first).to_be_visible()  # query terms highlighted
    reply = page.locator("#rag-chat .message.bot").last
    expect(reply).to_contain_text("[1]")
    preview = card.locator("details pre")
    expect(preview).to_be_hidden()
    card.locator("details summary").click()
    expect(preview).to_be_visible()
    expect(preview).to_contain_text("Cartesian Product Router")
    page.screenshot(path=tmp_path / "1-answer.png", full_page=True)

    page.get_by_role("tab", name="Index").click()
    expect(page.locator("#rag-status")).to_contain_text("Notes: 2 ")
    note = tmp_path / "wombat cache.md"
    note.write_text(WOMBAT, encoding="utf-8")
    with page.expect_file_chooser() as chooser:
        page.locator("#rag-upload").click()
    chooser.value.set_files(note)
    expect(page.locator("#rag-log")).to_contain_text("Added wombat cache.md")
    expect(page.locator("#rag-status")).to_contain_text("Notes: 3 ")
    page.screenshot(path=tmp_path / "2-index.png", full_page=True)

    page.get_by_role("tab", name="Ask").click()
    ask(page, "Wombat-Cache 把显存减少了多少?")
    expect(page.locator("#rag-sources .rag-card").first).to_contain_text("wombat cache.md")
    expect(page.locator("#rag-chat .message.bot").last).to_contain_text("[1]")
    page.screenshot(path=tmp_path / "3-new-note.png", full_page=True)
