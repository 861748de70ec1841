"""`hotline demo` end to end: seed, switch, bot agents, simulated callers, clean stop.

Real SIP on loopback between two processes (the switch, and the demo's sippy phones);
no SIPp needed, as on a fresh machine running `make demo`.
"""
import os
import signal
import subprocess
import sys
import time

from records.db import connect


def start_demo(tmp_path):
    """`hotline demo` with 3 bots and quick calls, its output in demo.out."""
    db_path = tmp_path / "demo.db"
    out_path = tmp_path / "demo.out"
    with open(out_path, "w") as out:
        demo = subprocess.Popen([sys.executable, "-m", "console", "--db", str(db_path), "demo", "--residents", "200",
                                 "--bots", "3", "--calls-per-hour", "2400", "--talk-s", "3"],
                                stdout=out, stderr=subprocess.STDOUT, text=True)
    return db_path, out_path, demo


def test_the_demo_answers_calls_records_them_and_stops_cleanly_on_ctrl_c(tmp_path):
    db_path, out_path, demo = start_demo(tmp_path)
    try:
        deadline = time.monotonic() + 90
        while out_path.read_text().count(" finished with ") < 4:   # four calls talked to their end
            assert demo.poll() is None and time.monotonic() < deadline, out_path.read_text()[-3000:]
            time.sleep(0.2)
        demo.send_signal(signal.SIGINT)           # what Ctrl-C does
        assert demo.wait(30) == 0, out_path.read_text()[-3000:]
    finally:
        if demo.poll() is None:
            demo.kill()
    output = out_path.read_text()
    assert "Extension 1001 is yours" in output and "agent --ext 1001" in output and "--audio null" in output
    assert "not a terminal" in output and "supervisor --ext 2001" in output   # why no seat; the console's command
    assert "hotline demo: stopped." in output and "the records of this run:" in output
    assert "waits in" in output and "rings at" in output and "finished with" in output
    finished_lines = [line for line in output.splitlines() if " finished with " in line]
    assert all(line.endswith("the caller hung up") for line in finished_lines)   # the agent never hangs up first
    assert oct(os.stat(tmp_path / "demo.pins").st_mode & 0o777) == "0o600"
    assert "hotline switch: stopped" in (tmp_path / "demo.switch.log").read_text()
    assert finished_lines[0] in (tmp_path / "demo.feed.log").read_text()   # the feed is kept, printed or not
    assert not (tmp_path / "demo.sock").exists()
    db = connect(db_path, migrate=False)
    try:
        rows = db.execute("SELECT outcome, ended_at, agent_ext, disposition FROM interactions WHERE node = 'switch'"
                          ).fetchall()
        states = db.execute("SELECT count(*) FROM agent_states").fetchone()[0]
        audited = db.execute("SELECT count(*) FROM audit").fetchone()[0]
        bot_skills = db.execute("SELECT count(*) FROM agent_skills s JOIN agents a ON a.id = s.agent_id "
                                "WHERE a.ext = '1002'").fetchone()[0]
    finally:
        db.close()
    # the bots' skills are the demo's set-up, not something a supervisor did (no audit row)
    assert audited == 0 and bot_skills == 6
    assert all(ended is not None for _, ended, _, _ in rows)     # nothing left open by the stop
    answered = [r for r in rows if r[0] == "answered"]
    assert len(answered) >= 4 and all(r[2] in ("1002", "1003", "1004") for r in answered)
    assert sum(1 for r in answered if r[3]) >= 3                   # bots send dispositions
    assert not any("work order opened" in r[3] for r in answered)   # a bot opens no work order, so never says so
    assert states > 0
    # the stop's summary adds up, and says the same as the records
    summary = next(line for line in output.splitlines() if line.startswith("hotline demo: stopped."))
    import re
    placed, finished, gave_up, refused, cut_off = map(int, re.findall(r"(\d+) (?:calls placed|talked|gave up|"
                                                                   r"refused|still in progress)", summary))
    assert placed == finished + gave_up + refused + cut_off
    outcomes = {outcome: sum(1 for r in rows if r[0] == outcome) for outcome in ("answered", "interrupted")}
    assert outcomes["interrupted"] == cut_off and outcomes["answered"] >= finished


def _switch_pid(db_path) -> int:
    for proc in os.listdir("/proc"):
        if proc.isdigit():
            try:
                args = open(f"/proc/{proc}/cmdline", "rb").read().split(b"\0")
            except OSError:
                continue
            if str(db_path).encode() in args and b"switch" in args:
                return int(proc)
    raise AssertionError("no switch process")


def test_a_switch_that_dies_comes_back_and_the_bots_and_feed_carry_on(tmp_path):
    # found using the demo: after the switch was killed and started again, every caller was
    # abandoned (the bots never logged in again) and the feed stopped for good
    db_path, out_path, demo = start_demo(tmp_path)
    try:
        def wait_for(condition, seconds=90):
            deadline = time.monotonic() + seconds
            while not condition(out_path.read_text()):
                assert demo.poll() is None and time.monotonic() < deadline, out_path.read_text()[-3000:]
                time.sleep(0.2)
        wait_for(lambda text: text.count(" finished with ") >= 2)
        _supervisor_puts_on_break(tmp_path, "1004", "lunch")   # (from the demo's trial: lost to the crash)
        first = _switch_pid(db_path)
        os.kill(first, signal.SIGKILL)                 # a crash: no clean stop, calls cut
        wait_for(lambda text: "the switch is back" in text)
        assert _switch_pid(db_path) != first
        wait_for(lambda text: text.split("the switch is back")[1].count(" finished with ") >= 3)
        demo.send_signal(signal.SIGINT)
        assert demo.wait(30) == 0, out_path.read_text()[-3000:]
    finally:
        if demo.poll() is None:
            demo.kill()
    output = out_path.read_text()
    assert "the switch stopped (exit status -9); starting it again" in output
    assert "Traceback" not in output, output[output.index("Traceback") - 1500:][:4000]
    after = output.split("the switch is back")[1]
    for ext in ("1002", "1003"):   # every bot answers again, the ones whose calls the crash cut too
        assert any(line.split("  ", 1)[-1].startswith(f"{ext} ") and " answered " in line
                   for line in after.splitlines()), (ext, after[-3000:])
    # the break the supervisor set goes on after the restart: 1004 logs in again, on lunch
    assert not any(line.split("  ", 1)[-1].startswith("1004 ") and " answered " in line for line in after.splitlines())
    log = (tmp_path / "demo.switch.log").read_text()
    assert log.count("hotline switch: SIP on") == 2
    assert "Traceback" not in log, log[log.index("Traceback") - 500:][:3000]
    db = connect(db_path, migrate=False)
    try:
        open_rows = db.execute("SELECT count(*) FROM interactions WHERE node = 'switch' AND ended_at IS NULL"
                               ).fetchone()[0]
        states_1004 = db.execute("SELECT status, reason FROM agent_states WHERE ext = '1004' ORDER BY at, id"
                                 ).fetchall()
    finally:
        db.close()
    assert open_rows == 0     # what the crash cut is recorded too (start-up recovery), nothing left open
    crash = states_1004.index(("logged_out", "switch went down"))
    assert states_1004[crash - 1] == states_1004[crash + 1] == ("on_break", "lunch"), states_1004


def _supervisor_puts_on_break(tmp_path, ext, reason):
    import json
    import socket
    from scenarios.live import read_pins
    pins = read_pins(tmp_path / "demo.pins")
    supervisor = "2001"
    with socket.socket(socket.AF_UNIX) as sock:
        sock.connect(str(tmp_path / "demo.sock"))
        stream = sock.makefile("rw")
        for n, request in enumerate(({"op": "login", "ext": supervisor, "pin": pins[supervisor]},
                                     {"op": "force_status", "ext": ext, "status": "on_break", "reason": reason})):
            stream.write(json.dumps({"id": n, **request}) + "\n")
            stream.flush()
            reply = json.loads(stream.readline())
            while "ok" not in reply:          # an event ahead of the reply
                reply = json.loads(stream.readline())
            assert reply["ok"], reply


def test_the_feed_tells_a_declined_ring_from_one_nobody_answered(tmp_path):
    import io

    from console.demo import Feed
    from telephony.acd import events as ev
    from telephony.wire import Delivered

    connect(tmp_path / "feed.db", create=True).close()   # an empty, migrated database: every caller is unknown
    out = io.StringIO()
    feed = Feed(str(tmp_path / "feed.db"), {"1002": "Ann Lee"}, out=out)
    try:
        feed(Delivered(ev.RingNoAnswer(1e9, "c1", "repair", "1002", 15.0)))
        feed(Delivered(ev.RingNoAnswer(1e9, "c2", "repair", "1002", 1.0, declined=True)))
    finally:
        feed.close()
    rang_out, declined = out.getvalue().splitlines()
    assert rang_out.endswith("1002 Ann Lee did not answer c1 in 15 s; trying the next agent")
    assert declined.endswith("1002 Ann Lee did not take c2 (declined, busy or unreachable); trying the next agent")


def test_the_demo_run_again_goes_on_with_its_records(tmp_path):
    # found using the demo: every `make demo` seeded a new database, so a restart of the
    # demo wiped the records, logs and recordings of the last one without asking
    db_path = tmp_path / "demo.db"

    def demo(*extra):
        return subprocess.run([sys.executable, "-m", "console", "--db", str(db_path), "demo", "--residents", "200",
                               "--bots", "2", "--calls-per-hour", "1200", "--talk-s", "2", "--seconds", "6", *extra],
                              capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)

    first = demo()
    assert first.returncode == 0 and "seeding" in first.stdout, first.stdout[-2000:] + first.stderr[-2000:]
    db = connect(db_path, migrate=False)
    try:
        rows = db.execute("SELECT count(*) FROM interactions").fetchone()[0]
    finally:
        db.close()
    log = (tmp_path / "demo.switch.log").read_text()
    second = demo()
    assert second.returncode == 0, second.stdout[-2000:] + second.stderr[-2000:]
    assert "seeding" not in second.stdout and f"going on with {db_path}" in second.stdout
    db = connect(db_path, migrate=False)
    try:
        assert db.execute("SELECT count(*) FROM interactions").fetchone()[0] >= rows
    finally:
        db.close()
    assert (tmp_path / "demo.switch.log").read_text().startswith(log)    # the log goes on, too
    fresh = demo("--fresh")
    assert fresh.returncode == 0 and "seeding" in fresh.stdout
