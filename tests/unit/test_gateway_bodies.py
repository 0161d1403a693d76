"""The gateway's reading of JSON bodies: the fields it needs, found without parsing the body."""

from __future__ import annotations

import email.parser
import email.policy

import pytest
from berth_gateway.bodies import JSON_FIELDS
from berth_gateway.jsonscan import JsonShapeError, scan
from berth_gateway.multipart import Form, boundary_of


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
    assert Form(bytearray(form), "XyZ").value("model") == "canary"
    assert Form(bytearray(form.replace(b"name=model", b"name=x")), "XyZ").value("model") is None


def read_back(body: bytes, content_type: str) -> list[tuple[str, str | None, bytes]]:
    """What the standard library's MIME parser finds in a body: (name, filename, content)."""
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
        f"Content-Type: {content_type}\r\n\r\n".encode() + body
    )
    assert message.is_multipart() and not message.defects, message.defects
    return [
        (
            part.get_param("name", header="content-disposition"),
            part.get_filename(),
            part.get_payload(decode=True),
        )
        for part in message.iter_parts()
    ]


def test_forms_made_from_a_form_read_back_with_their_parts_intact() -> None:
    audio = bytes(range(256)) * 40 + b"\r\n--Xy"  # a boundary never occurs in a part (RFC 2046)
    form = (
        b'--XyZ\r\nContent-Disposition: form-data; name="file"; filename="a.wav"\r\n'
        b"Content-Type: audio/wav\r\n\r\n" + audio + b"\r\n"
        b'--XyZ\r\nContent-Disposition: form-data; name="model"\r\n\r\ncanary\r\n'
        b'--XyZ\r\nContent-Disposition: form-data; name="known_speaker_names[]"\r\n\r\nann\r\n'
        b'--XyZ\r\nContent-Disposition: form-data; name="known_speaker_names[]"\r\n\r\nbob\r\n'
        b"--XyZ--\r\n"
    )
    parsed = Form(bytearray(form), boundary_of('multipart/form-data; boundary="XyZ"') or "")
    assert [(p.name, p.filename, p.content_type) for p in parsed.parts] == [
        ("file", "a.wav", "audio/wav"),
        ("model", None, None),
        ("known_speaker_names[]", None, None),
        ("known_speaker_names[]", None, None),
    ]
    assert parsed.values("known_speaker_names") == ["ann", "bob"]
    file = parsed.part("file")
    assert file is not None and bytes(parsed.content(file)) == audio

    added = parsed.with_fields({"speaker_turns": '[{"speaker": "A"}]'})
    body = b"".join(bytes(b) for b in added.buffers)
    assert len(added) == len(body)
    assert read_back(body, added.content_type) == [
        ("file", "a.wav", audio),
        ("model", None, b"canary"),
        ("known_speaker_names[]", None, b"ann"),
        ("known_speaker_names[]", None, b"bob"),
        ("speaker_turns", None, b'[{"speaker": "A"}]'),
    ]
    subset = parsed.subset([file], {"model": "diarization", "exclusive": "true"})
    body = b"".join(bytes(b) for b in subset.buffers)
    assert read_back(body, subset.content_type) == [
        ("file", "a.wav", audio),
        ("model", None, b"diarization"),
        ("exclusive", None, b"true"),
    ]
