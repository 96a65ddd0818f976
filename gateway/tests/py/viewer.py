"""A viewer built only on the official Centrifugo Python SDK
(centrifuge-python), driven by gateway/tests/realtime.rs. It prints one JSON
line per thing it sees and obeys commands on stdin:

    python viewer.py WS_URL TOKEN STREAM_ID OFFER_ID

stdin: "pause" disconnects, "resume" connects again (the SDK resubscribes and
recovers what it missed), "reserve" calls the reserve RPC; end of input quits.
"""

import asyncio
import json
import sys

from centrifuge import (
    Client,
    ClientEventHandler,
    ConnectedContext,
    DisconnectedContext,
    PublicationContext,
    ReplyError,
    SubscribedContext,
    SubscriptionErrorContext,
    SubscriptionEventHandler,
)


def out(kind, value):
    print(json.dumps({"kind": kind, "value": value}), flush=True)


class Events(ClientEventHandler):
    async def on_connected(self, ctx: ConnectedContext) -> None:
        out("connected", {"client": ctx.client, "data": ctx.data})

    async def on_disconnected(self, ctx: DisconnectedContext) -> None:
        out("disconnected", {"code": ctx.code, "reason": ctx.reason})


class StreamEvents(SubscriptionEventHandler):
    async def on_subscribed(self, ctx: SubscribedContext) -> None:
        pos = ctx.stream_position
        out(
            "subscribed",
            {
                "data": ctx.data,
                "recoverable": ctx.recoverable,
                "was_recovering": ctx.was_recovering,
                "recovered": ctx.recovered,
                "offset": pos.offset if pos else None,
                "epoch": pos.epoch if pos else None,
            },
        )

    async def on_publication(self, ctx: PublicationContext) -> None:
        out("publication", {"data": ctx.pub.data, "offset": ctx.pub.offset})

    async def on_error(self, ctx: SubscriptionErrorContext) -> None:
        out("sub_error", {"code": ctx.code, "message": str(ctx.error)})


async def main() -> None:
    url, token, stream_id, offer_id = sys.argv[1:5]
    client = Client(url, events=Events(), token=token, proxy=None)
    sub = client.new_subscription(f"stream:{stream_id}", StreamEvents(), recoverable=True, positioned=True)
    await sub.subscribe()
    await client.connect()

    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    n = 0
    while True:
        line = await reader.readline()
        if not line:
            break
        cmd = line.decode().strip()
        if cmd == "pause":
            await client.disconnect()
            out("paused", None)
        elif cmd == "resume":
            await client.connect()
        elif cmd == "reserve":
            n += 1
            try:
                r = await client.rpc("reserve", {"offer_id": offer_id, "quantity": 1, "request_id": f"py-{n}"})
                out("rpc", r.data)
            except ReplyError as e:
                out("rpc_error", {"code": e.code, "message": e.message})
    await client.disconnect()


if __name__ == "__main__":
    # Bounded: the test drives it, and this ends by itself.
    try:
        asyncio.run(asyncio.wait_for(main(), timeout=30))
    except asyncio.TimeoutError:
        pass
