"""Renders the API reference (doc/api.md) from the generated CRD: fields, defaults, rules."""

from __future__ import annotations

from typing import Any

from berth_operator.api.crd import PRINTER_COLUMNS, build_crd


def _type_of(schema: dict[str, Any]) -> str:
    if schema.get("x-kubernetes-int-or-string"):
        return "quantity"
    kind = schema.get("type", "object")
    if kind == "array":
        return f"[]{_type_of(schema.get('items', {}))}"
    if kind == "object" and isinstance(schema.get("additionalProperties"), dict):
        return f"map[string]{_type_of(schema['additionalProperties'])}"
    return str(kind)


def _constraints(schema: dict[str, Any]) -> str:
    parts = []
    if "enum" in schema:
        parts.append("one of " + ", ".join(f"`{v}`" for v in schema["enum"]))
    if "default" in schema:
        parts.append(f"default `{schema['default']}`")
    for key, word in (
        ("minimum", "≥"),
        ("maximum", "≤"),
        ("maxLength", "length ≤"),
        ("maxItems", "items ≤"),
    ):
        if key in schema:
            strict = key == "minimum" and schema.get("exclusiveMinimum") is True
            parts.append(f"{'>' if strict else word} {schema[key]}")
    if "pattern" in schema:
        parts.append(f"pattern `{schema['pattern']}`")
    return "; ".join(parts)


def _rows(schema: dict[str, Any], path: str, required: set[str]) -> list[str]:
    rows = []
    for name, child in (schema.get("properties") or {}).items():
        field = f"{path}.{name}"
        description = (child.get("description") or "").replace("\n", " ")
        mark = " (required)" if name in required else ""
        rows.append(
            f"| `{field}`{mark} | {_type_of(child)} | {description} | {_constraints(child)} |"
        )
        target = child.get("items", child) if child.get("type") == "array" else child
        rows += _rows(
            target,
            field + ("[]" if child.get("type") == "array" else ""),
            set(target.get("required", [])),
        )
    return rows


def _rules(schema: dict[str, Any], path: str) -> list[str]:
    found = [
        f"| `{path}{rule.get('fieldPath', '')}` | {rule['message']} | `{rule['rule']}` |"
        for rule in schema.get("x-kubernetes-validations", [])
    ]
    for name, child in (schema.get("properties") or {}).items():
        found += _rules(child, f"{path}.{name}")
    return found


def render_reference() -> str:
    """The Markdown reference of ModelDeployment."""
    crd = build_crd()
    schema = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    spec, status = schema["properties"]["spec"], schema["properties"]["status"]
    lines = [
        "# ModelDeployment API reference (berth.dev/v1alpha1)",
        "",
        "Generated from the CRD by `python -m berth_operator.api.reference`; do not edit by hand.",
        "",
        "## spec",
        "",
        "| field | type | description | constraints |",
        "|---|---|---|---|",
        *_rows(spec, "spec", set(spec.get("required", []))),
        "",
        "## Validation rules",
        "",
        "Besides the types and constraints above, the API server refuses a resource that breaks",
        "one of these rules (CEL), with the message shown:",
        "",
        "| field | message | rule |",
        "|---|---|---|",
        *(r.replace("| `` |", "| `metadata.name` |") for r in _rules(schema, "")),
        "",
        "## status",
        "",
        "| field | type | description | constraints |",
        "|---|---|---|---|",
        *_rows(status, "status", set()),
        "",
        "## kubectl get columns",
        "",
        "| column | from | shown |",
        "|---|---|---|",
        *(
            f"| {c['name']} | `{c['jsonPath']}` | {'with -o wide' if c.get('priority') else 'always'} |"
            for c in PRINTER_COLUMNS
        ),
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    import sys
    from pathlib import Path

    target = Path(sys.argv[1] if len(sys.argv) > 1 else "doc/api.md")
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(render_reference())
    print(f"wrote {target}")
