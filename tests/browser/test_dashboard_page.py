"""The dashboard in a real browser (Debian's Chromium, driven by Playwright) on the control plane."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect, sync_playwright

from tests.cluster import ControlPlane
from tests.cluster.kubectl import Kubectl
from tests.cluster.nodes import FakeNode
from tests.gpu_nodes import on_own_nodes, own_gpu_nodes
from tests.operator.helpers import (
    RUN_BY_THE_TEST,
    download_job_of,
    model_deployment,
    phase_is,
    report_progress,
)
from tests.operator_process import OperatorProcess

REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO / "test-artifacts"
CHROMIUM = os.environ.get("BERTH_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

pytestmark = pytest.mark.usefixtures("cache_volume")
expect.set_options(timeout=20_000)  # CI machines are busy: events may take seconds


@pytest.fixture
def page(operator: OperatorProcess) -> Iterator[Page]:
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        origin = f"http://127.0.0.1:{operator.dashboard_port}"
        context = browser.new_context(viewport={"width": 1366, "height": 900})
        context.grant_permissions(["clipboard-read", "clipboard-write"], origin=origin)
        page = context.new_page()
        page.goto(origin + "/")
        expect(page.locator("#connection")).to_have_text("live")
        yield page
        browser.close()


def card(page: Page, namespace: str, name: str):
    return page.locator(f'article[data-key="{namespace}/{name}"]')


def patch_status(kubectl: Kubectl, name: str, status: dict) -> None:
    kubectl(
        "patch",
        "md",
        name,
        "--subresource=status",
        "--type=merge",
        "-p",
        json.dumps({"status": status}),
    )


def test_dashboard_shows_the_truth_live(page: Page, kubectl: Kubectl):
    ns = kubectl.namespace
    kubectl("create", "secret", "generic", "hf-token", "--from-literal=token=hf_x")
    kubectl("apply", "-f", str(REPO / "examples"))
    kubectl.apply(model_deployment("gated", repo="berth-test/gated"))
    for name in ("qwen3-vl", "canary", "diarization"):
        kubectl.wait_for("md", name, phase_is("Starting"))
        expect(card(page, ns, name)).to_be_visible()

    # a failing resource shows its reason
    kubectl.wait_for("md", "gated", phase_is("Failed", reason="AuthRequired"))
    expect(card(page, ns, "gated").locator(".reason")).to_contain_text("AuthRequired")
    expect(card(page, ns, "gated").locator(".phase")).to_have_text("Failed")

    # the progress bar follows the download Job's reports, without a reload
    kubectl.apply(model_deployment("fetching", repo=RUN_BY_THE_TEST))
    job = download_job_of(kubectl, "fetching")
    download = {"bytesTotal": 62 * 2**30, "bytesPerSecond": 500 * 2**20}
    report_progress(kubectl, job, {**download, "bytesDone": 6 * 2**30, "percent": 10})
    bar = card(page, ns, "fetching").locator("progress")
    expect(bar).to_have_attribute("value", "10")
    report_progress(kubectl, job, {**download, "bytesDone": 40 * 2**30, "percent": 64})
    expect(bar).to_have_attribute("value", "64")
    expect(card(page, ns, "fetching").locator(".download")).to_contain_text("40.0 GiB of 62.0 GiB")

    # a dependency mismatch stands out (the operator compares the reported versions)
    mismatch = "CudaRuntimeMismatch: torch runs on CUDA runtime 12.4, 12.8 expected"
    runtime = {
        "state": "Loading",
        "dependencies": {"torch": {"version": "2.6.0+cu124", "cuda_runtime": "12.4"}},
    }
    patch_status(kubectl, "canary", {"runtime": runtime})
    flagged = card(page, ns, "canary").locator(".mismatch").first
    expect(flagged).to_contain_text(mismatch)
    expect(flagged).to_have_css("color", "rgb(207, 34, 46)")

    # copying the endpoint puts the right URL on the clipboard, from the keyboard too
    endpoint = kubectl.get("md", "canary")["status"]["endpoint"]
    button = card(page, ns, "canary").get_by_role("button", name="Copy endpoint of canary")
    button.focus()
    page.keyboard.press("Enter")
    expect(button).to_have_text("Copied")
    assert page.evaluate("navigator.clipboard.readText()") == endpoint

    ARTIFACTS.mkdir(exist_ok=True)
    card(page, ns, "qwen3-vl").scroll_into_view_if_needed()
    page.screenshot(path=str(ARTIFACTS / "dashboard.png"), full_page=False)


# Every element of a card that could push past its right edge, and what overflows.
OVERFLOWS = """() => {
  const found = [], checked = [];
  for (const card of document.querySelectorAll("article.card")) {
    const right = card.getBoundingClientRect().right;
    for (const el of [card, ...card.querySelectorAll("h2, .endpoint, .commands li, .commands code")]) {
      checked.push(el.tagName);
      if (el.scrollWidth > el.clientWidth || el.getBoundingClientRect().right > right + 0.5) {
        found.push(`${card.dataset.key} ${el.tagName} "${el.textContent.slice(0, 50)}": ` +
          `scrollWidth ${el.scrollWidth} > clientWidth ${el.clientWidth}`);
      }
    }
  }
  const page = document.documentElement;
  return {found, rows: checked.filter((tag) => tag === "LI").length,
          pageScrolls: page.scrollWidth > page.clientWidth};
}"""


def test_cards_and_gpu_panel_fit_1366_px(page: Page, kubectl: Kubectl, cluster: ControlPlane):
    ns = kubectl.namespace
    long_names = [f"model-deployment-with-a-deliberately-long-name-{i:04d}" for i in range(4)]
    with own_gpu_nodes(cluster, ns, FakeNode("gpu", gpus=8, gpu_product="NVIDIA-H200")) as (gpu,):
        place = {"scheduling": on_own_nodes(ns)}
        kubectl.apply(
            *(model_deployment(name, resources={"gpus": 1}, **place) for name in long_names),
            model_deployment("asr", resources={"gpus": 2}, **place),
        )
        for name in [*long_names, "asr"]:
            expect(card(page, ns, name).locator(".commands li")).to_have_count(5)

        # the GPU panel: the node, its product, what Berth's pods hold, and which models
        row = page.locator(f'#gpu-nodes tr[data-node="{gpu}"]')
        expect(row.locator(".models li")).to_have_count(5)
        expect(row.locator(".product")).to_have_text("NVIDIA-H200")
        expect(row.locator(".allocatable")).to_have_text("8 nvidia.com/gpu")
        expect(row.locator(".requested")).to_have_text("6 of 8 nvidia.com/gpu")
        expect(row.locator(f'.models li[data-key="{ns}/asr"]')).to_have_text(
            f"{ns}/asr: 2 nvidia.com/gpu"
        )

        # at 1366 px nothing in a card scrolls sideways, long names and commands included
        layout = page.evaluate(OVERFLOWS)
        assert layout["found"] == [], "\n".join(layout["found"])
        assert layout["rows"] >= 5 * 5, layout
        assert not layout["pageScrolls"]

        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "dashboard-1366.png"), full_page=True)

        # the panel is live: scaling a model to zero frees its GPUs without a reload
        kubectl("scale", "md", "asr", "--replicas=0")
        expect(row.locator(".requested")).to_have_text("4 of 8 nvidia.com/gpu")
        expect(row.locator(f'.models li[data-key="{ns}/asr"]')).to_have_count(0)
