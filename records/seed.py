"""Demo data: a realistic property with residents, agents and three months of history.

Deterministic: one `random.Random` per purpose, seeded from the seed and the purpose's
name, and a fixed reference time (`as_of`), so the same seed gives the same rows
(PIN salts included). Work orders go through WorkOrders, so their history, deadlines
and callback tasks are exactly what the live system would have written.
"""

from __future__ import annotations

import datetime as dt
import math
import random
from dataclasses import dataclass, field

from sqlite_utils import Database

from records.agents import add_agent
from records.sla import SlaPolicy
from records.workorders import WorkOrders

ESTATES = [
    ("Harbour View Gardens", "8 Harbour Road, North Point"),
    ("Lotus Court", "23 Lotus Street, Sha Tin"),
    ("Kingsway Heights", "101 Kingsway, Tsuen Wan"),
    ("Pine Crest", "5 Pine Lane, Tai Po"),
    ("Riverside Terrace", "66 River Walk, Tuen Mun"),
]
PLAZA = ("Kingsway Plaza", "99 Kingsway, Tsuen Wan")  # shops

# Surname, romanisation (Cantonese); given-name characters with romanisation.
SURNAMES = [("陳", "Chan"), ("李", "Lee"), ("張", "Cheung"), ("黃", "Wong"), ("何", "Ho"),
            ("林", "Lam"), ("梁", "Leung"), ("劉", "Lau"), ("吳", "Ng"), ("鄭", "Cheng"),
            ("楊", "Yeung"), ("郭", "Kwok"), ("馬", "Ma"), ("羅", "Law"), ("周", "Chow"),
            ("謝", "Tse"), ("曾", "Tsang"), ("麥", "Mak"), ("蔡", "Choi"), ("鄧", "Tang")]
GIVEN = [("大", "Tai"), ("文", "Man"), ("美", "Mei"), ("玲", "Ling"), ("志", "Chi"),
         ("明", "Ming"), ("家", "Ka"), ("偉", "Wai"), ("嘉", "Ka"), ("欣", "Yan"),
         ("俊", "Chun"), ("傑", "Kit"), ("詠", "Wing"), ("詩", "Sze"), ("國", "Kwok"),
         ("強", "Keung"), ("麗", "Lai"), ("芬", "Fun"), ("子", "Tsz"), ("浩", "Ho")]
FIRST = ["Alice", "Ben", "Carmen", "David", "Emily", "Frank", "Grace", "Henry", "Irene", "Jason",
         "Karen", "Leo", "Maria", "Nathan", "Olivia", "Peter", "Queenie", "Raymond", "Sophie",
         "Thomas", "Ursula", "Vincent", "Wendy", "Xavier", "Yvonne", "Zoe", "Priya", "Arjun",
         "Siti", "Ahmad", "Mei", "Kenji"]
LAST = ["Smith", "Brown", "Taylor", "Wilson", "Evans", "Thomas", "Roberts", "Walker", "Patel",
        "Singh", "Fernandes", "Santos", "Reyes", "Tanaka", "Kim", "Nguyen", "Müller", "O'Brien",
        "Rossi", "Dubois"]
NOTES = ["Prefers calls after 6 pm.", "Elderly, lives alone: speak slowly.", "Hearing impaired.",
         "Owner lives overseas; tenant handles repairs.", "Speaks Mandarin only.",
         "Asked not to be called on Sundays.", "Has a guide dog."]

CALL_TYPES = [("repair", 0.35), ("enquiry", 0.25), ("billing", 0.18), ("complaint", 0.15),
              ("emergency", 0.05), ("general", 0.02)]
ORDER_FOR_CALL = {"repair": ("repair", 0.9), "emergency": ("urgent_repair", 1.0),
                  "complaint": ("complaint", 0.8), "billing": ("billing", 0.3),
                  "enquiry": ("enquiry", 0.15), "general": (None, 0.0)}
DESCRIPTIONS = {
    "urgent_repair": ["Water leaking through ceiling from flat above", "No power in the whole flat",
                      "Smell of gas in the kitchen", "Lift stuck between floors, passenger inside",
                      "Burst pipe in bathroom"],
    "repair": ["Kitchen tap dripping", "Bedroom window does not close", "Corridor light broken",
               "Toilet cistern keeps running", "Intercom not working", "Door lock sticking",
               "Air-conditioner drain leaking on balcony"],
    "complaint": ["Noise from renovation outside permitted hours", "Cleaning of stairwell missed",
                  "Security guard was rude at the entrance", "Rubbish left in the lift lobby",
                  "Car park barrier charged twice"],
    "enquiry": ["Asks about renovation permit procedure", "Asks when the pool reopens",
                "Asks for a copy of the house rules", "Asks how to book the function room"],
    "billing": ["Management fee higher than last quarter", "Asks for instalment plan on arrears",
                "Payment made but still shown as outstanding", "Requests itemised statement"],
}
# The outcomes an agent picks at the seat (console/seatlogic.py CALL_OUTCOMES), written
# "reason: outcome" as the seat writes them, so history reads the same before and after
# the switch went live.
DISPOSITIONS = {
    "repair": ["resolved on the call", "callback promised", "information given"],
    "emergency": ["transferred", "callback promised"],
    "complaint": ["resolved on the call", "callback promised", "information given"],
    "billing": ["information given", "callback promised", "resolved on the call"],
    "enquiry": ["information given", "resolved on the call"],
    "general": ["information given", "transferred", "wrong number"],
}
ORDER_OPENED = "work order opened"
SKILL_NAMES = ("repair", "complaint", "billing", "enquiry", "emergency")


@dataclass
class SeedSummary:
    as_of: float
    counts: dict[str, int] = field(default_factory=dict)
    pins: list[tuple[str, str, str, str]] = field(default_factory=list)  # ext, name, role, PIN


def default_as_of(policy: SlaPolicy, today: dt.date | None = None) -> float:
    """Midnight today in the site's time zone: the same default all day long."""
    today = today or dt.datetime.now(policy.timezone).date()
    return dt.datetime.combine(today, dt.time(0, 0), policy.timezone).timestamp()


def _streams(seed: int) -> dict[str, random.Random]:
    # str seeds are hashed with SHA-512 by random.Random: stable across runs and machines.
    return {name: random.Random(f"hotline:{seed}:{name}")
            for name in ("property", "people", "phones", "agents", "history", "orders")}


def seed_database(db: Database, policy: SlaPolicy, *, residents: int = 5000, seed: int = 7,
                  as_of: float | None = None, contacts_per_resident: float = 1.2,
                  history_days: int = 90, agents: int = 20, pins_from_seed: bool = False) -> SeedSummary:
    """`pins_from_seed`: the logins' PINs (and salts) follow the seed too, for test data
    that must come out the same; otherwise they are drawn from the system's randomness, so
    two demo databases never share a PIN."""
    if residents < 1:
        raise ValueError("--residents must be at least 1")
    if db.execute("SELECT count(*) FROM residents").fetchone()[0]:
        raise ValueError("the database already holds residents; seed into a new database")
    as_of = default_as_of(policy) if as_of is None else as_of
    rng = _streams(seed)
    summary = SeedSummary(as_of=as_of)
    with db.atomic():  # one transaction: a failed seed leaves the database as it was
        units = _property(db, rng["property"], residents)
        resident_ids = _residents(db, rng["people"], rng["phones"], units, residents, as_of, history_days)
        agent_ids = _agents(db, rng["agents"], agents, as_of - history_days * 86400, summary,
                            secret=rng["agents"] if pins_from_seed else random.SystemRandom())
        _history(db, policy, rng["history"], rng["orders"], resident_ids, agent_ids,
                 int(residents * contacts_per_resident), as_of, history_days)
    from records.db import table_counts
    summary.counts = table_counts(db)
    return summary


def _property(db: Database, rng: random.Random, residents: int) -> list[tuple[int, str]]:
    """Estates, buildings and units; returns (unit_id, kind) for enough homes and shops."""
    shops_needed = max(1, residents // 25)
    flats_needed = math.ceil(residents / 1.3)
    units: list[tuple[int, str]] = []
    estate_rows, building_rows, unit_rows = [], [], []
    next_estate, next_building, next_unit = 1, 1, 1
    phase = 1
    while len([u for u in units if u[1] == "flat"]) < flats_needed:
        for name, address in ESTATES:
            if len([u for u in units if u[1] == "flat"]) >= flats_needed:
                break
            estate_name = name if phase == 1 else f"{name} Phase {_roman(phase)}"
            estate_rows.append({"id": next_estate, "name": estate_name, "address": address})
            for tower in range(1, rng.randint(3, 6) + 1):
                building_rows.append({"id": next_building, "estate_id": next_estate, "name": f"Tower {tower}"})
                floors, flats = rng.randint(12, 35), rng.randint(4, 8)
                for floor in range(1, floors + 1):
                    for flat in "ABCDEFGH"[:flats]:
                        unit_rows.append({"id": next_unit, "building_id": next_building,
                                          "number": f"{floor}{flat}", "floor": floor, "kind": "flat",
                                          "label": f"Flat {floor}{flat}"})
                        units.append((next_unit, "flat"))
                        next_unit += 1
                next_building += 1
            next_estate += 1
        phase += 1
    estate_rows.append({"id": next_estate, "name": PLAZA[0], "address": PLAZA[1]})
    building_rows.append({"id": next_building, "estate_id": next_estate, "name": "Podium"})
    for shop in range(1, shops_needed + 1):
        floor = (shop - 1) // 40
        number = f"{'G' if floor == 0 else floor}{(shop - 1) % 40 + 1:02d}"
        unit_rows.append({"id": next_unit, "building_id": next_building, "number": number,
                          "floor": floor, "kind": "shop", "label": f"Shop {number}"})
        units.append((next_unit, "shop"))
        next_unit += 1
    db.table("estates").insert_all(estate_rows)
    db.table("buildings").insert_all(building_rows)
    db.table("units").insert_all(unit_rows, batch_size=2000)
    return units


def _roman(n: int) -> str:
    return ["I", "II", "III", "IV", "V", "VI", "VII", "VIII", "IX", "X"][n - 1] if n <= 10 else str(n)


def _person(rng: random.Random) -> tuple[str, str, str]:
    """(name, romanised name, language)."""
    if rng.random() < 0.68:
        surname, roman = rng.choice(SURNAMES)
        given = [rng.choice(GIVEN) for _ in range(rng.choice((1, 2, 2, 2)))]
        name = surname + "".join(g[0] for g in given)
        alt = f"{roman} {' '.join(g[1] for g in given)}"
        language = rng.choices(("yue", "zh", "en"), (0.8, 0.12, 0.08))[0]
        return name, alt, language
    return f"{rng.choice(FIRST)} {rng.choice(LAST)}", "", "en"


def _phone(rng: random.Random, taken: set[str], mobile: bool) -> str:
    while True:
        first = rng.choice("569") if mobile else rng.choice("23")
        number = "+852" + first + "".join(rng.choice("0123456789") for _ in range(7))
        if number not in taken:
            taken.add(number)
            return number


def _residents(db: Database, rng: random.Random, phone_rng: random.Random,
               units: list[tuple[int, str]], count: int, as_of: float, history_days: int) -> list[int]:
    flats = [u for u in units if u[1] == "flat"]
    shops = [u for u in units if u[1] == "shop"]
    unit_labels = {row[0]: f"{row[1]} {row[2]} {row[3]}" for row in db.execute(
        "SELECT u.id, u.label, b.name, e.name FROM units u JOIN buildings b ON b.id = u.building_id "
        "JOIN estates e ON e.id = b.estate_id")}
    rows: list[dict] = []
    phone_rows: list[dict] = []
    taken: set[str] = set()
    flat_cursor = shop_cursor = 0
    rid = 1
    while rid <= count:
        if rng.random() < 0.05 and shop_cursor < len(shops):
            occupants = [(shops[shop_cursor][0], "shop_tenant")]
            shop_cursor += 1
        else:
            unit_id = flats[flat_cursor % len(flats)][0]
            flat_cursor += 1
            # Owner-occupied, or let: then the tenant calls and the owner sometimes does.
            occupants = [(unit_id, "owner")] if rng.random() < 0.65 else [(unit_id, "tenant"), (unit_id, "owner")]
        for unit_id, kind in occupants:
            if rid > count:
                break
            name, alt, language = _person(rng)
            numbers = [_phone(phone_rng, taken, mobile=True)]
            for _ in range(rng.choices((0, 1, 2), (0.55, 0.35, 0.10))[0]):
                numbers.append(_phone(phone_rng, taken, mobile=phone_rng.random() < 0.5))
            arrears = rng.randint(20, 3000) * 1000 if rng.random() < 0.10 else 0
            rows.append({
                "id": rid, "name": name, "name_alt": alt, "kind": kind, "unit_id": unit_id,
                "language": language, "segment": "vip" if rng.random() < 0.03 else "standard",
                "arrears_cents": arrears, "notes": rng.choice(NOTES) if rng.random() < 0.04 else "",
                "created_at": as_of - rng.uniform(history_days, 3 * 365) * 86400,
                "search_phones": " ".join(numbers), "search_unit": unit_labels[unit_id],
            })
            for i, number in enumerate(numbers):
                phone_rows.append({"resident_id": rid, "number": number,
                                   "label": "mobile" if number[4] in "569" else ("home" if i else "office")})
            rid += 1
    db.table("residents").insert_all(rows, batch_size=2000)
    db.table("resident_phones").insert_all(phone_rows, batch_size=2000)
    return [row["id"] for row in rows]


def _agents(db: Database, rng: random.Random, count: int, since: float, summary: SeedSummary,
            secret: random.Random) -> list[tuple[int, set[str]]]:
    people = [("agent", f"{1001 + i}") for i in range(count)] + [("supervisor", "2001"), ("admin", "2900")]
    used_names: set[str] = set()
    agents: list[tuple[int, set[str]]] = []
    for role, ext in people:
        while True:
            name, alt, _ = _person(rng)
            display = f"{alt} ({name})" if alt else name
            if display not in used_names:
                used_names.add(display)
                break
        pin = f"{secret.randrange(10**6):06d}"
        salt = secret.getrandbits(128).to_bytes(16, "big")
        skills = {"general": 3}
        if role == "agent":
            for skill in rng.sample(SKILL_NAMES, rng.randint(1, 3)):
                skills[skill] = rng.randint(1, 5)
            if len(agents) % 5 == 0:  # every fifth agent can take emergencies
                skills["emergency"] = rng.randint(3, 5)
        else:
            skills.update({s: 4 for s in SKILL_NAMES})
        agent_id = add_agent(db, ext=ext, name=display, pin=pin, role=role, skills=skills, now=since, salt=salt)
        summary.pins.append((ext, display, role, pin))
        if role == "agent":
            agents.append((agent_id, set(skills)))
    return agents


_HOUR_WEIGHTS = [1, 1, 1, 1, 1, 1, 2, 4, 8, 12, 12, 11, 8, 9, 11, 11, 10, 9, 7, 6, 5, 4, 2, 1]


def _call_time(rng: random.Random, policy: SlaPolicy, as_of: float, days: int) -> float:
    day_start = as_of - rng.randint(1, days) * 86400
    local = dt.datetime.fromtimestamp(day_start, policy.timezone)
    hour = rng.choices(range(24), _HOUR_WEIGHTS)[0]
    moment = local.replace(hour=hour, minute=rng.randrange(60), second=rng.randrange(60))
    return moment.timestamp()


def _history(db: Database, policy: SlaPolicy, rng: random.Random, order_rng: random.Random,
             resident_ids: list[int], agents: list[tuple[int, set[str]]], contacts: int,
             as_of: float, days: int) -> None:
    if not contacts:
        return
    phones = dict(db.execute("SELECT resident_id, min(number) FROM resident_phones GROUP BY resident_id"))
    # Repeat callers: a fifth of the residents make most of the calls.
    frequent = resident_ids[: max(1, len(resident_ids) // 5)]
    frequent = rng.sample(resident_ids, len(frequent))
    types, weights = zip(*CALL_TYPES)
    extensions = dict(db.execute("SELECT id, ext FROM agents"))
    calls = []
    for n in range(contacts):
        entered = _call_time(rng, policy, as_of, days)
        known = rng.random() < 0.95
        resident_id = (rng.choice(frequent) if rng.random() < 0.5 else rng.choice(resident_ids)) if known else None
        call_type = rng.choices(types, weights)[0]
        queue = call_type
        outcome = rng.choices(("answered", "abandoned", "voicemail"), (0.92, 0.06, 0.02))[0]
        night = dt.datetime.fromtimestamp(entered, policy.timezone).hour < 7
        if night and outcome == "answered" and rng.random() < 0.3:
            outcome = "voicemail"  # the small night shift misses more calls
        wait = rng.expovariate(1 / 25.0)
        row = {"uid": f"{int(entered)}.{n}", "direction": "inbound",
               "caller_number": phones[resident_id] if resident_id else "+852" + str(rng.randrange(2 * 10**7, 9 * 10**7)),
               "dialled_number": "+85228001234", "resident_id": resident_id, "queue": queue,
               "call_type": call_type, "entered_at": entered, "outcome": outcome,
               "disposition": "", "notes": "", "agent_id": None, "agent_ext": "", "node": "seed"}
        if outcome == "answered":
            skilled = [a for a, skills in agents if call_type in skills] or [a for a, _ in agents]
            talk = min(rng.lognormvariate(math.log(170), 0.5), 1800)
            agent = rng.choice(skilled)
            row.update(agent_id=agent, agent_ext=extensions[agent], offered_at=entered + max(0.0, wait - 4),
                       answered_at=entered + wait,
                       wait_s=round(wait, 3), talk_s=round(talk, 3), hold_s=round(rng.choice((0, 0, 0, rng.uniform(10, 90))), 3),
                       wrapup_s=round(rng.uniform(10, 60), 3), ended_at=entered + wait + talk,
                       disposition=f"{call_type}: {rng.choice(DISPOSITIONS[call_type])}")
        elif outcome == "abandoned":
            wait = min(wait, rng.expovariate(1 / 40.0))
            row.update(wait_s=round(wait, 3), ended_at=entered + wait)
        else:
            row.update(wait_s=round(wait, 3), ended_at=entered + wait + rng.uniform(15, 60))
        calls.append(row)
    calls.sort(key=lambda r: r["entered_at"])
    db.table("interactions").insert_all(calls, batch_size=2000)
    ids = {row[0]: row[1] for row in db.execute("SELECT uid, id FROM interactions")}

    orders = WorkOrders(db, policy)
    surveys, care = [], []
    for call in calls:
        if call["outcome"] != "answered":
            continue
        call_id = ids[call["uid"]]
        order_type, share = ORDER_FOR_CALL[call["call_type"]]
        if order_type and call["resident_id"] and order_rng.random() < share:
            desc = order_rng.choice(DESCRIPTIONS[order_type])
            call["notes"] = desc + "."
            call["disposition"] = f"{call['call_type']}: {ORDER_OPENED}"
            _progress_order(orders, order_rng, order_type, desc, call, call_id, as_of)
        if order_rng.random() < 0.3:
            score = order_rng.choices((5, 4, 3, 2, 1), (0.70, 0.20, 0.06, 0.03, 0.01))[0]
            at = call["ended_at"] + 30
            surveys.append({"interaction_id": call_id, "at": at, "score": score})
            db.execute("UPDATE interactions SET survey_score = ? WHERE id = ?", [score, call_id])
            if score in (3, 4):
                done = as_of - at > 3 * 86400
                care.append({"kind": "survey_care", "status": "done" if done else "pending",
                             "resident_id": call["resident_id"], "interaction_id": call_id,
                             "number": call["caller_number"], "owner_agent_id": call["agent_id"],
                             "created_at": at, "due_at": at + 2 * 86400,
                             "done_at": at + order_rng.uniform(3600, 40 * 3600) if done else None})
        if call["notes"]:
            db.execute("UPDATE interactions SET notes = ?, disposition = ? WHERE id = ?",
                       [call["notes"], call["disposition"], call_id])
    # each agent's part of a contact (one agent each, seeded)
    db.execute("INSERT INTO interaction_legs (interaction_id, agent_id, agent_ext, queue, answered_at, ended_at, "
               "talk_s, hold_s, wrapup_s, ended) SELECT id, agent_id, agent_ext, queue, answered_at, ended_at, talk_s, "
               "hold_s, wrapup_s, 'completed' FROM interactions WHERE answered_at IS NOT NULL")
    db.table("surveys").insert_all(surveys, batch_size=2000)
    db.table("callbacks").insert_all(care, batch_size=2000)


def _progress_order(orders: WorkOrders, rng: random.Random, order_type: str, desc: str,
                    call: dict, call_id: int, as_of: float) -> None:
    """Open an order during the call and move it on as real staff would, up to `as_of`.

    About one in twelve stalls at some stage: those are the overdue ones a supervisor sees.
    """
    agent = call["agent_id"]
    t = call["answered_at"] + rng.uniform(60, min(call["talk_s"], 600) + 60)
    order_id = orders.open(order_type=order_type, description=desc, owner_agent_id=agent,
                           resident_id=call["resident_id"], interaction_id=call_id, now=t)
    order = orders.get(order_id)
    stall = rng.randrange(6) if rng.random() < 0.08 else None
    repair = order_type in ("urgent_repair", "repair")
    late = lambda: rng.random() < 0.07  # noqa: E731  missed a deadline but got there

    def share_of(deadline: str) -> float:
        """A moment before the deadline, or (when late) somewhat after it, from opening."""
        span = order[deadline] - order["opened_at"]
        return span * (rng.uniform(1.05, 1.5) if late() else rng.uniform(0.2, 0.9))

    # (status, delay in seconds, measured from opening rather than from the previous step)
    steps: list[tuple[str, float, bool]] = [
        ("dispatched", rng.uniform(200, 900) if late() else rng.uniform(30, 170), False)]
    if repair:
        steps += [("on_site", share_of("on_site_due"), True), ("resolved", share_of("resolve_due"), True)]
    else:
        steps.append(("resolved", share_of("reply_due"), True))
    if orders.policy.rule(order_type).callback_within is not None:
        steps.append(("called_back", (rng.uniform(49, 60) if late() else rng.uniform(2, 40)) * 3600, False))
    steps.append(("closed", rng.uniform(0.5, 24) * 3600, False))

    if order["feedback_due"] is not None and stall != 0:
        feedback_at = t + rng.uniform(2, 46) * 3600
        if feedback_at < as_of:
            orders.feedback_given(order_id, by_agent_id=agent, notes="Called the resident with an update.",
                                  now=feedback_at)
    clock = t
    for index, (status, delay, from_opening) in enumerate(steps):
        if stall is not None and index >= stall:
            return
        clock = max(clock + 60, order["opened_at"] + delay) if from_opening else clock + delay
        if clock >= as_of:
            return
        orders.move(order_id, status, by_agent_id=agent if status in ("called_back", "closed") else None,
                    now=clock, reason="seeded history")
