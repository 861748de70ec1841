"""TLS for the control API over TCP: seats and supervisors on other machines.

The switch holds a certificate and its key; a client pins that certificate (the file,
copied to the agent's machine): the connection is made only to the holder of that key,
and the token and PINs it carries never cross the network in clear. A site without its
own certificate authority makes a self-signed pair with `hotline certs`. Plain TCP is
allowed on loopback only (a seat on the switch's own host, tests).
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
import socket
import ssl
from pathlib import Path


class TlsError(Exception):
    """A certificate or key that cannot be used; the message names the file."""


def is_loopback(host: str) -> bool:
    """Only this machine can reach `host` (127.0.0.0/8, ::1, localhost)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def server_context(cert: str | Path, key: str | Path) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_cert_chain(str(cert), str(key))
    except FileNotFoundError as exc:
        raise TlsError(f"no such file: {exc.filename}") from None
    except (ssl.SSLError, OSError) as exc:
        raise TlsError(f"{cert} and {key} are not a certificate and its key ({exc.strerror or exc})") from None
    return context


def client_context(pinned: str | Path) -> ssl.SSLContext:
    """Trust exactly the certificate in `pinned` (the switch's, or the site's CA)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    # The pinned certificate is the trust anchor; the agent may reach the switch by an
    # address the certificate does not name (a VPN, NAT), so the name is not checked:
    # only the holder of the pinned certificate's key can complete the handshake.
    context.check_hostname = False
    try:
        context.load_verify_locations(cafile=str(pinned))
    except FileNotFoundError:
        raise TlsError(f"no such file: {pinned}") from None
    except (ssl.SSLError, OSError) as exc:
        raise TlsError(f"{pinned} is not a certificate ({exc})") from None
    return context


def make_self_signed(directory: str | Path, names: list[str], *, days: int = 825) -> tuple[Path, Path]:
    """switch.crt (0644: copied to every seat) and switch.key (0600: stays on the switch)
    in `directory`, naming `names` (host names and addresses) and this host."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    cert_path, key_path = directory / "switch.crt", directory / "switch.key"
    for path in (cert_path, key_path):
        if path.exists():
            raise TlsError(f"{path} exists: remove it first (seats pinned to the old certificate must get the new one)")
    names = list(dict.fromkeys([*names, socket.gethostname(), "localhost", "127.0.0.1"]))
    alt_names: list[x509.GeneralName] = []
    for name in names:
        try:
            alt_names.append(x509.IPAddress(ipaddress.ip_address(name)))
        except ValueError:
            alt_names.append(x509.DNSName(name))
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"hotline switch {names[0]}")])
    now = dt.datetime.now(dt.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=days))
            .add_extension(x509.SubjectAlternativeName(alt_names), critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .sign(key, hashes.SHA256()))
    key_bytes = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                  serialization.NoEncryption())
    descriptor = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "wb") as out:
        out.write(key_bytes)
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    cert_path.chmod(0o644)
    return cert_path, key_path
