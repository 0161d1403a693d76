"""The end-to-end stack, one per test module: control plane, local node, hub, operator."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.e2e.stack import LocalStack


@pytest.fixture(scope="module")
def stack(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LocalStack]:
    """A module's OPERATOR_ENV, if any, goes into the operator's environment."""
    operator_env = getattr(request.module, "OPERATOR_ENV", {})
    with LocalStack(tmp_path_factory.mktemp("stack"), operator_env=operator_env) as running:
        yield running
