"""The supervisors' console over a real SSH connection: an OpenSSH server on a loopback
port whose ForceCommand is `hotline supervisor` (as a site would set it up for its
supervisors), a session through it in tmux, the screen read back, then the connection
cut: the console must not be left running."""
import os
import shutil
import subprocess
import sys
import time

import pytest

from scenarios.live import free_udp_port
from test_sip_register import start_switch

SSHD = shutil.which("sshd") or ("/usr/sbin/sshd" if os.path.exists("/usr/sbin/sshd") else None)
TMUX = shutil.which("tmux")

if not (SSHD and TMUX and shutil.which("ssh")):
    if os.environ.get("HOTLINE_REQUIRE_SSH"):
        raise RuntimeError("HOTLINE_REQUIRE_SSH is set but sshd, ssh or tmux is missing (apt-get install "
                           "openssh-server openssh-client tmux)")
    pytest.skip("needs sshd, ssh and tmux", allow_module_level=True)


def screen(session: str) -> str:
    return subprocess.run([TMUX, "capture-pane", "-p", "-t", session], capture_output=True, text=True).stdout


def wait_for(predicate, seconds: float, what: str):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"not within {seconds} s: {what}")


@pytest.fixture
def sshd(tmp_path):
    """sshd on 127.0.0.1 with its own host key, letting in one client key, whose every
    session runs the supervisors' console."""
    keys = tmp_path / "keys"
    keys.mkdir(mode=0o700)
    for name in ("host", "client"):
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(keys / name)], check=True)
    (keys / "authorized_keys").write_text((keys / "client.pub").read_text())
    os.chmod(keys / "authorized_keys", 0o600)
    port, switch, control = start_switch(tmp_path)
    marker = str(tmp_path / "switch.db")   # the console's command line names this database
    command = f"env HOTLINE_PIN=9999 {sys.executable} -m console --db {marker} supervisor --ext 2001 --control {control}"
    config = tmp_path / "sshd_config"
    ssh_port = free_udp_port()
    config.write_text(f"""Port {ssh_port}
ListenAddress 127.0.0.1
HostKey {keys / 'host'}
AuthorizedKeysFile {keys / 'authorized_keys'}
PidFile {tmp_path / 'sshd.pid'}
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitRootLogin prohibit-password
StrictModes no
UsePAM no
ForceCommand {command}
""")
    os.makedirs("/run/sshd", exist_ok=True)   # sshd's privilege-separation directory
    daemon = subprocess.Popen([SSHD, "-D", "-e", "-f", str(config)], stdout=subprocess.DEVNULL,
                              stderr=open(tmp_path / "sshd.log", "w"))
    time.sleep(0.5)
    assert daemon.poll() is None, (tmp_path / "sshd.log").read_text()
    yield {"port": ssh_port, "key": keys / "client", "marker": marker, "log": tmp_path / "sshd.log"}
    daemon.terminate()
    daemon.wait(timeout=10)
    switch.terminate()
    switch.wait(timeout=15)


def console_processes(marker: str) -> list[str]:
    found = subprocess.run(["pgrep", "-af", f"{marker} supervisor"], capture_output=True, text=True).stdout
    return [line for line in found.splitlines() if "pgrep" not in line and "sshd" not in line and " env " not in line]


def test_the_console_over_ssh_shows_the_centre_and_leaves_nothing_behind_when_the_connection_drops(sshd):
    session = f"ssh-{os.getpid()}"
    ssh = (f"ssh -t -p {sshd['port']} -i {sshd['key']} -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null "
           f"-o LogLevel=ERROR 127.0.0.1")
    subprocess.run([TMUX, "new-session", "-d", "-s", session, "-x", "120", "-y", "40", ssh], check=True)
    try:
        text = wait_for(lambda: (lambda s: s if "Sue (2001)" in s and "live" in s else "")(screen(session)), 30,
                        "the console's header over SSH")
        assert "NOT LIVE" not in text and "Queues today" in text and "repair" in text
        assert console_processes(sshd["marker"]), "the console runs on the server side"
        # the connection drops: the ssh client is killed, as when a laptop's lid closes
        client = subprocess.run(["pgrep", "-f", f"ssh -t -p {sshd['port']}"], capture_output=True,
                                text=True).stdout.split()
        assert client
        for pid in client:
            os.kill(int(pid), 9)
        wait_for(lambda: not console_processes(sshd["marker"]), 15,
                 f"the console to exit after the connection dropped: {console_processes(sshd['marker'])}")
    finally:
        subprocess.run([TMUX, "kill-session", "-t", session], capture_output=True)
