"""One browser tab's conversation: its turns, the answers a follow-up builds on, one reply at
a time, and 新对话."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

from qa import Answer

from . import render
from .render import Turn

HISTORY_KEPT = 10  # earlier turns a browser session keeps for follow-up questions
# Turns a page keeps (older ones drop off with a line saying so): as many as the sources panel
# shows, so every [n] on the page still reaches its source. A tab kept every turn, and sent
# them all again with every update of a streaming reply.
TURNS_KEPT = render.TURNS_SHOWN

_SESSIONS = threading.Lock()  # held only to read or change a few fields of a Session


@dataclass
class Session:
    """One browser tab's conversation. Gradio keeps it (a gr.State) and hands the same object to
    every handler of the tab, which change it in place: a reply still being written checks
    `generation` before it writes, so 新对话 pressed meanwhile wins."""

    turns: list[Turn] = field(default_factory=list)  # the last TURNS_KEPT, as shown
    history: list[tuple[str, Answer]] = field(default_factory=list)  # the last HISTORY_KEPT
    asked: int = 0  # questions answered in this conversation: the next turn's number - 1
    generation: int = 0  # 新对话 starts the next one
    answering: bool = False  # a reply of this conversation is being written

    def start(self) -> int | None:
        """Take a question: the generation it belongs to, or None while a reply is written."""
        with _SESSIONS:
            if self.answering:
                return None
            self.answering = True
            return self.generation

    def finish(self, generation: int) -> None:
        with _SESSIONS:
            if generation == self.generation:
                self.answering = False

    def add(self, generation: int, turn: Turn, answer: Answer) -> bool:
        """Keep an answered turn; False (and nothing kept) if 新对话 came first."""
        with _SESSIONS:
            if generation != self.generation:
                return False
            self.turns = [*self.turns, turn][-TURNS_KEPT:]
            self.history = [*self.history, (answer.question, answer)][-HISTORY_KEPT:]
            self.asked += 1
            return True

    def reset(self) -> None:
        """新对话: forget the turns; a reply still being written is dropped."""
        with _SESSIONS:
            self.turns, self.history, self.asked = [], [], 0
            self.generation += 1
            self.answering = False

    def chat(self) -> list[dict]:
        """The Chatbot value: the kept turns, after a line on the ones dropped."""
        return render.chat_messages(self.turns, dropped=self.asked - len(self.turns))
