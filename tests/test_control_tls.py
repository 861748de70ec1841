"""The control API over TCP with TLS, as a seat on another machine uses it: a certificate
made by `hotline certs`, pinned by the client; the wrong certificate, a plain client and
a switch that would carry PINs in clear off loopback are each refused with one clear line."""
import asyncio
import os
import socket
import ssl
import subprocess
import sys

import pytest

from records.agents import add_agent
from telephony.control import ControlServer
from telephony.control_client import ControlClient
from telephony.switchcore import SwitchCore
from telephony.tls import TlsError, client_context, is_loopback, make_self_signed, server_context

TOKEN = "s3cret-token"


@pytest.fixture(scope="module")
def certs(tmp_path_factory):
    """Two pairs: the switch's, and another site's (a switch nobody pinned)."""
    root = tmp_path_factory.mktemp("certs")
    return make_self_signed(root / "ours", ["switch.example"]), make_self_signed(root / "theirs", [])


@pytest.fixture
async def tls_switch(db, certs):
    (cert, key), _ = certs
    add_agent(db, ext="1001", name="Ann", pin="1111", skills={"repair": 3})
    core = SwitchCore(db)
    server = ControlServer(core, token=TOKEN)
    port = await server.start_tcp("127.0.0.1", 0, tls=server_context(cert, key))
    yield ("127.0.0.1", port), cert
    await server.close()
    core.close()


def test_certs_are_made_with_the_key_private_and_never_overwritten(tmp_path):
    cert, key = make_self_signed(tmp_path, ["10.0.0.5", "switch.example"])
    assert oct(key.stat().st_mode & 0o777) == "0o600" and oct(cert.stat().st_mode & 0o777) == "0o644"
    decoded = ssl._ssl._test_decode_cert(str(cert))
    names = {value for _, value in decoded["subjectAltName"]}
    assert {"10.0.0.5", "switch.example", "localhost", "127.0.0.1"} <= names
    with pytest.raises(TlsError, match="exists: remove it first"):
        make_self_signed(tmp_path, [])


def test_the_certs_command_says_where_each_file_goes(tmp_path):
    result = subprocess.run([sys.executable, "-m", "console", "certs", "--out", str(tmp_path / "tls"),
                             "--name", "switch.example"], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "copy it to every seat: --tls-ca" in result.stdout and "mode 0600" in result.stdout
    again = subprocess.run([sys.executable, "-m", "console", "certs", "--out", str(tmp_path / "tls")],
                           capture_output=True, text=True)
    assert again.returncode == 2 and again.stderr.startswith("hotline: ") and "exists" in again.stderr


async def test_a_pinned_client_logs_in_over_tls(tls_switch):
    address, cert = tls_switch
    client = await ControlClient.connect(address, TOKEN, tls_ca=str(cert))
    try:
        assert client.writer.get_extra_info("ssl_object").version() in ("TLSv1.2", "TLSv1.3")
        me = await client.ask("login", ext="1001", pin="1111")
        assert me["agent"]["name"] == "Ann"
    finally:
        await client.close()


async def test_a_switch_with_another_certificate_is_not_trusted(tls_switch, certs):
    address, _ = tls_switch
    _, (their_cert, _) = certs
    with pytest.raises(ConnectionError, match="is not the one whose certificate is"):
        await ControlClient.connect(address, TOKEN, tls_ca=str(their_cert))


async def test_a_plain_client_at_a_tls_switch_is_told_to_use_tls(tls_switch):
    address, cert = tls_switch
    with pytest.raises(ConnectionError, match="does it want TLS"):
        await ControlClient.connect(address, TOKEN)
    client = await ControlClient.connect(address, TOKEN, tls_ca=str(cert))   # the switch serves on
    await client.close()


async def test_a_tls_client_at_a_plain_switch_is_told_so(db, certs):
    (cert, _), _ = certs
    core = SwitchCore(db)
    server = ControlServer(core, token=TOKEN)
    port = await server.start_tcp("127.0.0.1", 0)
    try:
        with pytest.raises(ConnectionError, match=r"no TLS with the switch at 127\.0\.0\.1:\d+ .*does it run with "
                                                  "--tls-cert"):
            await asyncio.wait_for(ControlClient.connect(("127.0.0.1", port), TOKEN, tls_ca=str(cert)), 15)
    finally:
        await server.close()
        core.close()


async def test_tcp_off_loopback_without_tls_is_refused(db):
    server = ControlServer(SwitchCore(db), token=TOKEN)
    with pytest.raises(ValueError, match="would carry PINs in clear"):
        await server.start_tcp("0.0.0.0", 0)


def test_bad_files_are_named():
    with pytest.raises(TlsError, match="no such file: /nonexistent.crt"):
        client_context("/nonexistent.crt")
    with pytest.raises(TlsError, match="are not a certificate and its key"):
        server_context(__file__, __file__)
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback(socket.gethostname() + ".example")


def test_the_switch_refuses_to_start_with_control_reachable_in_clear(tmp_path):
    env = {**os.environ, "HOTLINE_CONTROL_TOKEN": TOKEN, "HOTLINE_DB": str(tmp_path / "s.db")}
    subprocess.run([sys.executable, "-m", "console", "db", "init"], env=env, check=True, capture_output=True)
    result = subprocess.run([sys.executable, "-m", "console", "switch", "--sip", "127.0.0.1:0", "--control",
                             "0.0.0.0:7771", "--no-media"], env=env, capture_output=True, text=True, timeout=30)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1] == (
        "hotline: control on 0.0.0.0:7771 can be reached from other machines: give --tls-cert and --tls-key "
        "(hotline certs makes a pair), or listen on 127.0.0.1")
    half = subprocess.run([sys.executable, "-m", "console", "switch", "--sip", "127.0.0.1:0", "--control",
                           "127.0.0.1:7772", "--tls-cert", "x.crt", "--no-media"], env=env, capture_output=True,
                          text=True, timeout=30)
    assert half.returncode == 2 and "needs both the certificate and its key" in half.stderr


async def test_the_supervisors_console_runs_over_tls_and_refuses_an_agent(tls_switch, db):
    """`hotline supervisor --control host:port --tls-ca switch.crt` from another machine."""
    import datetime as dt

    from console.centre import QueueSettings
    from console.supervisor import SupervisorApp, run_supervisor

    add_agent(db, ext="2001", name="Sue", pin="9999", role="supervisor")
    address, cert = tls_switch
    with pytest.raises(PermissionError, match="is an agent's"):
        await run_supervisor(ext="1001", pin="1111", control=address, token=TOKEN, tls_ca=str(cert))
    client = await ControlClient.connect(address, TOKEN, tls_ca=str(cert))
    me = await client.ask("login", ext="2001", pin="9999")

    async def never(*_):
        raise OSError("not in this test")
    app = SupervisorApp(me=me["agent"], client=client, connect=never, breaks={},
                        queues={name: QueueSettings(q["threshold_s"], q["target"])
                                for name, q in me["queue_settings"].items()}, tz=dt.timezone.utc)
    async with app.run_test(size=(120, 40)) as pilot:
        for _ in range(20):
            await pilot.pause(0.1)
            if app.live:
                break
        assert app.live and "Sue (2001) │ live" in str(app.query_one("#header").render())
        assert app.query_one("#agents").get_row("1001")[1] == "Ann"
    await client.close()
