"""Quantities are rendered as the API server stores them, or every resync writes them again."""

from collections.abc import Iterator
from typing import Any

import pytest
from berth_operator.config import OperatorConfig
from berth_operator.controller.quantities import byte_quantity, canonical_quantity
from berth_operator.controller.workload import ServedModel, render_deployment

from tests.unit.factories import md

# Inputs and the form kube-apiserver answers with (checked against the real server in
# tests/operator/test_at_rest.py).
CANONICAL = [
    ("0", "0"),
    ("0Gi", "0"),
    ("1", "1"),
    ("1000", "1k"),
    ("1500", "1500"),
    ("1000m", "1"),
    ("0.5", "500m"),
    ("0.25", "250m"),
    ("1.5", "1500m"),
    ("100m", "100m"),
    ("1k", "1k"),
    ("1.5k", "1500"),
    ("1000k", "1M"),
    ("16G", "16G"),
    ("4096Mi", "4Gi"),
    ("1024Mi", "1Gi"),
    ("1536Mi", "1536Mi"),
    ("1.5Gi", "1536Mi"),
    ("0.5Gi", "512Mi"),
    ("1024Ki", "1Mi"),
    ("1Ki", "1Ki"),
    ("0.5Ki", "512"),
    ("1023", "1023"),
    ("1048576", "1048576"),
    ("67584Mi", "66Gi"),
    ("1Ti", "1Ti"),
    (2, "2"),
    (2000, "2k"),
]


@pytest.mark.parametrize(("given", "stored"), CANONICAL)
def test_quantities_take_the_api_servers_canonical_form(given, stored):
    assert canonical_quantity(given) == stored


@pytest.mark.parametrize("wrong", ["", "1.5.5", "abc", "1 Gi", "1Gb", "-1"])
def test_a_string_that_is_no_quantity_is_refused(wrong):
    with pytest.raises(ValueError, match="not a Kubernetes quantity"):
        canonical_quantity(wrong)


def test_bytes_round_up_to_a_mib():
    assert byte_quantity(2**30) == "1Gi"
    assert byte_quantity(2**30 + 1) == "1025Mi"
    assert byte_quantity(6_400_000_000) == "6104Mi"


def quantities_in(obj: Any, path: str = "") -> Iterator[tuple[str, str]]:
    """Every quantity of a rendered pod spec: resource amounts and emptyDir size limits."""
    if isinstance(obj, dict):
        for key, value in obj.items():
            if key in ("limits", "requests") and isinstance(value, dict):
                yield from ((f"{path}.{key}.{k}", v) for k, v in value.items())
            elif key == "sizeLimit":
                yield f"{path}.{key}", value
            else:
                yield from quantities_in(value, f"{path}.{key}")
    elif isinstance(obj, list):
        for i, item in enumerate(obj):
            yield from quantities_in(item, f"{path}[{i}]")


@pytest.mark.parametrize("engine", ["vllm", "nemo-asr", "pyannote"])
@pytest.mark.parametrize("model_bytes", [None, 2**30, 6_400_000_000, 62 * 2**30])
@pytest.mark.parametrize(
    "resources",
    [{"gpus": 1}, {"gpus": 2, "cpu": "0.5", "memory": "1024Mi"}, {"cpu": 2000, "memory": "1.5Gi"}],
)
def test_every_rendered_quantity_is_canonical(engine, model_bytes, resources):
    served = ServedModel(revision="main", resolved_revision="abc", model_bytes=model_bytes)
    deployment = render_deployment(md(engine=engine, resources=resources), OperatorConfig(), served)
    found = dict(quantities_in(deployment))
    assert any(path.endswith("ephemeral-storage") for path in found)
    assert {path: canonical_quantity(q) for path, q in found.items()} == found
