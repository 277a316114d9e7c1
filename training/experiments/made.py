"""Where a run's figures were made: each call of `mmrt experiment` or `mmrt tune` that worked on
it (the command, the machine, the date, and for an experiment the device and processes), in order.
The first call made the run; later ones resumed it. A report quotes them in one line."""

from __future__ import annotations


def add_call(calls: list[dict], call: dict) -> list[dict]:
    """``calls`` with ``call`` at the end, unless it repeats the last one (nothing is added where
    ``call`` is empty: a run made through the API, with no command to name)."""
    if call and (not calls or calls[-1] != call):
        calls.append(call)
    return calls


def merged(lists: list[list[dict]]) -> list[dict]:
    """The calls of several seed folders in one list, each once, in the order they began (a call
    records when it began; one without, from a record made before, keeps its place in its list)."""
    calls: list[dict] = []
    for call in (c for lst in lists for c in lst):
        if call not in calls:
            calls.append(call)
    return sorted(calls, key=lambda c: c.get("began", ""))


def _where(call: dict) -> str:
    device = ""
    if call.get("device"):
        device = f", {call['device']}" + (f" x{call['processes']}" if call.get("processes", 1) > 1 else "")
    return f"`{call.get('command', '?')}` on {call.get('machine', '?')}{device}, {call.get('date', '?')}"


def made_line(calls: list[dict]) -> str:
    """"Made by `CMD` on MACHINE, DEVICE, DATE; resumed by ..." (empty where nothing is recorded)."""
    if not calls:
        return ""
    resumed = "".join(f"; resumed by {_where(c)}" for c in calls[1:])
    return f"Made by {_where(calls[0])}{resumed}."
