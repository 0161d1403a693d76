"""The vllm engine on the seed model's architecture: a tiny random
Qwen3VLMoeForConditionalGeneration served by vLLM's real server (its CPU build) through the
supervisor, answering chats that carry images, with the image limit Berth renders."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from openai import BadRequestError, OpenAI

from tests.cluster.kubectl import Kubectl
from tests.engines.conftest import cached_tiny_model
from tests.engines.vllm_server import (
    API_KEY,
    BUILDER,
    ENVIRONMENT,
    TEST_EXTRA_ARGS,
    VllmServer,
    png_data_url,
    serve_reporting,
)

#: a module's first test also waits for its vLLM server to start (a minute or more here)
pytestmark = pytest.mark.timeout(900)

TINY_REPO = "berth-tests/tiny-qwen3-vl-moe"
SERVED = "tiny-qwen3-vl"
SETTINGS = {
    "gpus": 1,
    "servedModelName": SERVED,
    "maxModelLen": 512,
    "limitMmPerPrompt": {"image": 1, "video": 0},
    "extraArgs": TEST_EXTRA_ARGS,
}
RED = png_data_url(64, 48, (200, 30, 30))
BLUE = png_data_url(40, 40, (20, 40, 220))


def image(url: str) -> dict[str, Any]:
    return {"type": "image_url", "image_url": {"url": url}}


@pytest.fixture(scope="module")
def vl(
    module_kubectl: Kubectl, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[VllmServer, dict[str, Any]]]:
    """One vLLM server for the module (start-up takes a minute or more here)."""
    cache = cached_tiny_model(ENVIRONMENT, BUILDER, TINY_REPO, tmp_path_factory, part="vl-moe")
    server, (_, ready) = serve_reporting(module_kubectl, "tiny-vl", cache, TINY_REPO, SETTINGS)
    yield server, ready
    server.stop()


@pytest.fixture(scope="module")
def client(vl: tuple[VllmServer, dict[str, Any]]) -> OpenAI:
    return OpenAI(base_url=vl[0].url + "/v1", api_key=API_KEY, max_retries=0, timeout=120)


def test_serves_the_seed_models_architecture(vl: tuple[VllmServer, dict[str, Any]], client: OpenAI):
    server, ready = vl
    assert ready["state"] == "Ready" and ready["details"]["served_model_name"] == SERVED
    assert "Resolved architecture: Qwen3VLMoeForConditionalGeneration" in server.log.read_text()
    assert """--limit-mm-per-prompt '{"image":1,"video":0}'""" in server.command()
    assert [model.id for model in client.models.list()] == [SERVED]


def test_answers_a_chat_carrying_an_image(client: OpenAI):
    answer = client.chat.completions.create(
        model=SERVED,
        messages=[
            {"role": "user", "content": [image(RED), {"type": "text", "text": "What is this?"}]}
        ],
        max_tokens=8,
    )
    assert answer.choices[0].message.content
    text_only = client.chat.completions.create(
        model=SERVED,
        messages=[{"role": "user", "content": [{"type": "text", "text": "What is this?"}]}],
        max_tokens=1,
    )
    # the image's tokens went into the prompt
    assert answer.usage.prompt_tokens > text_only.usage.prompt_tokens


def test_refuses_more_images_than_the_limit(client: OpenAI):
    with pytest.raises(BadRequestError) as refused:
        client.chat.completions.create(
            model=SERVED,
            messages=[
                {
                    "role": "user",
                    "content": [image(RED), image(BLUE), {"type": "text", "text": "Compare."}],
                }
            ],
            max_tokens=8,
        )
    assert refused.value.status_code == 400
    assert "At most 1 image(s)" in refused.value.message, refused.value.message
