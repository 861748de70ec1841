"""Audio through the switch: how many calls at once one machine relays and records with
no packet lost and jitter under 20 ms, and what runs out first.

SIPp callers -> hotline switch -> registered SIPp seats, media anchored and recorded on
a `hotline media-node` (RTPproxy in a process of its own, so its CPU and its own
statistics are its own). Both ends play Debian's g711a.pcap (RTP, 30 ms packets, 7 s)
for the whole call, so every call carries audio both ways through the node. Steps of N
calls at once; per step:

- the node's own counters (RTPproxy `G`): packets received and relayed, and its RTP
  analyser's count of packets lost (by sequence number) among those received;
- the streams the seats received (tcpdump on loopback, what the node sent to the
  seats' media port): per stream, packets lost by sequence number and RFC 3550
  interarrival jitter; the worst stream and the 95th percentile are printed;
- CPU of the node, the switch and SIPp (share of one core), and whether the recordings
  were written.

The peer, in the same capture: the callers' streams as SIPp sent them into the node, so
the jitter SIPp itself makes on this loaded machine is seen beside what reaches the seats.

    python bench/audio.py [--steps 50,100,200,400] [--agents 400]
Needs sipp and tcpdump (Debian: sip-tester, tcpdump) and root for the capture.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.append(str(Path(__file__).resolve().parent))   # bench/switch.py (after the packages: bench/records.py)

from scenarios.live import free_udp_port  # noqa: E402
from switch import SCENARIOS, SIPP, BenchSwitch, MediaNode, Sipp, cpu_seconds, percentile  # noqa: E402

PCAP = Path("/usr/share/sip-tester/g711a.pcap")
PLAY_S = 7.0          # the pcap's length: each call lasts as long as its audio
TCPDUMP = shutil.which("tcpdump")


def streams(capture: Path, *, to_port: int | None = None, from_port: int | None = None) -> list[tuple[int, int, float]]:
    """Per RTP stream in a pcap: (received, lost by sequence number, RFC 3550 interarrival
    jitter in ms). `to_port`: the streams sent to that port, told apart by their source
    port (the node's port of each call); `from_port`: those sent from it, told apart by
    their destination port."""
    data = capture.read_bytes() if capture.exists() else b""
    if len(data) < 24:
        return []
    endian = "<" if struct.unpack("<I", data[:4])[0] in (0xA1B2C3D4, 0xA1B23C4D) else ">"
    nano = struct.unpack(endian + "I", data[:4])[0] in (0xA1B23C4D, 0x4D3CB2A1)
    link = struct.unpack(endian + "I", data[20:24])[0]
    header = {1: 14, 0: 4, 113: 16, 276: 20}.get(link, 14)   # Ethernet, loopback, Linux cooked v1/v2
    per: dict[tuple, list[tuple[float, int, int]]] = {}
    offset = 24
    while offset + 16 <= len(data):
        sec, frac, caplen, _ = struct.unpack(endian + "IIII", data[offset:offset + 16])
        packet = data[offset + 16:offset + 16 + caplen]
        offset += 16 + caplen
        ip = packet[header:]
        if len(ip) < 20 or ip[0] >> 4 != 4 or ip[9] != 17:
            continue
        udp = ip[(ip[0] & 15) * 4:]
        rtp = udp[8:]
        if len(rtp) < 12 or rtp[0] >> 6 != 2 or rtp[1] & 0x7F in (101, 13):   # RTP; not key events or noise
            continue
        seq, ts, ssrc = struct.unpack("!HII", rtp[2:12])
        sport, dport = struct.unpack("!HH", udp[:4])
        if to_port is not None and dport == to_port:
            source: tuple = ("to", sport, ssrc)
        elif from_port is not None and sport == from_port:
            source = ("from", dport, ssrc)
        else:
            continue
        per.setdefault(source, []).append((sec + frac / (1e9 if nano else 1e6), seq, ts))
    out = []
    for packets in per.values():
        if len(packets) < 10:
            continue
        seqs = [seq for _, seq, _ in packets]
        unwrapped, base, last = [], 0, seqs[0]
        for seq in seqs:
            if seq < last and last - seq > 30000:
                base += 65536
            unwrapped.append(seq + base)
            last = seq
        expected = max(unwrapped) - min(unwrapped) + 1
        jitter, previous = 0.0, None
        for arrival, _, ts in packets:
            if previous is not None:
                d = (arrival - previous[0]) * 8000 - ((ts - previous[1]) & 0xFFFFFFFF)
                jitter += (abs(d) - jitter) / 16
            previous = (arrival, ts)
        out.append((len(packets), max(0, expected - len(set(unwrapped))), jitter / 8.0))
    return out


def scenario(workdir: Path, name: str, source: Path) -> Path:
    """The bench scenario with its audio played right after the call is up."""
    play = f'  <nop><action><exec play_pcap_audio="{PCAP}"/></action></nop>\n'
    text = source.read_text()
    if name.startswith("caller"):
        text = text.replace("  <pause/>", play + "  <pause/>")
    else:
        text = text.replace('  <recv request="ACK"/>', '  <recv request="ACK"/>\n' + play)
    path = workdir / f"{name}.xml"
    path.write_text(text)
    return path


def step(workdir: Path, n: int, target: str, seat_port: int, callers_xml: Path,
         processes: dict[str, int], node: MediaNode, tag: str) -> dict:
    """N calls at once for a while: N / 7 new calls a second, each 7 s long."""
    rate = n / PLAY_S
    calls = int(rate * 20)   # 20 s of arrivals: the middle 13 s hold N calls up
    capture = workdir / f"{tag}-{n}.pcap"
    caller_port = free_udp_port() & ~1
    dump = subprocess.Popen([TCPDUMP, "-i", "lo", "-s", "96", "-B", "16384", "-w", str(capture), "-U",
                             f"udp and (dst port {seat_port} or src port {caller_port})"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(1.0)
    before_cpu = {name: cpu_seconds(pid) for name, pid in processes.items()}
    before = node.counters()
    started = time.monotonic()
    callers = Sipp(f"{tag}-callers-{n}", workdir, [
        target, "-sf", str(callers_xml), "-s", "2000", "-d", str(int(PLAY_S * 1000)), "-r", f"{rate:.2f}",
        "-m", str(calls), "-l", str(n * 2), "-p", str(free_udp_port()), "-mp", str(caller_port),
        "-timeout", "120s"], trace=False).start()
    callers.wait(150)
    wall = time.monotonic() - started
    cpu = {name: 100 * (cpu_seconds(pid) - before_cpu[name]) / wall for name, pid in processes.items()
           if Path(f"/proc/{pid}").exists()}
    after = node.counters()
    time.sleep(1.0)
    dump.send_signal(signal.SIGINT)
    dump.wait(10)
    ok, failed = callers.counts()
    delta = {k: after[k] - before.get(k, 0.0) for k in after}
    return {"n": n, "calls": calls, "ok": ok, "failed": failed, "cpu": cpu, "node": delta,
            "streams": streams(capture, to_port=seat_port), "sent": streams(capture, from_port=caller_port)}


def report(result: dict) -> None:
    received, sent = result["streams"], result["sent"]
    jitters = [j for _, _, j in received]
    lost = sum(l for _, l, _ in received)
    packets = sum(r for r, _, _ in received)
    print(f"  {result['n']:4d} at once: {result['ok']}/{result['calls']} calls, {result['failed']} failed; "
          f"{len(received)} streams received at the seats, {packets} packets, {lost} lost "
          f"({100 * lost / max(1, packets + lost):.3f}%); jitter p95 {percentile(jitters, .95):.2f} ms, "
          f"worst {max(jitters, default=float('nan')):.2f} ms")
    sent_jitter = [j for _, _, j in sent]
    print(f"       the peer, as SIPp sent them (callers -> node, {len(sent)} streams): "
          f"{sum(l for _, l, _ in sent)} lost, jitter p95 {percentile(sent_jitter, .95):.2f} ms, "
          f"worst {max(sent_jitter, default=float('nan')):.2f} ms")
    node = result["node"]
    if node:
        print(f"       node: {node['npkts_rcvd']:.0f} packets in, {node['npkts_relayed']:.0f} relayed, "
              f"{node['npkts_played']:.0f} played, {node['npkts_discard']:.0f} discarded; its analyser: "
              f"{node['rtpa_nlost']:.0f} lost of {node['rtpa_nrcvd']:.0f}, {node['rtpa_perrs']:.0f} out of order")
    print("       CPU (% of one core): " + ", ".join(f"{name} {share:.0f}%" for name, share in result["cpu"].items()))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", default="50,100,200,400", help="calls at once, in turn")
    parser.add_argument("--agents", type=int, default=400, help="registered seats (at least the largest step)")
    parser.add_argument("--keep", action="store_true")
    args = parser.parse_args()
    if SIPP is None or TCPDUMP is None or not PCAP.exists():
        print("bench/audio.py needs sipp and tcpdump (apt-get install sip-tester tcpdump)", file=sys.stderr)
        return 2
    if os.geteuid() != 0:
        print("bench/audio.py captures on loopback with tcpdump: run it as root", file=sys.stderr)
        return 2
    steps = [int(s) for s in args.steps.split(",")]
    workdir = Path(tempfile.mkdtemp(prefix="hotline-bench-audio-"))
    callers_xml = scenario(workdir, "caller_audio", SCENARIOS / "caller.xml")
    seats_xml = scenario(workdir, "agent_audio", SCENARIOS / "agent.xml")
    print(f"audio benchmark: steps {steps} calls at once, each playing {PCAP.name} both ways ({PLAY_S:g} s), "
          f"media anchored and recorded on a media node; work directory {workdir}", flush=True)
    node = MediaNode(workdir)
    bench = BenchSwitch(workdir, args.agents, node_config=node)
    results = []
    try:
        seat_port = free_udp_port() & ~1
        seats = bench.bring_up_seats(trace=False, scenario_file=seats_xml, media_port=seat_port)
        processes = {"switch": bench.process.pid, "node": node.process.pid, "seats' SIPp": seats.process.pid}
        for n in steps:
            results.append(step(workdir, n, f"127.0.0.1:{bench.sip_port}", seat_port, callers_xml, processes,
                                node, "switch"))
            report(results[-1])
            time.sleep(2)
        seats.stop()
    finally:
        bench.stop()
        node.stop()
    wavs = len(list((workdir / "bench.media").glob("*.wav")))
    print(f"recordings written as WAV: {wavs} (of {sum(r['ok'] for r in results)} calls completed)")
    clean = [r["n"] for r in results if r["failed"] == 0 and sum(l for _, l, _ in r["streams"]) == 0
             and percentile([j for _, _, j in r["streams"]], .95) < 20]
    print(f"most calls at once with no failure, no packet lost and jitter p95 under 20 ms: "
          f"{max(clean) if clean else 'none of the steps'}")
    if not args.keep:
        shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
