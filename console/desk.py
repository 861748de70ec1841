"""Where the seat's screens get records from: the switch, over the control API.

A seat runs on the agent's own machine with no database (`SwitchDesk`): the pop, the
search for an unknown caller, a new resident, a work order, the follow-up list and its
outcomes, today's totals and the standard answers are each one op, answered by the
switch (telephony/desk_ops.py). `LocalDesk` answers the same from a database file with
the same functions the switch uses, for a seat on a machine that has the records and no
switch to ask (the seat's own tests, the pop benchmark's baseline).

Every method is a coroutine: the UI never waits on I/O in a message handler.
"""

from __future__ import annotations

import asyncio
from dataclasses import replace
from typing import Awaitable, Callable, Protocol

from records import desk
from records.callbacks import Callback
from records.desk import Match, OrderLine, Pop
from records.knowledge import Answer


class DeskError(Exception):
    """What the agent is told when records could not do it (the message says why)."""


class Desk(Protocol):
    async def pop(self, call: int, number: str, headers: dict[str, str]) -> Pop: ...

    async def find_callers(self, text: str) -> list[Match]: ...

    async def identify(self, pop: Pop, resident_id: int, *, link: bool = True) -> tuple[Pop, str]: ...

    async def new_caller(self, pop: Pop, name: str, unit: str, kind: str) -> tuple[Pop, str]: ...

    async def open_work_order(self, *, order_type: str, description: str, interaction: str,
                              resident_id: int | None, number: str) -> tuple[int, tuple[OrderLine, ...]]: ...

    async def callbacks(self) -> list[Callback]: ...

    async def callback_outcome(self, callback_id: int, outcome: str, notes: str) -> str: ...

    async def today(self) -> tuple[int, float]: ...

    async def answers(self) -> list[Answer]: ...

    async def extensions(self) -> frozenset[str]: ...


Ask = Callable[..., Awaitable[dict]]


def on_this_call(fetched: Pop, call: int, number: str, headers: dict[str, str]) -> Pop:
    """The switch's pop with what this ringing call itself said (the phone's key, the
    wait, the queue) kept."""
    ringing = desk.header_pop(call, number, headers)
    return replace(fetched, call=call, number=number or fetched.number, queue=ringing.queue or fetched.queue,
                   waited_s=ringing.waited_s, interaction=ringing.interaction or fetched.interaction)


class SwitchDesk:
    """Records through the switch. `ask(op, **fields)` is the seat's control connection
    (it raises ControlError with the switch's message, or ConnectionError)."""

    def __init__(self, ask: Ask):
        self.ask = ask

    async def _ask(self, op: str, **fields) -> dict:
        from telephony.control_client import ControlError

        try:
            return await self.ask(op, **fields)
        except ControlError as exc:
            raise DeskError(exc.message) from None
        except (ConnectionError, OSError, asyncio.TimeoutError):
            raise DeskError("the switch did not answer (not connected?)") from None

    async def pop(self, call: int, number: str, headers: dict[str, str]) -> desk.Pop:
        resident = headers.get("X-Hotline-Resident", "")
        fields: dict = {"call_id": headers.get("X-Hotline-Interaction", ""), "number": number,
                        "queue": headers.get("X-Hotline-Queue", "")}
        if resident.isdigit():
            fields["resident_id"] = int(resident)
        reply = await self._ask("pop", **fields)
        return on_this_call(desk.pop_from_wire(reply["pop"]), call, number, headers)

    async def find_callers(self, text):
        reply = await self._ask("search_residents", text=text, limit=20)
        return [desk.match_from_wire(match) for match in reply["matches"]]

    async def identify(self, pop, resident_id, *, link=True):
        reply = await self._ask("identify", call_id=pop.interaction, resident_id=resident_id, number=pop.number,
                                link=link, queue=pop.queue, waited_s=pop.waited_s)
        return replace(desk.pop_from_wire(reply["pop"]), call=pop.call), reply["said"]

    async def new_caller(self, pop, name, unit, kind):
        reply = await self._ask("add_resident", call_id=pop.interaction, name=name, unit=unit, kind=kind,
                                number=pop.number, queue=pop.queue, waited_s=pop.waited_s)
        return replace(desk.pop_from_wire(reply["pop"]), call=pop.call), reply["said"]

    async def open_work_order(self, *, order_type, description, interaction, resident_id, number):
        reply = await self._ask("open_work_order", type=order_type, description=description, call_id=interaction,
                                resident_id=resident_id, number=number)
        return int(reply["order_id"]), tuple(desk.order_from_wire(order) for order in reply["orders"])

    async def callbacks(self):
        reply = await self._ask("callbacks")
        return [desk.callback_from_wire(callback) for callback in reply["callbacks"]]

    async def callback_outcome(self, callback_id, outcome, notes):
        return (await self._ask("callback_outcome", callback_id=callback_id, outcome=outcome, notes=notes))["said"]

    async def today(self):
        reply = await self._ask("today")
        return int(reply["calls"]), float(reply["talk_s"])

    async def answers(self):
        reply = await self._ask("knowledge")
        return [desk.answer_from_wire(answer) for answer in reply["answers"]]

    async def extensions(self):
        return frozenset((await self._ask("extensions"))["extensions"])


class LocalDesk:
    """Records from a database file, by the functions the switch answers with."""

    def __init__(self, db, *, agent_id: int | None = None, clock: Callable[[], float], policy=None):
        from records.sla import load_policy

        self.db, self.agent_id, self.clock = db, agent_id, clock
        self.policy = policy or load_policy()

    async def pop(self, call, number, headers):
        return desk.screen_pop(self.db, call, number, headers, self.clock())

    async def find_callers(self, text):
        return desk.find_callers(self.db, text, limit=20)

    async def identify(self, pop, resident_id, *, link=True):
        from records.directory import DirectoryError

        try:
            return desk.identified(self.db, pop, resident_id, self.clock(), link=link)
        except DirectoryError as exc:
            raise DeskError(str(exc)) from None

    async def new_caller(self, pop, name, unit, kind):
        from records.directory import DirectoryError

        try:
            return desk.new_caller(self.db, pop, name, unit, kind, self.clock())
        except (DirectoryError, ValueError) as exc:
            raise DeskError(str(exc)) from None

    async def open_work_order(self, *, order_type, description, interaction, resident_id, number):
        from records.workorders import LifecycleError, WorkOrders

        row = self.db.execute("SELECT id FROM interactions WHERE uid = ?", [interaction]).fetchone()
        try:
            order_id = WorkOrders(self.db, self.policy).open(
                order_type=order_type, description=description, owner_agent_id=self.agent_id,
                resident_id=resident_id, interaction_id=row[0] if row else None, callback_number=number,
                now=self.clock())
        except (LifecycleError, ValueError) as exc:
            raise DeskError(str(exc)) from None
        orders = desk.open_orders(self.db, resident_id, self.clock()) if resident_id is not None else []
        return order_id, tuple(orders)

    async def callbacks(self):
        from records.callbacks import due_callbacks

        return due_callbacks(self.db, self.agent_id)

    async def callback_outcome(self, callback_id, outcome, notes):
        from records.callbacks import record_attempt

        try:
            return record_attempt(self.db, callback_id, outcome, agent_id=self.agent_id, now=self.clock(),
                                  notes=notes, policy=self.policy)
        except ValueError as exc:
            raise DeskError(str(exc)) from None

    async def today(self):
        return desk.today_totals(self.db, self.agent_id, self.clock(), self.policy.timezone)

    async def answers(self):
        from records.knowledge import KnowledgeError, load_knowledge

        try:
            return load_knowledge()
        except KnowledgeError as exc:
            raise DeskError(str(exc)) from None

    async def extensions(self):
        return frozenset(row[0] for row in self.db.execute("SELECT ext FROM agents WHERE active = 1"))
