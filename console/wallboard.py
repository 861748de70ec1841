"""`hotline wallboard`: the read-only big screen. No PIN (it hangs on a wall: the local
socket, or TCP with the site's token, is what lets it in), no caller's or agent's name or
number: a large tile per queue with the callers waiting, the longest wait, today's
service level against its target and the agents by state. Stale figures are never shown
as live: if the switch goes away the screen says so and keeps trying."""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from typing import Awaitable, Callable

from rich.table import Table
from rich.text import Text
from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.containers import Grid, Vertical
from textual.screen import Screen
from textual.widgets import Digits, Static

from console.dialogs import MainScreen
from telephony.control_client import ControlClient, ControlError

REFRESH_S = 2.0
ANSWER_S = 3.0   # a switch that does not answer this soon is said to be not live
# a tile's rows: its border (2), the name, the big count (3) and five lines of figures
TILE_HEIGHT = 11


def clock_text(seconds: float) -> str:
    seconds = int(max(0, seconds))
    return f"{seconds // 60}:{seconds % 60:02d}"


class Tile(Vertical):
    def __init__(self, name: str):
        super().__init__(id=f"tile-{name}", classes="tile")
        self.queue = name

    def compose(self) -> ComposeResult:
        yield Static(self.queue.upper(), classes="name")
        yield Digits("0", classes="waiting")
        yield Static("", classes="line1")
        yield Static("", classes="line2")
        yield Static("", classes="line3")

    def show(self, q: dict) -> None:
        self.query_one(".waiting", Digits).update(str(q["waiting"]))
        self.query_one(".line1", Static).update(
            f"waiting · longest {clock_text(q['longest_wait_s'])}" if q["waiting"] else "nobody waiting")
        level = q["service_level"]
        sl = "-" if level is None else f"{level:.0%}"
        self.query_one(".line2", Static).update(
            f"SL today {sl} · target {q['sl_target']:.0%}/{q['threshold_s']:.0f}s\n"
            f"answered {q['answered']} · abandoned {q['abandoned']}")
        self.query_one(".line3", Static).update(
            f"agents {q['logged_in']} · free {q['available']}\non calls {q['in_call']} · on break {q['on_break']}")
        self.set_class(below_target(q), "below")
        self.set_class(waiting_late(q), "late")


def below_target(q: dict) -> bool:
    # five offered before a queue is judged: one early abandon is not a red tile
    level = q["service_level"]
    return level is not None and q["offered"] >= 5 and level < q["sl_target"]


def waiting_late(q: dict) -> bool:
    return q["waiting"] > 0 and q["longest_wait_s"] > q["threshold_s"]


def queue_table(queues: list[dict], width: int = 80) -> Table:
    """Every queue on a line, for a screen too small for the tiles (80x24 over SSH held
    two of six tiles; the rest, emergency among them, were below the fold). Below 74
    columns the target and the breaks go (the SL's colour still says below target)."""
    left_out = ("Target", "Break") if width < 74 else ()
    table = Table(expand=True, box=None, padding=(0, 0, 0, 1), pad_edge=False, header_style="bold",
                  caption="SL: answered within the target's seconds, today · Ans, Aband: answered, "
                          "abandoned today", caption_justify="left")
    table.add_column("Queue", no_wrap=True, min_width=max((len(q["name"]) for q in queues), default=5))
    shown = [title for title in ("Waiting", "Longest", "SL", "Target", "Ans", "Aband", "Agents", "Free", "On call",
                                 "Break") if title not in left_out]
    for title in shown:
        table.add_column(title, justify="right", no_wrap=True)
    for q in queues:
        level = q["service_level"]
        late = waiting_late(q)
        cells: dict[str, Text | str] = {
            "Queue": Text(q["name"].upper(), style="bold"),
            "Waiting": Text(str(q["waiting"]), style="bold yellow" if late else "bold"),
            "Longest": Text(clock_text(q["longest_wait_s"]) if q["waiting"] else "-", style="yellow" if late else ""),
            "SL": Text("-" if level is None else f"{level:.0%}", style="bold red" if below_target(q) else ""),
            "Target": f"{q['sl_target']:.0%}/{q['threshold_s']:.0f}s",
            "Ans": str(q["answered"]), "Aband": str(q["abandoned"]), "Agents": str(q["logged_in"]),
            "Free": str(q["available"]), "On call": str(q["in_call"]), "Break": str(q["on_break"])}
        table.add_row(*(cells[title] for title in ("Queue", *shown)))
    return table


class WallboardApp(App):
    CSS = """
    #header { height: 1; background: $primary; padding: 0 1; }
    #header.stale { background: $error; }
    /* rows as tall as their tiles, scrolled if the screen is short: nothing is cut (at
       80x24 the answered, abandoned and agents lines were) */
    Grid { grid-size: 3; grid-rows: auto; grid-gutter: 1 2; padding: 1 2; overflow-y: auto; height: 1fr; }
    .tile { border: heavy $accent; height: auto; padding: 0 1; }
    .tile.below { border: heavy $error; }
    .tile.late .waiting { color: $warning; }
    .name { text-style: bold; }
    Grid.stale .tile { opacity: 50%; }
    #lines { display: none; padding: 1 1; height: auto; }
    #lines.stale { opacity: 50%; }
    Screen.small #lines { display: block; }
    Screen.small Grid { display: none; }
    """
    BINDINGS = [Binding("q", "quit", "Quit")]

    def __init__(self, connect: Callable[[], Awaitable[ControlClient]], tz: dt.tzinfo,
                 clock: Callable[[], float] = time.time):
        super().__init__()
        self.connect, self.tz, self.clock = connect, tz, clock
        self.client: ControlClient | None = None
        self.live = False
        self._busy = False
        self._figures: list[dict] = []   # the queues' last figures, for a resize to draw again

    def compose(self) -> ComposeResult:
        yield Static("", id="header")
        yield Grid(id="tiles")   # a tile per queue the switch has, from its first answer
        yield Static("", id="lines")   # the same figures a line a queue, when the tiles do not fit

    def get_default_screen(self) -> Screen:
        return MainScreen()

    def on_screen_resize(self) -> None:
        self._lay_out()

    def _lay_out(self) -> None:
        # three tiles a row on a wall screen, fewer on a narrow terminal; a line per queue
        # when the tiles would not all be on the screen at once (nobody scrolls a wall)
        width, height = self.size
        columns = 3 if width >= 120 else 2 if width >= 60 else 1
        self.query_one("#tiles", Grid).styles.grid_size_columns = columns
        rows = -(-len(self.query(Tile)) // columns)
        needed = 1 + 2 + rows * TILE_HEIGHT + max(0, rows - 1)   # header, padding, tiles, gutters
        self.screen.set_class(needed > height, "small")
        self.query_one("#lines", Static).update(queue_table(self._figures, width))
        self.call_after_refresh(self._check_fit)

    def _check_fit(self) -> None:
        # a line that wraps on a narrow tile makes it taller than TILE_HEIGHT: the tiles
        # as laid out are what counts
        grid = self.query_one("#tiles", Grid)
        if grid.display and grid.max_scroll_y > 0:
            self.screen.add_class("small")

    def on_mount(self) -> None:
        self.call_later(self.poll)
        self.set_interval(REFRESH_S, self.poll)

    async def poll(self) -> None:
        if self._busy:
            return
        self._busy = True
        try:
            if self.client is None or self.client.closed:
                self.client = await self.connect()
                # found in a trial: a killed switch was back before the next poll, and the
                # wall never said it had gone
                self.client.on_close = self._connection_lost
            figures = (await asyncio.wait_for(self.client.ask("wallboard"), ANSWER_S))["wallboard"]
            self.live = True
        except (FileNotFoundError, ConnectionRefusedError):
            self.live, self.client = False, None
            self._header("NOT LIVE: the switch is not running; trying again every few seconds")
            return
        except asyncio.TimeoutError:
            self.live = False
            self._header(f"NOT LIVE: the switch did not answer within {ANSWER_S:.0f} s; trying again")
            return
        except (OSError, ConnectionError, ControlError) as exc:
            self.live, self.client = False, None
            self._header(f"NOT LIVE: {exc or 'the switch closed the connection'}; trying again every few seconds")
            return
        finally:
            self._busy = False
        tiles = {tile.queue: tile for tile in self.query(Tile)}
        grid = self.query_one("#tiles", Grid)
        for q in figures["queues"]:
            tile = tiles.get(q["name"])
            if tile is None:
                tile = tiles[q["name"]] = Tile(q["name"])
                await grid.mount(tile)
                self._lay_out()
            tile.show(q)
        self._figures = figures["queues"]
        self.query_one("#lines", Static).update(queue_table(self._figures, self.size.width))
        waiting = sum(q["waiting"] for q in figures["queues"])
        self._header(f"{dt.datetime.fromtimestamp(figures['at'], self.tz):%a %d %b %H:%M:%S} · "
                     f"{waiting} caller{'s' if waiting != 1 else ''} waiting")

    def _connection_lost(self) -> None:
        self.live = False
        self.call_later(self._header, "NOT LIVE: the switch closed the connection; trying again every few seconds")

    def _header(self, text: str) -> None:
        header = self.query_one("#header", Static)
        header.update(text)
        header.set_class(not self.live, "stale")
        self.query_one("#tiles").set_class(not self.live, "stale")
        self.query_one("#lines").set_class(not self.live, "stale")
