"""Agents: extensions, skills with proficiency, roles and PINs.

PINs are stored as salted scrypt hashes (hashlib, no extra dependency) in a
self-describing string, so the cost can be raised later without breaking old hashes.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import re
import time

from sqlite_utils import Database

from records.db import row_id
from records.schema import ROLES

SIP_REALM = "hotline"
# Queue/call types an agent can be skilled for; the routing core uses the same names.
SKILLS = ("repair", "complaint", "billing", "enquiry", "emergency", "general")
_SCRYPT = {"n": 2**14, "r": 8, "p": 1}
_EXT = re.compile(r"^[0-9]{2,8}$")
_PIN = re.compile(r"^[0-9]{4,8}$")


class AgentError(ValueError):
    """A request about agents that cannot be done as asked, with the reason."""


def hash_pin(pin: str, *, salt: bytes | None = None) -> str:
    check_pin_format(pin)
    salt = salt if salt is not None else os.urandom(16)
    digest = hashlib.scrypt(pin.encode(), salt=salt, dklen=32, **_SCRYPT)
    b64 = lambda raw: base64.b64encode(raw).decode()  # noqa: E731
    return f"scrypt${_SCRYPT['n']}${_SCRYPT['r']}${_SCRYPT['p']}${b64(salt)}${b64(digest)}"


def sip_ha1(ext: str, pin: str, realm: str = SIP_REALM) -> str:
    """The digest secret a SIP registrar needs: MD5(ext:realm:PIN), as RFC 2617 defines it.

    MD5 is the protocol's, not our choice; a short PIN's HA1 can be brute-forced from the
    database file, so the file stays readable only by the switch's group (as with any PBX
    that stores digest secrets).
    """
    return hashlib.md5(f"{ext}:{realm}:{pin}".encode()).hexdigest()


def verify_pin(pin: str, stored: str) -> bool:
    try:
        scheme, n, r, p, salt, digest = stored.split("$")
        if scheme != "scrypt":
            return False
        expected = base64.b64decode(digest)
        actual = hashlib.scrypt(pin.encode(), salt=base64.b64decode(salt), n=int(n), r=int(r),
                                p=int(p), dklen=len(expected))
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(actual, expected)


def check_pin_format(pin: str) -> None:
    if not _PIN.match(pin or ""):
        raise AgentError("a PIN is 4 to 8 digits")


def parse_skills(text: str) -> dict[str, int]:
    """'repair:3,complaint:2' -> {'repair': 3, 'complaint': 2} (proficiency 1-5, default 3)."""
    skills: dict[str, int] = {}
    for item in filter(None, (part.strip() for part in (text or "").split(","))):
        name, _, level = item.partition(":")
        name = name.strip().lower()
        if name not in SKILLS:
            raise AgentError(f"unknown skill '{name}' (expected one of: {', '.join(SKILLS)})")
        try:
            proficiency = int(level) if level.strip() else 3
        except ValueError:
            raise AgentError(f"skill '{name}': proficiency must be a number 1-5, got '{level}'") from None
        if not 1 <= proficiency <= 5:
            raise AgentError(f"skill '{name}': proficiency must be 1-5, got {proficiency}")
        if name in skills:
            raise AgentError(f"skill '{name}' is given twice")
        skills[name] = proficiency
    return skills


def format_skills(skills: dict[str, int]) -> str:
    return ",".join(f"{name}:{level}" for name, level in sorted(skills.items()))


def _check(ext: str, name: str | None, role: str | None) -> None:
    if not _EXT.match(ext or ""):
        raise AgentError(f"extension '{ext}' must be 2 to 8 digits")
    if name is not None and not name.strip():
        raise AgentError("an agent needs a name")
    if role is not None and role not in ROLES:
        raise AgentError(f"unknown role '{role}' (expected one of: {', '.join(ROLES)})")


def add_agent(db: Database, *, ext: str, name: str, pin: str, role: str = "agent",
              skills: dict[str, int] | None = None, now: float | None = None, salt: bytes | None = None) -> int:
    """Add an agent; the PIN is kept only as a salted scrypt hash and its SIP HA1."""
    _check(ext, name, role)
    pin_hash = hash_pin(pin, salt=salt)
    with db.atomic():
        if db.execute("SELECT 1 FROM agents WHERE ext = ?", [ext]).fetchone():
            raise AgentError(f"extension {ext} is already taken")
        agent_id = row_id(db.table("agents").insert({
            "ext": ext, "name": name.strip(), "role": role, "pin_hash": pin_hash,
            "sip_ha1": sip_ha1(ext, pin), "active": 1, "created_at": time.time() if now is None else now,
        }).last_pk)
        _write_skills(db, agent_id, skills or {})
    return agent_id


def _write_skills(db: Database, agent_id: int, skills: dict[str, int]) -> None:
    db.execute("DELETE FROM agent_skills WHERE agent_id = ?", [agent_id])
    db.table("agent_skills").insert_all(
        [{"agent_id": agent_id, "skill": s, "proficiency": p} for s, p in sorted(skills.items())])


def _agent_id(db: Database, ext: str) -> int:
    row = db.execute("SELECT id FROM agents WHERE ext = ? AND active = 1", [ext]).fetchone()
    if row is None:
        raise AgentError(f"no agent with extension {ext}")
    return row[0]


def update_agent(db: Database, ext: str, *, name: str | None = None, role: str | None = None,
                 skills: dict[str, int] | None = None, new_ext: str | None = None) -> None:
    _check(ext, name, role)
    with db.atomic():
        agent_id = _agent_id(db, ext)
        changes = {k: v for k, v in (("name", name and name.strip()), ("role", role)) if v}
        if new_ext and new_ext != ext:
            _check(new_ext, None, None)
            if db.execute("SELECT 1 FROM agents WHERE ext = ?", [new_ext]).fetchone():
                raise AgentError(f"extension {new_ext} is already taken")
            changes["ext"] = new_ext
            changes["sip_ha1"] = ""  # the HA1 contains the extension: a new PIN makes a new one
        if changes:
            db.table("agents").update(agent_id, changes)
        if skills is not None:
            _write_skills(db, agent_id, skills)


def set_pin(db: Database, ext: str, pin: str) -> None:
    pin_hash = hash_pin(pin)
    with db.atomic():
        db.table("agents").update(_agent_id(db, ext), {"pin_hash": pin_hash, "sip_ha1": sip_ha1(ext, pin)})


def sip_secret(db: Database, ext: str) -> str | None:
    """The HA1 a registrar checks REGISTERs from `ext` against; None if there is none."""
    row = db.execute("SELECT sip_ha1 FROM agents WHERE ext = ? AND active = 1", [ext]).fetchone()
    return row[0] if row and row[0] else None


def remove_agent(db: Database, ext: str) -> None:
    """Deactivate: the agent's past contacts and work orders keep pointing at them.

    The extension is released (renamed) so it can be given to someone new.
    """
    with db.atomic():
        agent_id = _agent_id(db, ext)
        db.table("agents").update(agent_id, {"active": 0, "ext": f"{ext}~{agent_id}"})
        db.execute("DELETE FROM agent_skills WHERE agent_id = ?", [agent_id])


def check_login(db: Database, ext: str, pin: str) -> dict | None:
    """The agent if ext and PIN match, else None (the same answer for either mistake)."""
    row = db.execute("SELECT id, ext, name, role, pin_hash FROM agents WHERE ext = ? AND active = 1",
                     [ext]).fetchone()
    if row is None or not verify_pin(pin, row[4]):
        return None
    return {"id": row[0], "ext": row[1], "name": row[2], "role": row[3]}


def list_agents(db: Database) -> list[dict]:
    rows = db.execute(
        """SELECT a.id, a.ext, a.name, a.role, group_concat(s.skill || ':' || s.proficiency, ',')
           FROM agents a LEFT JOIN agent_skills s ON s.agent_id = a.id
           WHERE a.active = 1 GROUP BY a.id ORDER BY a.ext""").fetchall()
    return [{"id": r[0], "ext": r[1], "name": r[2], "role": r[3],
             "skills": parse_skills(r[4] or "")} for r in rows]
