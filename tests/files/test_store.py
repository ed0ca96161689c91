"""The tenant file store on a real filesystem: plain paths work, every way out is refused."""

from __future__ import annotations

import os
import stat
import uuid
from pathlib import Path

import pytest

from steward.server.errors import InvalidInput
from steward.server.files.store import TenantStore, tenants_root

GROUP = uuid.UUID("00000000-0000-4000-8000-000000000001")


@pytest.fixture
def store(tmp_path: Path) -> TenantStore:
    return TenantStore(tmp_path / "data", uuid.uuid4())


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    """A directory next to the data dir, with a file that must stay out of reach."""
    path = tmp_path / "outside"
    path.mkdir()
    (path / "secret.txt").write_text("secret")
    return path


def write(store: TenantStore, relative: str, data: bytes, group: uuid.UUID = GROUP) -> None:
    with store.open_for_write(group, relative) as file:
        file.write(data)


def read(store: TenantStore, relative: str, group: uuid.UUID = GROUP) -> bytes:
    with store.open_for_read(group, relative) as file:
        return file.read()


def assert_unsafe(error: pytest.ExceptionInfo[InvalidInput]) -> None:
    assert error.value.code == "unsafe_path"


def test_layout_is_tenant_id_then_group_id(tmp_path: Path, store: TenantStore) -> None:
    assert tenants_root(tmp_path / "data") == tmp_path / "data" / "tenants"
    assert store.root == tmp_path / "data" / "tenants" / str(store.tenant_id)
    assert store.group_root(GROUP) == store.root / str(GROUP)
    group_dir = store.ensure_group_dir(GROUP)
    assert group_dir.is_dir() and group_dir == store.group_root(GROUP)
    assert stat.S_IMODE(group_dir.stat().st_mode) & 0o007 == 0


def test_write_and_read_nested(store: TenantStore) -> None:
    write(store, "recordings/2024/05/session one.cast", b"first")
    write(store, "recordings/2024/05/session one.cast", b"again")  # truncates
    write(store, "top.txt", b"top")

    assert read(store, "recordings/2024/05/session one.cast") == b"again"
    assert read(store, "top.txt") == b"top"
    path = store.resolve(GROUP, "recordings/2024/05/session one.cast")
    assert path == store.group_root(GROUP).resolve() / "recordings/2024/05/session one.cast"
    assert path.read_bytes() == b"again"
    assert stat.S_IMODE(path.stat().st_mode) & 0o007 == 0
    assert store.resolve(GROUP, "not/yet/there.txt").is_absolute()
    with pytest.raises(FileNotFoundError):
        store.open_for_read(GROUP, "missing.txt")


def test_plain_names_that_look_odd_are_allowed(store: TenantStore) -> None:
    for name in ("..hidden", "a..b", "100%", "한글 파일.txt", "x" * 255):
        write(store, name, b"ok")
        assert read(store, name) == b"ok"


@pytest.mark.parametrize(
    "relative",
    [
        "../x",
        "a/../../x",
        "a/..",
        "..",
        "./x",
        "a//b",
        "/etc/passwd",
        "C:\\Windows",
        "C:/Windows",
        "\\\\srv\\share",
        "a\\..\\b",
        "%2e%2e/x",
        "..%2fx",
        "a%2Fb",
        "a%5cb",
        "%2E%2E",
        "a%41",
        "a\x00b",
        "a\nb",
        "a\x7fb",
        "x" * 300,
        "a/" + "é" * 128,  # 256 bytes
        "",
    ],
)
def test_unsafe_relative_paths_are_refused(
    store: TenantStore, outside: Path, relative: str
) -> None:
    store.ensure_group_dir(GROUP)
    with pytest.raises(InvalidInput) as refused:
        store.resolve(GROUP, relative)
    assert_unsafe(refused)
    with pytest.raises(InvalidInput) as refused:
        store.open_for_write(GROUP, relative)
    assert_unsafe(refused)
    with pytest.raises(InvalidInput) as refused:
        store.open_for_read(GROUP, relative)
    assert_unsafe(refused)


@pytest.mark.parametrize("relative", ["link", "link/secret.txt", "link/new.txt"])
def test_symlink_to_a_directory_outside_is_refused(
    store: TenantStore, outside: Path, relative: str
) -> None:
    (store.ensure_group_dir(GROUP) / "link").symlink_to(outside)
    for attempt in (
        lambda: store.resolve(GROUP, relative),
        lambda: write(store, relative, b"pwned"),
        lambda: read(store, relative),
    ):
        with pytest.raises(InvalidInput) as refused:
            attempt()
        assert_unsafe(refused)
    assert sorted(p.name for p in outside.iterdir()) == ["secret.txt"]
    assert (outside / "secret.txt").read_text() == "secret"


def test_symlink_to_a_file_is_refused_even_inside(store: TenantStore, outside: Path) -> None:
    group_dir = store.ensure_group_dir(GROUP)
    (group_dir / "real.txt").write_text("real")
    (group_dir / "inner").symlink_to(group_dir / "real.txt")
    (group_dir / "leak").symlink_to(outside / "secret.txt")
    for name in ("inner", "leak"):
        with pytest.raises(InvalidInput) as refused:
            store.resolve(GROUP, name)
        assert_unsafe(refused)
        with pytest.raises(InvalidInput) as refused:
            write(store, name, b"pwned")
        assert_unsafe(refused)
        with pytest.raises(InvalidInput) as refused:
            read(store, name)
        assert_unsafe(refused)
    assert (outside / "secret.txt").read_text() == "secret"
    assert (group_dir / "real.txt").read_text() == "real"


def test_dangling_symlink_is_not_written_through(store: TenantStore, outside: Path) -> None:
    (store.ensure_group_dir(GROUP) / "new.txt").symlink_to(outside / "created.txt")
    with pytest.raises(InvalidInput) as refused:
        write(store, "new.txt", b"pwned")
    assert_unsafe(refused)
    assert not (outside / "created.txt").exists()


def test_symlinked_group_directory_is_refused(store: TenantStore, outside: Path) -> None:
    store.root.mkdir(parents=True)
    store.group_root(GROUP).symlink_to(outside)
    for attempt in (
        lambda: store.resolve(GROUP, "secret.txt"),
        lambda: read(store, "secret.txt"),
        lambda: write(store, "new.txt", b"pwned"),
    ):
        with pytest.raises(InvalidInput) as refused:
            attempt()
        assert_unsafe(refused)
    assert sorted(p.name for p in outside.iterdir()) == ["secret.txt"]


def test_symlinked_tenant_directory_is_refused(store: TenantStore, outside: Path) -> None:
    (outside / str(GROUP)).mkdir()
    (outside / str(GROUP) / "f.txt").write_text("elsewhere")
    store.root.parent.mkdir(parents=True)
    store.root.symlink_to(outside)
    for attempt in (
        lambda: store.resolve(GROUP, "f.txt"),
        lambda: read(store, "f.txt"),
        lambda: write(store, "f.txt", b"pwned"),
        store.remove_tenant_files,
    ):
        with pytest.raises(InvalidInput) as refused:
            attempt()
        assert_unsafe(refused)
    assert (outside / str(GROUP) / "f.txt").read_text() == "elsewhere"


def test_a_link_swapped_in_after_the_check_is_not_followed(
    store: TenantStore, outside: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The open walks directories with O_NOFOLLOW, so a race past `resolve` gains nothing."""
    group_dir = store.ensure_group_dir(GROUP)
    (group_dir / "sub").mkdir()
    check = TenantStore._check

    def check_then_swap(self: TenantStore, group_id: uuid.UUID, relative: str):  # type: ignore[no-untyped-def]
        result = check(self, group_id, relative)
        (group_dir / "sub").rmdir()
        (group_dir / "sub").symlink_to(outside)
        return result

    monkeypatch.setattr(TenantStore, "_check", check_then_swap)
    with pytest.raises(InvalidInput) as refused:
        write(store, "sub/new.txt", b"pwned")
    assert_unsafe(refused)
    assert not (outside / "new.txt").exists()


def test_one_tenant_cannot_reach_another(tmp_path: Path) -> None:
    data = tmp_path / "data"
    tenant_a, tenant_b = TenantStore(data, uuid.uuid4()), TenantStore(data, uuid.uuid4())
    write(tenant_b, "f.txt", b"b's")
    other_group = uuid.uuid4()
    tenant_a.ensure_group_dir(other_group)
    for relative in (
        f"../../{tenant_b.tenant_id}/{GROUP}/f.txt",
        f"../{tenant_b.tenant_id}/{GROUP}/f.txt",
        f"..%2f..%2f{tenant_b.tenant_id}%2f{GROUP}%2ff.txt",
        str(tenant_b.group_root(GROUP) / "f.txt"),
        f"../{GROUP}/f.txt",  # nor another group of its own
    ):
        for group in (GROUP, other_group):
            with pytest.raises(InvalidInput) as refused:
                read(tenant_a, relative, group)
            assert_unsafe(refused)
    assert read(tenant_b, "f.txt") == b"b's"


def test_remove_tenant_files_removes_only_that_tenant(tmp_path: Path, outside: Path) -> None:
    data = tmp_path / "data"
    doomed, kept = TenantStore(data, uuid.uuid4()), TenantStore(data, uuid.uuid4())
    write(doomed, "a/b/c.txt", b"x")
    (doomed.group_root(GROUP) / "a" / "link").symlink_to(outside)  # removed, not followed
    write(kept, "a/b/c.txt", b"y")

    doomed.remove_tenant_files()

    assert not os.path.lexists(doomed.root)
    assert read(kept, "a/b/c.txt") == b"y"
    assert (outside / "secret.txt").read_text() == "secret"
    assert sorted(p.name for p in tenants_root(data).iterdir()) == [str(kept.tenant_id)]
    doomed.remove_tenant_files()  # nothing left: not an error
