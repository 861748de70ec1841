"""SDP as the switch's call legs handle it (sippy's MsgBody in, MsgBody out): the one
codec everyone on a call speaks, hold (RFC 3264), the answers to re-INVITEs, and the
placeholder that sends a caller's audio nowhere until an agent answers."""

from __future__ import annotations


def sdp_address(body) -> tuple[str, int] | None:
    """(IP, audio port) an SDP body says its media comes from."""
    import re

    text = str(body.content) if body is not None else ""
    host = re.search(r"^c=IN IP4 (\S+)", text, re.M)
    port = re.search(r"^m=audio (\d+)", text, re.M)
    return (host.group(1), int(port.group(1))) if host and port else None


def narrow_sdp(offer):
    """The offer cut down to one codec the switch can play to (PCMU or PCMA, whichever the
    phone prefers) and its telephone-event at 8 kHz for keys; None if it offers neither."""
    import re

    from sippy.MsgBody import MsgBody

    text = str(offer.content).replace("\r\n", "\n")
    media = re.search(r"^m=audio (\d+) (\S+) ([\d ]+)$", text, re.M)
    if media is None:
        return None
    offered = media.group(3).split()
    rtpmap = dict(re.findall(r"^a=rtpmap:(\d+) (\S+)$", text, re.M))
    voice = next((pt for pt in offered if pt in ("0", "8")
                  or rtpmap.get(pt, "").upper() in ("PCMU/8000", "PCMA/8000")), None)
    if voice is None:
        return None
    keys = [pt for pt in offered if rtpmap.get(pt, "").lower() == "telephone-event/8000"]
    kept = [voice, *keys]
    lines = []
    for line in text.split("\n"):
        attribute = re.match(r"^a=(rtpmap|fmtp):(\d+) ", line)
        if attribute and attribute.group(2) not in kept:
            continue
        if line.startswith("m=audio "):
            line = f"m=audio {media.group(1)} {media.group(2)} {' '.join(kept)}"
        if line:
            lines.append(line)
    return MsgBody("\r\n".join(lines) + "\r\n")


def telephone_event_pt(body) -> int:
    """The payload type the phone sends RFC 2833 keys with (101 when it does not say)."""
    import re

    found = re.search(r"^a=rtpmap:(\d+) telephone-event/8000", str(body.content) if body is not None else "",
                      re.M | re.I)
    return int(found.group(1)) if found else 101


def discard_sdp(offer):
    """The caller's own SDP pointed at the discard port: a peer that hears nothing."""
    import re

    from sippy.MsgBody import MsgBody

    text = str(offer.content)
    text = re.sub(r"^c=IN IP4 \S+", "c=IN IP4 127.0.0.1", text, flags=re.M)
    text = re.sub(r"^m=audio \d+", "m=audio 9", text, flags=re.M)
    return MsgBody(text)


_DIRECTIONS = ("sendrecv", "sendonly", "recvonly", "inactive")


def sdp_holds(body) -> bool:
    """Does this offer put the call on hold (RFC 3264 8.4: sendonly or inactive, or the
    older RFC 2543 way, a connection address of 0.0.0.0)?"""
    import re

    text = str(body.content) if body is not None else ""
    return bool(re.search(r"^a=(sendonly|inactive)\s*$", text, re.M) or re.search(r"^c=IN IP4 0\.0\.0\.0", text, re.M))


def answer_sdp(ours, offer, version_bump: int):
    """Our SDP as the answer to `offer`: the direction that answers it (sendonly ->
    recvonly, inactive -> inactive, else sendrecv), and a newer version in its o= line
    (an answer that changes must say so, or phones ignore it)."""
    import re

    from sippy.MsgBody import MsgBody

    offered = re.findall(r"^a=(sendrecv|sendonly|recvonly|inactive)\s*$", str(offer.content), re.M)
    direction = {"sendonly": "recvonly", "inactive": "inactive", "recvonly": "sendonly"}.get(
        offered[-1] if offered else "sendrecv", "sendrecv")
    if re.search(r"^c=IN IP4 0\.0\.0\.0", str(offer.content), re.M):
        direction = "inactive" if not offered else direction
    lines = [line for line in str(ours.content).replace("\r\n", "\n").split("\n")
             if line and line.removeprefix("a=") not in _DIRECTIONS]

    def newer(match):
        return f"{match.group(1)}{int(match.group(2)) + version_bump}{match.group(3)}"
    lines = [re.sub(r"^(o=\S+ \S+ )(\d+)( .*)$", newer, line) for line in lines]
    lines.append(f"a={direction}")
    return MsgBody("\r\n".join(lines) + "\r\n")
