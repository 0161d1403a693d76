"""Builds the ModelDeployment CustomResourceDefinition from the typed models."""

from __future__ import annotations

import copy
from typing import Any

from berth_operator.api.metadata import GROUP, KIND, PLURAL, SHORT_NAMES, SINGULAR, VERSION
from berth_operator.api.modeldeployment import ModelDeploymentSpec, ModelDeploymentStatus

CRD_NAME = f"{PLURAL}.{GROUP}"

PRINTER_COLUMNS: list[dict[str, Any]] = [
    {"name": "Engine", "type": "string", "jsonPath": ".spec.engine"},
    {"name": "Model", "type": "string", "jsonPath": ".spec.model.repo"},
    {"name": "GPUs", "type": "integer", "jsonPath": ".spec.resources.gpus"},
    {"name": "Ready", "type": "string", "jsonPath": ".status.ready"},
    {"name": "Phase", "type": "string", "jsonPath": ".status.phase"},
    {
        "name": "Cache",
        "type": "string",
        "jsonPath": ".status.download.progress",
        "description": "Download progress of the model into the cache",
    },
    {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
    {
        "name": "Reason",
        "type": "string",
        "priority": 1,
        "jsonPath": '.status.conditions[?(@.type=="Ready")].reason',
    },
    {"name": "Endpoint", "type": "string", "priority": 1, "jsonPath": ".status.endpoint"},
    {"name": "Adapters", "type": "string", "priority": 1, "jsonPath": ".status.adaptersLoaded"},
]

NAME_RULE = {
    "rule": "self.metadata.name.size() <= 52 && "
    "self.metadata.name.matches('^[a-z]([-a-z0-9]*[a-z0-9])?$')",
    "message": "metadata.name must start with a letter, hold only lowercase letters, digits and "
    "'-', and be at most 52 characters: it names the Service and the Deployment",
}

#: without vllm.servedModelName the base model is served under the resource's name, which only
#: the root of the object can see
ADAPTER_NAME_RULE = {
    "rule": "!has(self.spec.vllm) || !has(self.spec.vllm.adapters) || "
    "has(self.spec.vllm.servedModelName) || "
    "self.spec.vllm.adapters.all(a, a.name != self.metadata.name)",
    "message": "an adapter's name must differ from the resource's name, which is the base "
    "model's name in the API while spec.vllm.servedModelName is unset",
    "fieldPath": ".spec.vllm.adapters",
}

_DROPPED_KEYS = {"title", "additionalProperties", "$defs", "discriminator"}


def _resolve(schema: dict[str, Any], defs: dict[str, Any]) -> dict[str, Any]:
    """Inlines $ref, collapses Optional unions and converts JSON Schema to OpenAPI v3 structural."""
    schema = copy.deepcopy(schema)
    if "$ref" in schema:
        target = defs[schema.pop("$ref").rsplit("/", 1)[-1]]
        schema = {**copy.deepcopy(target), **schema}
    if "anyOf" in schema:
        branches = [b for b in schema.pop("anyOf") if b.get("type") != "null"]
        if schema.get("x-kubernetes-int-or-string"):
            schema.pop("type", None)
        elif len(branches) == 1:
            schema = {**_resolve(branches[0], defs), **schema}
        else:
            raise ValueError(f"cannot express union {branches} in a structural schema")
    if schema.get("default", 0) is None:
        del schema["default"]
    if isinstance(schema.get("exclusiveMinimum"), int | float) and not isinstance(
        schema["exclusiveMinimum"], bool
    ):
        schema["minimum"] = schema["exclusiveMinimum"]
        schema["exclusiveMinimum"] = True
    if schema.get("x-kubernetes-preserve-unknown-fields"):
        schema.pop("additionalProperties", None)
        schema["type"] = "object"
    elif isinstance(schema.get("additionalProperties"), dict):
        values = _resolve(schema["additionalProperties"], defs)
        cleaned = {k: v for k, v in schema.items() if k not in _DROPPED_KEYS}
        return {**cleaned, "type": "object", "additionalProperties": values}
    if "properties" in schema:
        schema["properties"] = {k: _resolve(v, defs) for k, v in schema["properties"].items()}
        schema["type"] = "object"
    if "items" in schema:
        schema["items"] = _resolve(schema["items"], defs)
    return {k: v for k, v in schema.items() if k not in _DROPPED_KEYS}


def structural_schema(model: type[Any]) -> dict[str, Any]:
    """The OpenAPI v3 structural schema of a pydantic model, as Kubernetes accepts it."""
    raw = model.model_json_schema(by_alias=True, mode="validation")
    return _resolve(raw, raw.get("$defs", {}))


def build_crd() -> dict[str, Any]:
    """The full CustomResourceDefinition object."""
    schema = {
        "type": "object",
        "description": "A model server deployed from a Hugging Face repository.",
        "x-kubernetes-validations": [NAME_RULE, ADAPTER_NAME_RULE],
        "required": ["spec"],
        "properties": {
            "apiVersion": {"type": "string"},
            "kind": {"type": "string"},
            "metadata": {"type": "object"},
            "spec": structural_schema(ModelDeploymentSpec),
            "status": structural_schema(ModelDeploymentStatus),
        },
    }
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": CRD_NAME},
        "spec": {
            "group": GROUP,
            "scope": "Namespaced",
            "names": {
                "kind": KIND,
                "listKind": f"{KIND}List",
                "plural": PLURAL,
                "singular": SINGULAR,
                "shortNames": SHORT_NAMES,
                "categories": ["berth", "all"],
            },
            "versions": [
                {
                    "name": VERSION,
                    "served": True,
                    "storage": True,
                    "schema": {"openAPIV3Schema": schema},
                    "subresources": {
                        "status": {},
                        "scale": {
                            "specReplicasPath": ".spec.replicas",
                            "statusReplicasPath": ".status.replicas",
                            "labelSelectorPath": ".status.selector",
                        },
                    },
                    "additionalPrinterColumns": PRINTER_COLUMNS,
                }
            ],
        },
    }


HEADER = (
    "# Generated from operator/berth_operator/api/modeldeployment.py by\n"
    "# `python -m berth_operator.api.crd`; do not edit by hand.\n"
)
CHART_TEMPLATE = "charts/berth/templates/crd-modeldeployments.yaml"
CRD_FILE = "crds/modeldeployments.berth.dev.yaml"


def render_crd_yaml() -> str:
    """The CRD as committed in crds/."""
    import yaml

    return HEADER + yaml.safe_dump(build_crd(), sort_keys=False, width=100)


def render_chart_template() -> str:
    """The same CRD as a Helm template: behind crds.enabled, kept on uninstall by default."""
    body = render_crd_yaml().removeprefix(HEADER)
    name_line = f"  name: {CRD_NAME}\n"
    helm_metadata = (
        name_line
        + "  labels:\n"
        + "    app.kubernetes.io/managed-by: {{ .Release.Service }}\n"
        + "  {{- if .Values.crds.keep }}\n"
        + "  annotations:\n"
        + "    helm.sh/resource-policy: keep\n"
        + "  {{- end }}\n"
    )
    assert "{{" not in body, "the CRD must not contain template delimiters"
    return (
        HEADER
        + "{{- if .Values.crds.enabled }}\n"
        + body.replace(name_line, helm_metadata, 1)
        + "{{- end }}\n"
    )


if __name__ == "__main__":
    from pathlib import Path

    for target, text in ((CRD_FILE, render_crd_yaml()), (CHART_TEMPLATE, render_chart_template())):
        Path(target).write_text(text)
        print(f"wrote {target}")
