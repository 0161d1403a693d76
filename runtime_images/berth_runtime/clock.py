"""Timestamps as Kubernetes writes them (RFC 3339, UTC, seconds)."""

import datetime


def utcnow() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
