"""The web page at ``/`` in a real headless Chromium, driven by the keyboard alone."""

from __future__ import annotations

from pathlib import Path

import pytest

from lmforge.predictor import Predictor
from lmforge.serve import ServeSettings, create_app

CHROMIUM = Path("/usr/bin/chromium")

pytestmark = pytest.mark.skipif(
    not CHROMIUM.exists(), reason="needs Debian's chromium at /usr/bin/chromium"
)


@pytest.fixture()
def browser():
    sync_api = pytest.importorskip("playwright.sync_api", reason="pip install playwright")
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])
        yield b
        b.close()


def _focused(page) -> str:
    return page.evaluate("document.activeElement && document.activeElement.id")


def test_paste_reviews_and_read_labels_by_keyboard(nb_dir, live_server, browser):
    reviews = ["质量很好，物流也快，很满意", "太差了，用了两天就坏了", "一般般吧"]
    expected = Predictor.load(nb_dir).predict(reviews)
    with live_server(create_app(nb_dir, ServeSettings(api_keys=("k1",)))) as (_, url):
        page = browser.new_page()
        page.goto(url + "/")
        page.wait_for_function("document.getElementById('model').textContent.includes('API key')")
        assert _focused(page) == "texts"  # the text box has focus on load
        # keyboard order: text box -> one-per-line -> API key -> Classify
        page.keyboard.press("Tab")
        assert _focused(page) == "per-line"
        page.keyboard.press("Tab")
        assert _focused(page) == "api-key"
        page.keyboard.type("k1")
        page.keyboard.press("Tab")
        assert _focused(page) == "submit"
        page.keyboard.press("Shift+Tab")
        page.keyboard.press("Shift+Tab")
        page.keyboard.press("Shift+Tab")
        assert _focused(page) == "texts"
        for i, review in enumerate(reviews):
            if i:
                page.keyboard.press("Enter")
            page.keyboard.insert_text(review)
        page.keyboard.press("Control+Enter")
        page.wait_for_function("document.querySelectorAll('#results li').length === 3")
        items = page.locator("#results li")
        for i, want in enumerate(expected):
            item = items.nth(i)
            assert item.locator(".text").inner_text() == reviews[i]
            assert item.locator(".label").inner_text() == want.label
            meter = item.locator("[role=meter]")
            assert meter.get_attribute("aria-valuenow") == str(round(want.score * 100))
            assert meter.get_attribute("aria-label") == f"confidence in {want.label}"
            width = item.locator(".bar > span").evaluate("e => e.style.width")
            assert width == f"{round(want.score * 100)}%"
        status = page.locator("#status")
        assert status.get_attribute("aria-live") == "polite"
        assert status.inner_text().startswith("3 reviews classified")
        # the whole box as one review: untick "one per line" with Space, submit with Enter
        page.keyboard.press("Tab")
        page.keyboard.press("Space")
        assert not page.is_checked("#per-line")
        page.keyboard.press("Tab")
        page.keyboard.press("Tab")
        page.keyboard.press("Enter")
        page.wait_for_function("document.querySelectorAll('#results li').length === 1")
        assert page.locator("#status").inner_text().startswith("1 review classified")
        # an empty box is an announced error, not a request
        page.fill("#texts", "")
        page.focus("#texts")
        page.keyboard.press("Control+Enter")
        alert = page.locator("[role=alert]")
        alert.wait_for()
        assert "at least one review" in alert.inner_text()
        # a wrong key is reported in words
        page.fill("#api-key", "wrong")
        page.fill("#texts", "好")
        page.focus("#texts")
        page.keyboard.press("Control+Enter")
        page.wait_for_function("document.getElementById('error').textContent.includes('API key')")
        assert page.locator("#error").inner_text() == "Not classified: invalid API key"


def test_wrong_label_control_sends_feedback(nb_dir, live_server, browser, tmp_path):
    import sqlalchemy as sa

    from lmforge.serve.feedback import FEEDBACK_TABLE

    db = tmp_path / "p.sqlite"
    review = "质量很好，物流也快，很满意"
    given = Predictor.load(nb_dir).predict([review])[0].label
    other = "neg" if given == "pos" else "pos"
    app = create_app(nb_dir, ServeSettings(prediction_log=str(db)))
    with live_server(app) as (_, url):
        page = browser.new_page()
        page.goto(url + "/")
        page.wait_for_function("document.getElementById('model').textContent.includes('labels')")
        page.fill("#texts", review)
        page.click("#submit")
        page.wait_for_function("document.querySelectorAll('#results li').length === 1")
        page.get_by_role("button", name="wrong label?").click()
        page.get_by_role("button", name=f"it is {other}").click()
        page.wait_for_function(
            "document.querySelector('.feedback [role=status]').textContent.startsWith('Thanks')"
        )
    with sa.create_engine(f"sqlite:///{db}").connect() as conn:
        rows = conn.execute(sa.text(f"SELECT text, label, request_id FROM {FEEDBACK_TABLE}")).all()
    assert len(rows) == 1 and rows[0][0] == review and rows[0][1] == other and rows[0][2]
