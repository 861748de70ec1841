import os
import subprocess
import sys

import pytest

from console.cli import main


@pytest.fixture
def run(tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("HOTLINE_PIN", raising=False)
    monkeypatch.setenv("HOTLINE_DB", str(tmp_path / "cli.db"))

    def invoke(*argv):
        code = main(list(argv))
        out, err = capsys.readouterr()
        return code, out, err
    return invoke


def test_help_lists_only_working_commands():
    result = subprocess.run([sys.executable, "-m", "console", "--help"], capture_output=True, text=True)
    assert result.returncode == 0
    listed = [line.split()[0] for line in result.stdout.split("COMMAND ...", 1)[1].splitlines()
              if line.startswith("    ") and not line.startswith("     ") and line.split()[0].isalpha()]
    assert listed == ["db", "agents", "simulate", "report", "switch", "agent", "supervisor", "wallboard", "bots", "replay", "certs", "demo"]
    for sub in (["db", "--help"], ["agents", "--help"], ["db", "seed", "--help"], ["agents", "add", "--help"],
                ["simulate", "--help"], ["report", "--help"], ["switch", "--help"], ["agent", "--help"], ["supervisor", "--help"], ["wallboard", "--help"], ["certs", "--help"],
                ["demo", "--help"]):
        assert subprocess.run([sys.executable, "-m", "console", *sub], capture_output=True).returncode == 0


def test_init_then_agents(run, monkeypatch, tmp_path):
    assert run("db", "init")[0] == 0
    code, out, _ = run("db", "init")
    assert code == 0 and "up to date" in out
    monkeypatch.setenv("HOTLINE_PIN", "4321")
    code, out, _ = run("agents", "add", "--ext", "1001", "--name", "Ann Lee", "--skills", "repair:3,complaint:2")
    assert code == 0, out
    code, out, _ = run("agents", "list")
    assert "1001" in out and "Ann Lee" in out and "complaint:2,repair:3" in out
    # nowhere in records in clear (every text cell; a raw byte search also hit timestamps' digits)
    import re

    from records.db import connect

    db = connect(tmp_path / "cli.db", migrate=False)
    cells = [value for table in db.table_names() for row in db[table].rows for value in row.values()]
    db.close()
    timestamp = re.compile(r"\d{4}-\d\d-\d\d[ T][\d:.+-]+")
    assert not [value for value in cells if isinstance(value, str) and "4321" in value
                and not timestamp.fullmatch(value)]
    assert run("agents", "set", "--ext", "1001", "--role", "supervisor")[0] == 0
    code, _, err = run("agents", "set", "--ext", "1001")
    assert code == 2 and "nothing to change" in err
    monkeypatch.setenv("HOTLINE_PIN", "12")
    code, _, err = run("agents", "set-pin", "--ext", "1001")
    assert code == 2 and "4 to 8 digits" in err
    code, _, err = run("agents", "add", "--ext", "1001", "--name", "Dup")
    assert code == 2 and "already taken" in err
    code, _, err = run("agents", "add", "--ext", "1002", "--name", "Bad", "--skills", "plumbing:2")
    assert code == 2 and "unknown skill 'plumbing'" in err
    assert run("agents", "remove", "--ext", "1001")[0] == 0
    code, _, err = run("agents", "remove", "--ext", "1001")
    assert code == 2 and "no agent with extension 1001" in err


def test_pin_without_a_terminal_asks_for_hotline_pin(tmp_path):
    env = {**os.environ, "HOTLINE_DB": str(tmp_path / "x.db")}
    env.pop("HOTLINE_PIN", None)
    subprocess.run([sys.executable, "-m", "console", "db", "init"], env=env, check=True, capture_output=True)
    result = subprocess.run([sys.executable, "-m", "console", "agents", "add", "--ext", "1001", "--name", "A"],
                            env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True)
    assert result.returncode == 2
    assert result.stderr.strip() == "hotline: no terminal to read the PIN from; set HOTLINE_PIN for unattended use"


def test_db_option_works_before_and_after_the_subcommand(run, tmp_path):
    assert run("--db", str(tmp_path / "a.db"), "db", "init")[0] == 0
    assert run("db", "init", "--db", str(tmp_path / "b.db"))[0] == 0
    assert (tmp_path / "a.db").exists() and (tmp_path / "b.db").exists()


def test_user_errors_are_one_clear_line(run, tmp_path):
    (tmp_path / "junk.db").write_text("hello")
    code, _, err = run("--db", str(tmp_path / "junk.db"), "db", "info")
    assert code == 2 and err.startswith("hotline: ") and "not a SQLite database" in err
    code, _, err = run("--db", str(tmp_path / "none.db"), "agents", "list")
    assert code == 2 and "no such database" in err
    bad = tmp_path / "sla.yaml"
    bad.write_text("timezone: Asia/Hong_Kong\ntypes:\n  repair: {department: plumbing}\n")
    code, _, err = run("db", "seed", "--residents", "10", "--sla", str(bad))
    assert code == 2 and f"{bad}:2: types: unknown key" not in err and "sla.yaml:" in err
    code, _, err = run("db", "seed", "--residents", "10", "--as-of", "yesterday")
    assert code == 2 and "--as-of" in err


def test_seed_prints_what_it_made_and_refuses_to_seed_twice(run):
    code, out, _ = run("db", "seed", "--residents", "200", "--seed", "3", "--as-of", "2026-11-22T09:00")
    assert code == 0
    assert "residents" in out and "200" in out and "2001   supervisor" in out
    code, _, err = run("db", "seed", "--residents", "200")
    assert code == 2 and "already holds residents" in err
    code, out, _ = run("db", "info")
    assert code == 0 and "open work orders" in out and "overdue now" in out


@pytest.mark.parametrize("argv, words", [
    (["db", "seed", "--residents", "many"], "argument --residents: invalid int value"),
    (["switch", "--sip"], "argument --sip: expected one argument"),
    (["agents", "add", "--name", "Ann"], "the following arguments are required: --ext"),
    (["simulate"], "the following arguments are required: FILE"),
    (["demo", "--loud"], "unrecognized arguments: --loud"),
])
def test_a_usage_mistake_is_one_hotline_line_and_status_2(argv, words):
    result = subprocess.run([sys.executable, "-m", "console", *argv], capture_output=True, text=True, timeout=60)
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("hotline: ") and words in result.stderr


def test_sla_means_the_same_everywhere_and_a_bad_one_is_one_line(run, tmp_path):
    assert run("db", "init")[0] == 0
    for argv in (["--sla", str(tmp_path / "missing.yaml"), "db", "info"], ["db", "info", "--sla", "nope.yaml"],
                 ["simulate", "scenarios/library/erlang-c.yaml", "--sla", "nope.yaml"]):
        code, out, err = run(*argv)
        assert code == 2 and err.startswith("hotline: ") and "no such file" in err, argv


@pytest.mark.parametrize("option, make, words", [
    ("--report", lambda tmp: tmp / "no-such-dir" / "r.json", "does not exist"),
    ("--report", lambda tmp: tmp, "is a directory"),
    ("--queue-log", lambda tmp: tmp / "gone" / "q.log", "does not exist"),
])
def test_simulate_checks_every_output_before_writing_anything(run, tmp_path, option, make, words):
    db_path = tmp_path / "sim.db"
    code, out, err = run("simulate", "scenarios/library/erlang-c.yaml", "--calls", "100", "--db", str(db_path),
                         option, str(make(tmp_path)))
    assert code == 2 and err.count("\n") == 1 and words in err and "Traceback" not in err
    assert not db_path.exists()    # nothing written before the mistake was found


@pytest.mark.parametrize("command", [["agent", "--ext", "1001", "--audio", "null"], ["supervisor", "--ext", "2001"]])
def test_a_wrong_pin_at_the_seat_is_asked_again_then_refused(tmp_path, command):
    # found using the demo: one typo ended `hotline agent`, and the whole command had to be
    # retyped; the supervisors' console did the same (found by the demo trial)
    import pty
    import select

    from test_sip_register import start_switch

    _, switch, control = start_switch(tmp_path, "--no-media")   # the switch checks the PIN: the seat has no records
    env = {**os.environ, "XDG_STATE_HOME": str(tmp_path / "state")}
    env.pop("HOTLINE_PIN", None)
    leader, follower = pty.openpty()
    seat = subprocess.Popen([sys.executable, "-m", "console", *command, "--control", str(control)], env=env,
                            stdin=follower, stdout=follower, stderr=follower, close_fds=True,
                            start_new_session=True)   # its own session, as at a terminal
    os.close(follower)
    screen = b""

    def read_until(text: bytes) -> None:
        nonlocal screen
        while text not in screen:
            ready, _, _ = select.select([leader], [], [], 20)
            assert ready, screen.decode(errors="replace")
            try:
                screen += os.read(leader, 4096)
            except OSError:      # the process is gone and the pty closed
                break
    transcript = b""
    try:
        for _ in range(3):
            read_until(b"PIN (4-8 digits): ")
            transcript, screen = transcript + screen, b""
            os.write(leader, b"4321\n")     # nobody's PIN
        read_until(b"wrong extension or PIN\r\n")
        assert seat.wait(20) == 2
        assert transcript.count(b"wrong extension or PIN; try again") == 2   # asked 3 times in all
        assert b"try again" not in screen and b"4321" not in transcript + screen   # never echoed
    finally:
        if seat.poll() is None:
            seat.kill()
        os.close(leader)
        switch.kill()
        switch.wait(5)


def test_log_lines_are_stamped_in_the_centres_time_zone_with_its_offset():
    import datetime as dt
    import logging
    from zoneinfo import ZoneInfo

    from console.logtime import CentreTimeFormatter

    record = logging.LogRecord("hotline.switch", logging.INFO, __file__, 1, "SIP on", None, None)
    record.created = dt.datetime(2026, 12, 3, 15, 0, tzinfo=dt.timezone.utc).timestamp()
    line = CentreTimeFormatter(tz=ZoneInfo("Asia/Hong_Kong")).format(record)
    assert line == "2026-12-03 23:00:00.000+08:00 hotline.switch INFO SIP on"   # the feed's clock, not UTC's


def test_the_supervisor_console_without_a_switch_says_so_in_one_line(tmp_path):
    result = subprocess.run([sys.executable, "-m", "console", "--db", str(tmp_path / "none.db"), "supervisor",
                             "--ext", "2001"], capture_output=True, text=True, env={**os.environ, "HOTLINE_PIN": "1234"})
    assert result.returncode == 2
    assert result.stderr.startswith("hotline: no switch is running at ") and result.stderr.count("\n") == 1


def test_a_report_piped_into_head_ends_quietly(tmp_path):
    import importlib.util
    import random
    from pathlib import Path

    spec = importlib.util.spec_from_file_location("bench_report", Path(__file__).parent.parent / "bench" / "report.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    db = tmp_path / "r.db"
    bench.build(db, 3000, 40, random.Random(1))   # a busy day: 2027-01-15
    report = f"{sys.executable} -m console --db {db} report --day 2027-01-15 --interval 15m --by agent --format json"
    whole = subprocess.run(report, shell=True, capture_output=True, text=True).stdout
    assert len(whole) > 200_000   # more than a pipe holds: head's early close breaks it
    result = subprocess.run(f"{report} | head -1", shell=True, capture_output=True, text=True)
    assert result.stdout == "[\n" and "Traceback" not in result.stderr, result.stderr


def test_a_seat_pointed_at_no_switch_says_so_and_registers_no_phone(tmp_path):
    """A seat started with a wrong --db found no control socket, registered its phone
    anyway with the registrar it was given, and took the extension's calls from the
    seat logged in with the right one (a demo trial)."""
    import socket

    registrar = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    registrar.bind(("127.0.0.1", 0))
    registrar.settimeout(0.5)
    try:
        result = subprocess.run(
            [sys.executable, "-m", "console", "--db", str(tmp_path / "nosuch.db"), "agent", "--ext", "1001",
             "--audio", "null", "--registrar", f"sip:127.0.0.1:{registrar.getsockname()[1]}"],
            capture_output=True, text=True, env={**os.environ, "HOTLINE_PIN": "1234"}, timeout=60)
        assert result.returncode == 2, result.stderr
        assert result.stderr.startswith("hotline: no switch is running at ") and "nosuch.sock" in result.stderr
        assert result.stderr.count("\n") == 1
        try:
            heard = registrar.recv(4096)
        except socket.timeout:
            heard = b""
        assert b"REGISTER" not in heard
    finally:
        registrar.close()
