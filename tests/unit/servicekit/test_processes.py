"""The process harness's free ports."""

import socket
from pathlib import Path

from servicekit.processes import free_port


def test_free_ports_are_outside_the_ephemeral_range_and_free():
    # CI: a port bind(0) had handed out was taken, seconds later, as the source port of some
    # outgoing connection; the issuer then failed to start on it ("address already in use").
    low, high = map(int, Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split())
    ports = {free_port() for _ in range(50)}
    assert not any(low <= port <= high for port in ports), ports
    assert len(ports) > 1  # chosen, not one fixed port
    for port in ports:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", port))
