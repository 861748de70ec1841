"""The control API's ops for an agent's desk: the pop, finding and adding residents, work
orders, follow-up calls, today's totals, standard answers.

A seat on the agent's own machine has no database; it asks these of the switch, which
reads records (records/desk.py) and writes them as the one writer, each change with its
line in the event log (SwitchCore.record). Each op takes the logged-in agent and the
request, and returns the reply's fields; a refusal is a SwitchError with its code.
"""

from __future__ import annotations

from records import desk
from records.callbacks import OUTCOMES, due_callbacks, record_attempt
from records.directory import DirectoryError
from records.knowledge import KnowledgeError, load_knowledge
from records.workorders import LifecycleError, WorkOrders
from telephony.switchcore import SwitchCore, SwitchError

SEARCH_LIMIT = 50


class DeskOps:
    OPS = ("pop", "search_residents", "add_resident", "open_work_order", "callbacks", "callback_outcome",
           "today", "knowledge", "extensions")

    def __init__(self, core: SwitchCore):
        from records.sla import load_policy

        self.core = core
        self.policy = load_policy()

    @property
    def db(self):
        return self.core.db

    # --- reading ---------------------------------------------------------------------------
    def op_pop(self, agent: dict, request: dict) -> dict:
        """The pop of a call: by its id (the switch knows its number and who it is), or
        by a number (a follow-up the agent dials), with the resident if known."""
        call_id = _optional_text(request, "call_id")
        number = _optional_text(request, "number")
        headers = {"X-Hotline-Interaction": call_id, "X-Hotline-Queue": _optional_text(request, "queue"),
                   "X-Hotline-Wait": _optional_text(request, "waited_s") or "0"}
        resident_id = request.get("resident_id")
        if call_id:
            row = self.db.execute("SELECT caller_number, dialled_number, direction, resident_id, queue "
                                  "FROM interactions WHERE uid = ?", [call_id]).fetchone()
            if row is None and not number:
                raise SwitchError("not_found", f"no interaction for call {call_id}")
            if row is not None:
                caller, dialled, direction, known, queue = row
                number = number or (dialled if direction == "outbound" else caller) or ""
                if resident_id is None:   # one identified while it waited is known here first
                    resident_id = self.core.resident_of(call_id) or known
                headers["X-Hotline-Queue"] = headers["X-Hotline-Queue"] or queue or ""
        elif not number:
            raise SwitchError("bad_request", "give 'call_id' or 'number'")
        if resident_id is not None:
            headers["X-Hotline-Resident"] = str(_integer(resident_id, "resident_id"))
        pop = desk.screen_pop(self.db, 0, number, headers, self.core.clock())
        return {"pop": desk.to_wire(pop)}

    def offer_details(self, message: dict) -> dict:
        """What a CallOffered carries to the ringing seat: the call's pop."""
        return self.op_pop({}, {"call_id": message["call_id"]})

    def op_search_residents(self, agent: dict, request: dict) -> dict:
        text = _optional_text(request, "text").strip()
        if not text:
            raise SwitchError("bad_request", "'text' is what to look for (a name, unit or phone)")
        limit = min(_integer(request.get("limit", 20), "limit"), SEARCH_LIMIT)
        return {"matches": [desk.to_wire(match) for match in desk.find_callers(self.db, text, limit)]}

    def op_callbacks(self, agent: dict, request: dict) -> dict:
        return {"callbacks": [desk.to_wire(c) for c in due_callbacks(self.db, agent["id"])]}

    def op_today(self, agent: dict, request: dict) -> dict:
        calls, talk_s = desk.today_totals(self.db, agent["id"], self.core.clock(), self.policy.timezone)
        return {"calls": calls, "talk_s": talk_s}

    def op_knowledge(self, agent: dict, request: dict) -> dict:
        try:
            answers = load_knowledge()
        except KnowledgeError as exc:
            raise SwitchError("not_found", str(exc)) from None
        return {"answers": [desk.to_wire(answer) for answer in answers]}

    def op_extensions(self, agent: dict, request: dict) -> dict:
        return {"extensions": [row[0] for row in self.db.execute("SELECT ext FROM agents WHERE active = 1 "
                                                                 "ORDER BY ext")]}

    # --- writing (the switch is the one writer) ----------------------------------------------
    def identify(self, agent: dict, request: dict) -> dict:
        """Who an unknown caller is: their number is linked (if `link`), the call's record
        says so, and the reply is their pop."""
        resident_id = _integer(request.get("resident_id"), "resident_id")
        call_id = _optional_text(request, "call_id")
        number = _optional_text(request, "number")
        pop = desk.Pop(call=0, number=number, queue=_optional_text(request, "queue"),
                       waited_s=_integer(request.get("waited_s", 0), "waited_s"), interaction=call_id)
        now = self.core.clock()

        def write():
            if call_id:
                self.core.identify(call_id, resident_id, by_ext=agent["ext"], role=agent["role"])
            try:
                return desk.identified(self.db, pop, resident_id, now, link=bool(request.get("link")))
            except DirectoryError as exc:
                raise SwitchError("not_found", str(exc)) from None

        fresh, said = self.core.record(write, lambda result: desk.PhoneLinked(
            now, agent["ext"], resident_id, number if request.get("link") else ""))
        return {"pop": desk.to_wire(fresh), "said": said}

    def op_add_resident(self, agent: dict, request: dict) -> dict:
        name = _optional_text(request, "name").strip()
        if not name:
            raise SwitchError("bad_request", "a new resident needs a 'name'")
        call_id = _optional_text(request, "call_id")
        pop = desk.Pop(call=0, number=_optional_text(request, "number"), queue=_optional_text(request, "queue"),
                       waited_s=_integer(request.get("waited_s", 0), "waited_s"), interaction=call_id)
        now = self.core.clock()

        def write():
            try:
                fresh, said = desk.new_caller(self.db, pop, name, _optional_text(request, "unit"),
                                              _optional_text(request, "kind") or "owner", now)
            except (DirectoryError, ValueError) as exc:
                raise SwitchError("bad_request", str(exc)) from None
            if call_id:
                self.core.identify(call_id, fresh.resident_id, by_ext=agent["ext"], role=agent["role"])
            return fresh, said

        fresh, said = self.core.record(write, lambda result: desk.ResidentAdded(
            now, agent["ext"], result[0].resident_id, result[0].name, result[0].unit, pop.number))
        return {"pop": desk.to_wire(fresh), "said": said}

    def op_open_work_order(self, agent: dict, request: dict) -> dict:
        order_type = _optional_text(request, "type")
        if order_type not in self.policy.types:
            raise SwitchError("bad_request", f"unknown work order type {order_type!r} (one of: "
                                             f"{', '.join(self.policy.types)})")
        call_id = _optional_text(request, "call_id")
        resident_id = request.get("resident_id")
        resident_id = _integer(resident_id, "resident_id") if resident_id is not None else None
        interaction_id = None
        if call_id:
            row = self.db.execute("SELECT id FROM interactions WHERE uid = ?", [call_id]).fetchone()
            interaction_id = row[0] if row else None
        now = self.core.clock()

        def write() -> int:
            try:
                return WorkOrders(self.db, self.policy).open(
                    order_type=order_type, description=_optional_text(request, "description"),
                    owner_agent_id=agent["id"], resident_id=resident_id, interaction_id=interaction_id,
                    callback_number=_optional_text(request, "number"), now=now)
            except (LifecycleError, ValueError) as exc:
                raise SwitchError("bad_request", str(exc)) from None

        order_id = self.core.record(write, lambda order: desk.WorkOrderOpened(
            now, agent["ext"], order, order_type, resident_id, call_id))
        orders = desk.open_orders(self.db, resident_id, now) if resident_id is not None else []
        return {"order_id": order_id, "orders": [desk.to_wire(order) for order in orders]}

    def op_callback_outcome(self, agent: dict, request: dict) -> dict:
        callback_id = _integer(request.get("callback_id"), "callback_id")
        outcome = _optional_text(request, "outcome")
        if outcome not in OUTCOMES:
            raise SwitchError("bad_request", f"unknown callback outcome {outcome!r} (one of: {', '.join(OUTCOMES)})")
        now = self.core.clock()

        def write() -> str:
            try:
                return record_attempt(self.db, callback_id, outcome, agent_id=agent["id"], now=now,
                                      notes=_optional_text(request, "notes"), policy=self.policy)
            except ValueError as exc:
                raise SwitchError("bad_request", str(exc)) from None

        said = self.core.record(write, lambda _: desk.CallbackAttempted(now, agent["ext"], callback_id, outcome))
        return {"said": said}


def _optional_text(request: dict, key: str) -> str:
    value = request.get(key, "")
    if value is None:
        return ""
    if not isinstance(value, (str, int)) or isinstance(value, bool):
        raise SwitchError("bad_request", f"'{key}' is text")
    return str(value)


def _integer(value, key: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, str)) or not str(value).lstrip("-").isdigit():
        raise SwitchError("bad_request", f"'{key}' is a whole number")
    return int(value)
