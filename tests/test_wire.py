"""Every event the switch sends goes over the wire and comes back as the same object."""
import json

import pytest

from records import desk
from telephony import wire
from telephony.acd import events as ev
from telephony import call_events
from telephony.call_events import PhoneRegistration


def example(cls):
    """An instance with a distinct value in every field, typed as the constructor wants."""
    values = {"t": 1_800_000_000.5, "registered": True, "declined": True, "resident_id": 7, "order_id": 3015, "callback_id": 9,
              "position": 2, "original_position": 1}
    floats = {"until", "since"}
    fields = {}
    for i, name in enumerate(wire.field_names(cls)):
        fields[name] = values.get(name, float(i) + 0.25 if name in floats or name.endswith("_s") else f"{name}-{i}")
    return cls(**fields)


@pytest.mark.parametrize("cls", list(wire.TYPES.values()), ids=list(wire.TYPES))
def test_each_event_survives_the_wire(cls):
    try:
        event = example(cls)
    except TypeError:   # a field typed otherwise: give it an integer
        pytest.fail(f"extend example() for {cls.__name__}")
    line = json.loads(json.dumps({**wire.encode(event), "seq": 12}))
    assert line["v"] == wire.EVENT_VERSION and line["event"] == cls.__name__
    delivered = wire.decode(line)
    assert type(delivered.event) is cls and delivered.event == event and delivered.seq == 12


def test_every_class_the_switch_publishes_has_a_wire_name():
    routing = {name for name in dir(ev) if isinstance(getattr(ev, name), type)
               and issubclass(getattr(ev, name), ev.Event) and getattr(ev, name) is not ev.Event}
    seat = {cls.__name__ for cls in desk.DeskEvent.__subclasses__()}
    legs = {cls.__name__ for cls in call_events.Event.__subclasses__()}
    assert PhoneRegistration.__name__ in legs
    assert routing | seat | legs == set(wire.TYPES)


def test_an_offer_keeps_its_pop_and_form_apart_from_the_event():
    line = {**wire.encode(ev.CallOffered(1.0, "c1", "repair", "1001")), "pop": {"number": "+852"},
            "form": {"notes": "leak"}}
    delivered = wire.decode(line)
    assert delivered.event == ev.CallOffered(1.0, "c1", "repair", "1001")
    assert delivered.pop == {"number": "+852"} and delivered.form == {"notes": "leak"} and delivered.seq is None
    assert (delivered.call_id, delivered.agent_id) == ("c1", "1001")


def test_a_line_logged_before_versions_reads_as_version_one():
    assert wire.decode({"event": "AgentStateChanged", "t": 1, "agent_id": "1001", "state": "idle"}).event == \
        ev.AgentStateChanged(1, "1001", "idle")


@pytest.mark.parametrize("line, said", [
    ({"event": "AgentStateChanged", "v": 2, "t": 1, "agent_id": "1001", "state": "idle"}, "event version 2"),
    ({"event": "Nope", "v": 1}, "unknown event 'Nope'"),
    ({"event": 3}, "unknown event 3"),
    ({"event": "AgentStateChanged", "v": 1, "t": 1, "agent_id": "1001"}, "without state"),
])
def test_a_line_that_is_not_a_readable_event_says_why(line, said):
    with pytest.raises(wire.WireError, match=said):
        wire.decode(line)


def test_the_wire_types_are_the_classes_own():
    """The decoder's table of field types says what the constructors' annotations say
    (read from the source: the compiled classes keep no annotations)."""
    import dataclasses
    import importlib.util
    import typing
    from pathlib import Path

    spec = importlib.util.spec_from_file_location(
        "events_source", Path(__file__).resolve().parent.parent / "telephony" / "acd" / "events.py")
    source = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(source)
    for name, cls in wire.TYPES.items():
        if dataclasses.is_dataclass(cls):
            hints = typing.get_type_hints(cls)
        else:
            hints = typing.get_type_hints(getattr(source, name).__init__)
        for field in wire.field_names(cls):
            hint = hints[field]
            if wire.ADDED_WITH_DEFAULT.get((name, field), 0) is None:   # absent (older lines): the class fills it in
                hint = typing.Optional[float] == hint and float or hint
            nullable = (name, field) in wire.MAY_BE_NULL
            expected = {float: wire.NUMBERS, int: wire.INTEGERS, bool: wire.FLAGS}
            if nullable:
                assert hint == typing.Optional[int], (name, field)
                continue
            for kind, names in expected.items():
                assert (hint is kind) == (field in names), (name, field, hint)
            if field not in wire.NUMBERS | wire.INTEGERS | wire.FLAGS:
                assert hint is str, (name, field, hint)


@pytest.mark.parametrize("field, value", [("call_id", 5), ("t", "soon"), ("t", True), ("queue", None)])
def test_a_field_of_the_wrong_type_is_refused_not_passed_on(field, value):
    line = {**wire.encode(ev.CallOffered(1.0, "c1", "repair", "1001")), field: value}
    with pytest.raises(wire.WireError, match=f"{field} is"):
        wire.decode(line)


def test_the_control_api_document_lists_every_event_with_its_fields():
    import re
    from pathlib import Path

    text = (Path(__file__).resolve().parent.parent / "docs" / "control-api.md").read_text()
    rows = {m.group(1): re.findall(r"`(\w+)`", m.group(2))
            for m in re.finditer(r"^\| `(\w+)` \| ([^|]*) \|", text.split("## Events", 1)[1], re.M)}
    assert set(rows) == set(wire.TYPES)
    for name, cls in wire.TYPES.items():
        assert rows[name] == [f for f in wire.field_names(cls) if f != "t"], name


def test_a_field_added_with_a_default_reads_from_lines_logged_before_it():
    old_line = {"event": "RingNoAnswer", "v": 1, "t": 5.0, "call_id": "c1", "queue": "repair", "agent_id": "1001",
                "ring_s": 15.0}
    assert wire.decode(old_line).event == ev.RingNoAnswer(5.0, "c1", "repair", "1001", 15.0, False)
    declined = wire.encode(ev.RingNoAnswer(5.0, "c1", "repair", "1001", 2.0, True))
    assert declined["declined"] is True and wire.decode(declined).event.declined is True


def test_the_supervisors_snapshot_arrives_typed_and_immutable():
    import dataclasses

    import pytest as _pytest

    from telephony.wire import WireError, decode_snapshot

    snapshot = decode_snapshot({"at": 5.0, "queues": {"repair": [{"call_id": "c1", "number": "+852", "priority": "vip",
                                                                  "wait_s": 3.0}]},
                                "agents": [{"ext": "1001", "name": "Ann", "status": "available", "state": "idle",
                                            "since": 1.0, "skills": {"repair": 3}, "registered": True,
                                            "brand_new_field": 1}],
                                "locked_out": [{"kind": "ext", "key": "1007", "seconds_left": 60}], "media": None})
    assert snapshot.waiting("repair")[0].priority == "vip" and snapshot.waiting("billing") == ()
    [ann] = snapshot.agents
    assert ann.serves("repair") and not ann.serves("billing") and ann.status_since == 1.0
    with _pytest.raises(dataclasses.FrozenInstanceError):
        ann.status = "on_break"
    with _pytest.raises(WireError, match="cannot read"):
        decode_snapshot({"at": 5.0, "agents": [{"ext": "1001"}]})


def test_a_status_change_logged_before_since_existed_reads_as_beginning_at_its_time():
    line = {"event": "AgentStatusChanged", "v": wire.EVENT_VERSION, "t": 100.0, "agent_id": "1001",
            "status": "on_break", "reason": "lunch", "previous": "available"}
    assert wire.decode(line).event.since == 100.0
