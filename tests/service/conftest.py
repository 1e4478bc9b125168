"""Fixtures for the example service: the release artefacts, built once per session
into a temp dir, and a deploy root per test.

Every service a test starts is stopped by the `deployment` finalizer, and the
finalizer fails the test if a service process is still alive afterwards.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from tests.service.deployment import Deployment, build_artifacts

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path


@pytest.fixture(scope="session")
def artifacts(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_artifacts(tmp_path_factory.mktemp("artifacts"))


@pytest.fixture
def deployment(tmp_path: Path, artifacts: Path) -> Iterator[Deployment]:
    deploy = Deployment(tmp_path / "root", artifacts)
    try:
        yield deploy
    finally:
        deploy.teardown()


@pytest.fixture(scope="module")
def service(
    tmp_path_factory: pytest.TempPathFactory, artifacts: Path
) -> Iterator[Deployment]:
    """One running 1.1.0 shared by a module's tests: they only add requests and
    read what the service says about them."""
    deploy = Deployment(tmp_path_factory.mktemp("service") / "root", artifacts)
    try:
        deploy.deploy("1.1.0")
        yield deploy
    finally:
        deploy.teardown()
