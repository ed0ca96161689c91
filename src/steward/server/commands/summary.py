"""A one-line description of a command's payload, for lists and default job names."""

from __future__ import annotations

from typing import Any


def summarise(command_type: str, payload: dict[str, Any]) -> str:
    family = command_type.partition(".")[0]
    if command_type == "shell":
        text = str(payload.get("command", ""))
    elif command_type == "script":
        text = f"{payload.get('name', payload.get('script_id', ''))} v{payload.get('version', '')}"
    elif family == "package":
        text = " ".join(str(n) for n in payload.get("names", [])) or str(payload.get("filter", ""))
    elif family == "service":
        text = str(payload.get("name", ""))
    elif command_type == "process.kill":
        text = str(payload.get("name") or payload.get("pid") or "")
    elif command_type == "message":
        text = str(payload.get("text", ""))
    elif command_type == "locale.set":
        text = str(payload.get("locale", ""))
    elif family == "power":
        text = f"+{payload.get('delay_s', 0)} s"
    else:
        text = str(payload.get("filter", ""))
    text = " ".join(text.split())
    return text if len(text) <= 120 else text[:119] + "…"
