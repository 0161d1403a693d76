"""The committed CRD is generated from the typed models and stays in sync with them."""

from pathlib import Path

import yaml
from berth_operator.api.crd import (
    CHART_TEMPLATE,
    build_crd,
    render_chart_template,
    render_crd_yaml,
)
from berth_operator.api.reference import render_reference

CRD_FILE = Path(__file__).resolve().parents[2] / "crds" / "modeldeployments.berth.dev.yaml"


def test_committed_crd_matches_the_models():
    assert CRD_FILE.read_text() == render_crd_yaml(), (
        "crds/ is stale: run `python -m berth_operator.api.crd` and commit the result"
    )


def test_chart_carries_the_same_crd():
    chart = CRD_FILE.parents[1] / CHART_TEMPLATE
    assert chart.read_text() == render_chart_template(), (
        "the chart's CRD is stale: run `python -m berth_operator.api.crd` and commit the result"
    )


def _walk(schema, path="$"):
    yield path, schema
    for name, child in (schema.get("properties") or {}).items():
        yield from _walk(child, f"{path}.{name}")
    if isinstance(schema.get("items"), dict):
        yield from _walk(schema["items"], f"{path}[]")
    if isinstance(schema.get("additionalProperties"), dict):
        yield from _walk(schema["additionalProperties"], f"{path}{{}}")


def test_schema_is_structural():
    schema = build_crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    for path, node in _walk(schema):
        assert not {"$ref", "anyOf", "allOf", "oneOf", "title", "$defs"} & set(node), path
        if node.get("x-kubernetes-int-or-string"):
            assert "type" not in node, path
        else:
            assert "type" in node, f"{path} has no type"
        if "properties" in node:
            assert "additionalProperties" not in node, path
        if node.get("type") == "object" and "properties" not in node:
            assert (
                "additionalProperties" in node
                or node.get("x-kubernetes-preserve-unknown-fields")
                or path.endswith("metadata")
            ), path


def test_crd_has_subresources_columns_and_short_name():
    crd = build_crd()
    version = crd["spec"]["versions"][0]
    assert crd["spec"]["names"]["shortNames"] == ["md"]
    assert version["subresources"]["scale"]["specReplicasPath"] == ".spec.replicas"
    assert version["subresources"]["status"] == {}
    columns = {c["name"]: c for c in version["additionalPrinterColumns"]}
    assert list(columns) == [
        "Engine",
        "Model",
        "GPUs",
        "Ready",
        "Phase",
        "Cache",
        "Age",
        "Reason",
        "Endpoint",
        "Adapters",
    ]
    assert {columns[c]["priority"] for c in ("Reason", "Endpoint", "Adapters")} == {1}


def test_every_cel_rule_has_a_message_and_field_path():
    text = yaml.safe_dump(build_crd())
    crd = yaml.safe_load(text)
    rules = []
    for _, node in _walk(crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]):
        rules += node.get("x-kubernetes-validations", [])
    assert len(rules) >= 9
    for rule in rules:
        # the root rule on metadata.name cannot carry a fieldPath: its message names the field
        assert rule.get("fieldPath", "").startswith(".") or "metadata.name" in rule["message"], rule


def test_committed_api_reference_matches_the_crd():
    reference = CRD_FILE.parents[1] / "doc" / "api.md"
    assert reference.read_text() == render_reference(), (
        "doc/api.md is stale: run `python -m berth_operator.api.reference` and commit the result"
    )
