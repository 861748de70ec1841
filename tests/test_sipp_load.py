"""The live run's SIPp callers (scenarios/sipp_load.py) against a SIPp standing in for the
switch at the instant an agent answers as the caller gives up: the caller's CANCEL and
the switch's 200 cross. The caller must take the call (ACK), hang up at once (BYE), and
be named in the tally; SIPp must not abort (3.6 did, on the first version of this
scenario, taking every call of its process with it)."""
import subprocess
import time

import pytest

from scenarios.plan import PlannedCaller
from scenarios.sipp_load import SIPP, SippLoad
from test_sip_register import SCENARIOS, free_udp_port

pytestmark = pytest.mark.skipif(SIPP is None, reason="sipp is not installed (Debian: sip-tester)")


@pytest.mark.parametrize("first,second", [("INVITE", "CANCEL"), ("CANCEL", "INVITE")])
def test_a_caller_whose_cancel_crosses_the_answer_takes_the_call_and_hangs_up(tmp_path, first, second):
    port = free_udp_port()
    switch = subprocess.Popen(
        [SIPP, "-sf", str(SCENARIOS / "switch_answers_as_caller_cancels.xml"), "-i", "127.0.0.1", "-p", str(port),
         "-m", "1", "-key", "first", first, "-key", "second", second, "-timeout", "20s", "-nostdin",
         # sippy answers a CANCEL with a To tag of its own: the caller must hang up in the answer's
         "-key", "first_tag", "answer-tag" if first == "INVITE" else "cancel-tag",
         "-key", "second_tag", "answer-tag" if second == "INVITE" else "cancel-tag",
         "-mp", str(free_udp_port())], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        caller = PlannedCaller(number=1, at_s=0.0, queue="repair", vip=False, repeat=False, patience_s=0.3,
                               handle_s=5.0, wrap_s=0.0)
        load = SippLoad.write(tmp_path / "sipp", ("127.0.0.1", port), [(caller, "+85291234567")], speed=1.0)
        load.start(time.time())
        deadline = time.monotonic() + 30
        while load.running() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert load.running() == 0
        output, _ = switch.communicate(timeout=20)
        assert switch.returncode == 0, output[-2000:]     # it got its ACK and the BYE
    finally:
        if switch.poll() is None:
            switch.kill()
        load.stop()
    [(_, process, log)] = load.processes
    assert process.returncode == 0, log.read_text()[-2000:]
    assert load.crossed_numbers() == ["+85291234567"]
    counts = load.counts()
    assert (counts["placed"], counts["gave_up"], counts["hung_up_after_talking"], counts["gave_up_as_answered"]) \
        == (1, 0, 0, 1)
