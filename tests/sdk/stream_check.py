"""Checks of a Responses event stream as the openai SDK yields it.

The events must be those openai/openapi.json defines for a text answer, in this order
(consecutive deltas folded into one):

    response.created, response.in_progress, response.output_item.added,
    response.content_part.added, response.output_text.delta ..., response.output_text.done,
    response.content_part.done, response.output_item.done, response.completed

numbered by sequence_number from 0 (or from starting_after + 1 for a replay) without gaps.
"""

from __future__ import annotations

from typing import Any, Iterable

TEXT_EVENTS = [
    "response.created",
    "response.in_progress",
    "response.output_item.added",
    "response.content_part.added",
    "response.output_text.delta",
    "response.output_text.done",
    "response.content_part.done",
    "response.output_item.done",
    "response.completed",
]


class StreamResult:
    """What one stream delivered."""

    def __init__(self) -> None:
        self.types: list[str] = []
        self.sequence: list[int] = []
        self.deltas: list[str] = []
        self.done_text: str | None = None
        self.completed: Any = None
        self.problems: list[str] = []

    @property
    def text(self) -> str:
        return "".join(self.deltas)

    @property
    def response_id(self) -> str | None:
        return self.completed.id if self.completed is not None else None


def folded(types: list[str]) -> list[str]:
    out: list[str] = []
    for t in types:
        if not out or out[-1] != t:
            out.append(t)
    return out


def read_stream(events: Iterable[Any], first_sequence: int = 0, expected_types: list[str] | None = None) -> StreamResult:
    """Reads every event and records what does not match the documented stream."""
    r = StreamResult()
    for event in events:
        r.types.append(event.type)
        r.sequence.append(event.sequence_number)
        if event.type == "response.output_text.delta":
            r.deltas.append(event.delta)
        elif event.type == "response.output_text.done":
            r.done_text = event.text
        elif event.type == "response.completed":
            r.completed = event.response
    want = expected_types if expected_types is not None else TEXT_EVENTS
    if folded(r.types) != want:
        r.problems.append(f"event types {folded(r.types)} are not {want}")
    if r.sequence != list(range(first_sequence, first_sequence + len(r.sequence))):
        r.problems.append(f"sequence numbers {r.sequence} do not count up from {first_sequence}")
    if "response.output_text.delta" in want:
        if r.done_text is not None and r.done_text != r.text:
            r.problems.append(f"output_text.done has {r.done_text!r}, the deltas make {r.text!r}")
        if r.completed is None:
            r.problems.append("no response.completed event")
        elif r.completed.status != "completed":
            r.problems.append(f"the completed response has status {r.completed.status!r}")
        elif r.completed.output_text != r.text:
            r.problems.append(f"the completed response says {r.completed.output_text!r}, the deltas {r.text!r}")
    return r
