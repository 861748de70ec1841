"""A scenario's callers as SIPp processes: the live run's load generator.

SIPp places each planned caller (scenarios/plan.py) at its moment, dials its queue with
its caller number, waits for an answer for its patience, then talks for its talk time
and hangs up, or gives up (CANCEL). Two things SIPp cannot do per call are worked
around: a `recv` timeout is fixed in the scenario XML, so callers are grouped by
patience into buckets, one SIPp process each, whose timeout is the bucket's (buckets
10% apart: a caller's patience is off by at most 5%); and SIPp starts calls at a rate,
not at given moments, so every call starts by pausing until its own moment (read from
the clock with `gettimeofday`, against the run's time 0 passed as `-set t0_ms`).

The CSV files are the record of what was placed: a call's number and queue per line.
SIPp's own counts (`-trace_counts`: every CANCEL sent is a caller who gave up, every ACK
of a 200 one who was answered) are the load generator's statistics the switch's rows
are checked against.

Through the voice menu (a run's own switch with its media engine): a caller dials the
menu's number, and once its 182 brings the menu's audio, SIPp plays the RFC 2833 key of
the caller's queue (Debian's sip-tester ships a recording of each key); its patience
then runs from the key (the key's length is added to the wait for the answer). A caller
whose audio is checked (scenarios/audio_check.py) has its SDP point at the run's own RTP
endpoint, which presses the key itself and says and hears what the caller would.
"""

from __future__ import annotations

import collections
import math
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from scenarios.plan import PlannedCaller

SIPP = shutil.which("sipp")
BUCKET_RATIO = 1.1
# SIPp's RFC 2833 recordings of each key (Debian's sip-tester): 140 ms of events each
DTMF_PCAPS = Path("/usr/share/sip-tester")
KEY_MS = 250            # a key's recording and the switch hearing it
NO_KEY = -1             # dialled straight to the queue, or the run's RTP endpoint presses it
NO_MEDIA_PORT = 9       # discard: the caller's audio is not listened to
SDP = """v=0
o=caller 1 1 IN IP4 [local_ip]
s=-
c=IN IP4 [local_ip]
t=0 0
m=audio [field5] RTP/AVP 0 101
a=rtpmap:0 PCMU/8000
a=rtpmap:101 telephone-event/8000
"""


def dtmf_pcap(key: str) -> Path:
    name = {"*": "star", "#": "pound"}.get(key, key)
    return DTMF_PCAPS / f"dtmf_2833_{name}.pcap"


def can_press_keys() -> bool:
    return all(dtmf_pcap(k).exists() for k in "0123456789")

# The caller's ACK of the answer (in the dialog it made) and its hang-up
_ACK = """  <send>
    <![CDATA[
      ACK [next_url] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      From: <sip:[field0]@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
      [last_To:]
      Call-ID: [call_id]
      CSeq: 1 ACK
      [routes]
      Max-Forwards: 70
      Content-Length: 0

    ]]>
  </send>
"""
_BYE = """  <send retrans="500">
    <![CDATA[
      BYE [next_url] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      From: <sip:[field0]@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
      [last_To:]
      Call-ID: [call_id]
      CSeq: 2 BYE
      [routes]
      Max-Forwards: 70
      Content-Length: 0

    ]]>
  </send>
"""
_XML = """<?xml version="1.0" encoding="ISO-8859-1" ?>
<!-- written by hotline (scenarios/sipp_load.py): callers whose patience is {patience_ms} ms;
     per call from the CSV: caller number, number dialled (a queue or the menu), moment (ms
     after t0), talk (ms), menu key (-1: none), the port of the caller's audio (9: none) -->
<scenario name="hotline callers, patience {patience_ms} ms">
  <Global variables="t0_ms"/>
  <nop>
    <action>
      <gettimeofday assign_to="s,us"/>
      <assignstr assign_to="at_str" value="[field2]"/>
      <todouble assign_to="at" variable="at_str"/>
      <assignstr assign_to="talk_str" value="[field3]"/>
      <todouble assign_to="talk" variable="talk_str"/>
      <assign assign_to="now" variable="s"/>
      <multiply assign_to="now" value="1000"/>
      <divide assign_to="us" value="1000"/>
      <add assign_to="now" variable="us"/>
      <todouble assign_to="wait" variable="t0_ms"/>
      <add assign_to="wait" variable="at"/>
      <subtract assign_to="wait" variable="now"/>
      <test assign_to="late" variable="wait" compare="less_than" value="1"/>
    </action>
  </nop>
  <nop condexec="late"><action><assign assign_to="wait" value="1"/></action></nop>
  <pause variable="wait"/>
  <send retrans="500">
    <![CDATA[
      INVITE sip:[field1]@[remote_ip]:[remote_port] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      From: <sip:[field0]@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
      To: <sip:[field1]@[remote_ip]:[remote_port]>
      Call-ID: [call_id]
      CSeq: 1 INVITE
      Contact: <sip:[field0]@[local_ip]:[local_port]>
      Max-Forwards: 70
      Content-Type: application/sdp
      Content-Length: [len]

{sdp}
    ]]>
  </send>
{menu}  <!-- the patience runs from wherever the call is waiting (SIPp times the next recv) -->
  <recv response="100" optional="true" timeout="{wait_ms}" ontimeout="gave_up"/>
  <recv response="180" optional="true" timeout="{wait_ms}" ontimeout="gave_up"/>
  <recv response="182" optional="true" timeout="{wait_ms}" ontimeout="gave_up"/>
  <recv response="183" optional="true" timeout="{wait_ms}" ontimeout="gave_up"/>
  <recv response="200" rrs="true" timeout="{wait_ms}" ontimeout="gave_up"/>
{ack}  <pause variable="talk"/>
{bye}  <recv response="200" crlf="true" next="end"/>
  <label id="gave_up"/>
  <send>
    <![CDATA[
      CANCEL sip:[field1]@[remote_ip]:[remote_port] SIP/2.0
      [last_Via:]
      From: <sip:[field0]@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
      To: <sip:[field1]@[remote_ip]:[remote_port]>
      Call-ID: [call_id]
      CSeq: 1 CANCEL
      Max-Forwards: 70
      Content-Length: 0

    ]]>
  </send>
  <!-- Which 200 this is, the CSeq says (SIPp 3.6's transactions, start_txn and
       response_txn, abort SIPp on an assertion when the INVITE's 200 crosses the CANCEL,
       taking every call of the process with it: none are used here) -->
  <recv response="481" optional="true" next="cancel_answered"/>
  <recv response="487" optional="true" next="cancelled"/>
  <!-- (the jump is on the recv itself: a step between it and the next recv would meet
       the CANCEL's answer as an unexpected message and abort the call) -->
  <recv response="200" rrs="true" next="answered_first" test="answer_first">
    <action>
      <ereg regexp="INVITE" search_in="hdr" header="CSeq:" assign_to="answer_first"/>
      <ereg regexp=".*" search_in="hdr" header="To:" assign_to="answer_to"/>
    </action>
  </recv>
  <label id="cancel_answered"/>
  <!-- the CANCEL is answered: then its 487, or the agent's answer that crossed it -->
  <recv response="487" optional="true" next="cancelled"/>
  <recv response="200" rrs="true" next="ack_and_hang_up">
    <action><ereg regexp=".*" search_in="hdr" header="To:" assign_to="answer_to"/></action>
  </recv>
  <label id="answered_first"/>
  <!-- the agent's answer came before the CANCEL's: its answer (200, or 481 now that the
       call is up) is still to come -->
  <recv response="200" optional="true" next="ack_and_hang_up"/>
  <recv response="481"/>
  <label id="ack_and_hang_up"/>
  <!-- the call is up: the caller takes it (ACK) and hangs up at once -->
  <!-- in the answer's dialog: the CANCEL's 200 may carry another To tag -->
  <nop><action><log message="crossed;[field0] [$answer_to]"/></action></nop>
{crossed_ack}{crossed_bye}  <recv response="200" crlf="true" next="end"/>
  <label id="cancelled"/>
  <send>
    <![CDATA[
      ACK sip:[field1]@[remote_ip]:[remote_port] SIP/2.0
      [last_Via:]
      From: <sip:[field0]@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
      [last_To:]
      Call-ID: [call_id]
      CSeq: 1 ACK
      Max-Forwards: 70
      Content-Length: 0

    ]]>
  </send>
  <label id="end"/>
</scenario>
"""


# The voice menu: its 182 brings the menu's audio, then the caller presses its queue's key.
_MENU = """  <recv response="100" optional="true" timeout="{patience_ms}" ontimeout="gave_up"/>
  <recv response="182" rrs="true" timeout="{patience_ms}" ontimeout="gave_up"/>
  <nop>
    <action>
      <assignstr assign_to="key_str" value="[field4]"/>
      <todouble assign_to="key" variable="key_str"/>
{tests}
    </action>
  </nop>
{presses}
"""


def _menu_steps(keys: list[str], patience_ms: int) -> str:
    """The menu's steps for callers who press one of `keys` (digits)."""
    if not keys:
        return ""
    tests = "\n".join(f'      <test assign_to="k{k}" variable="key" compare="equal" value="{k}"/>' for k in keys)
    presses = "\n".join(f'  <nop condexec="k{k}"><action><exec play_pcap_audio="{dtmf_pcap(k)}"/></action></nop>'
                         for k in keys)
    return _MENU.format(patience_ms=patience_ms, tests=tests, presses=presses)


_next_media_port = 20000


def _free_port_pair() -> int:
    """Four free UDP ports in a row (SIPp's audio and video RTP, each with RTCP), below the
    kernel's ephemeral range (32768 up) so that no port handed out meanwhile (another
    SIPp's signalling, the media engine's) takes one before this SIPp binds it (a
    video port taken so stopped one of 49 SIPps in the weekday soak)."""
    import socket

    global _next_media_port
    while _next_media_port < 32760:
        base = _next_media_port
        _next_media_port += 4
        held = []
        try:
            for port in range(base, base + 4):
                sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                held.append(sock)
                sock.bind(("0.0.0.0", port))
        except OSError:
            continue
        finally:
            for sock in held:
                sock.close()
        return base
    raise RuntimeError("no four free UDP ports in a row below 32768 for SIPp's media")


def bucket_of(patience_s: float) -> int:
    """Callers whose patience is within 10% of each other share a SIPp process."""
    return int(math.floor(math.log(max(patience_s, 0.05) / 0.05, BUCKET_RATIO)))


def bucket_patience_s(bucket: int) -> float:
    return 0.05 * BUCKET_RATIO ** (bucket + 0.5)


@dataclass(frozen=True)
class PlacedCall:
    """One line of a SIPp CSV: what a caller does."""
    number: str         # the caller's own number
    dialled: str        # a queue's name, or the menu's number
    at_ms: int          # its moment, from the run's time 0 (wall)
    talk_ms: int
    queue: str          # the queue it means to reach
    key: int = NO_KEY   # the menu key SIPp presses
    media_port: int = NO_MEDIA_PORT

    def csv(self) -> str:
        return f"{self.number};{self.dialled};{self.at_ms};{self.talk_ms};{self.key};{self.media_port};"


@dataclass
class Bucket:
    patience_ms: int
    calls: list[PlacedCall] = field(default_factory=list)


@dataclass
class SippLoad:
    """The SIPp processes placing a plan's callers into the switch at `switch`."""
    folder: Path
    switch: tuple[str, int]
    buckets: dict[int, Bucket]
    processes: list[tuple[Bucket, subprocess.Popen, Path]] = field(default_factory=list)

    @classmethod
    def write(cls, folder: Path, switch: tuple[str, int], callers: list[tuple[PlannedCaller, str]],
              speed: float, *, menu: tuple[str, dict[str, str]] | None = None,
              audio_ports: dict[int, int] | None = None) -> "SippLoad":
        """`callers`: each planned caller with the number it calls from. `menu`: the menu's
        number and its keys (queue -> key): callers of a queue with a key go through the
        menu. `audio_ports`: planned callers (by index) whose audio the run's own RTP
        endpoint at that port says and hears (it presses their key too)."""
        folder = folder.resolve()   # SIPp runs in it: a relative path would name another place
        folder.mkdir(parents=True, exist_ok=True)
        audio_ports = audio_ports or {}
        menu_number, keys = menu if menu is not None else ("", {})
        buckets: dict[int, Bucket] = {}
        for n, (planned, number) in enumerate(callers):
            patience_s = planned.patience_s / speed if planned.patience_s != math.inf else 36000.0
            index = bucket_of(patience_s)
            bucket = buckets.setdefault(index, Bucket(max(50, round(bucket_patience_s(index) * 1000))))
            key = keys.get(planned.queue)
            bucket.calls.append(PlacedCall(
                number, menu_number if key is not None else planned.queue, round(planned.at_s / speed * 1000),
                max(50, round(planned.handle_s / speed * 1000)), planned.queue,
                int(key) if key is not None and n not in audio_ports else NO_KEY,
                audio_ports.get(n, NO_MEDIA_PORT)))
        for index, bucket in buckets.items():
            pressed = sorted({str(c.key) for c in bucket.calls if c.key != NO_KEY})
            through_menu = any(c.dialled == menu_number for c in bucket.calls) and bool(menu_number)
            steps = _menu_steps(pressed, bucket.patience_ms) if through_menu else ""
            if through_menu and not pressed:   # only callers whose RTP endpoint presses the key
                steps = "\n".join(_MENU.format(patience_ms=bucket.patience_ms, tests="", presses="")
                                  .splitlines()[:2]) + "\n"
            (folder / f"callers-{index}.xml").write_text(_XML.format(
                patience_ms=bucket.patience_ms, wait_ms=bucket.patience_ms + (KEY_MS if through_menu else 0),
                menu=steps, sdp=SDP.rstrip("\n"), ack=_ACK, bye=_BYE,
                crossed_ack=_ACK.replace("[last_To:]", "To: [$answer_to]"),
                crossed_bye=_BYE.replace("[last_To:]", "To: [$answer_to]")))
            lines = ["SEQUENTIAL"] + [c.csv() for c in sorted(bucket.calls, key=lambda c: c.at_ms)]
            (folder / f"callers-{index}.csv").write_text("\n".join(lines) + "\n")
        return cls(folder, switch, buckets)

    @property
    def placed_calls(self) -> list[PlacedCall]:
        """The calls SIPp placed: each bucket's first N lines (SEQUENTIAL), N its own count."""
        out = []
        for index, bucket in self.buckets.items():
            placed = int(self._stats(index).get("OutgoingCall(C)") or 0)
            out += sorted(bucket.calls, key=lambda c: c.at_ms)[:placed]
        return out

    @property
    def dialled(self) -> collections.Counter:
        """The numbers of the calls SIPp placed: each bucket's first N lines (SEQUENTIAL),
        N its own count (a SIPp that ended early placed fewer than its CSV holds)."""
        return collections.Counter(call.number for call in self.placed_calls)

    def crossed_numbers(self) -> list[str]:
        """Callers who gave up (CANCEL) as an agent answered, the 200 crossing their CANCEL:
        the call was up, so they acknowledged it and hung up at once (SIPp logs each)."""
        out = []
        for log in self.folder.glob("callers-*_logs.log"):
            out += [line.split(";", 1)[1].split()[0] for line in log.read_text(errors="replace").splitlines()
                    if line.startswith("crossed;")]
        return sorted(out)

    def planned(self) -> int:
        return sum(len(b.calls) for b in self.buckets.values())

    def _stats(self, index: int) -> dict:
        stat = next(self.folder.glob(f"callers-{index}_*_.csv"), None)
        if stat is None:
            return {}
        rows = [line.split(";") for line in stat.read_text().splitlines() if line.strip()]
        return dict(zip(rows[0], rows[-1])) if len(rows) >= 2 else {}

    def start(self, t0: float, local_ip: str = "127.0.0.1") -> None:
        """Every bucket's SIPp at once; calls are launched ahead and wait for their moment."""
        from scenarios.live import free_udp_port

        if SIPP is None:
            raise RuntimeError("sipp is not installed (Debian: apt-get install sip-tester)")
        for index, bucket in sorted(self.buckets.items()):
            span_s = max(1.0, max(c.at_ms for c in bucket.calls) / 1000)
            rate = max(5.0, 1.5 * len(bucket.calls) / span_s)
            last_s = max(c.at_ms + c.talk_ms for c in bucket.calls) / 1000 + bucket.patience_ms / 1000
            log = open(self.folder / f"callers-{index}.log", "w")
            process = subprocess.Popen(
                [SIPP, f"{self.switch[0]}:{self.switch[1]}", "-sf", str(self.folder / f"callers-{index}.xml"),
                 "-inf", str(self.folder / f"callers-{index}.csv"), "-set", "t0_ms", str(int(t0 * 1000)),
                 "-m", str(len(bucket.calls)), "-r", f"{rate:.3f}", "-i", local_ip, "-p", str(free_udp_port()),
                 # every call may be up at once (they wait for their moment); a media port of its own
                 # (SIPp binds one even to send no audio: several on its default 6000 collide)
                 "-l", str(len(bucket.calls)), "-mp", str(_free_port_pair()),
                 "-timeout", f"{last_s * 1.5 + 300:.0f}s", "-nostdin", "-trace_counts", "-trace_err", "-trace_logs",
                 "-trace_stat", "-fd", "1", "-max_recv_loops", "1000"],
                cwd=self.folder, stdout=log, stderr=subprocess.STDOUT)
            self.processes.append((bucket, process, self.folder / f"callers-{index}.log"))

    def running(self) -> int:
        return sum(1 for _, p, _ in self.processes if p.poll() is None)

    def stop(self) -> None:
        for _, process, _ in self.processes:
            if process.poll() is None:
                process.send_signal(signal.SIGUSR1)   # SIPp: stop calling, let the calls up end
        deadline = time.monotonic() + 15
        for _, process, _ in self.processes:
            try:
                process.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(5)

    def problems(self) -> list[str]:
        """Each SIPp that placed fewer calls than its CSV holds, with what it said last."""
        out = []
        for index, bucket in sorted(self.buckets.items()):
            placed = int(self._stats(index).get("OutgoingCall(C)") or 0)
            if placed < len(bucket.calls):
                log = self.folder / f"callers-{index}.log"
                text = log.read_text(errors="replace").strip().splitlines() if log.exists() else []
                said = next((line for line in reversed(text) if line.strip() and not line.startswith(("-", " "))), "")
                out.append(f"callers-{index}: placed {placed} of {len(bucket.calls)}" + (f" ({said[:200]})" if said else ""))
        return out

    def counts(self) -> dict:
        """SIPp's own statistics, summed over the buckets."""
        out: collections.Counter[str] = collections.Counter()
        for index, bucket in self.buckets.items():
            stat = next(self.folder.glob(f"callers-{index}_*_.csv"), None)
            if stat is not None:
                rows = [line.split(";") for line in stat.read_text().splitlines() if line.strip()]
                if len(rows) >= 2:
                    last = dict(zip(rows[0], rows[-1]))
                    out["placed"] += int(last.get("OutgoingCall(C)", 0) or 0)
                    out["successful"] += int(last.get("SuccessfulCall(C)", 0) or 0)
                    out["failed"] += int(last.get("FailedCall(C)", 0) or 0)
            counts = next(self.folder.glob(f"callers-{index}_*_counts.csv"), None)
            if counts is not None:
                rows = [line.split(";") for line in counts.read_text().splitlines() if line.strip()]
                if len(rows) >= 2:
                    # columns are "<element>_<message>_<what>": one CANCEL per caller who gave
                    # up, one BYE per caller who talked and hung up (and per crossed caller)
                    for name, value in zip(rows[0], rows[-1]):
                        if name.endswith("_CANCEL_Sent"):
                            out["gave_up"] += int(value or 0)
                        elif name.endswith("_BYE_Sent"):
                            out["hung_up_after_talking"] += int(value or 0)
        crossed = len(self.crossed_numbers())
        out["gave_up_as_answered"] = crossed
        out["gave_up"] -= crossed
        out["hung_up_after_talking"] -= crossed
        return dict(out)
