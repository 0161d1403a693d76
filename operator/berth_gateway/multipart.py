"""A buffered multipart/form-data body read in place: where each part lies, the value of a small
field, and new forms made of its parts without copying them (RFC 7578)."""

from __future__ import annotations

import re
import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass

from berth_gateway.payload import slices

_PARAMETER = re.compile(rb';\s*([a-z*]+)="?([^";\r\n]*)"?', re.I)
#: fields read as text are short; a longer one is not a value the gateway reads
MAX_FIELD_BYTES = 4096


@dataclass(frozen=True)
class Part:
    """One part: its name and file name (from Content-Disposition), its header block and its
    content, as offsets into the body."""

    name: str
    filename: str | None
    content_type: str | None
    head: tuple[int, int]
    content: tuple[int, int]


def boundary_of(content_type: str) -> str | None:
    """The boundary parameter of a multipart Content-Type, unquoted."""
    for parameter in content_type.split(";")[1:]:
        key, _, value = parameter.strip().partition("=")
        if key.lower() == "boundary" and value:
            return value.strip('"')
    return None


class Form:
    """The parts of a multipart body, found once; the body is never copied."""

    def __init__(self, body: bytes | bytearray, boundary: str) -> None:
        self.body, self.boundary = body, boundary.encode()
        self.parts: list[Part] = []
        #: where the closing delimiter's line starts (its CRLF), or the body's end
        self.end = len(body)
        delimiter = b"--" + self.boundary
        at = body.find(delimiter)
        while at != -1:
            after = at + len(delimiter)
            if body[after : after + 2] == b"--":
                self.end = max(0, at - 2)
                break
            head_start = after + 2
            head_end = body.find(b"\r\n\r\n", head_start)
            if head_end == -1:
                break
            following = body.find(b"\r\n" + delimiter, head_end + 2)
            content_end = len(body) if following == -1 else following
            self._add(head_start, head_end, content_end)
            at = -1 if following == -1 else following + 2

    def _add(self, head_start: int, head_end: int, content_end: int) -> None:
        name, filename, content_type = "", None, None
        for line in bytes(self.body[head_start:head_end]).split(b"\r\n"):
            header, _, value = line.partition(b":")
            if header.strip().lower() == b"content-disposition":
                parameters = {
                    k.lower().decode(): v.decode(errors="replace")
                    for k, v in _PARAMETER.findall(value)
                }
                name, filename = parameters.get("name", ""), parameters.get("filename")
            elif header.strip().lower() == b"content-type":
                content_type = value.strip().decode(errors="replace")
        self.parts.append(
            Part(name, filename, content_type, (head_start, head_end), (head_end + 4, content_end))
        )

    def part(self, name: str) -> Part | None:
        return next((p for p in self.parts if p.name == name), None)

    def value(self, name: str) -> str | None:
        """A short text field's value (the first of that name), stripped; None if absent."""
        found = self.part(name)
        if found is None or found.filename is not None:
            return None
        start, end = found.content
        if end - start > MAX_FIELD_BYTES:
            return None
        return bytes(self.body[start:end]).decode(errors="replace").strip()

    def repeated(self, name: str) -> list[Part]:
        """Every part of a repeated text field (`name` or `name[]`), in order."""
        return [p for p in self.parts if p.name in (name, f"{name}[]") and p.filename is None]

    def values(self, name: str) -> list[str]:
        """Every value of a repeated text field (`name` or `name[]`)."""
        return [bytes(self.content(part)).decode(errors="replace") for part in self.repeated(name)]

    def content(self, part: Part) -> memoryview:
        start, end = part.content
        return memoryview(self.body)[start:end]

    def with_fields(self, fields: dict[str, str]) -> Pieces:
        """This form with text `fields` added at its end."""
        view = memoryview(self.body)
        added = b"".join(_field(self.boundary, name, value) for name, value in fields.items())
        return Pieces(
            [view[: self.end], added, b"\r\n--" + self.boundary + b"--\r\n"],
            f"multipart/form-data; boundary={self.boundary.decode()}",
        )

    def subset(self, files: list[Part], fields: dict[str, str]) -> Pieces:
        """A new form (its own boundary): the `files` parts (any parts) as they are, and text
        `fields`."""
        boundary = secrets.token_hex(16).encode()
        pieces: list[bytes | memoryview] = []
        view = memoryview(self.body)
        for part in files:
            start, end = part.head
            pieces += [b"\r\n--" + boundary + b"\r\n", view[start:end], b"\r\n\r\n"]
            pieces.append(self.content(part))
        pieces += [_field(boundary, name, value) for name, value in fields.items()]
        pieces.append(b"\r\n--" + boundary + b"--\r\n")
        pieces[0] = pieces[0][2:]  # the first delimiter needs no line break before it
        return Pieces(pieces, f"multipart/form-data; boundary={boundary.decode()}")


def _field(boundary: bytes, name: str, value: str) -> bytes:
    quoted = name.replace('"', "%22")
    return (
        b"\r\n--"
        + boundary
        + f'\r\nContent-Disposition: form-data; name="{quoted}"\r\n\r\n'.encode()
        + value.encode()
    )


@dataclass
class Pieces:
    """A body made of buffers sent one after another, and its Content-Type."""

    buffers: list[bytes | memoryview]
    content_type: str

    def __len__(self) -> int:
        return sum(len(buffer) for buffer in self.buffers)

    def payload(self) -> AsyncIterator[memoryview]:
        return slices(self.buffers)
