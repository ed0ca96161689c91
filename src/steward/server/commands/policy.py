"""A tenant's command policy: rules that allow, deny or send commands for approval, by role,
group and command type, and for shell commands by program and arguments.

Kept in `Tenant.settings["command_policy"]` = `{"rules": [...]}`. Shell text is read by
`risk.read_shell` (tokenised one simple command at a time, wrappers unwrapped, `bash -c`,
`cmd /c`, `powershell -Command/-EncodedCommand` and substitutions read inside) and matched on
program names and arguments, never on substrings. This is advice that catches mistakes and
casual misuse; it is not a security boundary (docs/command-policy.md says why).
"""

from __future__ import annotations

import fnmatch
import re
import shlex
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from functools import lru_cache
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from sqlalchemy.ext.asyncio import AsyncSession

from steward.protocol import CommandType
from steward.server.accounts.models import Role
from steward.server.audit.auditor import Auditor
from steward.server.commands.risk import ShellReading, program_name, read_shell
from steward.server.tenancy.models import Tenant

SETTINGS_KEY = "command_policy"
_TYPE_PATTERN = re.compile(r"^[a-z0-9.*?_\-\[\]]+$")
RuleId = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,39}$")]
TypePattern = Annotated[str, Field(min_length=1, max_length=40)]
CommandPattern = Annotated[str, Field(min_length=1, max_length=200)]
GroupRef = Annotated[str, Field(min_length=1, max_length=100)]


class Effect(StrEnum):
    ALLOW = "allow"
    DENY = "deny"
    REQUIRE_APPROVAL = "require_approval"


class Rule(BaseModel):
    """One rule. Empty `groups` / `roles` mean every group / role."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: RuleId
    description: str = Field(default="", max_length=300)
    effect: Effect
    types: list[TypePattern] = Field(default_factory=lambda: ["*"], min_length=1, max_length=20)
    commands: list[CommandPattern] = Field(default_factory=list, max_length=200)
    groups: list[GroupRef] = Field(default_factory=list, max_length=100)
    roles: list[Role] = Field(default_factory=list, max_length=len(Role))
    enabled: bool = True

    @field_validator("types")
    @classmethod
    def _known_types(cls, value: list[str]) -> list[str]:
        for pattern in value:
            if not _TYPE_PATTERN.match(pattern) or not fnmatch.filter(_TYPES, pattern):
                raise ValueError(f"{pattern!r} matches no command type (e.g. shell, package.*, *)")
        return list(dict.fromkeys(value))

    @field_validator("commands")
    @classmethod
    def _readable_patterns(cls, value: list[str]) -> list[str]:
        for pattern in value:
            try:
                words = shlex.split(pattern)
            except ValueError:
                raise ValueError(f"{pattern!r} is not a readable command pattern") from None
            if not words:
                raise ValueError("a command pattern needs a program name")
        return list(dict.fromkeys(value))

    @model_validator(mode="after")
    def _commands_are_for_shell(self) -> Rule:
        if self.commands and not self.matches_type(CommandType.SHELL):
            raise ValueError("command patterns apply to shell commands only: add 'shell' to types")
        return self

    def matches_type(self, command_type: str) -> bool:
        """Command patterns narrow a rule to shell commands."""
        if self.commands and command_type != CommandType.SHELL:
            return False
        return any(fnmatch.fnmatchcase(command_type, p) for p in self.types)

    def applies_to(self, role: str, group_id: uuid.UUID | None, group_name: str | None) -> bool:
        """Enabled, for this role and this group (a rule limited to groups needs a group)."""
        if not self.enabled or (self.roles and role not in self.roles):
            return False
        return self._in_groups(group_id, group_name)

    def _in_groups(self, group_id: uuid.UUID | None, group_name: str | None) -> bool:
        if not self.groups:
            return True
        names = {g.lower() for g in self.groups}
        return (group_id is not None and str(group_id) in names) or (
            group_name is not None and group_name.lower() in names
        )


_TYPES = [t.value for t in CommandType]


class CommandPolicy(BaseModel):
    model_config = ConfigDict(extra="forbid")

    rules: list[Rule] = Field(default_factory=list, max_length=200)

    @field_validator("rules")
    @classmethod
    def _unique_ids(cls, value: list[Rule]) -> list[Rule]:
        seen: set[str] = set()
        for rule in value:
            if rule.id in seen:
                raise ValueError(f"duplicate rule id {rule.id!r}")
            seen.add(rule.id)
        return value

    def rule(self, rule_id: str) -> Rule | None:
        return next((r for r in self.rules if r.id == rule_id), None)


def command_policy(tenant_settings: dict[str, Any] | None) -> CommandPolicy:
    """The stored policy. One that can no longer be read (a rule naming a type since removed)
    keeps the rules that still can, and their order."""
    raw = (tenant_settings or {}).get(SETTINGS_KEY) or {}
    try:
        return CommandPolicy.model_validate(raw)
    except ValueError:
        rules = []
        for item in raw.get("rules", []) if isinstance(raw, dict) else []:
            try:
                rules.append(Rule.model_validate(item))
            except ValueError:
                continue
        return CommandPolicy(rules=list({r.id: r for r in rules}.values()))


# ---- evaluation ------------------------------------------------------------------------------


@dataclass(frozen=True)
class PolicyDecision:
    blocked_by: Rule | None = None  # a deny rule
    approval_by: Rule | None = None  # a require_approval rule
    reason: str = ""
    not_allowed: bool = False  # allow-list mode, and no allow rule lets it through

    @property
    def blocked(self) -> bool:
        return self.blocked_by is not None or self.not_allowed

    @property
    def needs_approval(self) -> bool:
        return not self.blocked and self.approval_by is not None

    @property
    def code(self) -> str:
        """The error code for a refusal (`command_denied`, `command_not_allowed`)."""
        if self.blocked_by is not None:
            return "command_denied"
        return "command_not_allowed" if self.not_allowed else ""


def evaluate(
    policy: CommandPolicy,
    *,
    role: str,
    group_id: uuid.UUID | None,
    group_name: str | None,
    command_type: str,
    payload: dict[str, Any],
) -> PolicyDecision:
    """What the policy says of a command. Deny beats allow; with any allow rule for this role
    and group, only what an allow rule names gets through (for shell: every simple command)."""
    in_context = [r for r in policy.rules if r.applies_to(role, group_id, group_name)]
    if not in_context:
        return PolicyDecision()
    text = payload.get("command") if command_type == CommandType.SHELL else None
    reading = read_shell(text) if isinstance(text, str) else None
    typed = [r for r in in_context if r.matches_type(command_type)]
    for rule in (r for r in typed if r.effect is Effect.DENY):
        why = _catches(rule, reading)
        if why:
            return PolicyDecision(blocked_by=rule, reason=f"denied by rule {rule.id!r}: {why}")
    allows = [r for r in in_context if r.effect is Effect.ALLOW]
    if allows:
        refusal = _allow_list_refusal([r for r in allows if r.matches_type(command_type)], reading)
        if refusal:
            return PolicyDecision(not_allowed=True, reason=refusal)
    for rule in (r for r in typed if r.effect is Effect.REQUIRE_APPROVAL):
        why = _catches(rule, reading)
        if why:
            return PolicyDecision(approval_by=rule, reason=f"rule {rule.id!r} asks for approval")
    return PolicyDecision(reason="allowed" if allows else "")


def _catches(rule: Rule, reading: ShellReading | None) -> str:
    """Why a deny or approval rule (of a matching type) catches this command; "" if not."""
    if not rule.commands or reading is None:
        return "every command of this type"
    for words in reading.all_commands:
        for candidate in (words, *_unix_equivalents(words)):
            for pattern in rule.commands:
                if pattern_matches(pattern, candidate, fold_case=True):
                    return f"{program_name(words[0])!r} matches {pattern!r}"
    opaque = reading.opaque_reason
    return f"it uses {opaque} and cannot be checked" if opaque else ""


_REMOVE = frozenset({"remove-item", "ri", "del", "erase", "rd", "rmdir", "rm"})


def _unix_equivalents(words: Sequence[str]) -> list[list[str]]:
    r"""A Windows spelling as the POSIX command a deny rule names, so that a rule on
    `rm -rf *` also catches `Remove-Item -Recurse -Force C:\` (and `del /s`). Deny and
    approval rules only: reading more is the safe side."""
    if not words or program_name(words[0]) not in _REMOVE or program_name(words[0]) == "rm":
        return []
    args = list(words[1:])
    lowered = [a.lower() for a in args]
    recursive = any(a.startswith("-rec") or a in {"/s", "-r"} for a in lowered)
    flags = {"/s", "/q", "/f"}
    paths = [a for a, low in zip(args, lowered, strict=True) if not low.startswith("-")]
    paths = [a for a in paths if a.lower() not in flags]
    if recursive:
        return [["rm", flags, *paths] for flags in ("-rf", "-r", "-fr")]
    return [["rm", *paths]]


def _allow_list_refusal(allows: list[Rule], reading: ShellReading | None) -> str:
    """Why an allow list refuses the command; "" when it lets it through."""
    if not allows:
        return "not allowed by any rule"
    if reading is None or any(not r.commands for r in allows):
        return ""  # a type allowed as a whole
    if reading.opaque_reason:
        return f"not allowed: it uses {reading.opaque_reason} and cannot be checked"
    if reading.uses_substitution:
        return "not allowed: substitutions ($(...), backticks, <(...)) cannot be checked"
    patterns = [p for r in allows for p in r.commands]
    for part in reading.walk():
        for segment in part.segments:
            if not any(pattern_matches(p, segment) for p in patterns):
                return f"{program_name(segment[0])!r} is not allowed by any rule"
    return ""


@lru_cache(maxsize=1024)
def _words(pattern: str) -> tuple[str, ...]:
    words = shlex.split(pattern)
    return (program_name(words[0]), *words[1:]) if words else ()


def pattern_matches(pattern: str, command: Sequence[str], *, fold_case: bool = False) -> bool:
    """`systemctl restart *` matches `systemctl restart nginx`: word by word (fnmatch), the
    program by its base name (any case, no `.exe`), a last `*` word takes any remaining
    arguments, and a pattern of one word (`curl`) is the program with any arguments.
    `fold_case` compares arguments in any case too (deny and approval rules: the safe side)."""
    words = _words(pattern)
    if not words or not command:
        return False
    if not fnmatch.fnmatchcase(program_name(command[0]), words[0]):
        return False
    wanted, args = list(words[1:]), list(command[1:])
    if not wanted:
        return True
    if wanted[-1] == "*":
        wanted = wanted[:-1]
        if len(args) < len(wanted):
            return False
        args = args[: len(wanted)]
    if len(wanted) != len(args):
        return False
    if fold_case:
        wanted, args = [w.lower() for w in wanted], [a.lower() for a in args]
    return all(fnmatch.fnmatchcase(a, w) for w, a in zip(wanted, args, strict=True))


# ---- changing the policy ---------------------------------------------------------------------


def summarise_changes(before: CommandPolicy, after: CommandPolicy) -> dict[str, list[str]]:
    old = {r.id: r for r in before.rules}
    new = {r.id: r for r in after.rules}
    return {
        "added": [i for i in new if i not in old],
        "removed": [i for i in old if i not in new],
        "changed": [i for i in new if i in old and old[i] != new[i]],
    }


async def save_command_policy(
    session: AsyncSession, auditor: Auditor, tenant: Tenant, policy: CommandPolicy
) -> dict[str, list[str]]:
    """Store the policy (committed), and audit what changed (`settings.command_policy`)."""
    before = command_policy(tenant.settings)
    tenant.settings = {**(tenant.settings or {}), SETTINGS_KEY: policy.model_dump(mode="json")}
    await session.commit()
    changes = summarise_changes(before, policy)
    if any(changes.values()) or [r.id for r in before.rules] != [r.id for r in policy.rules]:
        await auditor(
            "settings.command_policy",
            risk="high",
            target="command_policy",
            detail={"changes": changes, "rules": len(policy.rules)},
        )
    return changes


def with_rule(policy: CommandPolicy, rule: Rule, replacing: str | None = None) -> CommandPolicy:
    """The policy with `rule` added, or put in the place of rule `replacing`."""
    rules = list(policy.rules)
    index = next((i for i, r in enumerate(rules) if r.id == replacing), None)
    if index is None:
        rules.append(rule)
    else:
        rules[index] = rule
    return CommandPolicy.model_validate({"rules": [r.model_dump() for r in rules]})


def without_rule(policy: CommandPolicy, rule_id: str) -> CommandPolicy:
    return CommandPolicy(rules=[r for r in policy.rules if r.id != rule_id])


def split_lines(text: str) -> list[str]:
    return [line.strip() for line in text.splitlines() if line.strip()]


def split_words(text: str) -> list[str]:
    return [w for w in re.split(r"[\s,]+", text) if w]
