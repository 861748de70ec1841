"""An agent's disposition and notes on a contact (the rows the routing events do not
write: telephony/recorder.py writes those)."""

from __future__ import annotations

from sqlite_utils import Database


def record_notes(db: Database, interaction_id: int, *, agent_ext: str, agent_id: int | None, at: float,
                 disposition: str, notes: str) -> None:
    """One agent's disposition and notes on a contact, kept apart from every other agent's
    (a transferred caller's first agent keeps theirs); the contact row then carries the
    latest disposition and every agent's notes, in the order they were first written,
    each part once (a receiving agent's form often starts with what the first one typed)."""
    db.execute("INSERT INTO contact_notes (interaction_id, agent_id, agent_ext, at, disposition, notes) "
               "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (interaction_id, agent_ext) DO UPDATE SET "
               "disposition = excluded.disposition, notes = excluded.notes, agent_id = excluded.agent_id",
               [interaction_id, agent_id, agent_ext, at, disposition, notes])
    parts = db.execute("SELECT c.agent_ext, coalesce(a.name, c.agent_ext), c.notes FROM contact_notes c "
                       "LEFT JOIN agents a ON a.id = c.agent_id WHERE c.interaction_id = ? AND c.notes != '' "
                       "ORDER BY c.at, c.id", [interaction_id]).fetchall()
    texts = [text.strip() for _, _, text in parts]
    kept = [(name, text) for (_, name, _), text in zip(parts, texts)
            if not any(text != other and text in other for other in texts)]
    if len(kept) <= 1:
        # one agent's words stand as they typed them (found using the demo: their spaces trimmed)
        merged = next((text for _, _, text in parts if text.strip() == kept[0][1]), "") if kept else ""
    else:
        merged = " | ".join(f"{name}: {text}" for name, text in kept)
    db.execute("UPDATE interactions SET disposition = ?, notes = ? WHERE id = ?", [disposition, merged, interaction_id])
