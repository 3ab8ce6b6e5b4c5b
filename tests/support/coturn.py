"""Debian's coturn on loopback for the tests that try TURN for real (tests/integration/
test_ice_servers.py, tests/browser/test_calls.py): shared-secret credentials, loopback peers
allowed (both ends are on this machine), its files in a temporary directory."""
import secrets
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def loopback_turnserver(
    server: str, port: int, secret: str, log_path: Path, realm: str = "parley", relay_ports: int = 40
) -> Iterator[None]:
    """turnserver on 127.0.0.1:port checking credentials with `secret`, until the block ends."""
    relay_base = 50000 + secrets.randbelow(10000)
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as directory, log_path.open("w") as log:
        argv = [
            server, "-n", "--no-cli", "--no-tls", "--no-dtls", "--log-file=stdout", "--simple-log",
            f"--pidfile={directory}/turnserver.pid", f"--userdb={directory}/turndb",
            "--listening-ip=127.0.0.1", "--relay-ip=127.0.0.1", f"--listening-port={port}",
            f"--min-port={relay_base}", f"--max-port={relay_base + relay_ports}", "--allow-loopback-peers",
            f"--realm={realm}", "--use-auth-secret", f"--static-auth-secret={secret}",
        ]
        proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            deadline = time.monotonic() + 15
            while True:  # it listens on TCP and UDP alike: TCP says when it is up
                assert proc.poll() is None, f"turnserver exited: see {log_path}"
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=1).close()
                    break
                except OSError:
                    assert time.monotonic() < deadline, f"turnserver did not listen within 15 s: see {log_path}"
                    time.sleep(0.2)
            yield
        finally:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
