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
SDP = """v=0
o=caller 1 1 IN IP4 [local_ip]
s=-
c=IN IP4 [local_ip]
t=0 0
m=audio 9 RTP/AVP 0 101
a=rtpmap:0 PCMU/8000
a=rtpmap:101 telephone-event/8000
"""

_XML = """<?xml version="1.0" encoding="ISO-8859-1" ?>
<!-- written by hotline (scenarios/sipp_load.py): callers whose patience is {patience_ms} ms;
     per call from the CSV: caller number, queue, moment (ms after t0), talk (ms) -->
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
  <send retrans="500" start_txn="invite">
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
  <!-- the patience runs from wherever the call is waiting (SIPp times the next recv) -->
  <recv response="100" optional="true" response_txn="invite" timeout="{patience_ms}" ontimeout="gave_up"/>
  <recv response="180" optional="true" response_txn="invite" timeout="{patience_ms}" ontimeout="gave_up"/>
  <recv response="182" optional="true" response_txn="invite" timeout="{patience_ms}" ontimeout="gave_up"/>
  <recv response="183" optional="true" response_txn="invite" timeout="{patience_ms}" ontimeout="gave_up"/>
  <recv response="200" rrs="true" timeout="{patience_ms}" ontimeout="gave_up" response_txn="invite"/>
  <send ack_txn="invite">
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
  <pause variable="talk"/>
  <send retrans="500">
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
  <recv response="200" crlf="true" next="end"/>
  <label id="gave_up"/>
  <send start_txn="cancel">
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
  <recv response="200" optional="true" response_txn="cancel"/>
  <recv response="487" response_txn="invite"/>
  <send ack_txn="invite">
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


@dataclass
class Bucket:
    patience_ms: int
    calls: list[tuple[str, str, int, int]] = field(default_factory=list)   # (number, queue, at_ms, talk_ms)


@dataclass
class SippLoad:
    """The SIPp processes placing a plan's callers into the switch at `switch`."""
    folder: Path
    switch: tuple[str, int]
    buckets: dict[int, Bucket]
    processes: list[tuple[Bucket, subprocess.Popen, Path]] = field(default_factory=list)

    @classmethod
    def write(cls, folder: Path, switch: tuple[str, int], callers: list[tuple[PlannedCaller, str]],
              speed: float) -> "SippLoad":
        """`callers`: each planned caller with the number it calls from."""
        folder = folder.resolve()   # SIPp runs in it: a relative path would name another place
        folder.mkdir(parents=True, exist_ok=True)
        buckets: dict[int, Bucket] = {}
        for planned, number in callers:
            patience_s = planned.patience_s / speed if planned.patience_s != math.inf else 36000.0
            index = bucket_of(patience_s)
            bucket = buckets.setdefault(index, Bucket(max(50, round(bucket_patience_s(index) * 1000))))
            bucket.calls.append((number, planned.queue, round(planned.at_s / speed * 1000),
                                 max(50, round(planned.handle_s / speed * 1000))))
        for index, bucket in buckets.items():
            (folder / f"callers-{index}.xml").write_text(_XML.format(patience_ms=bucket.patience_ms,
                                                                     sdp=SDP.rstrip("\n")))
            lines = ["SEQUENTIAL"] + [f"{n};{q};{at};{talk};" for n, q, at, talk in sorted(bucket.calls, key=lambda c: c[2])]
            (folder / f"callers-{index}.csv").write_text("\n".join(lines) + "\n")
        return cls(folder, switch, buckets)

    @property
    def dialled(self) -> collections.Counter:
        """The numbers of the calls SIPp placed: each bucket's first N lines (SEQUENTIAL),
        N its own count (a SIPp that ended early placed fewer than its CSV holds)."""
        out: collections.Counter[str] = collections.Counter()
        for index, bucket in self.buckets.items():
            placed = self._stats(index).get("OutgoingCall(C)")
            ordered = sorted(bucket.calls, key=lambda c: c[2])
            out.update(number for number, _, _, _ in ordered[:int(placed or 0)])
        return out

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
            span_s = max(1.0, max(at for _, _, at, _ in bucket.calls) / 1000)
            rate = max(5.0, 1.5 * len(bucket.calls) / span_s)
            last_s = max(at + talk for _, _, at, talk in bucket.calls) / 1000 + bucket.patience_ms / 1000
            log = open(self.folder / f"callers-{index}.log", "w")
            process = subprocess.Popen(
                [SIPP, f"{self.switch[0]}:{self.switch[1]}", "-sf", str(self.folder / f"callers-{index}.xml"),
                 "-inf", str(self.folder / f"callers-{index}.csv"), "-set", "t0_ms", str(int(t0 * 1000)),
                 "-m", str(len(bucket.calls)), "-r", f"{rate:.3f}", "-i", local_ip, "-p", str(free_udp_port()),
                 # every call may be up at once (they wait for their moment); a media port of its own
                 # (SIPp binds one even to send no audio: several on its default 6000 collide)
                 "-l", str(len(bucket.calls)), "-mp", str(_free_port_pair()),
                 "-timeout", f"{last_s * 1.5 + 300:.0f}s", "-nostdin", "-trace_counts", "-trace_err",
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
                    # up, one BYE per caller who talked and hung up
                    for name, value in zip(rows[0], rows[-1]):
                        if name.endswith("_CANCEL_Sent"):
                            out["gave_up"] += int(value or 0)
                        elif name.endswith("_BYE_Sent"):
                            out["hung_up_after_talking"] += int(value or 0)
        return dict(out)
