"""The switch's SIP side: sippy's event loop in its own thread, and the registrar.

Threads: sippy runs `ED2.loop()` on one thread it owns; everything that touches sippy
objects runs there. What the switch must know (a seat registered or went away) is
posted into asyncio with `loop.call_soon_threadsafe`; asyncio posts into sippy with
`ED2.callFromThread`. Records are read here only through the secret lookup, which opens
its own connection (one connection per thread).

Agents register with their extension and PIN (digest, realm "hotline"); the registrar
checks the response against the HA1 stored in records and never sees the PIN.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
import time
from dataclasses import dataclass
from typing import Callable

log = logging.getLogger("hotline.sip")

REALM = "hotline"
MAX_EXPIRES = 3600
DEFAULT_EXPIRES = 300


@dataclass(frozen=True)
class Binding:
    ext: str
    host: str
    port: int
    expires_at: float


class SipSide:
    """sippy on a thread of its own: REGISTER now, INVITE routing as the switch grows."""

    def __init__(self, host: str, port: int, *, secret_of: Callable[[str], str | None],
                 loop: asyncio.AbstractEventLoop, on_binding: Callable[[Binding | None, str], None],
                 clock: Callable[[], float] = time.time):
        # sippy logs every message unless told otherwise; warnings are enough for a switch.
        os.environ.setdefault("SIPLOG_LVL", "WARN")
        os.environ.setdefault("SIPLOG_BEND", "stderr")
        self.host, self.port = host, port
        self.secret_of, self.loop, self.on_binding, self.clock = secret_of, loop, on_binding, clock
        self.bindings: dict[str, Binding] = {}   # touched on the sippy thread only
        self._thread: threading.Thread | None = None
        self._started = threading.Event()
        self._tm = None

    # --- lifecycle ---------------------------------------------------------------------
    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="sippy", daemon=True)
        self._thread.start()
        if not self._started.wait(10):
            raise RuntimeError(f"SIP did not start on {self.host}:{self.port}")

    def _run(self) -> None:
        from sippy.Core.EventDispatcher import ED2
        from sippy.SipConf import SipConf
        from sippy.SipLogger import SipLogger
        from sippy.SipTransactionManager import SipTransactionManager

        SipConf.my_uaname = "hotline"
        SipConf.my_address = self.host
        SipConf.my_port = self.port
        config = {"_sip_address": self.host, "_sip_port": self.port, "_sip_logger": SipLogger("hotline")}
        self._tm = SipTransactionManager(config, self._request)
        ED2.callFromThread(self._started.set)
        ED2.loop()

    def stop(self) -> None:
        from sippy.Core.EventDispatcher import ED2

        if self._thread is None:
            return
        ED2.callFromThread(ED2.breakLoop)
        self._thread.join(5)
        self._thread = None

    # --- requests (sippy thread) -----------------------------------------------------------
    def _request(self, req, sip_t):
        method = req.getMethod()
        try:
            if method == "REGISTER":
                return (self._register(req), None, None)
            if method == "OPTIONS":
                return (req.genResponse(200, "OK"), None, None)
            return (req.genResponse(501, "Not Implemented"), None, None)
        except Exception:  # a malformed request must cost one reply, never the SIP thread
            log.exception("SIP: cannot handle %s", method)
            return (req.genResponse(400, "Bad Request"), None, None)

    def _register(self, req):
        from sippy.SipHeader import SipHeader
        from sippy.SipWWWAuthenticate import SipWWWAuthenticate

        ext = req.getHFBody("to").getUrl().username or ""
        if req.countHFs("authorization") == 0:
            challenge = SipHeader(name="www-authenticate", body=SipWWWAuthenticate(realm=REALM, algorithm="MD5"))
            response = req.genResponse(401, "Unauthorized")
            response.appendHeader(challenge)
            return response
        auth = req.getHFBody("authorization")
        secret = self.secret_of(ext)
        if secret is None or auth.username != ext or auth.realm != REALM \
                or not auth.verifyHA1(secret.encode(), "REGISTER", None):
            log.warning("SIP: REGISTER for %r refused: wrong credentials", ext)
            return req.genResponse(403, "Forbidden")
        expires = self._expires(req)
        contacts = req.getHFBodys("contact")
        if expires == 0 or not contacts:
            if self.bindings.pop(ext, None) is not None:
                self._post(None, ext)
            return req.genResponse(200, "OK")
        url = contacts[0].getUrl()
        binding = Binding(ext, str(url.host), int(url.port or 5060), self.clock() + expires)
        self.bindings[ext] = binding
        self._post(binding, ext)
        response = req.genResponse(200, "OK")
        response.appendHeader(SipHeader(name="expires", bodys=str(expires)))
        return response

    def _expires(self, req) -> int:
        contact = req.getHFBodys("contact")
        value = contact[0].getUri().params.get("expires") if contact else None
        if value is None and req.countHFs("expires"):
            value = req.getHFBody("expires").getNum()
        try:
            return max(0, min(int(value), MAX_EXPIRES)) if value is not None else DEFAULT_EXPIRES
        except ValueError:
            return DEFAULT_EXPIRES

    def _post(self, binding: Binding | None, ext: str) -> None:
        self.loop.call_soon_threadsafe(self.on_binding, binding, ext)
