"""Routing events as Asterisk queue_log rows: `epoch|callid|queue|agent|EVENT|data1|...`.

Field order follows Asterisk's app_queue (ENTERQUEUE url|callerid|pos, CONNECT
holdtime|uniqueid|ringtime, COMPLETECALLER/COMPLETEAGENT holdtime|calltime|origpos,
ABANDON, EXITWITHTIMEOUT and EXITEMPTY pos|origpos|waittime, RINGNOANSWER ms), with
QueueMetrics' INFO lines for what Asterisk has no event for. Times and durations are whole seconds,
as Asterisk writes them. Pure: the writer in records/ does the I/O.
"""

from __future__ import annotations

from telephony.acd import events as ev

Row = tuple  # (time, callid, queuename, agent, event, data1, data2, data3, data4, data5)


def agent_field(agent_id: str) -> str:
    return f"Agent/{agent_id}"


def _row(t: float, callid: str, queue: str, agent: str, event: str, *data) -> Row:
    values = [str(d) for d in data] + [""] * (5 - len(data))
    return (int(t), callid, queue, agent, event, *values)


def _s(seconds: float) -> int:
    return int(round(seconds))


def rows_for(event) -> list[Row]:
    kind = type(event)
    if kind is ev.CallQueued:
        return [_row(event.t, event.call_id, event.queue, "NONE", "ENTERQUEUE", "", event.number, event.position)]
    if kind is ev.CallConnected:
        return [_row(event.t, event.call_id, event.queue, agent_field(event.agent_id), "CONNECT",
                     _s(event.wait_s), event.call_id, _s(event.ring_s))]
    if kind is ev.CallCompleted:
        name = "COMPLETECALLER" if event.by == "caller" else "COMPLETEAGENT"
        return [_row(event.t, event.call_id, event.queue, agent_field(event.agent_id), name,
                     _s(event.wait_s), _s(event.talk_s), event.original_position)]
    if kind is ev.CallAbandoned:
        return [_row(event.t, event.call_id, event.queue, "NONE", "ABANDON", event.position,
                     event.original_position, _s(event.wait_s))]
    if kind is ev.CallTimedOut:
        return [_row(event.t, event.call_id, event.queue, "NONE", "EXITWITHTIMEOUT", event.position,
                     event.original_position, _s(event.wait_s))]
    if kind is ev.RingNoAnswer:
        return [_row(event.t, event.call_id, event.queue, agent_field(event.agent_id), "RINGNOANSWER",
                     int(round(event.ring_s * 1000)))]
    if kind is ev.CallRejectedFull:
        return [_row(event.t, event.call_id, event.queue, "NONE", "FULL")]
    if kind is ev.CallToVoicemail:
        return [_row(event.t, event.call_id, event.queue, "NONE", "INFO", "VOICEMAIL", _s(event.wait_s))]
    if kind is ev.CallbackAccepted:
        return [_row(event.t, event.call_id, event.queue, "NONE", "INFO", "CALLBACK", event.number)]
    if kind is ev.CallRequeued:  # the agent's phone went away mid-call; the caller waits again
        return [_row(event.t, event.call_id, event.queue, agent_field(event.agent_id), "INFO", "REQUEUE",
                     _s(event.talk_s), _s(event.hold_s))]
    if kind is ev.CallTransferred:  # Asterisk: BLINDTRANSFER|extension|context|holdtime|calltime|origposition
        return [_row(event.t, event.call_id, event.queue, agent_field(event.agent_id), "BLINDTRANSFER",
                     event.target, "hotline", _s(event.wait_s), _s(event.talk_s), event.original_position)]
    if kind is ev.BreakOverrun:
        return [_row(event.t, "NONE", "NONE", agent_field(event.agent_id), "INFO", "BREAKLIMIT", event.reason,
                     _s(event.limit_s))]
    if kind is ev.PriorityChanged:
        return [_row(event.t, event.call_id, event.queue, "NONE", "INFO", "PRIORITY", event.priority)]
    if kind is ev.AgentStatusChanged:
        agent = agent_field(event.agent_id)
        if event.status == "available":
            name = "UNPAUSE" if event.previous == "on_break" else "AGENTLOGIN"
            return [_row(event.t, "NONE", "NONE", agent, name)]
        if event.status == "on_break":
            if event.previous == "logged_out":  # straight onto a break: logged in, then paused
                return [_row(event.t, "NONE", "NONE", agent, "AGENTLOGIN"),
                        _row(event.t, "NONE", "NONE", agent, "PAUSE", event.reason)]
            return [_row(event.t, "NONE", "NONE", agent, "PAUSE", event.reason)]
        return [_row(event.t, "NONE", "NONE", agent, "AGENTLOGOFF")]
    return []


def interrupted_rows(t: float, call_id: str, queue: str, agent_id: str, *, answered: bool, wait_s: float,
                     talk_s: float, original_position: int, why: str) -> list[Row]:
    """The lines that close a call the switch itself ended (it stopped, or it crashed and
    the next start found the call open), so every ENTERQUEUE has its end: a connected call
    ends as COMPLETEAGENT (the switch's side hung up), a waiting one as EXITEMPTY (nobody
    left to answer), each followed by INFO|INTERRUPTED|why."""
    agent = agent_field(agent_id) if agent_id else "NONE"
    if answered:
        close = _row(t, call_id, queue, agent, "COMPLETEAGENT", _s(wait_s), _s(talk_s), original_position)
    else:
        close = _row(t, call_id, queue, "NONE", "EXITEMPTY", original_position, original_position, _s(wait_s))
    return [close, _row(t, call_id, queue, agent, "INFO", "INTERRUPTED", why)]


def format_line(row: Row) -> str:
    """One text line; trailing empty data fields are left off, as Asterisk does."""
    fields = [str(f) for f in row]
    while len(fields) > 5 and fields[-1] == "":
        fields.pop()
    return "|".join(fields)
