"""The seat leaves cleanly on SIGTERM and SIGHUP: logged out at the switch, the call
hung up, pjsua2 destroyed, exit status 0 (never an abort)."""
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from test_sip_calls import _line
from test_sip_register import start_switch

SEAT = textwrap.dedent("""
    import asyncio, sys
    from console.seat import PhoneEvent, SeatApp
    from console.seatlogic import SeatState
    from records.db import connect
    from telephony.control_client import ControlClient
    from telephony.softphone import Softphone

    async def main(port, control, db_path):
        client = await ControlClient.connect(control)
        await client.ask("login", ext="1001", pin="1111")
        await client.ask("subscribe")
        seat = SeatState("1001", "Ann")
        app = SeatApp(seat=seat, phone=None, db=connect(db_path, migrate=False), control=client)
        phone = Softphone("1001", "1111", f"127.0.0.1:{port}", lambda e: app.post_message(PhoneEvent(e)))
        app.phone = phone
        try:
            async with app.run_test() as pilot:
                phone.start()
                await pilot.press("v")
                while not (seat.registered and seat.status == "available"):
                    await pilot.pause(0.05)
                print("ready", flush=True)
                while app.is_running:
                    await pilot.pause(0.05)
        finally:
            phone.stop()
            await client.close()
        print("left cleanly", flush=True)

    asyncio.run(main(int(sys.argv[1]), sys.argv[2], sys.argv[3]))
""")


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP], ids=["SIGTERM", "SIGHUP"])
def test_the_seat_leaves_cleanly_on_a_signal(tmp_path, signum):
    port, process, control = start_switch(tmp_path)
    line = _line(port, process, control)
    seat = subprocess.Popen([sys.executable, "-c", SEAT, str(port), str(control), str(tmp_path / "switch.db")],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 20
        while seat.stdout.readline().strip() != "ready":   # pjlib prints its own start-up lines first
            assert seat.poll() is None and time.monotonic() < deadline
        seat.send_signal(signum)
        output, _ = seat.communicate(timeout=20)
        assert seat.returncode == 0 and "left cleanly" in output, output[-2000:]
        line.wait_until(lambda: line.queue_log()[-1:] == ["AGENTLOGOFF"])
        agents = {a["ext"]: a for a in line.snapshot()["agents"]}
        line.wait_until(lambda: not {a["ext"]: a for a in line.snapshot()["agents"]}["1001"]["registered"])
        assert agents["1001"]["status"] == "logged_out"
    finally:
        if seat.poll() is None:
            seat.kill()
        process.kill()
        process.wait(5)


_READY = next(line for line in SEAT.splitlines() if 'print("ready"' in line)
_INDENT = _READY[:len(_READY) - len(_READY.lstrip())]
RINGING_SEAT = SEAT.replace(_READY, f'{_READY}\n{_INDENT}while seat.state != "ringing":\n{_INDENT}    '
                            f'await pilot.pause(0.05)\n{_INDENT}print("ringing", flush=True)')
assert RINGING_SEAT != SEAT


def test_a_seat_stopped_while_a_call_rings_at_it_leaves_cleanly(tmp_path):
    """Once, pjsua2 aborted the seat here (pjsua_call_set_user_data: call_id>=0): a Call
    object outlived the library. Now: exit 0, the caller goes on to be served."""
    port, process, control = start_switch(tmp_path)
    line = _line(port, process, control)
    seat = subprocess.Popen([sys.executable, "-c", RINGING_SEAT, str(port), str(control), str(tmp_path / "switch.db")],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    caller = None
    try:
        deadline = time.monotonic() + 20
        while seat.stdout.readline().strip() != "ready":
            assert seat.poll() is None and time.monotonic() < deadline
        caller = line.call("caller_until_agent_hangs_up.xml")
        while seat.stdout.readline().strip() != "ringing":
            assert seat.poll() is None and time.monotonic() < deadline
        seat.send_signal(signal.SIGTERM)
        output, _ = seat.communicate(timeout=20)
        assert seat.returncode == 0 and "left cleanly" in output and "Assertion" not in output, output[-2000:]
    finally:
        for proc in (seat, caller):
            if proc is not None and proc.poll() is None:
                proc.kill()
        process.kill()
        process.wait(5)


def test_a_seat_whose_terminal_goes_away_logs_out_unregisters_and_exits(tmp_path):
    """The real `hotline agent` in tmux; the tmux server is killed, as when an SSH session
    drops: within seconds the seat is gone, logged out and unregistered at the switch."""
    import os
    import shutil

    tmux = shutil.which("tmux")
    if tmux is None:
        if os.environ.get("HOTLINE_REQUIRE_SIPP") == "1":
            raise AssertionError("tmux is needed for this test (apt-get install tmux)")
        pytest.skip("tmux is not installed")
    port, process, control = start_switch(tmp_path)
    line = _line(port, process, control)
    socket_name = f"hotline-test-{os.getpid()}"
    command = (f"HOTLINE_PIN=1111 {sys.executable} -m console --db {tmp_path / 'switch.db'} agent --ext 1001 "
               f"--registrar sip:127.0.0.1:{port} --control {control} --audio null")
    try:
        subprocess.run([tmux, "-L", socket_name, "new-session", "-d", "-x", "100", "-y", "30", command], check=True)
        line.wait_until(lambda: {a["ext"]: a for a in line.snapshot()["agents"]}["1001"]["registered"], timeout=20)
        subprocess.run([tmux, "-L", socket_name, "send-keys", "v"], check=True)
        line.wait_until(lambda: {a["ext"]: a for a in line.snapshot()["agents"]}["1001"]["status"] == "available")
        seat_pids = subprocess.run(["pgrep", "-f", f"agent --ext 1001 --registrar sip:127.0.0.1:{port}"],
                                   capture_output=True, text=True).stdout.split()
        assert seat_pids
        subprocess.run([tmux, "-L", socket_name, "kill-server"], check=True)
        line.wait_until(lambda: not subprocess.run(["pgrep", "-f", f"agent --ext 1001 --registrar "
                                                                   f"sip:127.0.0.1:{port}"],
                                                   capture_output=True).stdout, timeout=10)
        agent = {a["ext"]: a for a in line.snapshot()["agents"]}["1001"]
        assert agent["status"] == "logged_out" and not agent["registered"]
    finally:
        subprocess.run([tmux, "-L", socket_name, "kill-server"], capture_output=True)
        process.kill()
        process.wait(5)
