"""The server's check of every path parameter, before anything goes to an agent."""

from __future__ import annotations

import pytest

from steward.server.errors import InvalidInput, PermissionDenied
from steward.server.files.policy import Policy, check_path, check_syntax, join, relative_to

POLICY = Policy(linux_roots=("/srv", "/home/app"), windows_roots=("C:\\Users",))


@pytest.mark.parametrize(
    "path",
    ["", "srv/x", "/srv/../etc/passwd", "/srv/./x", "/srv/%2e%2e/x", "/srv/a%00b", "/srv/a\x00b",
     "/srv/a\nb", "/srv\\x", "/srv/" + "a" * 5000, "/srv/\u202ex"],
)  # fmt: skip
def test_malformed_paths_are_unsafe(path: str) -> None:
    with pytest.raises(InvalidInput) as refused:
        check_path(path, POLICY, "Linux")
    assert refused.value.code == "unsafe_path"


@pytest.mark.parametrize("path", ["/", "/etc/passwd", "/srvx/file", "/home/other"])
def test_paths_outside_the_roots_are_refused(path: str) -> None:
    with pytest.raises(PermissionDenied) as refused:
        check_path(path, POLICY, "Linux")
    assert refused.value.code == "outside_roots"


def test_paths_inside_are_normalised() -> None:
    assert check_path("/srv//www/", POLICY, "Linux") == "/srv/www"
    assert check_path("/home/app", POLICY, "Linux") == "/home/app"


def test_windows_paths() -> None:
    assert check_path("C:\\Users\\bob\\a.txt", POLICY, "Windows 11") == "C:\\Users\\bob\\a.txt"
    assert check_path("c:\\users\\bob", POLICY, "Windows") == "c:\\users\\bob"
    for bad in ("C:/Users/bob", "\\\\server\\share", "C:\\Users\\..\\Windows", "Users\\bob"):
        with pytest.raises(InvalidInput):
            check_path(bad, POLICY, "Windows")
    with pytest.raises(PermissionDenied):
        check_path("C:\\Windows\\System32", POLICY, "Windows")


def test_relative_paths_from_agents_are_checked() -> None:
    assert join("/srv/site", "css/main.css", "Linux") == "/srv/site/css/main.css"
    assert relative_to("/srv/site/css/main.css", "/srv/site", "Linux") == "css/main.css"
    with pytest.raises(InvalidInput):
        join("/srv/site", "../../etc/passwd", "Linux")
    with pytest.raises(InvalidInput):
        relative_to("/srv/other/x", "/srv/site", "Linux")


def test_system_directories_need_the_tenant_to_allow_them() -> None:
    assert check_syntax("/etc", windows=False) == "/etc"
