"""A control API client (asyncio): the seat, the demo's bots and its feed use it.

Replies are matched to requests by id; anything with an `event` key is decoded into the
switch's own event class (telephony/wire.py) and goes to `on_event` (events caused by a
request can arrive before its reply). A refused request raises
`ControlError` with the switch's code and message; a closed connection raises
ConnectionError for every request still waiting.
"""

from __future__ import annotations

import asyncio
import json
import logging
import ssl
from typing import Awaitable, Callable

from telephony import wire

log = logging.getLogger("hotline.control.client")


UNCLAIMED_MAX = 100_000   # events kept for a handler not attached yet (a catch-up is at most this long)
RECONNECT_S = (1, 2, 5)   # waits between tries to reach a switch that went away (the last repeats)


async def log_in_again(log_in: Callable[[], Awaitable[object]], wanted: Callable[[], bool],
                       waits: tuple[float, ...] = RECONNECT_S) -> bool:
    """Try `log_in` after each wait until it works (True) or `wanted()` turns false (False):
    a client whose switch went away (a restart, a crash) comes back when it does."""
    attempt = 0
    while wanted():
        await asyncio.sleep(waits[min(attempt, len(waits) - 1)])
        attempt += 1
        if not wanted():
            return False
        try:
            await log_in()
        except (OSError, ConnectionError, RuntimeError, asyncio.TimeoutError):
            continue   # still unreachable (ControlError is a RuntimeError)
        return True
    return False


class ControlError(RuntimeError):
    def __init__(self, op: str, code: str, message: str):
        super().__init__(f"{op}: {message}")
        self.op, self.code, self.message = op, code, message


class ControlClient:
    """A JSON-lines control API connection (asyncio side)."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter):
        self.reader, self.writer = reader, writer
        self._next_id = 0
        self._replies: dict[int, asyncio.Future] = {}
        self._on_event: Callable[[wire.Delivered], None] | None = None
        # events before anyone listened: a catch-up is sent before the reply to the
        # subscribe that asked for it, so a client that attaches its handler after
        # subscribe() still gets every one of them, in order
        self._unclaimed: list[wire.Delivered] = []
        self.on_close: Callable[[], object] | None = None   # what it returns is not used
        self.closed = False
        self._unreadable: set[str] = set()
        self.last_seq = 0   # the event log's number of the last event taken (a reconnect asks for what follows)
        self._pump = asyncio.get_running_loop().create_task(self._read())

    @classmethod
    async def connect(cls, address: str | tuple[str, int], token: str | None = None,
                      tls_ca: str | None = None) -> "ControlClient":
        """`tls_ca`: the switch's certificate (or its CA), pinned: TCP goes over TLS."""
        if isinstance(address, str):
            reader, writer = await asyncio.open_unix_connection(address, limit=1 << 20)
        else:
            context = None
            if tls_ca:
                from telephony.tls import client_context

                context = client_context(tls_ca)
            try:
                if context is None:
                    reader, writer = await asyncio.open_connection(*address, limit=1 << 20)
                else:
                    reader, writer = await asyncio.open_connection(*address, limit=1 << 20, ssl=context,
                                                                   ssl_handshake_timeout=10)
            except ssl.SSLCertVerificationError:
                raise ConnectionError(f"the switch at {address[0]}:{address[1]} is not the one whose certificate is "
                                      f"{tls_ca}: not connected") from None
            except ssl.SSLError as exc:
                raise ConnectionError(f"no TLS with the switch at {address[0]}:{address[1]} ({exc.reason or exc}); "
                                      "does it run with --tls-cert?") from None
        client = cls(reader, writer)
        if not isinstance(address, str):
            try:
                await client.ask("auth", token=token or "")
            except ConnectionError:
                await client.close()
                hint = "" if tls_ca else ": does it want TLS (the switch's certificate with --tls-ca)?"
                raise ConnectionError(f"the switch at {address[0]}:{address[1]} closed the connection{hint}") from None
            except BaseException:
                await client.close()
                raise
        return client

    async def _read(self) -> None:
        try:
            while line := await self.reader.readline():
                message = json.loads(line)
                if "event" in message:
                    self._received(message)
                    continue
                future = self._replies.pop(message.get("id"), None)
                if future is not None and not future.done():
                    future.set_result(message)
        except (ConnectionError, asyncio.CancelledError, ValueError):
            pass
        finally:
            self.closed = True
            if self.on_close is not None:
                self.on_close()
            for future in self._replies.values():
                if not future.done():
                    future.set_exception(ConnectionError("the switch closed the control connection"))

    @property
    def on_event(self) -> Callable[[wire.Delivered], None] | None:
        return self._on_event

    @on_event.setter
    def on_event(self, handler: Callable[[wire.Delivered], None] | None) -> None:
        self._on_event = handler
        if handler is not None:
            waiting, self._unclaimed = self._unclaimed, []
            for delivered in waiting:
                handler(delivered)

    def _received(self, message: dict) -> None:
        try:
            delivered = wire.decode(message)
        except wire.WireError as exc:
            # a switch of another release: said once per kind, and the stream goes on
            if str(message.get("event")) not in self._unreadable:
                self._unreadable.add(str(message.get("event")))
                log.warning("an event this client cannot read: %s", exc)
            delivered = None
        seq = message.get("seq")
        if isinstance(seq, int):
            if seq <= self.last_seq:
                return   # had it already: a catch-up never applies an event twice
            self.last_seq = seq
        if delivered is None:
            return
        if self._on_event is not None:
            self._on_event(delivered)
        elif len(self._unclaimed) < UNCLAIMED_MAX:
            self._unclaimed.append(delivered)

    async def ask(self, op: str, **fields) -> dict:
        if self.closed:   # at once, not after the reply's timeout
            raise ConnectionError("the switch closed the control connection")
        self._next_id += 1
        future = asyncio.get_running_loop().create_future()
        self._replies[self._next_id] = future
        self.writer.write(json.dumps({"id": self._next_id, "op": op, **fields}).encode() + b"\n")
        await self.writer.drain()
        reply = await asyncio.wait_for(future, 10)
        if not reply.get("ok"):
            error = reply.get("error", {})
            raise ControlError(op, str(error.get("code")), str(error.get("message")))
        return reply

    async def subscribe(self, after_seq: int | None = None) -> dict:
        """Start the event stream; with `after_seq` (the last event a previous connection
        took), the switch first sends every event logged since, so nothing is missed."""
        if after_seq is None:
            return await self.ask("subscribe", v=wire.EVENT_VERSION)
        self.last_seq = max(self.last_seq, after_seq)
        reply = await self.ask("subscribe", after_seq=after_seq, v=wire.EVENT_VERSION)
        newest = reply.get("last_seq")
        if isinstance(newest, int) and newest < self.last_seq:
            self.last_seq = newest   # another event log (a new database): its numbers start again
        return reply

    async def close(self) -> None:
        self._pump.cancel()
        self.writer.close()
        try:
            await self.writer.wait_closed()
        except (ConnectionError, ssl.SSLError):
            # over TLS the switch may still be sending events as we close (its data after
            # our close_notify): the connection is closed all the same
            pass
