"""`free_port`: a port no outgoing connection can take before the process that asked binds it."""

from __future__ import annotations

import collections
import socket
from pathlib import Path

import pytest

from ecommerce_saga.db import embedded
from ecommerce_saga.db.embedded import LOWEST_PORT, ephemeral_ports, free_port


@pytest.fixture(autouse=True)
def _nothing_handed_out(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test starts as if this process had been given no port yet."""
    monkeypatch.setattr(embedded, "_HANDED_OUT", collections.deque(maxlen=64))


def test_chooses_a_free_port_below_the_ephemeral_range() -> None:
    ports = {free_port(ephemeral=(32768, 60999)) for _ in range(20)}

    assert all(LOWEST_PORT <= port < 32768 for port in ports)
    assert len(ports) == 20  # none given twice, though none was bound in between
    for port in ports:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind(("127.0.0.1", port))


def test_never_chooses_a_port_that_is_bound() -> None:
    first = LOWEST_PORT + 3  # room for three ports below the range
    held = []
    try:
        for port in range(LOWEST_PORT, first - 1):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            held.append(sock)
            sock.bind(("127.0.0.1", port))
        assert free_port(ephemeral=(first, 60999)) == first - 1  # the one left free
    except OSError:
        pytest.skip("another process holds a port of the range this test needs")
    finally:
        for sock in held:
            sock.close()


def test_gives_no_port_twice_and_lets_the_kernel_choose_once_the_free_ones_are_given() -> None:
    first = LOWEST_PORT + 2  # room for two ports below the range
    try:
        for port in (LOWEST_PORT, LOWEST_PORT + 1):
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
                sock.bind(("127.0.0.1", port))
    except OSError:
        pytest.skip("another process holds a port of the range this test needs")

    given = [free_port(ephemeral=(first, 60999)) for _ in range(3)]

    assert sorted(given[:2]) == [LOWEST_PORT, LOWEST_PORT + 1]
    assert given[2] >= first  # the kernel's


def test_lets_the_kernel_choose_when_the_range_leaves_no_room_below_it() -> None:
    port = free_port(ephemeral=(1024, 65000))

    assert port >= 1024
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", port))


def test_reads_the_kernel_s_range_and_none_where_there_is_none(tmp_path: Path) -> None:
    source = tmp_path / "ip_local_port_range"
    source.write_text("32768\t60999\n")

    assert ephemeral_ports(source) == (32768, 60999)
    assert ephemeral_ports(tmp_path / "missing") is None
    source.write_text("garbage")
    assert ephemeral_ports(source) is None
