"""Residents, their phone numbers and units, and the lookups an agent seat needs.

Each lookup is one SQL query so the screen pop stays within a few milliseconds even
on a database with millions of contacts (see bench/records.py).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Iterable

from sqlite_utils import Database

from records.db import row_id
from records.phones import PhoneNumberError, normalise
from records.schema import RESIDENT_KINDS, SEGMENTS


class DirectoryError(ValueError):
    """A change to the directory that would make it wrong (duplicate number, bad kind...)."""


@dataclass(frozen=True)
class NewResident:
    name: str
    kind: str
    phones: tuple[str, ...] = ()
    unit_id: int | None = None
    name_alt: str = ""
    language: str = "en"
    segment: str = "standard"
    arrears_cents: int = 0
    notes: str = ""


_PROFILE_SELECT = """
    SELECT r.id, r.name, r.name_alt, r.kind, r.language, r.segment, r.arrears_cents, r.notes,
           r.unit_id, u.label AS unit, u.kind AS unit_kind, b.name AS building, e.name AS estate
    FROM residents r
    LEFT JOIN units u ON u.id = r.unit_id
    LEFT JOIN buildings b ON b.id = u.building_id
    LEFT JOIN estates e ON e.id = b.estate_id
"""


def add_resident(db: Database, resident: NewResident, *, now: float | None = None) -> int:
    """Insert a resident with their numbers; all or nothing."""
    if resident.kind not in RESIDENT_KINDS:
        raise DirectoryError(f"unknown resident kind '{resident.kind}' (expected one of: {', '.join(RESIDENT_KINDS)})")
    if resident.segment not in SEGMENTS:
        raise DirectoryError(f"unknown segment '{resident.segment}' (expected one of: {', '.join(SEGMENTS)})")
    if not resident.name.strip():
        raise DirectoryError("a resident needs a name")
    numbers = _normalised_unique(resident.phones)
    with db.atomic():
        resident_id = row_id(db.table("residents").insert({
            "name": resident.name.strip(), "name_alt": resident.name_alt, "kind": resident.kind,
            "unit_id": resident.unit_id, "language": resident.language, "segment": resident.segment,
            "arrears_cents": resident.arrears_cents, "notes": resident.notes,
            "created_at": time.time() if now is None else now,
            "search_unit": _unit_label(db, resident.unit_id),
        }).last_pk)
        for number in numbers:
            _insert_phone(db, resident_id, number, "mobile")
        _refresh_search_phones(db, resident_id)
    return resident_id


def add_phone(db: Database, resident_id: int, raw_number: str, label: str = "mobile") -> str:
    """Link a number to a resident (for example an unknown caller just identified)."""
    number = _normalise_or_raise(raw_number)
    with db.atomic():
        if not db.execute("SELECT 1 FROM residents WHERE id = ?", [resident_id]).fetchone():
            raise DirectoryError(f"no resident with id {resident_id}")
        _insert_phone(db, resident_id, number, label)
        _refresh_search_phones(db, resident_id)
    return number


def _normalise_or_raise(raw: str) -> str:
    try:
        return normalise(raw)
    except PhoneNumberError as exc:
        raise DirectoryError(str(exc)) from None


def _normalised_unique(raw_numbers: Iterable[str]) -> list[str]:
    out: list[str] = []
    for raw in raw_numbers:
        number = _normalise_or_raise(raw)
        if number in out:
            raise DirectoryError(f"{raw} is given twice")
        out.append(number)
    return out


def _insert_phone(db: Database, resident_id: int, number: str, label: str) -> None:
    owner = db.execute(
        "SELECT p.resident_id, r.name FROM resident_phones p JOIN residents r ON r.id = p.resident_id "
        "WHERE p.number = ?", [number]).fetchone()
    if owner:
        raise DirectoryError(f"{number} already belongs to resident {owner[0]} ({owner[1]})")
    db.table("resident_phones").insert({"resident_id": resident_id, "number": number, "label": label})


def _refresh_search_phones(db: Database, resident_id: int) -> None:
    # E.164 holds the national digits, so a search for "9123 4567" finds +85291234567.
    numbers = [row[0] for row in db.execute(
        "SELECT number FROM resident_phones WHERE resident_id = ? ORDER BY id", [resident_id])]
    db.execute("UPDATE residents SET search_phones = ? WHERE id = ?", [" ".join(numbers), resident_id])


def _unit_label(db: Database, unit_id: int | None) -> str:
    if unit_id is None:
        return ""
    row = db.execute(
        "SELECT u.label, b.name, e.name FROM units u JOIN buildings b ON b.id = u.building_id "
        "JOIN estates e ON e.id = b.estate_id WHERE u.id = ?", [unit_id]).fetchone()
    if row is None:
        raise DirectoryError(f"no unit with id {unit_id}")
    return f"{row[0]} {row[1]} {row[2]}"


# --- lookups ------------------------------------------------------------------------

def resident_by_phone(db: Database, raw_number: str) -> dict | None:
    """The resident a caller ID belongs to, with unit and estate; None if unknown."""
    try:
        number = normalise(raw_number)
    except PhoneNumberError:
        return None
    row = db.execute(
        _PROFILE_SELECT + " JOIN resident_phones p ON p.resident_id = r.id WHERE p.number = ?",
        [number]).fetchone()
    return _profile(row)


def resident(db: Database, resident_id: int) -> dict | None:
    row = db.execute(_PROFILE_SELECT + " WHERE r.id = ?", [resident_id]).fetchone()
    return _profile(row)


def _profile(row) -> dict | None:
    return None if row is None else _columns(row)


def _columns(row) -> dict:
    columns = ["id", "name", "name_alt", "kind", "language", "segment", "arrears_cents",
               "notes", "unit_id", "unit", "unit_kind", "building", "estate"]
    return dict(zip(columns, row))


def search_residents(db: Database, text: str, limit: int = 20) -> list[dict]:
    """Residents matching every word of `text`, each in their name, romanised name, phone
    or unit ("Chan 19H": a Chan in flat 19H).

    The trigram index needs three characters; shorter words (a two-character Chinese
    name, "2" of "Tower 2") are matched with LIKE, on the rows the index found if any.
    """
    text = text.strip()
    if not text:
        return []
    # Digits typed with spaces or dashes match stored E.164 digits.
    compact = "".join(text.split()).replace("-", "")
    words = [compact] if compact.lstrip("+").isdigit() else text.split()
    indexed = [w for w in words if len(w) >= 3]
    short = [w for w in words if len(w) < 3]
    haystack = "(r.name || ' ' || coalesce(r.name_alt, '') || ' ' || r.search_phones || ' ' || r.search_unit)"
    likes = " AND ".join([f"{haystack} LIKE ? ESCAPE '\\'"] * len(short))
    like_args = ["%" + w.replace("%", r"\%").replace("_", r"\_") + "%" for w in short]
    if indexed:
        query = " AND ".join('"' + w.replace('"', '""') + '"' for w in indexed)
        rows = db.execute(
            _PROFILE_SELECT + " JOIN residents_fts f ON f.rowid = r.id "
            f"WHERE residents_fts MATCH ? {'AND ' + likes if likes else ''} ORDER BY f.rank LIMIT ?",
            [query, *like_args, limit]).fetchall()
    else:
        rows = db.execute(_PROFILE_SELECT + f" WHERE {likes} ORDER BY r.name LIMIT ?", [*like_args, limit]).fetchall()
    return [_columns(row) for row in rows]


def phones_of(db: Database, resident_id: int) -> list[dict]:
    return [dict(zip(("number", "label"), row)) for row in db.execute(
        "SELECT number, label FROM resident_phones WHERE resident_id = ? ORDER BY id", [resident_id])]


def last_contacts(db: Database, resident_id: int, limit: int = 10) -> list[dict]:
    """The resident's most recent contacts, newest first, with the agent's name."""
    cursor = db.execute(
        """SELECT i.id, i.entered_at, i.direction, i.queue, i.call_type, i.outcome, i.disposition,
                  i.notes, i.talk_s, a.name AS agent
           FROM interactions i LEFT JOIN agents a ON a.id = i.agent_id
           WHERE i.resident_id = ? ORDER BY i.entered_at DESC LIMIT ?""", [resident_id, limit])
    columns = [c[0] for c in cursor.description]
    return [dict(zip(columns, row)) for row in cursor]


def find_units(db: Database, text: str, limit: int = 10) -> list[dict]:
    """Units whose 'label building estate' has a word starting with each word of `text`
    ("12A Tower 3", "12a kings"), for an agent putting a new resident in their flat. Units
    where every word is a whole word come first, and if there are any, only they: "5F
    Tower 1" is flat 5F, not 15F as well."""
    words = text.split()
    if not words:
        return []
    haystack = "(' ' || u.label || ' ' || b.name || ' ' || e.name)"
    where = " AND ".join([f"{haystack} LIKE ? ESCAPE '\\'"] * len(words))
    like = ["% " + w.replace("%", r"\%").replace("_", r"\_") + "%" for w in words]
    cursor = db.execute(
        "SELECT u.id, u.label, b.name, e.name FROM units u JOIN buildings b ON b.id = u.building_id "
        f"JOIN estates e ON e.id = b.estate_id WHERE {where} ORDER BY e.name, b.name, u.floor, u.label LIMIT ?",
        [*like, max(limit, 200)])
    units = [{"id": row[0], "label": f"{row[1]}, {row[2]}, {row[3]}",
              "words": {w.casefold() for w in f"{row[1]} {row[2]} {row[3]}".split()}} for row in cursor]
    exact = [unit for unit in units if all(w.casefold() in unit["words"] for w in words)]
    return [{"id": unit["id"], "label": unit["label"]} for unit in (exact or units)[:limit]]
