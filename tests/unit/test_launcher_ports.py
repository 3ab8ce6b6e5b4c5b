"""`make run`'s port check: taken only while something listens, not while a stopped run's
connections wait in TIME_WAIT (it refused to start again for about a minute)."""
import socket

from deploy.local.devstack import port_is_free


def closed_server_side_first() -> int:
    """A port whose server has stopped, leaving its side of a connection in TIME_WAIT (the
    side that closes first waits there, as a stopped gateway's sockets do)."""
    with socket.socket() as listener:
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port: int = listener.getsockname()[1]
        client = socket.create_connection(("127.0.0.1", port))
        served, _ = listener.accept()
        served.close()  # the server closes first: its end goes to TIME_WAIT
        client.recv(1)  # the peer sees the close, then closes too
        client.close()
    return port


def test_a_port_left_in_time_wait_by_a_stopped_run_is_free() -> None:
    assert port_is_free(closed_server_side_first())


def test_a_port_something_listens_on_is_taken() -> None:
    with socket.socket() as listener:
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        assert not port_is_free(listener.getsockname()[1])
