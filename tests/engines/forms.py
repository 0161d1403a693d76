"""multipart/form-data bodies, as curl -F writes them, for the speech engines' routes."""

from __future__ import annotations

import uuid


def multipart(
    fields: dict[str, str] | list[tuple[str, str]],
    file: bytes | None = None,
    filename: str = "talk.wav",
    file_first: bool = False,
) -> tuple[bytes, dict[str, str]]:
    """The body holding `fields` and, when given, the audio `file` (after the fields, or before
    them with `file_first`); and its headers. A list of pairs may repeat a name."""
    boundary = uuid.uuid4().hex
    parts = [
        f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode()
        for name, value in (fields.items() if isinstance(fields, dict) else fields)
    ]
    if file is not None:
        parts.insert(
            0 if file_first else len(parts),
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{filename}"\r\n'
            f"Content-Type: audio/wav\r\n\r\n".encode()
            + file
            + b"\r\n",
        )
    body = b"".join(parts) + f"--{boundary}--\r\n".encode()
    return body, {"Content-Type": f"multipart/form-data; boundary={boundary}"}
