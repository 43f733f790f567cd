"""Fixtures that run a real anvil node (from node_modules) and a deployed AnchorRegistry.

Import the ones a test module needs explicitly, e.g.
`from tests.provenance.chain_fixtures import anvil, registry`.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator

import pytest

from provenance.chain.anvil import DEFAULT_ANVIL_BINARY, DEV_ACCOUNTS, AnvilProcess
from provenance.chain.contract import ChainClient

__all__ = ["OUTSIDER", "OWNER", "SECOND", "anvil", "registry", "require_anvil"]

OWNER = DEV_ACCOUNTS[0]
SECOND = DEV_ACCOUNTS[1]
OUTSIDER = DEV_ACCOUNTS[2]


def require_anvil() -> None:
    """Skips when Node.js is absent; a missing anvil with Node present is a set-up failure."""
    if shutil.which("node") is None:
        pytest.skip("node is not installed, so node_modules/.bin/anvil cannot run")
    if not DEFAULT_ANVIL_BINARY.exists():
        pytest.fail(f"{DEFAULT_ANVIL_BINARY} is missing: run `make setup` (npm ci)")


@pytest.fixture(scope="module")
def anvil() -> Iterator[AnvilProcess]:
    """One in-memory anvil per test module (starting one takes ~0.2 s)."""
    require_anvil()
    with AnvilProcess(state_file=None) as node:
        yield node


@pytest.fixture
def registry(anvil: AnvilProcess) -> ChainClient:
    """A freshly deployed registry per test, owned by the first dev account."""
    client = ChainClient(anvil.rpc_url, OWNER.private_key)
    client.deploy()
    return client
