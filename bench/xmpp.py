"""A minimal asyncio XMPP client of the benchmark's own, for the ejabberd peer (bench/peer_ejabberd.py).

Raw XMPP over TCP (client-to-server, RFC 6120) on loopback: no TLS (the peer's ejabberd allows
plaintext there), in-band registration (XEP-0077), SASL PLAIN, resource binding, stream
management (XEP-0198), initial presence, and `<message type='chat'>` stanzas. Incoming bytes go
through expat (xml.etree's XMLPullParser, C); outgoing stanzas are formatted strings. Why not a
PyPI library: slixmpp and aioxmpp build an object per stanza and run plugins over it, several
times the client CPU of this file, and the client shares the machine's two cores with the server.

Acks: Parley's clients acknowledge what they received every --ack-every s (message.ack, one
cumulative cursor per conversation). The XMPP equivalent is XEP-0198's cumulative `<a h='N'/>`
(N = stanzas handled so far): `ack_every(s)` sends one every s seconds when N moved, which also
answers the server's `<r/>` requests (ejabberd asks after a stanza when no request is pending).
XEP-0184 receipts would be a message per message, routed back to the sender: not the same cost.
"""
import asyncio
import base64
import contextlib
import time
from collections.abc import Callable
from typing import Any, cast
from xml.etree.ElementTree import Element, XMLPullParser
from xml.sax.saxutils import escape, quoteattr

NS_STREAM = "http://etherx.jabber.org/streams"
NS_CLIENT = "jabber:client"
NS_SASL = "urn:ietf:params:xml:ns:xmpp-sasl"
NS_BIND = "urn:ietf:params:xml:ns:xmpp-bind"
NS_SM = "urn:xmpp:sm:3"
NS_REGISTER = "jabber:iq:register"
COUNTED = {f"{{{NS_CLIENT}}}message", f"{{{NS_CLIENT}}}presence", f"{{{NS_CLIENT}}}iq"}
MESSAGE = f"{{{NS_CLIENT}}}message"
BODY = f"{{{NS_CLIENT}}}body"
SM_REQUEST = f"{{{NS_SM}}}r"
SM_ANSWER = f"{{{NS_SM}}}a"


class XmppError(Exception):
    pass


def stream_open(domain: str) -> bytes:
    return (f"<?xml version='1.0'?><stream:stream to={quoteattr(domain)} xmlns='{NS_CLIENT}' "
            f"xmlns:stream='{NS_STREAM}' version='1.0'>").encode()


def sasl_plain(user: str, password: str) -> bytes:
    token = base64.b64encode(f"\0{user}\0{password}".encode()).decode()
    return f"<auth xmlns='{NS_SASL}' mechanism='PLAIN'>{token}</auth>".encode()


def register_iq(user: str, password: str, iq_id: str = "reg1") -> bytes:
    return (f"<iq type='set' id={quoteattr(iq_id)}><query xmlns='{NS_REGISTER}'><username>{escape(user)}</username>"
            f"<password>{escape(password)}</password></query></iq>").encode()


def bind_iq(resource: str, iq_id: str = "bind1") -> bytes:
    return (f"<iq type='set' id={quoteattr(iq_id)}><bind xmlns='{NS_BIND}'><resource>{escape(resource)}</resource>"
            f"</bind></iq>").encode()


def message_stanza(to: str, msg_id: str, body: str) -> bytes:
    return f"<message to={quoteattr(to)} id={quoteattr(msg_id)} type='chat'><body>{escape(body)}</body></message>".encode()


def sm_ack(handled: int) -> bytes:
    return f"<a xmlns='{NS_SM}' h='{handled}'/>".encode()


class StanzaReader:
    """Incremental parser of one XML stream: feed bytes, get its top-level elements (the stream
    header's children), each complete. A new stream (after SASL) needs a new reader."""

    def __init__(self) -> None:
        self._parser: XMLPullParser[Any] = XMLPullParser(events=("start", "end"))
        self._depth = 0
        self._root: Element | None = None
        self.header: dict[str, str] | None = None

    def feed(self, data: bytes) -> list[Element]:
        self._parser.feed(data)
        out: list[Element] = []
        for entry in self._parser.read_events():
            event, elem = cast(tuple[str, Element], entry)  # ("start" and "end" events carry elements)
            if event == "start":
                self._depth += 1
                if self._depth == 1:
                    self._root, self.header = elem, dict(elem.attrib)
            else:
                self._depth -= 1
                if self._depth == 1:
                    out.append(elem)
                    if self._root is not None:
                        self._root.remove(elem)
                elif self._depth == 0:
                    raise XmppError("the server closed the stream")
        return out


def message_fields(elem: Element) -> tuple[str, str, str] | None:
    """(id, from, body) of a <message> with a body; None for anything else."""
    if elem.tag != MESSAGE:
        return None
    body = elem.findtext(BODY)
    if body is None:
        return None
    return elem.get("id", ""), elem.get("from", ""), body


class XmppClient:
    """One c2s connection. `on_message(id, from, body, now_ns)` is called per received chat body."""

    def __init__(self, host: str, port: int, domain: str) -> None:
        self.host, self.port, self.domain = host, port, domain
        self.jid = ""
        self.on_message: Callable[[str, str, str, int], None] | None = None
        self.handled = 0  # XEP-0198 inbound count since <enabled/>
        self.acked = 0
        self.acks_sent = 0
        self.requested = False  # an <r/> not answered yet
        self.server_handled = 0  # the server's XEP-0198 count of our stanzas, from its last <a/>
        self.server_ack = asyncio.Event()
        self.received = 0
        self.sm = False
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._stanzas = StanzaReader()
        self._pending: list[Element] = []
        self._tasks: list[asyncio.Task[Any]] = []
        self.closed = asyncio.Event()

    async def _open(self) -> Element:
        """Open (or restart) the stream; return its <stream:features>."""
        assert self._writer is not None
        self._stanzas, self._pending = StanzaReader(), []
        self._writer.write(stream_open(self.domain))
        return await self._expect(f"{{{NS_STREAM}}}features")

    async def _next(self) -> Element:
        assert self._reader is not None
        while not self._pending:
            data = await self._reader.read(65536)
            if not data:
                raise XmppError("connection closed")
            self._pending.extend(self._stanzas.feed(data))
        return self._pending.pop(0)

    async def _expect(self, *tags: str) -> Element:
        elem = await self._next()
        if elem.tag not in tags:
            raise XmppError(f"expected {tags}, got {elem.tag} {elem.attrib} {[c.tag for c in elem]}")
        return elem

    async def connect(self) -> Element:
        self._reader, self._writer = await asyncio.open_connection(self.host, self.port)
        return await self._open()

    async def register(self, user: str, password: str) -> None:
        """In-band registration on a fresh stream (the connection is closed after)."""
        await self.connect()
        assert self._writer is not None
        self._writer.write(register_iq(user, password))
        reply = await self._expect(f"{{{NS_CLIENT}}}iq")
        if reply.get("type") != "result" and not any(c.tag.endswith("conflict") for c in reply.iter()):
            raise XmppError(f"registration of {user} refused: {[c.tag for c in reply.iter()]}")
        await self.close()

    async def login(self, user: str, password: str, resource: str, presence: bool = True,
                    stream_management: bool = True) -> None:
        features = await self.connect()
        assert self._writer is not None
        mechanisms = [m.text for m in features.iter(f"{{{NS_SASL}}}mechanism")]
        if "PLAIN" not in mechanisms:
            raise XmppError(f"no SASL PLAIN offered (only {mechanisms})")
        self._writer.write(sasl_plain(user, password))
        outcome = await self._expect(f"{{{NS_SASL}}}success", f"{{{NS_SASL}}}failure")
        if outcome.tag.endswith("failure"):
            raise XmppError(f"SASL PLAIN failed for {user}")
        features = await self._open()
        self._writer.write(bind_iq(resource))
        bound = await self._expect(f"{{{NS_CLIENT}}}iq")
        self.jid = bound.findtext(f"{{{NS_BIND}}}bind/{{{NS_BIND}}}jid") or ""
        if bound.get("type") != "result" or not self.jid:
            raise XmppError(f"resource binding failed for {user}")
        if stream_management and features.find(f"{{{NS_SM}}}sm") is not None:
            self._writer.write(f"<enable xmlns='{NS_SM}'/>".encode())
            await self._expect(f"{{{NS_SM}}}enabled")
            self.sm = True
        self._tasks.append(asyncio.create_task(self._read_loop()))
        if presence:
            self.send_presence()

    def send_presence(self) -> None:
        assert self._writer is not None
        self._writer.write(b"<presence/>")

    def send_message(self, to: str, msg_id: str, body: str) -> None:
        assert self._writer is not None
        self._writer.write(message_stanza(to, msg_id, body))

    def request_ack(self) -> None:
        assert self._writer is not None
        self._writer.write(f"<r xmlns='{NS_SM}'/>".encode())

    def send_ack(self) -> None:
        if self._writer is not None and self.sm and (self.handled != self.acked or self.requested):
            self.acked, self.requested = self.handled, False
            self.acks_sent += 1
            self._writer.write(sm_ack(self.handled))

    def ack_every(self, seconds: float) -> None:
        if seconds > 0:
            self._tasks.append(asyncio.create_task(self._acking(seconds)))

    async def _acking(self, seconds: float) -> None:
        while True:
            await asyncio.sleep(seconds)
            self.send_ack()

    def _handle(self, elem: Element, now: int) -> None:
        if elem.tag in COUNTED:
            self.handled += 1
            fields = message_fields(elem)
            if fields is not None:
                self.received += 1
                if self.on_message is not None:
                    self.on_message(*fields, now)
        elif elem.tag == SM_REQUEST:
            self.requested = True
        elif elem.tag == SM_ANSWER:
            self.server_handled = int(elem.get("h", "0"))
            self.server_ack.set()

    async def _read_loop(self) -> None:
        try:
            for elem in self._pending:
                self._handle(elem, time.perf_counter_ns())
            self._pending = []
            assert self._reader is not None
            while data := await self._reader.read(262144):
                now = time.perf_counter_ns()
                for elem in self._stanzas.feed(data):
                    self._handle(elem, now)
        except (XmppError, ConnectionError):
            pass
        finally:
            self.closed.set()

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        self._tasks = []
        if self._writer is not None:
            with contextlib.suppress(Exception):
                self._writer.write(b"</stream:stream>")
                self._writer.close()
                await asyncio.wait_for(self._writer.wait_closed(), 5)
            self._writer = None
