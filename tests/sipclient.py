"""A minimal SIP peer over UDP for tests that need to say exactly what a phone says:
replay a REGISTER byte for byte, reuse an old nonce, send malformed requests.
(Volume and ordinary phones are SIPp's, pjsua2's and baresip's job.)"""
from __future__ import annotations

import re
import socket
import uuid
from dataclasses import dataclass

from records.agents import sip_ha1
from telephony.digest import response_for


@dataclass
class Response:
    status: int
    reason: str
    headers: dict
    raw: str

    def header(self, name: str) -> str:
        return self.headers.get(name.lower(), [""])[0]

    def challenge(self) -> dict:
        value = self.header("www-authenticate") or self.header("proxy-authenticate")
        return dict(re.findall(r'(\w+)="?([^",]+)"?', value))


def parse(raw: str) -> Response:
    head = raw.split("\r\n\r\n", 1)[0].split("\r\n")
    _, code, reason = (head[0].split(" ", 2) + [""])[:3]
    headers: dict = {}
    for line in head[1:]:
        name, _, value = line.partition(":")
        headers.setdefault(name.strip().lower(), []).append(value.strip())
    return Response(int(code), reason, headers, raw)


class SipClient:
    def __init__(self, switch_port: int, *, port: int = 0):
        self.switch = ("127.0.0.1", switch_port)
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", port))
        self.sock.settimeout(3)
        self.port = self.sock.getsockname()[1]
        self.cseq = 0
        self.call_id = uuid.uuid4().hex

    def close(self) -> None:
        self.sock.close()

    def send(self, text: str) -> None:
        self.sock.sendto(text.encode(), self.switch)

    def receive(self, timeout: float = 3.0) -> Response | None:
        self.sock.settimeout(timeout)
        try:
            while True:
                data, _ = self.sock.recvfrom(65535)
                response = parse(data.decode())
                if response.status >= 200 or response.status in (401, 407):
                    return response   # provisional answers (100 Trying) are skipped
        except socket.timeout:
            return None

    def register_text(self, ext: str, *, authorization: str = "", expires: int = 300) -> str:
        self.cseq += 1
        auth = f"Authorization: {authorization}\r\n" if authorization else ""
        return (f"REGISTER sip:127.0.0.1:{self.switch[1]} SIP/2.0\r\n"
                f"Via: SIP/2.0/UDP 127.0.0.1:{self.port};branch=z9hG4bK{uuid.uuid4().hex[:12]};rport\r\n"
                f"From: <sip:{ext}@127.0.0.1>;tag=t{self.call_id[:8]}\r\nTo: <sip:{ext}@127.0.0.1>\r\n"
                f"Call-ID: {self.call_id}\r\nCSeq: {self.cseq} REGISTER\r\n"
                f"Contact: <sip:{ext}@127.0.0.1:{self.port}>\r\n{auth}Expires: {expires}\r\n"
                f"Max-Forwards: 70\r\nContent-Length: 0\r\n\r\n")

    def register(self, ext: str, *, authorization: str = "", expires: int = 300) -> Response | None:
        self.send(self.register_text(ext, authorization=authorization, expires=expires))
        return self.receive()


def authorization(challenge: dict, ext: str, pin: str, *, uri: str, nc: int = 1, cnonce: str = "0a4f113b",
                  method: str = "REGISTER") -> str:
    """An Authorization value answering `challenge` (qop=auth) as a phone knowing the PIN would."""
    count = f"{nc:08x}"
    response = response_for(sip_ha1(ext, pin), challenge["nonce"], method, uri, qop="auth", nc=count, cnonce=cnonce)
    return (f'Digest username="{ext}",realm="{challenge["realm"]}",nonce="{challenge["nonce"]}",uri="{uri}",'
            f'response="{response}",algorithm=MD5,qop=auth,nc={count},cnonce="{cnonce}"')
