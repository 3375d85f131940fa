"""Parsing of every accepted address form (SPEC §1) into `Endpoint`, and rejection of the rest."""

from __future__ import annotations

import errno
import ipaddress
import socket

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aioconnlist._core.addresses import (
    Endpoint,
    parse_address,
    parse_addresses,
    parse_ip,
    socket_name_ip,
)
from aioconnlist._core.errors import ConnectError, InvalidArgument

LO_INDEX = socket.if_nametoindex("lo")
V4 = ipaddress.IPv4Address
V6 = ipaddress.IPv6Address


def ipv6_available() -> bool:
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as s:
            s.bind(("::1", 0))
    except OSError:
        return False
    return True


# --- accepted forms -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (("192.0.2.1", 80), Endpoint(V4("192.0.2.1"), 80)),
        (["192.0.2.1", 80], Endpoint(V4("192.0.2.1"), 80)),
        (("192.0.2.1", "80"), Endpoint(V4("192.0.2.1"), 80)),
        ((V4("192.0.2.1"), 80), Endpoint(V4("192.0.2.1"), 80)),
        (("2001:db8::1", 443), Endpoint(V6("2001:db8::1"), 443)),
        (("2001:db8::1", 443, 5, 0), Endpoint(V6("2001:db8::1"), 443, 5, 0)),
        (("fe80::1", 80, 0, LO_INDEX), Endpoint(V6("fe80::1"), 80, 0, LO_INDEX)),
        (("fe80::1%lo", 80), Endpoint(V6("fe80::1"), 80, 0, LO_INDEX)),
        (("fe80::1%lo", 80, 0, 0), Endpoint(V6("fe80::1"), 80, 0, LO_INDEX)),
        ((V6("fe80::1%lo"), 80), Endpoint(V6("fe80::1"), 80, 0, LO_INDEX)),
        ("192.0.2.1:80", Endpoint(V4("192.0.2.1"), 80)),
        ("[2001:db8::1]:443", Endpoint(V6("2001:db8::1"), 443)),
        ("[fe80::1%lo]:80", Endpoint(V6("fe80::1"), 80, 0, LO_INDEX)),
        (f"[fe80::1%{LO_INDEX}]:80", Endpoint(V6("fe80::1"), 80, 0, LO_INDEX)),
        ("[::1]:65535", Endpoint(V6("::1"), 65535)),
        ("127.0.0.1:1", Endpoint(V4("127.0.0.1"), 1)),
        (Endpoint(V4("192.0.2.7"), 9), Endpoint(V4("192.0.2.7"), 9)),
    ],
)
def test_accepted_forms(value: object, expected: Endpoint) -> None:
    assert parse_address(value) == expected


def test_scope_in_tuple_wins_over_string_zone() -> None:
    assert parse_address(("fe80::1%lo", 80, 0, 7)).scope_id == 7


@pytest.mark.parametrize("host", ["127.0.0.1", "::1"])
def test_getaddrinfo_five_tuples(host: str) -> None:
    infos = socket.getaddrinfo(host, 80)
    assert infos, "getaddrinfo returned nothing for a numeric host"
    for info in infos:
        assert parse_address(info) == Endpoint(ipaddress.ip_address(host), 80)
    # the several socket types of one address collapse into one endpoint
    assert parse_addresses(infos) == [Endpoint(ipaddress.ip_address(host), 80)]


def test_mixed_families_in_one_list_keep_order_and_drop_duplicates() -> None:
    got = parse_addresses(["[::1]:80", ("127.0.0.1", 80), "127.0.0.1:80", "[::1]:81"])
    assert got == [
        Endpoint(V6("::1"), 80),
        Endpoint(V4("127.0.0.1"), 80),
        Endpoint(V6("::1"), 81),
    ]


def test_parse_addresses_takes_any_iterable() -> None:
    got = parse_addresses(f"127.0.0.{i}:80" for i in (1, 2))
    assert [str(e) for e in got] == ["127.0.0.1:80", "127.0.0.2:80"]


# --- ::ffff:a.b.c.d is IPv4 ---------------------------------------------------------------

MAPPED_EXPECTED = Endpoint(V4("192.0.2.1"), 80)


@pytest.mark.parametrize(
    "value",
    [
        ("::ffff:192.0.2.1", 80),
        ("::FFFF:192.0.2.1", 80),
        ("::ffff:c000:201", 80),
        ("::ffff:192.0.2.1", 80, 0, 0),
        ("::ffff:192.0.2.1", 80, 3, 9),  # flowinfo and scope are meaningless for IPv4: dropped
        (V6("::ffff:192.0.2.1"), 80),
        "[::ffff:192.0.2.1]:80",
        "[::ffff:c000:201]:80",
        (socket.AF_INET6, socket.SOCK_STREAM, 6, "", ("::ffff:192.0.2.1", 80, 0, 0)),
    ],
)
def test_v4_mapped_is_ipv4(value: object) -> None:
    endpoint = parse_address(value)
    assert endpoint == MAPPED_EXPECTED
    assert endpoint.family == socket.AF_INET


def test_v4_mapped_from_real_getaddrinfo() -> None:
    infos = socket.getaddrinfo("::ffff:127.0.0.1", 80, socket.AF_INET6, socket.SOCK_STREAM)
    assert parse_addresses(infos) == [Endpoint(V4("127.0.0.1"), 80)]


def test_parse_ip_mapped_and_zone() -> None:
    assert parse_ip("::ffff:10.0.0.1") == (V4("10.0.0.1"), 0)
    assert parse_ip("fe80::1%lo") == (V6("fe80::1"), LO_INDEX)
    assert parse_ip(V4("10.0.0.1")) == (V4("10.0.0.1"), 0)


# --- rejected input -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "value", ["example.com:80", ("example.com", 80), ("localhost", 80), "[localhost]:80"]
)
def test_host_names_point_to_connect_by_name(value: object) -> None:
    with pytest.raises(InvalidArgument, match="connect_by_name") as info:
        parse_address(value)
    assert info.value.errno == errno.EINVAL
    assert isinstance(info.value, ValueError)
    assert isinstance(info.value, OSError)


@pytest.mark.parametrize("port", [0, 65536, -1, "x", "", True, False, 80.0, None, "٣", "+80"])
def test_bad_ports_rejected(port: object) -> None:
    with pytest.raises(InvalidArgument, match="port"):
        parse_address(("192.0.2.1", port))
    with pytest.raises(InvalidArgument, match="port"):
        parse_address(("2001:db8::1", port, 0, 0))


@pytest.mark.parametrize("text", ["192.0.2.1:0", "192.0.2.1:65536", "192.0.2.1:x", "[::1]:0"])
def test_bad_ports_in_strings_rejected(text: str) -> None:
    with pytest.raises(InvalidArgument, match="port"):
        parse_address(text)


def test_float_port_rejected_even_after_the_int_was_cached() -> None:
    # the parse cache compares keys with ==, and 80 == 80.0 == True + 79
    assert parse_address(("192.0.2.44", 80)).port == 80
    with pytest.raises(InvalidArgument, match="port"):
        parse_address(("192.0.2.44", 80.0))
    assert parse_address(("192.0.2.44", 1)).port == 1
    with pytest.raises(InvalidArgument, match="port"):
        parse_address(("192.0.2.44", True))


@pytest.mark.parametrize(
    ("value", "match"),
    [
        ("192.0.2.1", "no port"),
        ("2001:db8::1:80", "brackets"),
        ("[2001:db8::1]80", "must look like"),
        ("[192.0.2.1]:80", "brackets are for IPv6"),
        ("192.0.2.1%lo:80", "only valid for IPv6"),
        ("[fe80::1%]:80", "empty zone"),
        ("[fe80::1%no-such-if0]:80", "unknown interface"),
        ("[fe80::1%\x00]:80", "unknown interface"),
        ("[fe80::1%\ud800]:80", "unknown interface"),
        ("[fe80::1%99999999999]:80", "unknown interface"),
        (("192.0.2.1",), "must be"),
        (("192.0.2.1", 80, 0), "must be"),
        (("192.0.2.1", 80, 0, 0), "IPv6 only"),
        (("2001:db8::1", 80, -1, 0), "flowinfo"),
        (("2001:db8::1", 80, 2**20, 0), "flowinfo"),
        (("2001:db8::1", 80, True, 0), "flowinfo"),
        (("2001:db8::1", 80, 0, 2**32), "scope_id"),
        (("2001:db8::1", 80, 0, "1"), "scope_id"),
        ((b"192.0.2.1", 80), "not an IP address"),
        ((None, 80), "not an IP address"),
        ((0, 0, 0, "", (0, 0, 0, "", ("192.0.2.1", 80))), "must be"),
        (None, "neither"),
        (80, "neither"),
        (b"192.0.2.1:80", "neither"),
    ],
)
def test_malformed_rejected_with_reason(value: object, match: str) -> None:
    with pytest.raises(InvalidArgument, match=match):
        parse_address(value)


@pytest.mark.parametrize("values", [[], (), iter([]), set()])
def test_empty_list_rejected(values: object) -> None:
    with pytest.raises(InvalidArgument, match="empty"):
        parse_addresses(values)


@pytest.mark.parametrize(
    "values", ["192.0.2.1:80", b"x", None, 5, {"192.0.2.1:80": 1}, Endpoint(V4("192.0.2.1"), 80)]
)
def test_not_a_list_rejected(values: object) -> None:
    with pytest.raises(InvalidArgument, match="list of addresses"):
        parse_addresses(values)


# --- Endpoint behaviour -------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    ["192.0.2.1:80", "[2001:db8::1]:443", "[fe80::1%lo]:80", "[::1]:1", "127.0.0.1:65535"],
)
def test_str_round_trips(text: str) -> None:
    endpoint = parse_address(text)
    assert str(endpoint) == text
    assert parse_address(str(endpoint)) == endpoint


def test_sockaddr_per_socket_family() -> None:
    v4 = parse_address("192.0.2.1:80")
    assert v4.sockaddr() == ("192.0.2.1", 80)
    assert v4.sockaddr(socket.AF_INET) == ("192.0.2.1", 80)
    assert v4.sockaddr(socket.AF_INET6) == ("::ffff:192.0.2.1", 80, 0, 0)
    v6 = parse_address(("fe80::1", 80, 5, LO_INDEX))
    assert v6.sockaddr() == ("fe80::1", 80, 5, LO_INDEX)
    with pytest.raises(InvalidArgument, match="AF_INET socket"):
        v6.sockaddr(socket.AF_INET)


@pytest.mark.skipif(not ipv6_available(), reason="IPv6 (::1) is not configured on this host")
def test_v4_mapped_sockaddr_connects_a_dual_stack_socket() -> None:
    """The v4-mapped tuple really reaches an IPv4 listener from an AF_INET6 socket."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        endpoint = parse_address(listener.getsockname())
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as client:
            client.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
            client.settimeout(5)
            client.connect(endpoint.sockaddr(socket.AF_INET6))
            assert client.getpeername()[:2] == ("::ffff:127.0.0.1", endpoint.port)
            accepted, _ = listener.accept()
            accepted.close()


# --- properties ---------------------------------------------------------------------------

ports = st.integers(1, 65535)
valid_endpoints = st.one_of(
    st.builds(lambda ip, port: parse_address((str(ip), port)), st.ip_addresses(v=4), ports),
    st.builds(
        lambda ip, port, flow, scope: parse_address((str(ip), port, flow, scope)),
        st.ip_addresses(v=6),
        ports,
        st.integers(0, 2**20 - 1),
        st.one_of(st.just(0), st.just(LO_INDEX), st.integers(0, 2**32 - 1)),
    ),
)


@given(valid_endpoints)
def test_valid_endpoint_round_trips(endpoint: Endpoint) -> None:
    assert parse_address(endpoint.sockaddr()) == endpoint
    assert parse_address(endpoint) is endpoint
    # the string form has no flowinfo
    without_flow = Endpoint(endpoint.ip, endpoint.port, 0, endpoint.scope_id)
    assert parse_address(str(endpoint)) == without_flow
    expected = [endpoint] if endpoint.flowinfo == 0 else [endpoint, without_flow]
    assert parse_addresses([endpoint.sockaddr(), str(endpoint)]) == expected


junk_atoms = st.one_of(
    st.text(),
    st.binary(),
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(),
    st.ip_addresses().map(str),
    st.ip_addresses(),
)
junk = st.recursive(
    junk_atoms,
    lambda inner: st.one_of(
        st.lists(inner, max_size=6),
        st.lists(inner, max_size=6).map(tuple),
        st.dictionaries(st.text(max_size=5), inner, max_size=3),
    ),
    max_leaves=12,
)
# near-valid strings and tuples find the edges faster than pure noise
# strings that are digits to str.isdigit() but not to int(), or too long for int()
tricky_numbers = st.sampled_from(["", "0", "²", "٣", "1" * 11, "9" * 5000, "\x00", "lo", "+1"])
near_hosts = st.one_of(
    st.ip_addresses().map(str),
    st.builds(
        lambda ip, zone: f"{ip}%{zone}",
        st.ip_addresses(),
        st.one_of(tricky_numbers, st.text(max_size=12)),
    ),
    st.text(max_size=20),
)
near_ports = st.one_of(
    st.integers(-5, 70000), tricky_numbers, st.text(max_size=8), st.floats(), st.booleans()
)
near_valid = st.one_of(
    st.builds(lambda h, p: f"{h}:{p}", near_hosts, near_ports),
    st.builds(lambda h, p: f"[{h}]:{p}", near_hosts, near_ports),
    st.tuples(near_hosts, near_ports),
    st.tuples(near_hosts, near_ports, junk_atoms, junk_atoms),
    st.tuples(junk_atoms, junk_atoms, junk_atoms, junk_atoms, st.tuples(near_hosts, near_ports)),
)


def _only_invalid_argument(value: object) -> None:
    try:
        result = parse_address(value)
    except ConnectError as e:
        assert isinstance(e, InvalidArgument), repr(e)
        assert e.errno == errno.EINVAL
        assert str(e)
    else:
        assert isinstance(result, Endpoint)
        assert 0 < result.port < 65536


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(junk, near_valid))
def test_junk_only_raises_invalid_argument(value: object) -> None:
    _only_invalid_argument(value)


@settings(max_examples=200, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(junk, st.lists(st.one_of(junk, near_valid), max_size=5)))
def test_junk_lists_only_raise_invalid_argument(values: object) -> None:
    try:
        result = parse_addresses(values)
    except ConnectError as e:
        assert isinstance(e, InvalidArgument), repr(e)
    else:
        assert result
        assert all(isinstance(r, Endpoint) for r in result)


@given(
    st.lists(
        st.tuples(
            st.one_of(
                st.ip_addresses(v=4).map(str),
                st.sampled_from(["01.2.3.4", "1.2.3", "256.1.1.1", " 1.2.3.4", "::1"]),
            ),
            st.integers(min_value=-1, max_value=65536),
        ),
        min_size=1,
        max_size=80,
    )
)
@settings(max_examples=200, deadline=None)
def test_a_list_parsed_by_columns_is_the_list_parsed_item_by_item(
    items: list[tuple[str, int]],
) -> None:
    from aioconnlist._core import addresses

    columns = addresses._plain_v4(items)
    try:
        one_by_one = [parse_address(item) for item in items]
    except InvalidArgument:
        assert columns is None  # the general parse reports the bad one
        return
    if columns is not None:
        assert columns == list(dict.fromkeys(one_by_one))


def test_a_long_plain_ipv4_list_is_parsed_into_columns_made_when_read() -> None:
    """100 (IPv4, port) tuples with duplicates: `EndpointColumns`, equal to the endpoints
    parsed one by one (first kept); none made until read, each made once, iteration keeps
    those already read; `parse_addresses` still gives a list of its own."""
    from aioconnlist._core.addresses import EndpointColumns, parse_destinations

    items = [(f"192.0.2.{i % 90}", 80 + i % 2) for i in range(100)] + [("10.0.0.1", 443)]
    expected = list(dict.fromkeys(parse_address(item) for item in items))
    got = parse_destinations(list(items))
    assert isinstance(got, EndpointColumns)
    assert got._made == {} and got._all is None
    assert len(got) == len(expected)
    second, last = got[1], got[-1]
    assert (second, last) == (expected[1], expected[-1])
    assert got[1] is second and len(got._made) == 2
    assert got[1:3] == expected[1:3] and got[::-40] == expected[::-40]
    with pytest.raises(IndexError):
        got[len(expected)]
    assert got == expected and expected == got and got == tuple(expected)
    assert got != expected[:-1] and got != [*expected[:-1], expected[0]]
    assert list(got)[1] is second
    assert got == parse_destinations(list(items))  # by columns
    assert type(parse_addresses(list(items))) is list
    assert parse_addresses(list(items)) == expected


def test_columns_are_only_for_plain_ipv4_tuples() -> None:
    from aioconnlist._core.addresses import EndpointColumns, parse_destinations

    plain = [(f"192.0.2.{i}", 80) for i in range(100)]
    for odd in (
        ("::1", 80),
        "192.0.2.200:80",
        ("::ffff:192.0.2.200", 80, 0, 0),
        ["192.0.2.200", 80],
    ):
        got = parse_destinations([*plain, odd])
        assert not isinstance(got, EndpointColumns)
        assert got == parse_addresses([*plain, odd])
    with pytest.raises(InvalidArgument, match="port"):
        parse_destinations([*plain, ("192.0.2.200", 0)])
    with pytest.raises(InvalidArgument, match="not an IP address"):
        parse_destinations([*plain, ("192.0.2.0200", 80)])


@given(st.ip_addresses(), st.sampled_from(["", "%eth0", "%1"]))
def test_a_socket_name_s_host_reads_as_ipaddress_reads_it(ip: object, zone: str) -> None:
    """`socket_name_ip` (inet_pton) gives the very address ipaddress's parser gives for what
    getsockname writes, a zone (IPv6 only) dropped."""
    host = str(ip) + (zone if getattr(ip, "version", 4) == 6 else "")
    got = socket_name_ip(host)
    assert got == ip and type(got) is type(ip) and hash(got) == hash(ip) and str(got) == str(ip)
