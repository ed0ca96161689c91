"""Command policy rules, evaluated without a server: every bypass attempt against a deny rule
and against an allow list, deny beating allow, roles, groups, types and invalid documents."""

from __future__ import annotations

import base64
import json
import uuid
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from steward.server.commands.policy import (
    CommandPolicy,
    PolicyDecision,
    command_policy,
    evaluate,
    pattern_matches,
)

ROOT = Path(__file__).resolve().parents[2]
LAB = uuid.uuid4()
REMOVE = "Remove-Item -Recurse C:\\"


def _encoded(text: str) -> str:
    return base64.b64encode(text.encode("utf-16-le")).decode()


def policy(*rules: dict[str, Any]) -> CommandPolicy:
    return CommandPolicy.model_validate({"rules": list(rules)})


def decide(
    rules: CommandPolicy,
    command: str = "",
    *,
    role: str = "ENGINEER",
    group: str | None = "lab",
    command_type: str = "shell",
    payload: dict[str, Any] | None = None,
) -> PolicyDecision:
    return evaluate(
        rules,
        role=role,
        group_id=LAB if group == "lab" else uuid.uuid4() if group else None,
        group_name=group,
        command_type=command_type,
        payload=payload if payload is not None else {"command": command},
    )


DENY_RM = policy(
    {"id": "no-rm", "effect": "deny", "types": ["shell"], "commands": ["rm -rf *"]},
    {"id": "no-remove-item", "effect": "deny", "types": ["shell"],
     "commands": ["remove-item -recurse *"]},
)  # fmt: skip
ALLOW_LIST = policy(
    {"id": "basics", "effect": "allow", "types": ["shell"],
     "commands": ["echo *", "ls *", "uptime", "systemctl status *", "cat *"]},
)  # fmt: skip

BYPASSES = [
    "rm -rf /",
    "echo ok; rm -rf /",
    "echo ok && rm -rf /",
    "false || rm -rf /",
    "ls | rm -rf /",
    "echo ok\nrm -rf /",
    "echo $(rm -rf /)",
    'echo "$(rm -rf /)"',
    "echo `rm -rf /`",
    "cat <(rm -rf /)",
    "r''m -rf /",
    '"rm" -rf /',
    "\\rm -rf /",
    "/bin/rm -rf /",
    "RM -rf /",
    "rm.exe -rf /",
    "bash -c 'rm -rf /'",
    'sh -c "echo hi; rm -rf /"',
    "bash -lc 'rm -rf /'",
    "sudo rm -rf /",
    "sudo -u root rm -rf /",
    "env X=1 rm -rf /",
    "X=1 rm -rf /",
    "nohup nice -n 5 timeout 10 rm -rf /",
    "find / -name x | xargs rm -rf",
    "find / -exec rm -rf {} +",
    "busybox rm -rf /",
    "sudo bash -c \"sh -c 'rm -rf /'\"",
    "cmd /c rm -rf /",
    "cmd.exe /C rm -rf /",
    "echo 'rm -rf /' | sh",
    "powershell -Command Remove-Item -Recurse C:\\",
    f"powershell -enc {_encoded(REMOVE)}",
    f"powershell -e {_encoded(REMOVE)}",
    f"powershell.exe -NoProfile -ExecutionPolicy Bypass -EncodedCommand {_encoded(REMOVE)}",
    f"pwsh -ec {_encoded('echo ok; ' + REMOVE)}",
    f"powershell -enc {_encoded('powershell -enc ' + _encoded('rm -rf /'))}",
    "powershell -enc not-base64!",
    "iex 'Remove-Item -Recurse C:\\'",
]


@pytest.mark.parametrize("text", BYPASSES)
def test_a_deny_rule_sees_through_bypass_attempts(text: str) -> None:
    decision = decide(DENY_RM, text)
    assert decision.blocked, decision
    assert decision.blocked_by is not None and decision.code == "command_denied"
    assert decision.blocked_by.id in {"no-rm", "no-remove-item"}


@pytest.mark.parametrize("text", BYPASSES)
def test_an_allow_list_refuses_bypass_attempts(text: str) -> None:
    decision = decide(ALLOW_LIST, text)
    assert decision.blocked and decision.not_allowed, decision
    assert decision.blocked_by is None and decision.code == "command_not_allowed"
    assert decision.reason


@pytest.mark.parametrize(
    "text",
    [
        "echo rm -rf /",  # words, not a command
        "ls -la /srv",
        "grep -r 'rm -rf' /var/log",
        "rm -f file.txt",  # not recursive: the pattern says -rf
        "cat /etc/rm",
        "bash -c 'ls /tmp'",
        "sudo ls",
    ],
)
def test_a_deny_rule_does_not_catch_harmless_commands(text: str) -> None:
    assert not decide(DENY_RM, text).blocked


@pytest.mark.parametrize(
    "text",
    ["ls -la /srv", "echo hi; uptime", "uptime && systemctl status nginx", "cat a | cat", "ECHO x"],
)
def test_an_allow_list_lets_listed_commands_through(text: str) -> None:
    decision = decide(ALLOW_LIST, text)
    assert not decision.blocked, decision


def test_an_allow_list_checks_the_commands_nested_in_an_allowed_shell() -> None:
    rules = policy(
        {"id": "shells", "effect": "allow", "commands": ["bash -c *", "sudo ls *", "ls *"]},
    )
    assert not decide(rules, "bash -c 'ls /tmp'").blocked
    assert not decide(rules, "sudo ls /root").blocked
    assert decide(rules, "bash -c 'rm -rf /'").not_allowed
    assert decide(rules, "sudo rm -rf /").not_allowed  # a wrapper must be allowed with its command
    assert decide(rules, "uptime").not_allowed
    # "uptime" alone is a one-word pattern: the program with any arguments
    assert not decide(
        policy({"id": "up", "effect": "allow", "commands": ["uptime"]}), "uptime -p"
    ).blocked


def test_deny_beats_allow() -> None:
    rules = policy(
        {"id": "anything", "effect": "allow", "types": ["*"]},
        {"id": "no-reboot", "effect": "deny", "commands": ["reboot", "shutdown *"]},
    )
    assert not decide(rules, "ls").blocked
    denied = decide(rules, "ls; sudo shutdown -r now")
    assert denied.blocked_by is not None and denied.blocked_by.id == "no-reboot"
    assert "no-reboot" in denied.reason


def test_rules_apply_per_role() -> None:
    rules = policy(
        {"id": "viewers-no-shell", "effect": "deny", "types": ["shell"], "roles": ["ENGINEER"]},
    )
    assert decide(rules, "ls", role="ENGINEER").blocked
    assert not decide(rules, "ls", role="ADMIN").blocked


def test_rules_apply_per_group_by_name_or_id() -> None:
    by_name = policy({"id": "lab-deny", "effect": "deny", "groups": ["Lab"]})
    assert decide(by_name, "ls", group="lab").blocked  # names in any case
    assert not decide(by_name, "ls", group="office").blocked
    assert not decide(by_name, "ls", group=None).blocked
    by_id = policy({"id": "lab-deny", "effect": "deny", "groups": [str(LAB)]})
    assert decide(by_id, "ls", group="lab").blocked
    assert not decide(by_id, "ls", group="office").blocked


def test_allow_list_mode_holds_per_role_and_group() -> None:
    rules = policy(
        {"id": "lab-engineers", "effect": "allow", "types": ["package.*"],
         "roles": ["ENGINEER"], "groups": ["lab"]},
    )  # fmt: skip
    assert not decide(rules, command_type="package.install", payload={"name": "vim"}).blocked
    assert decide(rules, "ls").not_allowed  # in allow-list mode, shell is not listed
    assert not decide(rules, "ls", role="ADMIN").blocked  # not in the rule's context
    assert not decide(rules, "ls", group="office").blocked


def test_type_patterns() -> None:
    rules = policy({"id": "no-packages", "effect": "deny", "types": ["package.*"]})
    for command_type in ("package.install", "package.uninstall", "package.list"):
        assert decide(rules, command_type=command_type, payload={}).blocked
    assert not decide(rules, command_type="power.reboot", payload={}).blocked
    assert not decide(rules, "apt-get install vim").blocked  # shell is another type


def test_approval_rules() -> None:
    rules = policy(
        {"id": "restarts", "effect": "require_approval", "commands": ["systemctl restart *"]},
        {"id": "power", "effect": "require_approval", "types": ["power.*"]},
    )
    asked = decide(rules, "sudo systemctl restart nginx")
    assert asked.needs_approval and asked.approval_by is not None
    assert asked.approval_by.id == "restarts" and not asked.blocked
    assert decide(rules, "bash -c 'SYSTEMCTL RESTART nginx'").needs_approval
    assert not decide(rules, "systemctl status nginx").needs_approval
    assert decide(rules, command_type="power.reboot", payload={}).needs_approval
    # a blocked command is blocked, not waiting
    both = policy({"id": "deny-all", "effect": "deny"}, {"id": "ask", "effect": "require_approval"})
    assert decide(both, "ls").blocked and not decide(both, "ls").needs_approval


def test_disabled_rules_are_ignored() -> None:
    rules = policy(
        {"id": "off", "effect": "deny", "enabled": False},
        {"id": "off-allow", "effect": "allow", "commands": ["ls"], "enabled": False},
    )
    decision = decide(rules, "rm -rf /")
    assert not decision.blocked and not decision.needs_approval


def test_no_rules_no_opinion() -> None:
    assert decide(CommandPolicy(), "powershell -enc !!!") == PolicyDecision()


@pytest.mark.parametrize(
    ("rules", "message"),
    [
        ([{"id": "a", "effect": "deny"}, {"id": "a", "effect": "allow"}], "duplicate rule id"),
        ([{"id": "a", "effect": "deny", "roles": ["GOD"]}], "roles.0"),
        ([{"id": "a", "effect": "deny", "commands": ["rm 'unclosed"]}], "not a readable"),
        ([{"id": "a", "effect": "deny", "commands": [""]}], "at least 1 character"),
        ([{"id": "a", "effect": "deny", "types": ["shel"]}], "matches no command type"),
        (
            [{"id": "a", "effect": "deny", "types": ["package.*"], "commands": ["rm"]}],
            "shell commands only",
        ),
        ([{"id": "Not A Slug", "effect": "deny"}], "id"),
        ([{"id": "a", "effect": "maybe"}], "effect"),
        ([{"id": "a", "effect": "deny", "colour": "red"}], "colour"),
        ([{"id": "a", "effect": "deny", "types": []}], "types"),
    ],
)
def test_invalid_rule_documents_are_refused(rules: list[dict[str, Any]], message: str) -> None:
    with pytest.raises(ValidationError) as refused:
        CommandPolicy.model_validate({"rules": rules})
    assert message in str(refused.value)


def test_a_stored_policy_keeps_the_rules_it_can_still_read() -> None:
    stored = {"command_policy": {"rules": [
        {"id": "ok", "effect": "deny"}, {"id": "broken", "effect": "deny", "types": ["gone"]},
    ]}}  # fmt: skip
    assert [r.id for r in command_policy(stored).rules] == ["ok"]
    assert command_policy(None) == CommandPolicy() == command_policy({"command_policy": "x"})


@pytest.mark.parametrize(
    ("pattern", "words", "expected"),
    [
        ("systemctl restart *", ["systemctl", "restart", "nginx"], True),
        ("systemctl restart *", ["systemctl", "stop", "nginx"], False),
        ("systemctl restart *", ["systemctl"], False),
        ("curl", ["/usr/bin/curl", "-s", "x"], True),
        ("curl", ["curlx"], False),  # never substrings
        ("mkfs*", ["mkfs.ext4", "/dev/sdb"], True),
        ("rm -rf *", ["rm", "-fr", "/"], False),  # word by word: write `rm *` for any rm
    ],
)
def test_pattern_matching(pattern: str, words: list[str], expected: bool) -> None:
    assert pattern_matches(pattern, words) is expected


def test_deep_wrapping_cannot_hide_a_command() -> None:
    assert decide(DENY_RM, "sudo " * 5000 + "rm -rf /").blocked
    assert decide(ALLOW_LIST, "sudo " * 5000 + "ls").blocked


def test_the_documented_example_behaves_as_documented() -> None:
    """docs/command-policy.md, "Examples"."""
    text = (ROOT / "docs" / "command-policy.md").read_text()
    example = json.loads(text.split("```json\n", 1)[1].split("```", 1)[0])
    rules = CommandPolicy.model_validate(example)
    assert not decide(rules, "uptime; ping -c1 10.0.0.1", role="ENGINEER", group="shops").blocked
    waits = decide(rules, "sudo systemctl restart nginx", role="ENGINEER", group="shops")
    assert waits.needs_approval and not waits.blocked
    for refused in ("ls", "bash -c 'uptime'", "echo $(uptime)"):
        assert decide(rules, refused, role="ENGINEER", group="shops").not_allowed, refused
    assert decide(rules, "ping x; rm -rf /", role="ENGINEER", group="shops").blocked_by is not None
    assert not decide(rules, "ls", role="ADMIN", group="shops").blocked
