"""The demo's live board in real terminals of 24, 30 and 45 rows (issue 35, part 13):
tmux gives each a fixed size, rich's Live draws the board in it as the demo does, and
the screen tmux holds is read back."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import time
import uuid

import pytest

# A busy moment of the demo: more calls, rings and callbacks than any of the sizes holds.
DRAW_A_BUSY_BOARD = """
import os, sys, time
# tmux may start the pane at its default size and resize it a moment later: wait for it.
deadline = time.monotonic() + 5
while os.get_terminal_size() != (int(sys.argv[2]), int(sys.argv[1])) and time.monotonic() < deadline:
    time.sleep(0.05)
from rich.console import Console
from rich.live import Live
from ingester.demo.board import Board

board = Board({n: f"desk-{100 + n}" for n in range(1, 11)}, {n: f"Surname{n}" for n in range(1, 13)})
for n in range(1, 31):
    card = {"number": f"+7916000{n:04d}", "client_name": f"Client {n}", "call_id": n,
            "company": "Acme", "manager_surname": "Petrova"}
    board.apply("emp", [1, 2, 3][n % 3], "ring", card)
    board.apply("emp", n % 12 + 1, "callback_task", {**card, "task_id": n, "missed_calls": 1})
    if n <= 7:
        board.apply("ws", n, "open_card", card)
board.calls = [(n, "inbound", f"+7916000{n:04d}", f"Client {n}", "101" if n % 2 else None,
                "101" if n % 2 else None, None) for n in range(1, 16)]
with Live(board, console=Console(), auto_refresh=False) as live:
    for _ in range(3):
        live.refresh()
        time.sleep(0.2)
print("BOARD-DRAWN", end="", flush=True)  # below the board, on the cursor's row
time.sleep(60)
"""


@pytest.fixture
def tmux():
    if not shutil.which("tmux"):
        pytest.skip("no tmux here (Debian's tmux package)")
    servers = []

    def draw(rows: int, columns: int) -> list[str]:
        # A tmux server of its own per pane: a shared one that exits as the last test's
        # session is killed refuses the next test's new session ("server exited").
        server = ["tmux", "-L", f"pgcti-board-{uuid.uuid4().hex[:8]}"]
        servers.append(server)
        subprocess.run(
            [*server, "new-session", "-d", "-x", str(columns), "-y", str(rows),
             # rich believes LINES and COLUMNS over the terminal: pytest's own may be set
             "env", "-u", "LINES", "-u", "COLUMNS",
             sys.executable, "-c", DRAW_A_BUSY_BOARD, str(rows), str(columns)],
            check=True,
        )  # fmt: skip
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            screen = subprocess.run(
                [*server, "capture-pane", "-p"], capture_output=True, text=True
            ).stdout
            if "BOARD-DRAWN" in screen:
                return screen.splitlines()
            time.sleep(0.2)
        raise AssertionError(f"the board was not drawn within 20 s:\n{screen}")

    yield draw
    for server in servers:
        subprocess.run([*server, "kill-server"], capture_output=True)


@pytest.mark.parametrize("rows", [24, 30, 45])
@pytest.mark.parametrize("columns", [80, 120])
def test_the_demo_board_fits_the_terminal(tmux, rows, columns):
    screen = tmux(rows, columns)
    text = "\n".join(screen)
    assert len(screen) <= rows
    # The whole board is on the screen: its first panel's top, every panel, the last border.
    assert "pgcti demo" in screen[0], f"the board's top scrolled away:\n{text}"
    for title in ("Calls under way", "Cards open", "Ring notifications", "Callbacks"):
        assert title in text, f"{title!r} missing at {rows} rows:\n{text}"
    board = screen[: screen.index(next(line for line in screen if "BOARD-DRAWN" in line))]
    assert board[-1].startswith("╰") and board[-1].rstrip().endswith("╯"), text
    assert not any(line.strip() == "..." for line in screen), "Live cut the board short"
    # What does not fit is counted, not cut: 30 rings and 30 callbacks never fit; 15 calls
    # fit at 45 rows only, 10 desks from 30 rows.
    counted = re.findall(r"\.\.\. and \d+ more", text)
    assert len(counted) == (2 if rows >= 45 else 3), text
    assert ("idle desks" in text) == (rows < 30), text
    assert "pops 7" in text and "rings 30" in text
