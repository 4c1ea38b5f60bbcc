"""What `pgcti migrate` prints: the migrations, the logic files and each object that changed."""

from __future__ import annotations

from ingester.install.migrations import Outcome


def render(outcome: Outcome, where: str, planned: bool) -> str:
    would = "would be " if planned else ""
    if not (
        outcome.migrations
        or outcome.logic.applied
        or outcome.adopted
        or outcome.outside_added
        or outcome.outside_removed
    ):
        return f"database is up to date ({where})" + ("; nothing would change" if planned else "")
    lines = [f"{'plan for' if planned else 'migrated'} {where}"]
    if outcome.adopted:
        lines.append(
            f"  pgcti {outcome.adopted}'s migrations {would}folded into the baseline "
            f"(db/upgrades/from_{outcome.adopted}.sql)"
        )
    lines.append(f"  versioned migrations {would}applied: {len(outcome.migrations)}")
    lines += [f"    {mid}" for mid in outcome.migrations]
    lines.append(f"  logic files {would}applied: {len(outcome.logic.applied)}")
    lines += [f"    {name}" for name in outcome.logic.applied]
    changes = [c for c in outcome.logic.changes if c.what != "kept"]
    kept = [c for c in outcome.logic.changes if c.what == "kept"]
    if changes:
        lines.append(f"  functions, views and triggers {would}changed: {len(changes)}")
    for change in changes:
        lines.append(f"    {change.what:<8} {change.kind.lower()} {change.name}")
        lines += [f"      {line}" for line in change.diff.splitlines()]
    if kept:
        lines.append(f"  adapters overridden (db/logic leaves them as they are): {len(kept)}")
    lines += [f"    kept     {change.kind.lower()} {change.name}" for change in kept]
    lines.append(outside(outcome.outside_added, outcome.outside_removed, planned))
    lines += [f"  note: {note}" for note in outcome.notes]
    if planned:
        lines.append("nothing was changed (run without --plan to apply)")
    return "\n".join(lines)


def outside(added: list[tuple[str, str]], removed: list[tuple[str, str]], planned: bool) -> str:
    """What a change adds to or removes from objects outside pgcti's schemas: the lines a
    DBA of the CRM reads before anything else."""
    would = "would be " if planned else ""
    lines = [
        f"  outside pgcti's schemas, {would}added: {len(added)}, {would}removed: {len(removed)}"
    ]
    lines += [f"    + {kind:<7} {what}" for kind, what in added]
    lines += [f"    - {kind:<7} {what}" for kind, what in removed]
    return "\n".join(lines)
