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
