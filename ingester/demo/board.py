"""What the demo shows: cards per workstation, calls under way, ring notifications, counters."""

from __future__ import annotations

import collections
import time
from dataclasses import dataclass, field

from rich.console import Group
from rich.panel import Panel
from rich.table import Table


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
    rings: collections.deque = field(default_factory=lambda: collections.deque(maxlen=6))
    callbacks: collections.deque = field(default_factory=lambda: collections.deque(maxlen=4))
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

    def render(self) -> Group:
        desks = Table(title="Cards open at workstations", expand=True)
        desks.add_column("desk")
        desks.add_column("card")
        for ws_id, name in sorted(self.workstations.items()):
            desks.add_row(name, self.cards.get(ws_id, "[dim]-[/dim]"))
        calls = Table(title="Calls under way", expand=True)
        for column in ("call", "dir", "number", "client", "state", "ext"):
            calls.add_column(column)
        for call_id, direction, number, client, answered_by, holder, note in self.calls[:12]:
            state = "talking" if answered_by else "ringing"
            calls.add_row(
                str(call_id),
                direction or "?",
                number or "anonymous",
                client or "",
                state,
                (holder or "") + (f" [yellow]({note})[/yellow]" if note else ""),
            )
        rings = "\n".join(self.rings) or "[dim]none yet[/dim]"
        lat = self.latencies_ms
        stats = (
            f"elapsed {time.monotonic() - self.started:5.0f}s   rings {self.counts['ring']}   "
            f"pops {self.counts['open_card']}   moved {self.counts['close_card']}   "
            f"ended {self.counts['call_ended']}   callbacks {self.counts['callback_task']}   "
            f"called back from the CRM {self.counts['dial']}   "
            f"frame->doorbell p50 {percentile(lat, 50):.1f} ms p99 {percentile(lat, 99):.1f} ms"
        )
        callbacks = "\n".join(self.callbacks) or "[dim]none yet[/dim]"
        return Group(
            Panel(stats, title="pgcti demo"),
            calls,
            desks,
            Panel(rings, title="Ring notifications"),
            Panel(
                callbacks,
                title="Callback tasks (missed calls, for their owner to call back) and calls back",
            ),
        )
