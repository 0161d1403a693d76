"""The gateway's reading of JSON bodies: the fields it needs, found without parsing the body."""

from __future__ import annotations

import pytest
from berth_gateway.bodies import JSON_FIELDS, model_from_multipart
from berth_gateway.jsonscan import JsonShapeError, scan


def fields(text: bytes, depth: int = 64) -> dict[str, bytes]:
    found = scan(text, JSON_FIELDS, depth)
    return {name: text[start:end] for name, (start, end) in found.spans.items()}


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (b'{"model": "a"}', {"model": b'"a"'}),
        (b' {"stream":true,"model" : "m"} \n', {"model": b'"m"'}),
        (b'{"x": {"model": "inner"}, "model": "outer"}', {"model": b'"outer"'}),
        (b'{"model": 5, "prompt": null}', {"model": b"5", "prompt": b"null"}),
        (b'{"prompt": "q", "model": true}', {"prompt": b'"q"', "model": b"true"}),
        (b'{"mod\\u0065l": "escaped key"}', {"model": b'"escaped key"'}),
        (
            b'{"messages": [{"content": "a \\" ] } ["}], "model": "m"}',
            {"messages": b'[{"content": "a \\" ] } ["}]', "model": b'"m"'},
        ),
        (b'{"model": "first", "model": "second"}', {"model": b'"first"'}),
        (b"{}", {}),
    ],
)
def test_top_level_fields_are_found_in_place(body: bytes, expected: dict[str, bytes]) -> None:
    assert fields(body) == expected


@pytest.mark.parametrize(
    ("body", "words"),
    [
        (b"[1, 2]", "must be a JSON object"),
        (b"", "must be a JSON object"),
        (b'{"a": [}', "do not match"),
        (b'{"a": 1]', "do not match"),
        (b'{"a": 1} trailing', "data after"),
        (b'{"a": "unterminated', "ends inside"),
        (b'{"a": ' + b"[" * 65 + b"]" * 65 + b"}", "deeper than 64"),
    ],
)
def test_bodies_the_gateway_cannot_route_are_named(body: bytes, words: str) -> None:
    with pytest.raises(JsonShapeError, match=words):
        fields(body)


def test_a_huge_array_is_skipped_without_building_it() -> None:
    numbers = b",".join(b"0.25" for _ in range(200_000))
    body = b'{"input": [' + numbers + b'], "model": "embed"}'
    assert fields(body) == {"model": b'"embed"'}


def test_the_model_part_of_a_form_is_found_wherever_it_is() -> None:
    form = (
        b'--XyZ\r\nContent-Disposition: form-data; name="file"; filename="a.wav"\r\n\r\n'
        b"RIFF--Xy\r\n--XyZ\r\nContent-Disposition: form-data; name=model\r\n\r\ncanary\r\n"
        b"--XyZ--\r\n"
    )
    assert model_from_multipart(bytearray(form), "XyZ") == "canary"
    assert model_from_multipart(bytearray(form.replace(b"name=model", b"name=x")), "XyZ") is None
