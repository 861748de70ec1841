"""`hotline supervisor`: the live centre over the control API (works over SSH).

Queues (waiting, longest wait, today's offered / answered / abandoned, service level
against its target, ASA, abandon rate, agents by state, callers waiting over the last
hour), alerts that stay until acknowledged, the callers waiting in the order they will
be served, every agent's state and day, work orders due, and the audit trail. Actions
(each confirmed, each audited by the switch): acknowledge an alert, put an agent on a
break, back, or log them out, change their skills, raise a waiting caller's priority,
move them to another queue.

The figures come from console/centre.py (the simulator's statistics fed with the
switch's events since midnight); the screen reads the switch's snapshot every second and
its records every REFRESH_RECORDS_S. If the connection drops, the header says so at once,
the tables are marked stale, and the console reconnects and catches up from the event
log by itself.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import time
from typing import Awaitable, Callable

from rich.cells import cell_len
from rich.text import Text
from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import DataTable, Footer, Static
from textual.widgets.data_table import ColumnKey

from console.centre import Centre, QueueSettings
from console.choices import BreakScreen, ConfirmScreen, PickScreen
from console.dialogs import TextField, typing_caught_up
from console.last_resort import LastResort, terminal_fd
from telephony import wire
from telephony.control_client import ControlClient, ControlError

log = logging.getLogger("hotline.supervisor")

REFRESH_S = 1.0
STALE_S = 3.0   # no snapshot for this long: the figures are not live, whatever the connection says
REFRESH_RECORDS_S = 10.0
RECONNECT_S = 2.0
SPARK = "▁▂▃▄▅▆▇█"
PRIORITIES = ("normal", "vip", "emergency")

Connect = Callable[[int | None, float | None], Awaitable[tuple[ControlClient, dict]]]


def duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    seconds = max(0, int(seconds))
    if seconds < 3600:
        return f"{seconds // 60}:{seconds % 60:02d}"
    if seconds < 48 * 3600:
        return f"{seconds // 3600}h{seconds % 3600 // 60:02d}"
    return f"{seconds // 86400}d"


def share(value: float | None) -> str:
    return "-" if value is None else f"{value:.0%}"


def sparkline(values: tuple[int, ...], width: int = 20) -> str:
    values = values[-width:]
    if not values:
        return ""
    top = max(values) or 1
    return "".join(SPARK[min(len(SPARK) - 1, round(v / top * (len(SPARK) - 1)))] for v in values)


class SkillsScreen(ModalScreen):
    """The agent's skills as `repair:4,billing:2`, checked as typed; dismissed with the
    text, or None."""

    DEFAULT_CSS = """
    SkillsScreen { align: center middle; }
    #skills-box { width: 70; height: auto; border: round $accent; background: $surface; padding: 0 1; }
    #skills-box Input { height: 1; border: none; padding: 0 1; background: $boost; }
    #skills-problem { color: $warning; height: auto; }
    """
    BINDINGS = [Binding("enter", "save", "Save", priority=True), Binding("escape", "close", "Back")]

    def __init__(self, ext: str, name: str, skills: str):
        super().__init__()
        self.ext, self.agent_name, self.skills = ext, name, skills

    def compose(self) -> ComposeResult:
        from textual.containers import Vertical

        with Vertical(id="skills-box"):
            yield Static(f"Skills of {self.ext} {self.agent_name}: queue:level (1-5), commas between")
            yield TextField(self.skills, id="skills")
            yield Static("", id="skills-problem")
            yield Static("enter saves (asks first) · esc back")

    def on_mount(self) -> None:
        self.query_one("#skills", TextField).focus()

    async def action_save(self) -> None:
        from records.agents import AgentError, parse_skills

        await typing_caught_up(self.app)
        text = self.query_one("#skills", TextField).value.strip()
        try:   # said here, before anything is asked (found in a trial: refused only after confirming)
            parse_skills(text)
        except AgentError as exc:
            self.query_one("#skills-problem", Static).update(str(exc))
            return
        self.dismiss(text or None)

    def action_close(self) -> None:
        self.dismiss(None)


def status_text(agent) -> str:
    """An agent's status as their seat says it: a phone registered but not taking calls
    yet is "not ready" (found in a demo trial: the console said "logged out" of a seat
    that was open and waiting for its agent's v)."""
    if agent.status == "on_break":
        return f"on break ({agent.reason})" if agent.reason else "on break"
    if agent.status == "logged_out" and agent.registered:
        return "not ready"
    return agent.status.replace("_", " ")


class ReportScreen(ModalScreen):
    """The interval report (`hotline report`) on screen: today by default, a table and a
    plot of offered, answered and abandoned per interval with the service level."""

    DEFAULT_CSS = """
    ReportScreen { background: $surface; }
    #report-title { height: 1; text-style: bold; padding: 0 1; }
    #report-table { height: auto; max-height: 50%; }
    #report-plot { height: 1fr; min-height: 8; }
    """
    BINDINGS = [Binding("g", "group", "By queue/agent/type"), Binding("i", "interval", "Interval"),
                Binding("left_square_bracket", "day(-1)", "Day before"), Binding("right_square_bracket", "day(1)", "Day after"),
                Binding("escape", "close", "Back"),
                # rows, not columns (a DataTable's home/end scroll sideways, hiding the time:
                # found in a demo trial looking for the latest interval)
                Binding("home", "row(0)", "First row", show=False, priority=True),
                Binding("end", "row(-1)", "Last row", show=False, priority=True)]
    COLUMNS = ("offered", "answered", "abandoned", "short_abandoned", "service_level", "asa_s", "aht_s", "occupancy",
               "transfers", "callbacks_made", "orders_opened", "orders_closed", "orders_overdue", "survey_score")

    def __init__(self, ask: Callable[..., Awaitable[dict]], today: dt.date, tz: dt.tzinfo):
        super().__init__()
        self.ask, self.day, self.today, self.tz = ask, today, today, tz
        self.by, self.interval = "queue", "30m"

    def compose(self) -> ComposeResult:
        from textual_plotext import PlotextPlot

        yield Static("", id="report-title")
        yield DataTable(id="report-table", cursor_type="row", zebra_stripes=True)
        yield PlotextPlot(id="report-plot")
        yield Footer()

    def on_mount(self) -> None:
        self.call_later(self.load)

    async def load(self) -> None:
        from telephony.report import HEADINGS, cell

        title = self.query_one("#report-title", Static)
        try:
            reply = await self.ask("report", day=self.day.isoformat(), interval=self.interval, by=self.by)
        except (ControlError, ConnectionError, asyncio.TimeoutError) as exc:
            title.update(f"No report: {getattr(exc, 'message', None) or exc or 'the switch did not answer'}")
            return
        rows = reply["rows"]
        title.update(f"{self.day:%a %d %b %Y} · {self.interval} intervals by {self.by} · SL = answered within the "
                     f"threshold / offered · g grouping, i interval, [ ] day, esc back")
        table = self.query_one("#report-table", DataTable)
        table.clear(columns=True)
        table.add_columns("time", self.by, *(HEADINGS[c] for c in self.COLUMNS))
        for row in rows:
            table.add_row(dt.datetime.fromtimestamp(row["interval_start"], self.tz).strftime("%H:%M"), row[self.by],
                          *(cell(c, row[c]) for c in self.COLUMNS))
        if self.day == self.today:
            self.action_row(-1)   # today: the latest interval in view, where the supervisor looks first
        self._plot(rows)

    def action_row(self, index: int) -> None:
        table = self.query_one("#report-table", DataTable)
        if table.row_count:
            table.move_cursor(row=index % table.row_count, column=0, animate=False)
            table.scroll_to(x=0, animate=False)

    def _plot(self, rows: list[dict]) -> None:
        from textual_plotext import PlotextPlot

        widget = self.query_one("#report-plot", PlotextPlot)
        plt = widget.plt
        plt.clear_data()
        plt.clear_figure()
        from telephony.report import INTERVALS_S, day_bounds

        start, end = day_bounds(self.day, self.tz)
        length = INTERVALS_S[self.interval]
        # every interval of the day, the quiet ones as zero, so the time axis is even
        starts = [start + n * length for n in range(int((end - start) // length))] if rows else []
        if starts:
            labels = [dt.datetime.fromtimestamp(t, self.tz).strftime("%H:%M") for t in starts]
            x = [float(n) for n in range(len(starts))]
            for field, colour in (("offered", "blue"), ("answered", "green"), ("abandoned", "red")):
                values = [sum(r[field] for r in rows if r["interval_start"] == t) for t in starts]
                plt.plot(x, values, label=field, color=colour, marker="braille")
            step = max(1, len(x) // 8)
            plt.xticks(x[::step], labels[::step])
            plt.title("callers per interval (all rows)")
        else:
            plt.title("nothing that day")
        widget.refresh()

    async def action_group(self) -> None:
        from telephony.report import GROUPINGS

        self.by = GROUPINGS[(GROUPINGS.index(self.by) + 1) % len(GROUPINGS)]
        await self.load()

    async def action_interval(self) -> None:
        from telephony.report import INTERVALS_S

        names = list(INTERVALS_S)
        self.interval = names[(names.index(self.interval) + 1) % len(names)]
        await self.load()

    async def action_day(self, step: int) -> None:
        day = self.day + dt.timedelta(days=step)
        if day > dt.datetime.now(self.tz).date():
            self.app.bell()   # tomorrow has no report yet
            return
        self.day = day
        await self.load()

    def action_close(self) -> None:
        self.dismiss(None)


class SupervisorApp(App):
    CSS = """
    #header { height: 1; background: $primary; color: $text; padding: 0 1; }
    #header.stale { background: $error; }
    #notice { height: auto; color: $warning; padding: 0 1; }
    .title { height: 1; text-style: bold; padding: 0 1; margin-top: 1; }
    DataTable { height: auto; max-height: 14; }
    #alerts { max-height: 10; }
    #agents { max-height: 40; }   /* a centre's whole shift, not 13 of them (found in a trial) */
    DataTable.stale { opacity: 60%; }
    """
    BINDINGS = [
        Binding("a", "acknowledge", "Seen"), Binding("b", "force_break", "Break"),
        Binding("v", "force_available", "Back"), Binding("l", "force_logout", "Log out"),
        Binding("s", "skills", "Skills"), Binding("p", "priority", "Priority"), Binding("m", "move", "Move"),
        Binding("r", "report", "Report"),
        Binding("tab", "focus_next", "Next table", show=False), Binding("q", "quit_asked", "Quit"),
    ]
    TITLE = "hotline supervisor"

    def __init__(self, *, me: dict, client: ControlClient | None, connect: Connect, queues: dict[str, QueueSettings],
                 breaks: dict[str, float], tz: dt.tzinfo, clock: Callable[[], float] = time.time):
        super().__init__()
        self.me, self.client, self.connect, self.tz, self.clock = me, client, connect, tz, clock
        self.breaks = breaks
        self.centre = Centre(queues, self._midnight())
        self.live = False
        self._notice_until = 0.0
        self._polling = False
        self._last_records = 0.0
        self._reconnecting: asyncio.Task | None = None
        self.phone = None   # LastResort stops a seat's phone; a console has none
        self._unreadable: set[str] = set()
        self._answered_at = time.monotonic()   # the switch's last snapshot

    def get_system_commands(self, screen):
        """ctrl+p: the console's own keys only (Textual's quit would not ask; its
        screenshot would write callers' numbers to a file)."""
        from textual.app import SystemCommand

        for binding in self.BINDINGS:
            if isinstance(binding, Binding) and binding.show and binding.action != "quit_asked":
                yield SystemCommand(f"{binding.description} ({binding.key})", "", getattr(self, f"action_{binding.action}"))
        yield SystemCommand("Quit (q)", "close the console (it asks first)", self.action_quit_asked)

    def _midnight(self) -> float:
        now = dt.datetime.fromtimestamp(self.clock(), self.tz)
        return now.replace(hour=0, minute=0, second=0, microsecond=0).timestamp()

    # --- layout ------------------------------------------------------------------------------
    def compose(self) -> ComposeResult:
        yield Static("", id="header")
        yield Static("", id="notice")
        with VerticalScroll(id="body"):
            yield Static("Alerts (a marks the one under the cursor seen, for every supervisor)", id="alerts-title",
                         classes="title")
            yield DataTable(id="alerts", cursor_type="row")
            yield Static("", id="queues-title", classes="title")
            yield DataTable(id="queues", cursor_type="row")
            yield Static("Callers waiting, in the order they will be served (p priority, m move)", id="waiting-title",
                         classes="title")
            yield DataTable(id="waiting", cursor_type="row")
            yield Static("Agents (b break, v back, l log out, s skills)", id="agents-title", classes="title")
            yield DataTable(id="agents", cursor_type="row")
            yield Static("Work orders overdue or due within the hour", classes="title")
            yield DataTable(id="orders", cursor_type="row")
            yield Static("What supervisors did today", classes="title")
            yield DataTable(id="audit", cursor_type="row")
        yield Footer(compact=True, show_command_palette=False)   # every key fits at 80 columns

    def on_mount(self) -> None:
        columns = {
            "alerts": ("!", "alert", "seen"),
            "queues": ("queue", "wait", "longest", "offered", "answered", "aband", "SL", "ASA", "aband%",
                       "in", "free", "call", "wrap", "break", "waiting, last hour"),
            "waiting": ("queue", "#", "caller", "priority", "waiting"),
            "agents": ("ext", "name", "status", "state", "for", "caller", "queue", "call", "calls", "AHT", "wrap",
                       "break"),
            "orders": ("order", "type", "department", "deadline", "left"),
            "audit": ("time", "by", "did", "on", "detail"),
        }
        for table, names in columns.items():
            widget = self._main.query_one(f"#{table}", DataTable)
            for name in names:
                # an alert's text wraps within the screen's width rather than being cut
                width = self._alert_width(self.size.width) if (table, name) == ("alerts", "alert") else None
                widget.add_column(name, key=name, width=width)
        self._main.query_one("#queues-title", Static).update(
            "Queues today · SL: answered within the threshold / offered")
        self._start()
        # SIGHUP (the SSH connection dropped), SIGTERM, or a terminal that vanished: out
        # within seconds, never an orphan left polling the switch
        self.last_resort = LastResort(self, terminal_fd=terminal_fd())
        self.last_resort.install()

    def _start(self) -> None:
        if self.client is not None:
            self.call_later(self._go_live, self.client, None)
        else:
            self._switch_lost("no connection to the switch")
        self.set_interval(REFRESH_S, self._tick_second)

    def on_unmount(self) -> None:
        self.last_resort.uninstall()

    async def leave(self, urgent: bool = False) -> None:
        """The way out of a signal or a lost terminal (LastResort): close the connection, exit."""
        self.live = False
        if self.client is not None and not self.client.closed:
            await self.client.close()
        self.exit()

    @property
    def _main(self):
        """The console's own screen: a dialog or the report on top must not hide its
        widgets from the once-a-second redraw (App.query_one looks at the top screen)."""
        return self.screen_stack[0]

    @staticmethod
    def _alert_width(screen_width: int) -> int:
        return max(30, screen_width - 16)

    def on_resize(self, event) -> None:
        table = self._main.query_one("#alerts", DataTable)
        column = table.columns.get(ColumnKey("alert"))
        width = self._alert_width(event.size.width)
        if column is not None and column.width != width:
            column.width = width
            table.clear()   # rows are measured again at the new width on the next draw
            self._redraw()

    # --- the switch ----------------------------------------------------------------------------
    async def _go_live(self, client: ControlClient, reply: dict | None) -> None:
        """A connection that has logged in: catch up from the event log, then live."""
        self.client = client
        client.on_close = self._on_connection_closed
        client.on_event = self._on_switch_event   # before subscribing: the day's catch-up arrives first
        if reply is None:
            reply = await client.subscribe(self.centre.last_seq or None) if self.centre.last_seq else \
                await client.ask("subscribe", since=self.centre.day_start, v=wire.EVENT_VERSION)
        if "snapshot" in reply:
            self.centre.take_snapshot(wire.decode_snapshot(reply["snapshot"]))
        self.live = True
        self._answered_at = time.monotonic()
        self._last_records = 0.0
        await self._poll_switch()

    def _on_switch_event(self, delivered: wire.Delivered) -> None:
        try:
            self.centre.apply(delivered.event, delivered.seq or 0)
        except Exception:   # one event the console cannot count must not cut it off the switch
            kind = type(delivered.event).__name__
            if kind not in self._unreadable:
                self._unreadable.add(kind)
                log.exception("the console could not count a %s event; it goes on without it", kind)

    def _on_connection_closed(self) -> None:
        self.call_later(self._switch_lost, "the switch closed the connection")

    def _switch_lost(self, why: str) -> None:
        if self.live or self._reconnecting is None:
            self.live = False
            self.notice(f"Not live: {why}. Reconnecting by itself; the figures below are as they were.")
            self._redraw()
        if self._reconnecting is None or self._reconnecting.done():
            self._reconnecting = asyncio.get_running_loop().create_task(self._reconnect_loop())

    async def _reconnect_loop(self) -> None:
        while not self.live:
            try:
                client, reply = await self.connect(self.centre.last_seq or None,
                                                   None if self.centre.last_seq else self.centre.day_start)
            except ControlError as exc:
                self.notice(f"Not live: the switch refused the login ({exc.message}).")
                await asyncio.sleep(RECONNECT_S)
                continue
            except (OSError, asyncio.TimeoutError, ConnectionError):
                await asyncio.sleep(RECONNECT_S)
                continue
            await self._go_live(client, reply)
            self.notice("Live again: caught up from the switch's event log.")

    async def _tick_second(self) -> None:
        if self._polling:   # a slow switch: refreshes never pile up, but the header says so
            self._redraw()
            return
        await self._poll_switch()

    async def _poll_switch(self) -> None:
        self._polling = True
        try:
            if self.live and self.client is not None and not self.client.closed:
                self.centre.take_snapshot(wire.decode_snapshot((await self.client.ask("snapshot"))["snapshot"]))
                self._answered_at = time.monotonic()
                if self.clock() - self._last_records >= REFRESH_RECORDS_S:
                    self._last_records = self.clock()
                    self.centre.take_records((await self.client.ask("supervise", since=self.centre.day_start))
                                             ["supervision"])
        except (ConnectionError, asyncio.TimeoutError) as exc:
            self._switch_lost(str(exc) or "no answer")
        except ControlError as exc:
            self.notice(f"The switch said: {exc.message}")
        except wire.WireError as exc:   # a switch of another release
            self.notice(f"Cannot read the switch's answer: {exc}")
        finally:
            self._polling = False
        if self._midnight() != self.centre.day_start:   # a new day: today's figures start again
            self.centre = Centre(self.centre.queues, self._midnight())
            old, self.client = self.client, None
            self._switch_lost("a new day began: reloading today")
            if old is not None and not old.closed:
                old.on_close = None   # its end is this, not a lost switch
                asyncio.ensure_future(old.close())
        self._redraw()

    # --- drawing -------------------------------------------------------------------------------
    def notice(self, text: str) -> None:
        self._notice_until = self.clock() + 60 if text else 0.0
        self._main.query_one("#notice", Static).update(text)

    def _redraw(self) -> None:
        if not self.is_running or not self._main.is_attached:
            return   # closing: a refresh that was under way has nothing left to draw on
        now = self.clock()
        if self._notice_until and now > self._notice_until:
            self.notice("")
        alerts = self.centre.alerts(now)
        open_alerts = sum(1 for a in alerts if not a.acknowledged)
        state, stale = self._state()
        header = self._main.query_one("#header", Static)
        header.update(f"{state} │ {open_alerts} alert{'s' if open_alerts != 1 else ''} to see")
        header.set_class(stale, "stale")
        for table in self._main.query(DataTable):
            table.set_class(stale, "stale")
        with self.batch_update():
            self._fill_table("alerts", [(a.key, (Text("!!", style="bold red") if a.severity == "critical" else
                                           Text("!", style="yellow"), a.text, "seen" if a.acknowledged else ""))
                                  for a in sorted(alerts, key=lambda a: (a.acknowledged, a.severity != "critical"))])
            self._fill_table("queues", [(q.name, (
                q.name, str(q.waiting), duration(q.longest_wait_s) if q.waiting else "-", str(q.offered),
                str(q.answered), str(q.abandoned),
                Text(share(q.service_level), style="bold red" if q.service_level is not None
                     and q.service_level < q.target else ""),
                duration(q.asa_s), share(q.abandon_rate), str(q.logged_in), str(q.available), str(q.in_call),
                str(q.wrap_up), str(q.on_break), sparkline(q.waiting_history))) for q in self.centre.queue_lines(now)])
            self._fill_table("waiting", [(w.call_id, (w.queue, str(w.position), w.number, w.priority, duration(w.wait_s)))
                                   for w in self.centre.waiting_lines(now)])
            self._fill_table("agents", [(a.ext, (
                a.ext, a.name, status_text(a),
                a.state.replace("_", " "), duration(a.in_state_s), a.caller or "-", a.queue or "-", duration(a.call_s),
                str(a.handled), duration(a.aht_s), duration(a.wrap_s), duration(a.break_s)))
                for a in self.centre.agent_lines(now)])
            self._fill_table("orders", [(f"{o['id']}:{o['deadline']}", (
                f"#{o['id']}", o["type"].replace("_", " "), o["department"].replace("_", " "), o["deadline"],
                Text(("overdue " if o["seconds_left"] < 0 else "") + duration(abs(o["seconds_left"])),
                     style="bold red" if o["seconds_left"] < 0 else "")))
                for o in self.centre.records.get("orders_due", [])])
            self._fill_table("audit", [(str(a["id"]), (
                f"{dt.datetime.fromtimestamp(a['at'], self.tz):%H:%M}", f"{a['by']} {a['by_name']}".strip(),
                a["action"].replace("_", " "), a["subject"], a["detail"]))
                for a in self.centre.records.get("audit", [])])

    def _state(self) -> tuple[str, bool]:
        """The header's who, whether live and when; and whether the figures are stale."""
        moment = dt.datetime.fromtimestamp(self.clock(), self.tz)
        silent = time.monotonic() - self._answered_at
        # found in a trial: a frozen switch looked live for 10 s (its connection still open)
        stale = self.live and self.client is not None and silent > STALE_S
        state = f"NOT LIVE: no answer for {silent:.0f} s" if stale else ("live" if self.live else "NOT LIVE")
        return (f"{self.me.get('name', '')} ({self.me.get('ext', '')}) │ {state} │ {moment:%a %d %b %H:%M:%S}",
                not self.live or stale)

    def _fill_table(self, table_id: str, rows: list[tuple[str, tuple]]) -> None:
        """Rows by key, changed in place: the cursor stays on the row it was on."""
        table = self._main.query_one(f"#{table_id}", DataTable)
        keys = [column.key for column in table.columns.values()]
        wanted = dict(rows)
        height = None if table_id == "alerts" else 1
        order = [key for key, _ in rows]
        kept = [row.key.value for row in table.ordered_rows if row.key.value in wanted]
        existing = set(kept)
        if kept + [key for key in order if key not in existing] != order:
            # found in a demo trial: a new row went to the bottom (the audit trail, newest
            # first, read out of time order); drawn again in order, the cursor on its row,
            # or on the first if it was there (what is new in view, not scrolled past)
            on_row, at_top = self._selected_key(table_id), table.cursor_row == 0
            table.clear()
            for key, cells in rows:
                table.add_row(*cells, key=key, height=height)
            if on_row in wanted and not at_top:
                table.move_cursor(row=order.index(on_row), animate=False)
            return
        for row_key in list(table.rows):
            if row_key.value not in wanted:
                table.remove_row(row_key)
        widths = {column.key: column.content_width for column in table.columns.values()}
        for key, cells in rows:
            if key in existing:
                for column, value in zip(keys, cells):
                    if table.get_cell(key, column) != value:
                        # measuring the column again is costly (every cell, and the terminal's
                        # size each time): only when the value no longer fits
                        wider = cell_len(str(value)) > widths[column]
                        table.update_cell(key, column, value, update_width=wider)
            else:
                table.add_row(*cells, key=key, height=height)

    # --- actions -------------------------------------------------------------------------------
    def _selected_key(self, table_id: str) -> str | None:
        table = self._main.query_one(f"#{table_id}", DataTable)
        if not table.row_count:
            return None
        return table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value

    async def _ask_switch(self, op: str, done: str, **fields) -> None:
        if not self.live or self.client is None:
            self.notice("Not live: nothing can be changed until the switch is back.")
            return
        try:
            await self.client.ask(op, **fields)
        except ControlError as exc:
            self.notice(f"Not done: {exc.message}")
            return
        except (ConnectionError, asyncio.TimeoutError):
            self.notice("Not done: the switch did not answer.")
            return
        self.notice(done)
        self._last_records = 0.0
        await self._poll_switch()

    def _confirm_then(self, question: str, then: Callable[[], Awaitable[None]]) -> None:
        def answered(yes: bool | None) -> None:
            if yes:
                asyncio.ensure_future(then())
        self.push_screen(ConfirmScreen(question), answered)

    def _chosen_agent(self) -> wire.AgentView | None:
        ext = self._selected_key("agents")
        agent = next((a for a in self.centre.snapshot.agents if a.ext == ext), None)
        if agent is None:
            self.notice("Choose an agent first: tab to the agents table, ↑↓ to the agent.")
        return agent

    def _at_a_seat(self, agent: wire.AgentView) -> bool:
        # said before asking (the switch refuses it too): a supervisor cannot log someone in
        if agent.status == "logged_out" and not agent.registered:
            self.notice(f"{agent.ext} {agent.name} is not at a seat (logged out, no phone registered): "
                        "only they can log in.")
            return False
        return True

    def _chosen_caller(self):
        call_id = self._selected_key("waiting")
        caller = next((w for w in self.centre.waiting_lines(self.clock()) if w.call_id == call_id), None)
        if caller is None:
            self.notice("Choose a waiting caller first: tab to the callers waiting, ↑↓ to the caller.")
        return caller

    def action_acknowledge(self) -> None:
        key = self._selected_key("alerts")
        alert = next((a for a in self.centre.alerts(self.clock()) if a.key == key), None)
        if alert is None:
            self.notice("No alert to acknowledge.")
            return
        if alert.acknowledged:
            self.notice("That alert was acknowledged already.")
            return

        async def go() -> None:
            self.centre.acknowledge(alert.key)
            await self._ask_switch("acknowledge", "Acknowledged (in the audit trail, for every supervisor).", alert=alert.key,
                            note=alert.text)
        self._confirm_then(f"Acknowledge: {alert.text}?", go)

    def action_force_break(self) -> None:
        agent = self._chosen_agent()
        if agent is None:
            return
        if agent.status != "available":   # found in a trial: a break on a break was audited, to no effect
            self.notice(f"{agent.ext} {agent.name} is {status_text(agent)}: no break to start.")
            return

        def chosen(reason: str | None) -> None:
            if reason:
                self._confirm_then(f"Put {agent.ext} {agent.name} on a {reason} break now?",
                              lambda: self._ask_switch("force_status", f"{agent.ext} is on a {reason} break.",
                                                ext=agent.ext, status="on_break", reason=reason))
        self.push_screen(BreakScreen(self.breaks, question=f"Put {agent.ext} {agent.name} on which break?"), chosen)

    def action_force_available(self) -> None:
        agent = self._chosen_agent()
        if agent is not None and agent.status == "available":
            self.notice(f"{agent.ext} {agent.name} is available already.")
        elif agent is not None and self._at_a_seat(agent):
            self._confirm_then(f"Make {agent.ext} {agent.name} available for calls now?",
                          lambda: self._ask_switch("force_status", f"{agent.ext} is available.", ext=agent.ext,
                                            status="available"))

    def action_force_logout(self) -> None:
        agent = self._chosen_agent()
        if agent is not None and agent.status == "logged_out":
            self.notice(f"{agent.ext} {agent.name} is logged out already.")
        elif agent is not None:
            self._confirm_then(f"Log {agent.ext} {agent.name} out now? (a call they are on goes on)",
                          lambda: self._ask_switch("force_status", f"{agent.ext} is logged out.", ext=agent.ext,
                                            status="logged_out"))

    def action_skills(self) -> None:
        agent = self._chosen_agent()
        if agent is None:
            return
        current = ",".join(f"{k}:{v}" for k, v in agent.skills)

        def typed(skills: str | None) -> None:
            if skills and skills != current:
                self._confirm_then(f"Give {agent.ext} the skills {skills}?",
                              lambda: self._ask_switch("set_skills", f"{agent.ext}'s skills are {skills}.",
                                                ext=agent.ext, skills=skills))
        self.push_screen(SkillsScreen(agent.ext, agent.name, current), typed)

    def action_priority(self) -> None:
        caller = self._chosen_caller()
        if caller is None:
            return
        higher = [p for p in PRIORITIES if PRIORITIES.index(p) > PRIORITIES.index(caller.priority)]
        if not higher:
            self.notice(f"{caller.number} already has the highest priority.")
            return

        def chosen(priority: str | None) -> None:
            if priority:
                self._confirm_then(f"Raise {caller.number} in {caller.queue} to {priority}?",
                              lambda: self._ask_switch("set_priority", f"{caller.number} is {priority} now.",
                                                call_id=caller.call_id, priority=priority))
        self.push_screen(PickScreen(f"Priority for {caller.number}", [(p, p) for p in higher]), chosen)

    def action_move(self) -> None:
        caller = self._chosen_caller()
        if caller is None:
            return
        others = [(name, name) for name in self.centre.queues if name != caller.queue]

        def chosen(queue: str | None) -> None:
            if queue:
                self._confirm_then(f"Move {caller.number} from {caller.queue} to {queue}? (they keep their place)",
                              lambda: self._ask_switch("move_caller", f"{caller.number} is in {queue} now.",
                                                call_id=caller.call_id, queue=queue))
        self.push_screen(PickScreen(f"Move {caller.number} to which queue?", others), chosen)

    def action_report(self) -> None:
        if self.client is None or self.client.closed:
            self.notice("Not live: the report is read from the switch's records when it is back.")
            return
        today = dt.datetime.fromtimestamp(self.clock(), self.tz).date()
        self.push_screen(ReportScreen(self.client.ask, today, self.tz))

    def action_quit_asked(self) -> None:
        def answered(yes: bool | None) -> None:
            if yes:
                self.exit()
        self.push_screen(ConfirmScreen("Close the supervisor console? (the centre goes on)"), answered)


async def run_supervisor(*, ext: str, pin: str, control, token: str | None = None,
                         tls_ca: str | None = None) -> int:
    """Log in (supervisor or admin), then run the console until q. The queues, their
    service-level thresholds and targets, and the break reasons are the switch's."""
    from records.sla import load_policy

    async def connect(after_seq: int | None, since: float | None) -> tuple[ControlClient, dict]:
        client = await asyncio.wait_for(ControlClient.connect(control, token, tls_ca), 5)
        try:
            await client.ask("login", ext=ext, pin=pin)
            if after_seq is not None:
                reply = await client.subscribe(after_seq)
            else:
                reply = await client.ask("subscribe", since=since, v=wire.EVENT_VERSION)
        except BaseException:
            await client.close()
            raise
        return client, reply

    client = await asyncio.wait_for(ControlClient.connect(control, token, tls_ca), 5)
    try:
        me = await client.ask("login", ext=ext, pin=pin)
    except BaseException:
        await client.close()
        raise
    if me["agent"]["role"] not in ("supervisor", "admin"):
        await client.close()
        raise PermissionError(f"extension {ext} is an agent's: the supervisor console is for supervisors and admins")
    settings = me.get("queue_settings") or {name: {} for name in me.get("queues", ())}
    queues = {name: QueueSettings(float(q.get("threshold_s", 15.0)), float(q.get("target", 0.8)))
              for name, q in settings.items()}
    app = SupervisorApp(me=me["agent"], client=client, connect=connect, queues=queues,
                        breaks=dict(me.get("breaks") or {}), tz=load_policy().timezone)
    try:
        await app.run_async()
    finally:
        if app.client is not None and not app.client.closed:
            await app.client.close()
    return 0
