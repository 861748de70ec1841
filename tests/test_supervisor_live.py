"""A known sequence of real SIP calls (SIPp callers, a SIPp agent phone) through the real
switch process, then every figure the supervisors' console shows for the queue and every
field of `hotline report --format json` checked against values worked out from the calls
themselves (each row's own wait, talk and wrap-up, read back from the records)."""
import datetime as dt
import json
import subprocess
import sys

from console.centre import QueueSettings
from console.supervisor import SupervisorApp, duration
from records.db import connect
from records.sla import load_policy
from telephony.control_client import ControlClient
from test_sip_calls import finished, line  # noqa: F401
from test_sip_register import switch  # noqa: F401


async def test_the_console_and_the_report_give_the_figures_of_the_calls_made(line):  # noqa: F811
    line.agent_ready("1001", "1111")
    agent = line.phone("1001", "1111", "agent_answer.xml", pause_ms=1500)
    line.wait_until(lambda: {a["ext"]: a for a in line.snapshot()["agents"]}["1001"]["registered"])
    # 1: answered by 1001 (wait < 15 s: within the threshold), talks 1.5 s
    code, output = finished(line.call())
    assert code == 0, output[-3000:]
    assert finished(agent)[0] == 0
    # 2: 1001 is in wrap-up, so this caller waits, then rings off after 1.2 s: a short abandon
    code, output = finished(line.call("caller_cancel.xml", pause_ms=1200, caller="+85291234000"))
    assert code == 0, output[-3000:]
    rows = line.wait_until(lambda: (lambda r: r if len(r) == 2 and all(x["ended_at"] for x in r) else None)(
        line.interactions()))
    answered, abandoned = rows
    assert (answered["outcome"], abandoned["outcome"]) == ("answered", "abandoned")
    assert answered["wait_s"] < 15 and abandoned["wait_s"] < 5

    client = await ControlClient.connect(str(line.control))
    me = await client.ask("login", ext="2001", pin="9999")
    queues = {name: QueueSettings(q["threshold_s"], q["target"]) for name, q in me["queue_settings"].items()}

    async def never(*_):
        raise OSError("not in this test")
    tz = load_policy().timezone
    app = SupervisorApp(me=me["agent"], client=client, connect=never, queues=queues, breaks={}, tz=tz)
    async with app.run_test(size=(160, 48)) as pilot:
        await pilot.pause(0.5)
        await app._poll_switch()
        await pilot.pause()
        table = app.screen.query_one("#queues")
        cells = [str(v) for v in table.get_row("general")]
        # queue, waiting, longest, offered, answered, abandoned, SL, ASA, abandon rate
        assert cells[:9] == ["general", "0", "-", "2", "1", "1", "50%", duration(answered["wait_s"]), "50%"], cells
    await client.close()

    db = connect(line.db_path, migrate=False)
    wrap = db.execute("SELECT wrapup_s, talk_s, hold_s FROM interactions WHERE id = ?", [answered["id"]]).fetchone()
    db.close()
    day = dt.datetime.fromtimestamp(answered["entered_at"], tz).date().isoformat()
    result = subprocess.run([sys.executable, "-m", "console", "--db", str(line.db_path), "report", "--day", day,
                             "--interval", "60m", "--format", "json"], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    [general] = [r for r in json.loads(result.stdout) if r["queue"] == "general"]
    start = dt.datetime.fromtimestamp(answered["entered_at"], tz).replace(minute=0, second=0, microsecond=0)
    assert general["interval_start"] == start.timestamp()
    assert (general["offered"], general["answered"], general["abandoned"], general["short_abandoned"],
            general["answered_within"], general["service_level"]) == (2, 1, 1, 1, 1, 0.5)
    assert general["asa_s"] == answered["wait_s"]
    assert general["aht_s"] == wrap[1] + wrap[2] + (wrap[0] or 0.0)
