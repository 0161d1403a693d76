"""The Requests line of a card in a real browser: the request figures the dashboard sends as
events, drawn on the card of the model with that gateway name, live."""

from __future__ import annotations

from typing import Any

from berth_operator.dashboard.server import Dashboard
from playwright.sync_api import expect, sync_playwright

from tests.browser.test_dashboard_page import CHROMIUM, CHROMIUM_ARGS
from tests.dashboard_thread import serve_in_thread
from tests.operator.helpers import model_deployment


def resource() -> dict[str, Any]:
    md = model_deployment("qwen3-vl", "vllm", repo="Qwen/Qwen3-VL-30B-A3B-Instruct")
    md["metadata"]["namespace"] = "team"
    md["status"] = {"phase": "Ready", "gatewayModel": "qwen"}
    return md


def test_the_card_shows_its_models_requests_live() -> None:
    async def make() -> tuple[Dashboard, None]:
        return Dashboard(lambda: [resource()]), None

    with serve_in_thread(make) as served, sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1366, "height": 900})
        page.goto(served.url + "/")
        card = page.locator('article[data-key="team/qwen3-vl"]')
        expect(card).to_be_visible()
        expect(card.locator("dd.requests")).to_have_count(0)  # no figures yet: no line
        figures = {"qwen": {"inFlight": 12, "perSecond": 3.5}, "other": {"inFlight": 1}}
        served.call(lambda: served.dashboard.set_traffic(figures))
        expect(card.locator("dd.requests")).to_have_text("12 in flight · 3.5/s")
        served.call(lambda: served.dashboard.set_traffic({"qwen": {"inFlight": 0, "perSecond": 0}}))
        expect(card.locator("dd.requests")).to_have_text("0 in flight · 0/s")
        browser.close()
