"""The switch's config file (numbers, voice menu, queues) and its start-up options."""
import json
import os
import socket
import subprocess
import sys
import time

import pytest

from records.supervision import AlertSettings

from records.db import connect
from records.agents import add_agent
from siteconfig.yamlsource import ConfigError, load_text
from telephony.control import control_address
from telephony.switchconfig import config_from_document, load_switch_config
from telephony.switchcore import SwitchCore


def config(text: str):
    return config_from_document(load_text(text, "switch.yaml"))


def test_the_shipped_default_routes_numbers_to_queues_and_the_menu():
    default = load_switch_config()
    assert default.route("2000") == "menu"
    assert default.route("2001") == "emergency"
    assert default.route("repair") == "repair"          # a queue's own name, as SIPp tests dial
    assert default.route("+85299990000") == "general"   # unlisted
    assert default.menu.options["9"] == "emergency" and default.menu.default == "general"
    queues = {q.name: q for q in default.queues}
    assert set(queues) == {"repair", "complaint", "billing", "enquiry", "emergency", "general"}
    assert queues["emergency"].wrap_up_s == 60 and queues["emergency"].sl_threshold_s == 10
    assert queues["repair"].max_wait_s == 600 and queues["billing"].wrap_up_s == 30


def test_the_trunk_for_outbound_calls_and_which_numbers_are_the_switchs_own():
    assert load_switch_config().trunk is None
    assert config("trunk: sip:10.0.0.5:5080").trunk == ("10.0.0.5", 5080)
    assert config("trunk: gw.example.net").trunk == ("gw.example.net", 5060)
    default = load_switch_config()
    assert default.is_internal("2000") and default.is_internal("repair") and not default.is_internal("+85291234567")


def test_numbers_written_as_yaml_integers_still_match_what_sip_dials():
    assert config("numbers: {2000: billing}\nunlisted: enquiry").route("2000") == "billing"
    assert config("numbers: {2000: billing}\nunlisted: enquiry").route("2009") == "enquiry"


@pytest.mark.parametrize("text, line, key, words", [
    ("numbers: {'2000': repairs}", 1, "numbers.2000", "expected a queue"),
    ("menu:\n  options: {'12': repair}", 2, "menu.options.12", "single keys"),
    ("menu:\n  options: {'1': menu}", 2, "menu.options.1", "leads to a queue"),
    ("menu:\n  default: menu", 2, "menu.default", "is a queue"),
    ("menu:\n  timeout_s: 0", 2, "menu.timeout_s", "at least 1"),
    ("queues:\n  repair:\n    on_max_wait: overflow:nowhere", 3, "queues.repair.on_max_wait", "unknown queue"),
    ("queues:\n  repair:\n    wrapup_s: 3", 3, "queues.repair.wrapup_s", "unknown key"),
    ("queues:\n  plumbing: {}", 2, "queues.plumbing", "unknown key"),
    ("extensions: {}", 1, "extensions", "unknown key"),
    ("numbers: [2000]", 1, "numbers", "expected a mapping"),
    ("numbers: {}\ntrunk: sip:gw:99999", 2, "trunk", "expected sip:HOST:PORT"),
    ("trunk: [gw]", 1, "trunk", "expected sip:HOST:PORT"),
])
def test_mistakes_name_the_line_and_key(text, line, key, words):
    with pytest.raises(ConfigError) as caught:
        config(text)
    assert (caught.value.line, caught.value.key) == (line, key) and words in caught.value.message


def test_without_media_the_menu_number_goes_to_the_menu_default(tmp_path):
    db = connect(tmp_path / "r.db", create=True)
    core = SwitchCore(db, config=config("numbers: {'2000': menu, '2001': emergency}\nmenu: {default: enquiry}"))
    assert core.queue_for("2000") == "enquiry" and core.queue_for("2001") == "emergency"
    core.close()


@pytest.mark.parametrize("text, expected", [
    ("127.0.0.1:7070", ("127.0.0.1", 7070)), ("[::1]:7070", ("::1", 7070)), ("/run/hotline.sock", "/run/hotline.sock"),
    ("./a:1", "./a:1"), ("hotline.sock", "hotline.sock"), ("host:name.sock", "host:name.sock"),
])
def test_control_addresses(text, expected):
    assert control_address(text) == expected


def _free_tcp_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start_switch(tmp_path, *extra, env=None):
    db_path = tmp_path / "switch.db"
    if not db_path.exists():
        db = connect(db_path, create=True)
        add_agent(db, ext="2001", name="Sue", pin="9999", role="supervisor")
        db.close()
    log_path = tmp_path / "switch.log"
    with open(log_path, "w") as log:
        process = subprocess.Popen([sys.executable, "-m", "console", "--db", str(db_path), "switch",
                                    "--sip", f"127.0.0.1:{_free_tcp_port()}", *extra],
                                   stdout=log, stderr=subprocess.STDOUT, text=True,
                                   env={**os.environ, **(env or {})})
    return process, log_path


def _wait_started(process, log_path):
    deadline = time.monotonic() + 15
    while "hotline switch: SIP on" not in log_path.read_text():
        assert process.poll() is None and time.monotonic() < deadline, log_path.read_text()
        time.sleep(0.05)


def test_tcp_control_needs_the_token_first(tmp_path):
    port = _free_tcp_port()
    process, log_path = _start_switch(tmp_path, "--control", f"127.0.0.1:{port}",
                                      env={"HOTLINE_CONTROL_TOKEN": "s3cret-token"})
    try:
        _wait_started(process, log_path)
        assert "media anchored" in log_path.read_text()
        with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
            stream = s.makefile("rw")

            def ask(request):
                stream.write(json.dumps(request) + "\n")
                stream.flush()
                return json.loads(stream.readline())

            assert ask({"id": 1, "op": "login", "ext": "2001", "pin": "9999"})["error"]["code"] == "unauthorised"
            assert ask({"id": 2, "op": "auth", "token": "wrong"})["error"]["code"] == "unauthorised"
            assert ask({"id": 3, "op": "auth", "token": "s3cret-token"})["ok"]
            assert ask({"id": 4, "op": "login", "ext": "2001", "pin": "9999"})["ok"]
            assert "emergency" in ask({"id": 5, "op": "snapshot"})["snapshot"]["queues"]
    finally:
        process.terminate()
        process.wait(10)
    assert process.returncode == 0


def test_without_media_the_switch_says_where_menu_callers_go(tmp_path):
    process, log_path = _start_switch(tmp_path, "--no-media")
    try:
        _wait_started(process, log_path)
        assert "callers to its numbers go to the general queue" in log_path.read_text()
    finally:
        process.terminate()
        process.wait(10)


def test_tcp_control_without_a_token_and_a_bad_config_are_refused_at_start(tmp_path):
    process, log_path = _start_switch(tmp_path, "--control", f"127.0.0.1:{_free_tcp_port()}",
                                      env={"HOTLINE_CONTROL_TOKEN": ""})
    assert process.wait(15) == 2 and "needs a token" in log_path.read_text()
    bad = tmp_path / "bad.yaml"
    bad.write_text("numbers:\n  '2000': plumbing\n")
    process, log_path = _start_switch(tmp_path, "--config", str(bad))
    assert process.wait(15) == 2
    assert "bad.yaml:2: numbers.2000: expected a queue" in log_path.read_text()


def test_every_timer_of_the_day_is_a_setting_and_the_defaults_are_sane():
    default = load_switch_config()
    assert default.sip.registration_max_s == 3600 and default.sip.nonce_s == 300
    assert default.sip.granted_expiry(None) == 300 and default.sip.granted_expiry(7200) == 3600
    assert default.sip.granted_expiry(0) == 0
    short = config("sip: {registration_max_s: 20, nonce_s: 5, qualify_s: 1, qualify_misses: 3, rtp_ports: 20000-20099}\n"
                   "breaks: {lunch: 30, fire_drill: 0.5}")
    assert short.sip.granted_expiry(300) == 20 and short.sip.nonce_s == 5 and short.sip.qualify_misses == 3
    assert short.sip.rtp_ports == (20000, 20099)
    assert short.break_limit_s("lunch") == 1800 and short.break_limit_s("fire_drill") == 30
    assert short.break_limit_s("nap") is None
    assert default.breaks == {"lunch": 60, "training": 120, "meeting": 60, "personal": 15}


@pytest.mark.parametrize("text, key, words", [
    ("sip: {nonce: 5}", "sip.nonce", "unknown key"),
    ("sip: {nonce_s: 0}", "sip.nonce_s", "at least 1"),
    ("sip: {qualify_misses: 1.5}", "sip.qualify_misses", "whole number"),
    ("sip: {rtp_ports: 5000}", "sip.rtp_ports", "LOW-HIGH"),
    ("breaks: {lunch: soon}", "breaks.lunch", "expected a number"),
    ("breaks: {}", "breaks", "reasons with their limit"),
    ("breaks: {'coffee break': 10}", "breaks.coffee break", "one word"),
    ("alerts: {mass_contacts: 1}", "alerts.mass_contacts", "at least 2"),
    ("alerts: {repeat_within: 24}", "alerts.repeat_within", "unknown key"),
    ("sip: {qualify_rate: 0.5}", "sip.qualify_rate", "at least 1"),
    ("media: {nodes: udp:127.0.0.1:7722}", "media.nodes", "a list of nodes"),
    ("media: {nodes: [{weight: 2}]}", "media.nodes[0]", "control socket"),
    ("media: {nodes: [{control: '127.0.0.1:7722'}]}", "media.nodes[0].control", "udp:HOST:PORT"),
    ("media: {nodes: [{control: 'udp:h:1', weight: 0}]}", "media.nodes[0].weight", "at least"),
    ("media: {nodes: [{control: 'udp:h:1'}, {control: 'udp:h:1'}]}", "media.nodes", "listed twice"),
    ("media: {notify: 'udp:h:1'}", "media.notify", "tcp:HOST:PORT"),
])
def test_timer_and_break_mistakes_name_the_key(text, key, words):
    with pytest.raises(ConfigError) as error:
        config(text)
    assert error.value.key == key and words in error.value.message


def test_media_is_embedded_unless_nodes_are_listed_with_their_weights():
    assert config("").media.nodes == ()
    media = config("media:\n  notify: tcp:10.0.0.2:7724\n  nodes:\n    - {control: 'udp:10.0.0.5:7722', weight: 2}\n"
                   "    - {control: 'udp:10.0.0.6:7722', recordings: /srv/rec, sounds: /srv/sounds}\n").media
    assert media.notify == "tcp:10.0.0.2:7724"
    assert [(n.control, n.weight, n.recordings) for n in media.nodes] == \
        [("udp:10.0.0.5:7722", 2.0, None), ("udp:10.0.0.6:7722", 1.0, "/srv/rec")]
    assert config("sip: {qualify_rate: 40}").sip.qualify_rate == 40


def test_the_supervisors_alert_thresholds_are_settings():
    assert config("alerts: {repeat_within_h: 12, mass_contacts: 8, mass_within_min: 15}").alerts == \
        AlertSettings(repeat_within_s=12 * 3600, mass_contacts=8, mass_within_s=15 * 60)
    assert config("").alerts == AlertSettings()
