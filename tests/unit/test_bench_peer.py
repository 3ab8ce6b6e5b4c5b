"""parley-bench --peer ejabberd, the parts that need no ejabberd: the XMPP client's stanzas and
stream parsing, a login/message/ack exchange with a scripted server, the delivery tally, the CPU
arithmetic, ejabberd's configuration and the side-by-side table."""
import asyncio
import base64
from typing import Any
from xml.etree.ElementTree import fromstring

import pytest
import yaml

from bench.peer_ejabberd import DB, DOMAIN, config_yaml, ctl_cfg, prefill_sql, side_by_side, summary
from bench.wsclient import stamped_text
from bench.xmpp import (NS_CLIENT, NS_SM, StanzaReader, XmppClient, XmppError, message_fields, message_stanza,
                        sasl_plain, sm_ack)
from bench.pairs import Flight, Tally
from bench.xmpp_load import cpu_used

HEADER = (b"<?xml version='1.0'?><stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' "
          b"id='s1' from='parley.bench' version='1.0'>")


def test_message_stanza_escapes_and_parses_back():
    raw = message_stanza("b@parley.bench", "id'1", "1 2 <x> & 'y'")
    elem = fromstring(raw.replace(b"<message ", f"<message xmlns='{NS_CLIENT}' ".encode(), 1))
    assert message_fields(elem) == ("id'1", "", "1 2 <x> & 'y'")
    assert elem.get("to") == "b@parley.bench" and elem.get("type") == "chat"


def test_sasl_plain_and_ack():
    token = fromstring(sasl_plain("p1", "pw")).text or ""
    assert base64.b64decode(token) == b"\0p1\0pw"
    assert fromstring(sm_ack(42)).get("h") == "42"


def test_reader_yields_whole_top_level_stanzas_across_chunks():
    reader = StanzaReader()
    stream = HEADER + b"<message from='a@parley.bench/x' id='m1'><body>hi</body></message><r xmlns='urn:xmpp:sm:3'/>"
    got = [e for i in range(0, len(stream), 7) for e in reader.feed(stream[i:i + 7])]
    assert reader.header is not None and reader.header["id"] == "s1"
    assert [e.tag for e in got] == [f"{{{NS_CLIENT}}}message", f"{{{NS_SM}}}r"]
    assert message_fields(got[0]) == ("m1", "a@parley.bench/x", "hi")
    assert message_fields(got[1]) is None
    with pytest.raises(XmppError):
        reader.feed(b"</stream:stream>")


def test_a_message_without_body_is_not_a_chat():
    elem = fromstring(f"<message xmlns='{NS_CLIENT}' id='x'><active/></message>")
    assert message_fields(elem) is None


async def test_login_receive_and_ack_against_a_scripted_server():
    """SASL PLAIN, a restarted stream, bind, XEP-0198 enable, presence; a message in; acks out."""
    seen: list[bytes] = []
    done = asyncio.Event()

    async def server(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        async def until(marker: bytes) -> None:
            while not any(marker in chunk for chunk in seen):
                seen.append(await reader.read(4096))

        features = (b"<stream:features><mechanisms xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>"
                    b"<mechanism>PLAIN</mechanism></mechanisms></stream:features>")
        await until(b"<stream:stream")
        writer.write(HEADER + features)
        await until(b"PLAIN")
        writer.write(b"<success xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/>")
        seen.clear()
        await until(b"<stream:stream")
        writer.write(HEADER + b"<stream:features><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/>"
                     b"<sm xmlns='urn:xmpp:sm:3'/></stream:features>")
        await until(b"<resource>")
        writer.write(b"<iq type='result' id='bind1'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'>"
                     b"<jid>p1@parley.bench/bench</jid></bind></iq>")
        await until(b"<enable")
        writer.write(b"<enabled xmlns='urn:xmpp:sm:3'/>")
        await until(b"<presence/>")
        writer.write(b"<message from='p2@parley.bench/bench' id='m1' type='chat'><body>hello</body></message>"
                     b"<r xmlns='urn:xmpp:sm:3'/><a xmlns='urn:xmpp:sm:3' h='1'/>")
        await until(b"h='1'")
        done.set()
        await until(b"</stream:stream>")
        writer.close()
        await writer.wait_closed()

    srv = await asyncio.start_server(server, "127.0.0.1", 0)
    port = srv.sockets[0].getsockname()[1]
    client = XmppClient("127.0.0.1", port, DOMAIN)
    got: list[tuple[str, str, str]] = []
    client.on_message = lambda i, f, b, _now: got.append((i, f, b))
    try:
        await asyncio.wait_for(client.login("p1", "pw", "bench"), 5)
        assert client.jid == "p1@parley.bench/bench" and client.sm
        client.ack_every(0.05)
        await asyncio.wait_for(done.wait(), 5)
        assert got == [("m1", "p2@parley.bench/bench", "hello")]
        assert client.handled == 1 and client.acks_sent == 1 and client.server_handled == 1
    finally:
        await client.close()
        srv.close()
        await srv.wait_closed()


async def test_tally_counts_window_duplicates_and_strangers():
    loop = asyncio.get_running_loop()
    tally = Tally(start_ns=0, end_ns=10**30)
    body = stamped_text("c1", 100)
    stamp = int(body.split()[0])
    tally.flights["c1"] = Flight(recipient=1, stamp_ns=stamp, received=loop.create_future())
    tally.receive(0, body, stamp + 5_000_000)  # not its recipient: ignored
    tally.receive(1, body, stamp + 5_000_000)
    tally.receive(1, body, stamp + 6_000_000)
    tally.receive(1, "not a stamped text", 0)
    assert (tally.delivered, tally.delivered_in_window, tally.repeated) == (1, 1, 1)
    assert tally.latencies_ms == [5.0]


def test_cpu_used_counts_a_process_first_seen_at_the_end_whole():
    start = {"postgres": {10: 1.0}, "ejabberd": {20: 5.0}}
    end = {"postgres": {10: 1.5, 11: 0.25}, "ejabberd": {20: 7.0}}
    assert cpu_used(start, end) == {"postgres": 0.75, "ejabberd": 2.0}


@pytest.mark.parametrize("mode", ["routing", "mam"])
def test_config_is_yaml_with_what_each_mode_promises(mode: str):
    conf: dict[str, Any] = yaml.safe_load(config_yaml(5299, mode))
    listener = conf["listen"][0]
    assert (listener["port"], listener["ip"], listener["shaper"], listener["starttls"]) == (5299, "127.0.0.1",
                                                                                          "none", False)
    assert conf["registration_timeout"] == "infinity" and conf["hosts"] == [DOMAIN]
    assert conf["shaper_rules"]["max_user_offline_messages"] >= 2000
    assert "mod_offline" in conf["modules"] and "mod_stream_mgmt" in conf["modules"]
    if mode == "mam":
        assert conf["modules"]["mod_mam"] == {"default": "always", "db_type": "sql", "assume_mam_usage": True}
        assert (conf["sql_type"], conf["sql_database"], conf["default_db"]) == ("pgsql", DB, "sql")
    else:
        assert "mod_mam" not in conf["modules"] and conf["default_db"] == "mnesia"


def test_config_refuses_an_unknown_mode_and_ctl_cfg_keeps_off_epmd():
    with pytest.raises(ValueError):
        config_yaml(1, "cluster")
    cfg = ctl_cfg("n@localhost", 4370)
    assert "ERL_DIST_PORT=4370" in cfg and "ERLANG_NODE=n@localhost" in cfg


def test_prefill_is_one_insert_of_n_rows():
    sql = prefill_sql(1234)
    assert sql.startswith("INSERT INTO archive") and "generate_series(1, 1234)" in sql


def pairs(rate: float, p50: float, p99: float, cpu: dict[str, float], delivered: int = 1000) -> dict[str, Any]:
    return {"delivered_per_second": rate, "latency_ms": {"p50": p50, "p99": p99}, "lost": 0, "duplicated": 0,
            "delivered_in_window": delivered, "other_cpu_percent": 3.0,
            "cpu": {k: {"cpu_ms_per_message": v, "cpu_percent": 100 * v} for k, v in
                    {**cpu, "total": sum(cpu.values())}.items()}}


def test_side_by_side_rows_ratios_and_server_cpu():
    parley = summary("parley", pairs(1000.0, 900.0, 2000.0, {"chat": 0.2, "mongo": 0.6, "bench-clients": 0.2}),
                     {"messages": 2000, "login_to_all_delivered_seconds": 0.2, "ok": True})
    peer = summary("ejabberd mam", pairs(500.0, 100.0, 1000.0, {"ejabberd": 0.5, "postgres": 0.3,
                                                                 "bench-clients": 0.1}),
                   {"messages": 2000, "login_to_all_delivered_seconds": None, "ok": False})
    assert parley["server_cpu_ms"] == 0.8 and peer["server_cpu_ms"] == 0.8
    table = side_by_side([parley, peer])
    lines = table.splitlines()
    assert "sync 2,000 s" in lines[0]
    assert lines[2].startswith("parley") and "1,000.0" in lines[2] and "mongo 0.600 (60%)" in lines[2]
    assert lines[3].startswith("ejabberd mam") and lines[3].split()[8:10] == ["-!", "3"]
    assert "ejabberd mam / parley: msg/s x0.50, p99 x0.50, server CPU-ms/msg x1.00" in table
