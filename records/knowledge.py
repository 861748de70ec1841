"""Standard answers the agent searches during a call: YAML shipped with records
(knowledge_default.yaml), or the organisation's own file (HOTLINE_KNOWLEDGE).

Search is by keyword: every word typed must appear in an answer's title, keywords or
text (prefixes count: "leak" finds "leaking"); title and keyword hits rank first. A
few dozen answers need nothing cleverer, and agents can predict what it finds.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

import yaml

DEFAULT_KNOWLEDGE = Path(__file__).with_name("knowledge_default.yaml")


class KnowledgeError(ValueError):
    """The knowledge file cannot be used; the message names the file and the entry."""


@dataclass(frozen=True)
class Answer:
    title: str
    keywords: tuple[str, ...]
    text: str


def load_knowledge(path: str | Path | None = None) -> list[Answer]:
    path = Path(path or os.environ.get("HOTLINE_KNOWLEDGE") or DEFAULT_KNOWLEDGE)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise KnowledgeError(f"{path}: cannot read it ({exc.strerror})") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark else ""
        raise KnowledgeError(f"{path}{where}: not valid YAML ({getattr(exc, 'problem', exc)})") from None
    entries = data.get("answers") if isinstance(data, dict) else None
    if not isinstance(entries, list):
        raise KnowledgeError(f"{path}: expected 'answers:' with a list of answers")
    out = []
    for number, entry in enumerate(entries, 1):
        if not isinstance(entry, dict) or not str(entry.get("title") or "").strip() \
                or not str(entry.get("answer") or "").strip():
            raise KnowledgeError(f"{path}: answer {number} needs a 'title' and an 'answer'")
        keywords = entry.get("keywords") or []
        if not isinstance(keywords, list):
            raise KnowledgeError(f"{path}: answer {number} ({entry['title']}): 'keywords' is a list")
        out.append(Answer(str(entry["title"]).strip(), tuple(str(k).lower() for k in keywords),
                          str(entry["answer"]).strip()))
    return out


_WORD = re.compile(r"[\w']+")


def search_knowledge(answers: list[Answer], text: str, limit: int = 10) -> list[Answer]:
    """Answers holding every word of `text`; with no words, all of them in file order."""
    words = [w.lower() for w in _WORD.findall(text)]
    if not words:
        return answers[:limit]
    scored = []
    for order, answer in enumerate(answers):
        head = _WORD.findall(f"{answer.title} {' '.join(answer.keywords)}".lower())
        body = _WORD.findall(answer.text.lower())
        score = 0
        for word in words:
            if any(h.startswith(word) for h in head):
                score += 3
            elif any(b.startswith(word) for b in body):
                score += 1
            else:
                break
        else:
            scored.append((-score, order, answer))
    return [answer for _, _, answer in sorted(scored)[:limit]]
