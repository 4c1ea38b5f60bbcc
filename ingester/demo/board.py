"""What the demo shows: cards per workstation, calls under way, ring notifications, counters."""

from __future__ import annotations

import collections
import time
from dataclasses import dataclass, field

from rich.console import Console, ConsoleOptions, Group, RenderResult
from rich.markup import escape
from rich.panel import Panel
from rich.table import Table
from rich.text import Text


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    index = min(len(ordered) - 1, max(0, round(p / 100 * (len(ordered) - 1))))
    return ordered[index]


def _who_and_number(payload: dict) -> tuple[str, str]:
    who = payload.get("client_name") or (
        "ambiguous" if payload.get("match") == "ambiguous" else "unknown"
    )
    return who, payload.get("number") or ("withheld" if payload.get("withheld") else "anonymous")


@dataclass
class Board:
    workstations: dict[int, str]
    employees: dict[int, str] = field(default_factory=dict)  # id -> surname
    cards: dict[int, str] = field(default_factory=dict)
    calls: list[tuple] = field(default_factory=list)
    rings: collections.deque = field(default_factory=lambda: collections.deque(maxlen=40))
    callbacks: collections.deque = field(default_factory=lambda: collections.deque(maxlen=40))
    counts: collections.Counter = field(default_factory=collections.Counter)
    latencies_ms: list[float] = field(default_factory=list)
    started: float = field(default_factory=time.monotonic)

    def apply(self, kind: str, target: int, type_: str, payload: dict) -> str:
        """Record one delivered command; returns a plain line describing it."""
        self.counts[type_] += 1
        who, number = _who_and_number(payload)
        if type_ == "ring":
            line = self.ring_line([target], payload)
            self.rings.appendleft(line[10:])
            return line
        if type_ == "callback_task":  # to the employee who owns it: call this client back
            owner = self.employees.get(target)
            line = (
                f"callback  -> employee {target}{f' ({owner})' if owner else ''}: call back {number} {who}"
                f" ({payload.get('missed_calls', 1)} missed, task {payload.get('task_id')})"
            )
            self.callbacks.appendleft(line[13:])
            return line
        desk = self.workstations.get(target, f"ws {target}")
        if type_ == "open_card":
            self.cards[target] = f"{number}  {who}"
        elif self.cards.get(target, "").startswith(number):
            self.cards.pop(target, None)
        return f"{type_:<10}-> {desk}: call {payload.get('call_id')} {number} {who}"

    def ring_line(self, targets: list[int], payload: dict) -> str:
        """One line for a call's rings: `ring -> employees 1, 2, 3: number client, ...`."""
        who, number = _who_and_number(payload)
        whom = (
            f"employee {targets[0]}"
            if len(targets) == 1
            else f"employees {', '.join(map(str, targets))}"
        )
        extra = [
            payload.get("company"),
            payload.get("manager_surname") and f"mgr {payload['manager_surname']}",
        ]
        extra += ["NEW"] if payload.get("is_new") else []
        return f"ring      -> {whom}: {number} {who}" + "".join(f", {e}" for e in extra if e)

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        """Live asks on every refresh: the board fits the terminal as it is now."""
        yield self.render(options.height or console.size.height)

    def render(self, height: int) -> Group:
        """The board in `height` rows: the counters, then calls | cards and rings |
        callbacks side by side, each panel showing what fits and "... and N more"."""
        rest = height - 1 - STATS_ROWS  # a row for the cursor below the board
        stats = Panel(self._stats(), title="pgcti demo", height=STATS_ROWS)
        if rest < 2 * MIN_PANEL_ROWS:
            return Group(stats)
        top = (rest + 1) // 2
        calls_panel = _panel("Calls under way", self._call_lines(), top)
        cards_panel = _panel("Cards open at workstations", self._card_lines(top - 2), top)
        rings = _panel("Ring notifications", [escape(r) for r in self.rings], rest - top)
        callbacks = _panel(
            "Callbacks: missed calls to call back, calls placed",
            [escape(c) for c in self.callbacks],
            rest - top,
        )
        grid = Table.grid(expand=True)
        grid.add_column(ratio=1)
        grid.add_column(ratio=1)
        grid.add_row(calls_panel, cards_panel)
        grid.add_row(rings, callbacks)
        return Group(stats, grid)

    def _stats(self) -> str:
        lat = self.latencies_ms
        return (
            f"elapsed {time.monotonic() - self.started:.0f}s · rings {self.counts['ring']} · "
            f"pops {self.counts['open_card']} · moved {self.counts['close_card']} · "
            f"ended {self.counts['call_ended']}\ncallbacks {self.counts['callback_task']} · "
            f"called back from the CRM {self.counts['dial']} · frame->doorbell "
            + (f"p50 {percentile(lat, 50):.1f} ms p99 {percentile(lat, 99):.1f} ms" if lat else "-")
        )

    def _call_lines(self) -> list[str]:
        lines = []
        for call_id, direction, number, client, answered_by, holder, note in self.calls:
            state = f"talk {holder or ''}" if answered_by else "ring"
            extra = f" [yellow]({escape(note)})[/yellow]" if note else ""
            lines.append(
                f"{call_id} {DIRECTIONS.get(direction, '?')} {escape(number or 'anonymous')} "
                f"{escape(client or '')} {state}{extra}"
            )
        return lines

    def _card_lines(self, room: int) -> list[str]:
        """Desks with a card first; idle desks while there is room, then counted."""
        busy = [ws for ws in sorted(self.workstations) if ws in self.cards]
        idle = [ws for ws in sorted(self.workstations) if ws not in self.cards]
        lines = [f"{escape(self.workstations[ws])}  {escape(self.cards[ws])}" for ws in busy]
        shown_idle = (
            idle if len(lines) + len(idle) <= room else idle[: max(0, room - len(lines) - 1)]
        )
        lines += [f"{escape(self.workstations[ws])}  [dim]-[/dim]" for ws in shown_idle]
        if len(shown_idle) < len(idle):
            lines.append(f"[dim]and {len(idle) - len(shown_idle)} idle desks[/dim]")
        return lines


DIRECTIONS = {"inbound": "in", "outbound": "out", "internal": "int"}
STATS_ROWS = 4  # two lines of counters in a panel
MIN_PANEL_ROWS = 3  # a border, a line, a border


def _panel(title: str, lines: list[str], rows: int) -> Panel:
    """A panel exactly `rows` high: its lines one row each, the overflow counted."""
    room = rows - 2
    if len(lines) > room:
        lines = [*lines[: room - 1], f"[dim]... and {len(lines) - room + 1} more[/dim]"]
    body = Text.from_markup("\n".join(lines) or "[dim]none yet[/dim]", overflow="ellipsis")
    body.no_wrap = True
    return Panel(body, title=title, height=rows)
