"""`hotline replay RUN`: a run played through the supervisor console's own screen, and
`hotline replay --diff A B`: where two runs part.

The replay is the console (console/supervisor.py) with its clock set to the run's time
and its figures fed from the run's event log (console/tape.py) instead of a switch:
space pauses, + and - change the speed, [ and ] step five minutes, g goes to a time of
day ("09:40") or an offset from the start ("+1h30m"). Nothing can be changed in a
replay, so the console's actions are not bound.
"""

from __future__ import annotations

import datetime as dt
import re
import time
from zoneinfo import ZoneInfo

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Static

from console.dialogs import TextField, typing_caught_up
from console.supervisor import SupervisorApp, duration
from console.tape import Player, first_divergence, metric_table, player_for
from scenarios.runs import Run

TICK_S = 0.25
SPEEDS = (1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0)
STEP_S = 300.0
_OFFSET_PART = re.compile(r"(\d+(?:\.\d+)?)([smhd])")
_UNIT_S = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_TIME_OF_DAY = re.compile(r"^\s*(\d{1,2}):(\d{2})(?::(\d{2}))?\s*$")


def parse_moment(text: str, start: float, tz: dt.tzinfo) -> float:
    """'09:40' (the first such time at or after the run's start), '09:40:30', or '+1h30m'
    / '+90m' from the start. ValueError with what is accepted otherwise."""
    text = text.strip()
    if text.startswith("+"):
        rest = text[1:].replace(" ", "")
        if re.fullmatch(r"\d+h\d+", rest):   # +1h30, as the header writes it
            rest += "m"
        parts = _OFFSET_PART.findall(rest)
        if not rest or "".join(number + unit for number, unit in parts) != rest:
            raise ValueError(f"'{text}': an offset is like +90m, +1h30m or +45s")
        return start + sum(float(number) * _UNIT_S[unit] for number, unit in parts)
    match = _TIME_OF_DAY.match(text)
    if not match or int(match.group(1)) > 23 or int(match.group(2)) > 59 or int(match.group(3) or 0) > 59:
        raise ValueError(f"'{text}': give a time of day (09:40 or 09:40:30) or an offset from the start (+1h30m)")
    first = dt.datetime.fromtimestamp(start, tz)
    moment = first.replace(hour=int(match.group(1)), minute=int(match.group(2)), second=int(match.group(3) or 0),
                           microsecond=0)
    if moment.timestamp() < start - 1e-6:
        moment = (moment + dt.timedelta(days=1))
    return moment.timestamp()


class GoToScreen(ModalScreen):
    """Asks for a moment; dismissed with its epoch seconds, or None."""

    DEFAULT_CSS = """
    GoToScreen { align: center middle; }
    #goto-box { width: 64; height: auto; border: round $accent; background: $surface; padding: 0 1; }
    #goto-box Input { height: 1; border: none; padding: 0 1; background: $boost; }
    #goto-problem { color: $warning; height: auto; }
    """
    BINDINGS = [Binding("enter", "go", "Go", priority=True), Binding("escape", "close", "Back")]

    def __init__(self, start: float, end: float, tz: dt.tzinfo, origin: float | None = None):
        super().__init__()
        self.start, self.end, self.tz = start, end, tz
        self.origin = start if origin is None else origin

    def compose(self) -> ComposeResult:
        first = dt.datetime.fromtimestamp(self.start, self.tz)
        last = dt.datetime.fromtimestamp(self.end, self.tz)
        with Vertical(id="goto-box"):
            yield Static(f"Go to which moment? The run is {first:%a %H:%M} to {last:%a %H:%M}.")
            yield TextField("", id="goto", placeholder="09:40, 09:40:30 or +1h30m")
            yield Static("", id="goto-problem")
            yield Static("enter goes · esc back")

    def on_mount(self) -> None:
        self.query_one("#goto", TextField).focus()

    async def action_go(self) -> None:
        await typing_caught_up(self.app)
        text = self.query_one("#goto", TextField).value
        try:
            moment = parse_moment(text, self.origin, self.tz)
        except ValueError as exc:
            self.query_one("#goto-problem", Static).update(str(exc))
            return
        if not self.start <= moment <= self.end + 1:
            self.query_one("#goto-problem", Static).update(f"'{text.strip()}' is outside the run.")
            return
        self.dismiss(moment)

    def action_close(self) -> None:
        self.dismiss(None)


class ReplayApp(SupervisorApp, inherit_bindings=False):
    BINDINGS = [
        Binding("space", "pause", "Pause/play"), Binding("plus,equals_sign", "faster", "Faster"),
        Binding("minus", "slower", "Slower"), Binding("left_square_bracket", "step(-1)", "-5 min"),
        Binding("right_square_bracket", "step(1)", "+5 min"), Binding("g", "go_to", "Go to"),
        Binding("home", "seek_start", "Start", show=False), Binding("tab", "focus_next", "Next table", show=False),
        Binding("q", "quit", "Quit"),
    ]
    TITLE = "hotline replay"

    def __init__(self, run: Run, player: Player, *, tz: dt.tzinfo):
        self.replayed, self.player = run, player
        super().__init__(me={}, client=None, connect=_no_switch, queues=player.queues, breaks={}, tz=tz,
                         clock=lambda: self.player.position)
        self.centre = player.centre
        self._last_tick = time.monotonic()

    def get_system_commands(self, screen):
        from textual.app import SystemCommand

        for binding in self.BINDINGS:
            if isinstance(binding, Binding) and binding.show:
                yield SystemCommand(f"{binding.description} ({binding.key.split(',')[0]})", "",
                                    getattr(self, f"action_{binding.action.split('(')[0]}"))

    def _start(self) -> None:
        self.live = True
        for title, text in (("queues", "Queues since the run began · SL: answered within the threshold / offered"),
                            ("alerts", "Alerts as they stood (a replay acknowledges nothing)"),
                            ("waiting", "Callers waiting, in the order they would be served"),
                            ("agents", "Agents")):
            self._main.query_one(f"#{title}-title", Static).update(text)
        self.set_interval(TICK_S, self._tick)
        self._redraw()

    def _tick(self) -> None:
        now = time.monotonic()
        self.player.tick(now - self._last_tick)
        self._last_tick = now
        self.centre = self.player.centre
        self._redraw()

    def _state(self) -> tuple[str, bool]:
        player = self.player
        moment = dt.datetime.fromtimestamp(player.position, self.tz)
        played = "paused" if player.paused else ("end" if player.finished else "playing")
        offset = player.position - (player.origin if player.origin is not None else player.start)
        elapsed = ("-" if offset < 0 else "+") + duration(abs(offset))
        return (f"REPLAY {self.replayed.name} seed {self.replayed.meta.get('seed')} ({self.replayed.kind}) │ "
                f"{moment:%a %d %b %H:%M:%S} ({elapsed}) │ x{player.speed:g} {played}", False)

    def _moved(self) -> None:
        self._last_tick = time.monotonic()
        self.centre = self.player.centre
        self._redraw()

    def action_pause(self) -> None:
        self.player.paused = not self.player.paused
        self._moved()

    def action_faster(self) -> None:
        self.player.speed = next((s for s in SPEEDS if s > self.player.speed), SPEEDS[-1])
        self._moved()

    def action_slower(self) -> None:
        self.player.speed = next((s for s in reversed(SPEEDS) if s < self.player.speed), SPEEDS[0])
        self._moved()

    def action_step(self, direction: int) -> None:
        self.player.seek(self.player.position + direction * STEP_S)
        self._moved()

    def action_seek_start(self) -> None:
        self.player.seek(self.player.start)
        self._moved()

    def action_go_to(self) -> None:
        def chosen(moment: float | None) -> None:
            if moment is not None:
                self.player.seek(moment)
                self._moved()
        self.push_screen(GoToScreen(self.player.start, self.player.end, self.tz, self.player.origin), chosen)


async def _no_switch(*_args):
    raise ConnectionError("a replay has no switch")


def moment_in_run(text: str, player: Player, tz: dt.tzinfo) -> float:
    """`--at` or `g`: a moment of the run, or ValueError saying why not."""
    moment = parse_moment(text, player.origin if player.origin is not None else player.start, tz)
    if not player.start - 1e-6 <= moment <= player.end + 1:
        first, last = (dt.datetime.fromtimestamp(t, tz) for t in (player.start, player.end))
        raise ValueError(f"'{text.strip()}' is outside the run ({first:%a %H:%M:%S} to {last:%a %H:%M:%S})")
    return moment


def run_replay(run: Run, *, speed: float = 60.0, at: str | None = None, paused: bool = False,
               screen: bool = True) -> int:
    """ValueError for an --at outside the run; RunError without a terminal (`screen`)."""
    from scenarios.runs import RunError

    tz = ZoneInfo(run.meta["timezone"])
    player = player_for(run, speed=speed)
    moment = moment_in_run(at, player, tz) if at else None
    if not screen:
        raise RunError("the replay is a screen: run it in a terminal (or use --diff, which prints)")
    if moment is not None:
        player.seek(moment)
    player.paused = paused
    ReplayApp(run, player, tz=tz).run()
    return 0


# --- --diff --------------------------------------------------------------------------------
def _describe(row: dict | None, start: float, tz: dt.tzinfo) -> str:
    if row is None:
        return "(the run had ended)"
    message = {k: v for k, v in row["message"].items() if k not in ("event", "v", "t", "seq")}
    at = dt.datetime.fromtimestamp(float(row["at"]), tz)
    fields = ", ".join(f"{k}={v}" for k, v in message.items())
    return f"{at:%H:%M:%S.%f}"[:12] + f" (+{row['at'] - start:.3f} s) {row['event']}({fields})"


def _cell(name: str, value: float | None) -> str:
    if value is None:
        return "-"
    if name in ("service_level", "abandon_rate", "occupancy"):
        return f"{value:.1%}"
    if name.endswith("_s"):
        return f"{value:.1f} s"
    return f"{value:g}"


def print_diff(run_a: Run, run_b: Run, out) -> bool:
    """Prints where the runs part and their metrics side by side; True if they are the same."""
    tz = ZoneInfo(run_a.meta["timezone"])
    divergence = first_divergence(run_a, run_b)   # (an unreadable log is said before anything is printed)
    if run_a.name != run_b.name:
        print(f"note: different scenarios ({run_a.name} and {run_b.name})", file=out)
    print(f"A: {run_a.path} ({run_a.kind}, seed {run_a.meta.get('seed')})", file=out)
    print(f"B: {run_b.path} ({run_b.kind}, seed {run_b.meta.get('seed')})", file=out)
    if divergence is None:
        print("events: the same, every one (times from each run's start, to the millisecond)", file=out)
    else:
        print(f"events: the same up to event {divergence.index}; then", file=out)
        print(f"  A: {_describe(divergence.a, run_a.start, tz)}", file=out)
        print(f"  B: {_describe(divergence.b, run_b.start, tz)}", file=out)
    rows = metric_table(run_a.report, run_b.report)
    width = max(len(f"{scope} {name}") for scope, name, _, _ in rows)
    print(f"\n{'metric':<{width}}  {'A':>10}  {'B':>10}  {'B-A':>10}", file=out)
    metrics_same = True
    for scope, name, a, b in rows:
        difference = "" if a is None or b is None else _cell(name, b - a) if name not in (
            "service_level", "abandon_rate", "occupancy") else f"{(b - a) * 100:+.1f} pt"
        same = a == b
        metrics_same &= same
        print(f"{scope + ' ' + name:<{width}}  {_cell(name, a):>10}  {_cell(name, b):>10}  "
              f"{'' if same else difference:>10}", file=out)
    return divergence is None and metrics_same
