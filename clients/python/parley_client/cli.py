"""`parley`: send, listen and read history from a terminal (or a script), as any user.

    parley register                              # a new account (then make a friend: parley friend USER)
    parley send --to bob "hello"                 # or --group GROUP_ID
    parley listen                                # incoming messages as they come (acknowledged); Ctrl-C stops
    parley history --with bob                    # or --conversation ID

Credentials: --username/--password, or PARLEY_USERNAME/PARLEY_PASSWORD. The gateway: --url
(PARLEY_URL; default http://127.0.0.1:8000, where `make run` listens).
"""
import argparse
import asyncio
import os
import sys
from collections.abc import Sequence
from contextlib import suppress
from datetime import datetime
from typing import Any

from parley_client.client import ParleyClient
from parley_client.errors import GatewayUnreachable, ParleyError, ReplyError
from parley_client.models import Message, Recipient
from parley_client.session import DEFAULT_URL

# The devices the command line logs in as. `listen` is one that acknowledges what it printed;
# the one-shot commands use another, so that running one does not take the socket of a `listen`
# (a device logging in again on a newer socket closes its older one, code 4009).
LISTENER, ONE_SHOT = "cli", "cli-once"


class Failure(Exception):
    """A message for the user, and the exit status."""

    def __init__(self, message: str, status: int = 1):
        super().__init__(message)
        self.status = status


class Names:
    """user_id -> username, from the friends list and conversations, asked for once."""

    def __init__(self, client: ParleyClient):
        self.client = client
        self.names: dict[str, str] = {}
        self.groups: dict[str, str] = {}  # group_id -> name
        self.loaded = False

    async def load(self) -> None:
        if self.loaded:
            return
        self.loaded = True
        friends = await self.client.call("friends.list")
        for user in [*friends.get("friends", []), *friends.get("incoming", []), *friends.get("outgoing", [])]:
            self.names[user["user_id"]] = user["username"]
        for conversation in (await self.client.call("conversations.list"))["conversations"]:
            if conversation.get("peer"):
                self.names[conversation["peer"]["user_id"]] = conversation["peer"]["username"]
            if conversation.get("group"):
                self.groups[conversation["group"]["group_id"]] = conversation["group"]["name"]
        if self.client.user_id and self.client.username:
            self.names[self.client.user_id] = self.client.username

    async def of(self, message: Message) -> str:
        await self.load()
        group_id = message["to"].get("group_id")
        if message["from_user_id"] not in self.names and group_id:
            try:
                members = await self.client.call("groups.members", {"group_id": group_id})
                self.names.update({m["user_id"]: m["username"] for m in members["members"]})
            except ReplyError:
                pass  # no longer a member: the id will do
        return self.names.get(message["from_user_id"], message["from_user_id"])

    async def line(self, message: Message) -> str:
        when = datetime.fromisoformat(message["sent_at"].replace("Z", "+00:00")).astimezone().strftime("%Y-%m-%d %H:%M:%S")
        where = ""
        if "group_id" in message["to"]:
            where = f"[{self.groups.get(message['to']['group_id'], message['to']['group_id'])}] "
        body = message.get("text") or ""
        if "file" in message:
            file = message["file"]
            body = f"{body} [file {file['name']}, {file['size']} bytes, id {file['file_id']}]".strip()
        return f"{when}  {where}{await self.of(message)}: {body or '(no text)'}"


def credentials(args: argparse.Namespace) -> tuple[str, str]:
    username = args.username or os.environ.get("PARLEY_USERNAME")
    password = args.password or os.environ.get("PARLEY_PASSWORD")
    if not username:
        raise Failure("no username: pass --username or set PARLEY_USERNAME", 2)
    if not password:
        raise Failure("no password: pass --password or set PARLEY_PASSWORD", 2)
    return username, password


async def session(args: argparse.Namespace, client: ParleyClient, device_id: str = ONE_SHOT) -> None:
    username, password = credentials(args)
    try:
        await client.login(username, password, args.device_id or device_id)
    except ReplyError as exc:
        if exc.code == "unauthorized":
            raise Failure(f"cannot log in as {username}: wrong username or password "
                          "(`parley register` makes an account)") from exc
        raise


async def user_id_of(client: ParleyClient, username: str) -> str:
    found = (await client.call("users.search", {"query": username}))["users"]
    for user in found:
        if user["username"] == username.lower():
            return str(user["user_id"])
    raise Failure(f"no user named {username}")


async def cmd_register(args: argparse.Namespace, client: ParleyClient) -> None:
    username, password = credentials(args)
    result = await client.register(username, password, args.display_name)
    print(f"registered {result['username']} ({result['user_id']})")


async def cmd_friend(args: argparse.Namespace, client: ParleyClient) -> None:
    await session(args, client)
    await client.call("friends.request", {"user_id": await user_id_of(client, args.user)})
    friends = await client.call("friends.list")
    if any(f["username"] == args.user.lower() for f in friends["friends"]):
        print(f"you and {args.user} are friends")
    else:
        print(f"asked {args.user} to be friends (they run: parley friend {client.username})")


async def cmd_send(args: argparse.Namespace, client: ParleyClient) -> None:
    await session(args, client)
    to: Recipient = {"group_id": args.group} if args.group else {"user_id": await user_id_of(client, args.to)}
    try:
        sent = await client.send(to, " ".join(args.text))
    except ReplyError as exc:
        if exc.code == "forbidden" and args.to:
            raise Failure(f"cannot send to {args.to}: {exc.message} (direct messages need a friendship: "
                          f"parley friend {args.to})") from exc
        raise
    print(f"sent (conversation {sent['conversation_id']}, seq {sent['seq']})")


ACK_ON_EXIT_SECONDS = 5.0


async def cmd_listen(args: argparse.Namespace, client: ParleyClient) -> None:
    await session(args, client, LISTENER)
    client.start_acking(2.0)
    names = Names(client)
    print(f"listening as {client.username} (Ctrl-C to stop) ...", file=sys.stderr, flush=True)
    shown = 0
    try:
        async with asyncio.timeout(args.seconds):
            async for message in client.messages():
                print(await names.line(message), flush=True)
                shown += 1
                if args.count and shown >= args.count:
                    break
    except TimeoutError:
        pass
    finally:
        # What was shown is acknowledged: it will not come again on this device. Bounded: after a
        # Ctrl-C, an ack retried against a busy or absent gateway must not keep the process alive
        # (what is not acknowledged simply comes again next time).
        if client.is_open:
            with suppress(ParleyError, ConnectionError, TimeoutError):
                async with asyncio.timeout(ACK_ON_EXIT_SECONDS):
                    await client.ack()


async def cmd_history(args: argparse.Namespace, client: ParleyClient) -> None:
    await session(args, client)
    names = Names(client)
    conversation_id = args.conversation
    if conversation_id is None:
        conversations = (await client.call("conversations.list"))["conversations"]
        direct = [c for c in conversations if c.get("peer") and c["peer"]["username"] == args.with_user.lower()]
        if not direct:
            raise Failure(f"no conversation with {args.with_user} yet")
        conversation_id = direct[0]["conversation_id"]
    page = await client.history(conversation_id, limit=args.limit)
    if not page["messages"]:
        print("(no messages)")
    for message in page["messages"]:
        print(await names.line(message))


def options(parser: argparse.ArgumentParser, defaults: bool) -> None:
    """The options every command takes, before or after its name."""
    def default(value: str | None) -> str | None:
        return value if defaults else argparse.SUPPRESS

    parser.add_argument("--url", default=default(os.environ.get("PARLEY_URL", DEFAULT_URL)),
                        help=f"the gateway (default {DEFAULT_URL}, or PARLEY_URL)")
    parser.add_argument("--username", default=default(None), help="or PARLEY_USERNAME")
    parser.add_argument("--password", default=default(None), help="or PARLEY_PASSWORD")
    parser.add_argument("--device-id", default=default(None),
                        help=f"the device to log in as (default: {LISTENER} for listen, else {ONE_SHOT})")


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="parley", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    options(top, defaults=True)
    common = argparse.ArgumentParser(add_help=False)
    options(common, defaults=False)
    commands = top.add_subparsers(dest="command", required=True)
    register = commands.add_parser("register", parents=[common], help="make an account with the credentials given")
    register.add_argument("--display-name")
    friend = commands.add_parser("friend", parents=[common], help="ask USER to be friends (or accept their request)")
    friend.add_argument("user", metavar="USER")
    send = commands.add_parser("send", parents=[common], help="send a text message")
    target = send.add_mutually_exclusive_group(required=True)
    target.add_argument("--to", metavar="USER", help="a friend's username")
    target.add_argument("--group", metavar="GROUP_ID")
    send.add_argument("text", nargs="+")
    listen = commands.add_parser("listen", parents=[common], help="print incoming messages as they come, acknowledging them")
    listen.add_argument("--seconds", type=float, default=None, help="stop after this long (default: never)")
    listen.add_argument("--count", type=int, default=0, help="stop after this many messages (default: never)")
    history = commands.add_parser("history", parents=[common], help="the latest messages of a conversation")
    which = history.add_mutually_exclusive_group(required=True)
    which.add_argument("--with", dest="with_user", metavar="USER", help="the direct conversation with USER")
    which.add_argument("--conversation", metavar="ID")
    history.add_argument("--limit", type=int, default=20)
    return top


COMMANDS: dict[str, Any] = {"register": cmd_register, "friend": cmd_friend, "send": cmd_send,
                            "listen": cmd_listen, "history": cmd_history}


async def run(args: argparse.Namespace) -> None:
    credentials(args)  # before any network: say what is missing at once
    client = ParleyClient(args.url)
    try:
        await client.connect()
    except GatewayUnreachable as exc:
        raise Failure(f"cannot reach the gateway at {args.url}: is `make run` running? ({exc.reason})", 3) from exc
    try:
        await COMMANDS[args.command](args, client)
    finally:
        await client.close()


def main(argv: Sequence[str] | None = None) -> None:
    args = parser().parse_args(argv)
    try:
        asyncio.run(run(args))
    except KeyboardInterrupt:
        sys.exit(130 if args.command != "listen" else 0)
    except Failure as exc:
        print(f"parley: {exc}", file=sys.stderr)
        sys.exit(exc.status)
    except ReplyError as exc:
        print(f"parley: the server refused: {exc.code}: {exc.message}", file=sys.stderr)
        sys.exit(1)
    except (ParleyError, ConnectionError, TimeoutError) as exc:
        print(f"parley: {exc or type(exc).__name__} (the gateway at {args.url})", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
