"""The TUI's dialogs: help, inject a hypothesis, answer an escalation, confirm, and the run picker."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen, Screen
from textual.widgets import Button, Footer, Input, Label, OptionList, Select, Static
from textual.widgets.option_list import Option

from arbor.host.spec import SearchKnob

HELP = [
    ("↑ ↓ ← →, enter", "move in the tree, fold and unfold"),
    ("1 2 3 4", "Node, Alerts, Charts and Events tabs"),
    ("/", "filter the tree: status:crashed cat:config words (esc clears)"),
    ("f", "cycle a status filter"),
    ("p", "pause or resume the campaign"),
    ("x / X", "prune the selected proposed node / every proposed node under it"),
    ("v", "veto the selected proposed node"),
    ("i", "pin the selected candidate: it is evaluated next"),
    ("n", "inject a hypothesis (validated like any proposal)"),
    ("a", "acknowledge the selected alert (Alerts tab)"),
    ("e", "answer the escalation that needs a human"),
    ("S", "stop the campaign gracefully (after the current step)"),
    ("?", "this help"),
    ("q", "quit the TUI (the campaign keeps running)"),
]


class HelpScreen(ModalScreen[None]):
    """Keys and what they do."""

    BINDINGS = [Binding("escape,question_mark,q", "dismiss", "Close")]

    def compose(self) -> ComposeResult:
        text = Text()
        for key, what in HELP:
            text.append(f"{key:>16}  ", "bold")
            text.append(f"{what}\n")
        text.append("\nSteering is written to the campaign's store as a command; the host applies it "
                    "between steps and logs it as an event.", "dim")
        with Vertical(classes="dialog"):
            yield Label("Arbor — keys", classes="title")
            yield Static(text, id="help")


def parse_value(raw: str) -> Any:
    """A typed value from the form: JSON when it parses (16, true, 0.5), else the text itself."""
    raw = raw.strip()
    try:
        return json.loads(raw)
    except ValueError:
        return raw


class InjectScreen(ModalScreen[dict[str, Any] | None]):
    """A hypothesis typed by the operator; `check` validates it like any proposal before it is sent."""

    BINDINGS = [Binding("escape", "dismiss(None)", "Cancel")]

    def __init__(self, knobs: list[SearchKnob], check: Callable[[dict[str, Any]], str | None]) -> None:
        super().__init__()
        self.knobs, self.check = knobs, check

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Label("Inject a hypothesis: one knob set to a value, from the current best configuration")
            yield Select([(f"{k.name} ({k.type})", k.name) for k in self.knobs], prompt="knob", id="knob")
            yield Input(placeholder="value, e.g. 16, true, on", id="value")
            yield Input(placeholder="why (rationale)", id="rationale")
            yield Static("", classes="error", id="error")
            with Horizontal():
                yield Button("Inject", variant="primary", id="ok")
                yield Button("Cancel", id="cancel")

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "cancel":
            self.dismiss(None)
            return
        self.submit()

    def on_input_submitted(self, _: Input.Submitted) -> None:
        self.submit()

    def submit(self) -> None:
        knob = self.query_one("#knob", Select).value
        if knob is Select.BLANK:
            self.query_one("#error", Static).update("choose a knob")
            return
        payload = {"change": {str(knob): parse_value(self.query_one("#value", Input).value)},
                   "rationale": self.query_one("#rationale", Input).value.strip() or "injected by the operator"}
        error = self.check(payload)
        if error:
            self.query_one("#error", Static).update(error)
            return
        self.dismiss(payload)


class AnswerScreen(ModalScreen[str | None]):
    """The operator's answer to an escalation."""

    BINDINGS = [Binding("escape", "dismiss(None)", "Cancel")]

    def __init__(self, message: str) -> None:
        super().__init__()
        self.message = message

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Label("Escalation", classes="title")
            yield Static(self.message)
            yield Input(placeholder="your answer (enter sends)", id="answer")
            yield Static("", classes="error", id="error")

    def on_input_submitted(self, event: Input.Submitted) -> None:
        if not event.value.strip():
            self.query_one("#error", Static).update("an answer needs text")
            return
        self.dismiss(event.value.strip())


class ConfirmScreen(ModalScreen[bool]):
    """Yes or no."""

    BINDINGS = [Binding("y", "dismiss(True)", "Yes"), Binding("n,escape", "dismiss(False)", "No")]

    def __init__(self, question: str) -> None:
        super().__init__()
        self.question = question

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Static(f"{self.question}  [b]y[/b]es / [b]n[/b]o")


class RunPicker(Screen[Path]):
    """Recent run folders to attach to."""

    BINDINGS = [Binding("q,escape", "app.quit", "Quit")]

    def __init__(self, runs: list[tuple[Path, str]], root: Path) -> None:
        super().__init__()
        self.runs, self.root = runs, root

    def compose(self) -> ComposeResult:
        yield Label(f"Runs under {self.root} (newest first): enter attaches")
        if self.runs:
            yield OptionList(*[Option(f"{p.name}  [{state}]", id=str(i)) for i, (p, state) in enumerate(self.runs)],
                             id="runs")
        else:
            yield Static(f"No runs under {self.root}. Start one with `arbor-host run`, or give a run folder.")
        yield Footer()

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        self.dismiss(self.runs[int(event.option.id or 0)][0])
