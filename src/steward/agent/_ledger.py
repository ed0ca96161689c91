"""The exactly-once ledger: which commands this agent has started, and how they ended.

A command id is recorded *before* the command runs, so that no dispatch, repeated or not, and
no restart ever runs it a second time. A command found "started" at load time was interrupted
by a crash or restart; it is closed with a `failed` result. Results stay in the ledger (marked
undelivered) until a transport has handed them to the server, so they survive restarts too.

The file is rewritten atomically on every change. It is bounded: the last `max_entries` ids,
and the output of delivered results only while it fits in `max_output_chars` (older delivered
results keep their status and exit code, their output is dropped and marked truncated).
"""

from __future__ import annotations

import json
import threading
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from steward.agent._errors import StateError
from steward.agent._executor import failed_result
from steward.agent._files import atomic_write, read_text
from steward.protocol import CommandResult

LEDGER_FILE_NAME = "ledger.json"
MAX_ENTRIES = 5000
MAX_OUTPUT_CHARS = 4 * 1024 * 1024
INTERRUPTED_ERROR = "agent restarted while the command was running"
_FORMAT_VERSION = 1


@dataclass(frozen=True, slots=True)
class LedgerEntry:
    command_id: str
    result: CommandResult | None  # None: started, not finished
    delivered: bool = False

    @property
    def finished(self) -> bool:
        return self.result is not None


class Ledger:
    """Thread-safe; every method that changes it writes the file before returning (blocking:
    from async code, call it through `asyncio.to_thread`)."""

    def __init__(
        self,
        path: Path,
        *,
        max_entries: int = MAX_ENTRIES,
        max_output_chars: int = MAX_OUTPUT_CHARS,
    ) -> None:
        self.path = path
        self.max_entries = max_entries
        self.max_output_chars = max_output_chars
        self._lock = threading.Lock()
        self._entries: OrderedDict[str, LedgerEntry] = OrderedDict()
        self._load()

    @classmethod
    def in_dir(cls, state_dir: Path, **limits: int) -> Ledger:
        return cls(state_dir / LEDGER_FILE_NAME, **limits)

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, command_id: object) -> bool:
        return command_id in self._entries

    def get(self, command_id: str) -> LedgerEntry | None:
        with self._lock:
            return self._entries.get(command_id)

    def start(self, command_id: str) -> bool:
        """Record that `command_id` is about to run. False (and nothing written) when the
        ledger already knows it: then it must not run."""
        with self._lock:
            if command_id in self._entries:
                return False
            self._entries[command_id] = LedgerEntry(command_id, None)
            self._save()
            return True

    def finish(self, result: CommandResult) -> None:
        """Record the final result of a started (or unknown) command, as undelivered."""
        with self._lock:
            self._entries[result.command_id] = LedgerEntry(result.command_id, result, False)
            self._entries.move_to_end(result.command_id)
            self._save()

    def mark_delivered(self, command_ids: list[str]) -> None:
        with self._lock:
            changed = False
            for command_id in command_ids:
                entry = self._entries.get(command_id)
                if entry is not None and entry.result is not None and not entry.delivered:
                    self._entries[command_id] = LedgerEntry(command_id, entry.result, True)
                    changed = True
            if changed:
                self._save()

    def undelivered(self) -> list[CommandResult]:
        """Finished results the server may not have, oldest first."""
        with self._lock:
            return [
                entry.result
                for entry in self._entries.values()
                if entry.result is not None and not entry.delivered
            ]

    # ---- file ---------------------------------------------------------------------------

    def _load(self) -> None:
        text = read_text(self.path)
        if text is None:
            return
        try:
            raw = json.loads(text)
            entries = [_entry_from_json(item) for item in raw["entries"]]
        except (ValueError, KeyError, TypeError, ValidationError) as exc:
            raise StateError(f"{self.path} is not a valid ledger: {exc}") from exc
        interrupted = False
        for entry in entries:
            if entry.result is None:
                # Started and never finished: the agent died with it. Never run it again.
                entry = LedgerEntry(
                    entry.command_id, failed_result(entry.command_id, INTERRUPTED_ERROR)
                )
                interrupted = True
            self._entries[entry.command_id] = entry
        if interrupted:
            with self._lock:
                self._save()

    def _save(self) -> None:
        self._enforce_bounds()
        document = {
            "version": _FORMAT_VERSION,
            "entries": [_entry_to_json(entry) for entry in self._entries.values()],
        }
        atomic_write(self.path, json.dumps(document, ensure_ascii=False).encode("utf-8"))

    def _enforce_bounds(self) -> None:
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)
        budget = self.max_output_chars
        for command_id in reversed(self._entries):  # newest first keep their output
            entry = self._entries[command_id]
            result = entry.result
            if result is None or not (result.stdout or result.stderr):
                continue
            size = len(result.stdout) + len(result.stderr)
            if size <= budget or not entry.delivered:
                budget -= size  # undelivered output is kept whatever it costs: it must be sent
                continue
            self._entries[command_id] = LedgerEntry(command_id, _without_output(result), True)


def _without_output(result: CommandResult) -> CommandResult:
    return result.model_copy(
        update={
            "stdout": "",
            "stderr": "",
            "stdout_truncated": result.stdout_truncated or bool(result.stdout),
            "stderr_truncated": result.stderr_truncated or bool(result.stderr),
        }
    )


def _entry_to_json(entry: LedgerEntry) -> dict[str, Any]:
    return {
        "command_id": entry.command_id,
        "delivered": entry.delivered,
        "result": entry.result.model_dump(mode="json") if entry.result is not None else None,
    }


def _entry_from_json(item: dict[str, Any]) -> LedgerEntry:
    result = item.get("result")
    return LedgerEntry(
        command_id=str(item["command_id"]),
        result=CommandResult.model_validate(result) if result is not None else None,
        delivered=bool(item.get("delivered", False)),
    )
