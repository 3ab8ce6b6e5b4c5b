import pytest

from deploy.local.devstack import Stack


@pytest.fixture
def port(stack: Stack) -> int:
    """The first gateway's port."""
    return stack.gateway_ports[0]


@pytest.fixture
def other_port(stack: Stack) -> int:
    """The second gateway's port (users spread over two gateways)."""
    return stack.gateway_ports[1]
