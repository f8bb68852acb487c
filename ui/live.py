"""The Assistant that answers the app's questions, swapped whole for a new one when a newer
index is complete: built here, or by another process."""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import qa
from qa import Assistant, Settings
from qa.stores import open_store

RELOAD_CHECK_SECONDS = 1.0  # how often a question may look for an index built elsewhere

Progress = Callable[[str, int, int], None]  # a build's (what, done, total), as qa.build calls it


class LiveAssistant:
    """The live Assistant of `index`. Questions get whichever one is live when they arrive;
    a build swaps in a new one when its index is complete, so answers never see a half-built
    index. An index rebuilt by another process (`qa build`) is noticed by `current`, at most
    once a second, loaded in the background and swapped in the same way.
    """

    def __init__(self, index: str | Path, settings: Settings, assistant: Assistant | None = None):
        self.index = index
        self.settings = settings
        self.store = open_store(index)
        self._assistant = assistant
        self._swap = threading.Lock()
        self._building = threading.Lock()  # one rebuild or reload at a time in this process
        # The generation the live Assistant was loaded from (assumed the current one).
        self._generation = self._live() if assistant is not None else None
        self._next_check = 0.0
        self._unloadable: set[str] = set()  # generations that failed to load: not retried

    def current(self) -> Assistant | None:
        """The Assistant to answer with now; None while there is no index."""
        self._notice_new_index()
        with self._swap:
            return self._assistant

    def build(self, corpus: Path, progress: Progress | None = None) -> qa.BuildStats:
        """Bring the index up to date with `corpus` and make it the live one. If anything
        fails, the Assistant that answered before stays live."""
        with self._building:
            stats = qa.build(corpus, self.index, self.settings, progress=progress)
            self._load_and_swap()
        return stats

    def _load_and_swap(self) -> None:
        """Load the live index and make it the one that answers. Caller holds `_building`."""
        with self._swap:
            current = self._assistant
        generation = self._live()  # read first: a later build means a reload
        fresh = qa.load(
            self.index,
            self.settings,
            # Reuse the loaded model (when the new index was embedded the same way): the first
            # question after the swap stays fast.
            embedder=current.embedder if current is not None else None,
        )
        fresh.warm()  # not in the first question
        with self._swap:
            self._assistant, self._generation = fresh, generation

    def _live(self) -> str | None:
        """The live index generation; None where the store is not watched (Milvus)."""
        return self.store.generation()

    def _notice_new_index(self) -> None:
        """Start loading the index in the background if another process replaced it."""
        now = time.monotonic()
        with self._swap:
            if now < self._next_check:
                return
            self._next_check = now + RELOAD_CHECK_SECONDS
            known = self._generation
        live = self._live()
        if live is None or live == known or live in self._unloadable:
            return
        if self._building.acquire(blocking=False):  # else a rebuild here will swap it in
            threading.Thread(target=self._reload, args=(live,), daemon=True).start()

    def _reload(self, live: str) -> None:
        try:
            with self._swap:
                if self._generation == live:  # another question got here first
                    return
            self._load_and_swap()
        except Exception as exc:  # e.g. rebuilt with another model: keep answering from the old
            self._unloadable.add(live)
            print(f"qa: not switching to the rebuilt index: {exc}", file=sys.stderr)
        finally:
            self._building.release()
