"""The agent's file operations on a real temporary directory: every op, and every way out of
the roots (`..`, links, NUL, other directories) refused."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import os
import uuid
from pathlib import Path
from typing import Any

import pytest

from steward.agent._fileops import FileService, perform
from steward.protocol import MAX_FILE_CHUNK, FileOp, FileRequest, FileResponse

pytestmark = pytest.mark.skipif(os.name == "nt", reason="POSIX paths and links")


@pytest.fixture
def root(tmp_path: Path) -> Path:
    allowed = tmp_path / "root"
    allowed.mkdir()
    (allowed / "docs").mkdir()
    (allowed / "docs" / "a.txt").write_text("alpha\n")
    (allowed / "b.bin").write_bytes(bytes(range(256)) * 10)
    (tmp_path / "secret.txt").write_text("outside")
    return allowed


def ask(root: Path, op: FileOp, path: str | Path, **fields: Any) -> FileResponse:
    request = FileRequest(
        request_id=uuid.uuid4().hex, op=op, path=str(path), roots=[str(root)], **fields
    )
    return perform(request)


def ok(response: FileResponse) -> dict[str, Any]:
    assert response.ok, (response.error_code, response.error)
    return response.result


def test_list_and_stat(root: Path) -> None:
    listed = ok(ask(root, FileOp.LIST, root))
    names = {e["name"]: e for e in listed["entries"]}
    assert set(names) == {"docs", "b.bin"}
    assert names["docs"]["kind"] == "dir"
    assert names["b.bin"]["size"] == 2560
    assert names["b.bin"]["mode"].startswith("-rw")
    assert names["b.bin"]["owner"]
    assert names["b.bin"]["path"] == str(root / "b.bin")
    assert not listed["truncated"]
    assert ok(ask(root, FileOp.LIST, root, limit=1))["truncated"]
    stat = ok(ask(root, FileOp.STAT, root / "docs" / "a.txt"))
    assert stat["kind"] == "file" and stat["size"] == 6 and stat["name"] == "a.txt"
    assert ask(root, FileOp.STAT, root / "nope").error_code == "not_found"
    assert ask(root, FileOp.LIST, root / "b.bin").error_code == "not_a_directory"


def test_read_in_chunks_and_hash(root: Path) -> None:
    first = ask(root, FileOp.READ, root / "b.bin", offset=0, length=1000)
    assert ok(first) == {"eof": False, "size": 2560, "length": 1000}
    rest = ask(root, FileOp.READ, root / "b.bin", offset=1000, length=MAX_FILE_CHUNK)
    assert ok(rest)["eof"]
    data = base64.b64decode(first.data) + base64.b64decode(rest.data)
    assert data == (root / "b.bin").read_bytes()
    hashed = ok(ask(root, FileOp.HASH, root / "b.bin"))
    assert hashed == {"sha256": hashlib.sha256(data).hexdigest(), "size": 2560}
    assert ask(root, FileOp.READ, root / "docs").error_code == "is_a_directory"


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def test_upload_is_resumed_and_verified(root: Path) -> None:
    target = root / "docs" / "new.bin"
    content = os.urandom(300_000)
    upload = {"upload_id": "u1"}
    assert ok(ask(root, FileOp.PARTIAL, target, **upload)) == {"size": 0}
    ok(ask(root, FileOp.WRITE, target, offset=0, data=_b64(content[:100_000]), **upload))
    # the connection dropped: ask how much arrived, go on from there
    assert ok(ask(root, FileOp.PARTIAL, target, **upload)) == {"size": 100_000}
    wrong = ask(root, FileOp.WRITE, target, offset=50_000, data=_b64(b"x"), **upload)
    assert wrong.error_code == "offset_mismatch"
    ok(ask(root, FileOp.WRITE, target, offset=100_000, data=_b64(content[100_000:]), **upload))
    assert not target.exists()  # nothing at the target before the commit
    digest = hashlib.sha256(content).hexdigest()
    assert ok(ask(root, FileOp.COMMIT, target, sha256=digest, **upload))["size"] == 300_000
    assert target.read_bytes() == content
    assert [p.name for p in (root / "docs").iterdir() if p.name.endswith(".part")] == []
    # the target exists now: a second upload needs `overwrite`
    ok(ask(root, FileOp.WRITE, target, offset=0, data=_b64(b"v2"), upload_id="u2"))
    assert ask(root, FileOp.COMMIT, target, upload_id="u2").error_code == "exists"
    ok(ask(root, FileOp.COMMIT, target, upload_id="u2", overwrite=True))
    assert target.read_bytes() == b"v2"


def test_sha_mismatch_refuses_and_drops_the_upload(root: Path) -> None:
    target = root / "c.txt"
    ok(ask(root, FileOp.WRITE, target, offset=0, data=_b64(b"hello"), upload_id="u3"))
    bad = ask(root, FileOp.COMMIT, target, upload_id="u3", sha256="0" * 64)
    assert bad.error_code == "hash_mismatch"
    assert not target.exists()
    assert ok(ask(root, FileOp.PARTIAL, target, upload_id="u3")) == {"size": 0}


def test_abort_drops_the_partial_file(root: Path) -> None:
    target = root / "d.txt"
    ok(ask(root, FileOp.WRITE, target, offset=0, data=_b64(b"hello"), upload_id="u4"))
    ok(ask(root, FileOp.ABORT, target, upload_id="u4"))
    assert list(root.glob(".d.txt*")) == []


def test_mkdir_rename_delete(root: Path) -> None:
    ok(ask(root, FileOp.MKDIR, root / "x" / "y", recursive=True))
    assert (root / "x" / "y").is_dir()
    assert ask(root, FileOp.MKDIR, root / "x").error_code == "exists"
    ok(ask(root, FileOp.RENAME, root / "x", target=str(root / "z")))
    assert (root / "z" / "y").is_dir()
    assert ask(root, FileOp.RENAME, root / "z", target=str(root / "docs")).error_code == "exists"
    assert ask(root, FileOp.DELETE, root / "z").error_code == "exists"  # not empty
    ok(ask(root, FileOp.DELETE, root / "z", recursive=True))
    assert not (root / "z").exists()
    ok(ask(root, FileOp.DELETE, root / "b.bin"))
    assert not (root / "b.bin").exists()


def test_walk(root: Path) -> None:
    (root / "docs" / "sub").mkdir()
    (root / "docs" / "sub" / "c.txt").write_text("c")
    walked = ok(ask(root, FileOp.WALK, root / "docs"))
    paths = {e["path"]: e["kind"] for e in walked["entries"]}
    assert paths == {
        str(root / "docs" / "sub"): "dir",
        str(root / "docs" / "a.txt"): "file",
        str(root / "docs" / "sub" / "c.txt"): "file",
    }
    assert ok(ask(root, FileOp.WALK, root / "docs", limit=1))["truncated"]


@pytest.mark.parametrize(
    ("path", "code"),
    [
        ("{root}/../secret.txt", "unsafe_path"),
        ("{root}/docs/../../secret.txt", "unsafe_path"),
        ("relative/path", "unsafe_path"),
        ("{root}/a\x00b", "unsafe_path"),
        ("", "unsafe_path"),
        ("{parent}/secret.txt", "outside_roots"),
        ("/etc/passwd", "outside_roots"),
        ("{root}-sibling/file", "outside_roots"),
    ],
)
@pytest.mark.parametrize("op", [FileOp.READ, FileOp.STAT, FileOp.HASH, FileOp.DELETE])
def test_paths_outside_the_roots_are_refused(root: Path, path: str, code: str, op: FileOp) -> None:
    raw = path.format(root=root, parent=root.parent)
    response = perform(FileRequest(request_id="r", op=op, path=raw, roots=[str(root)]))
    assert (response.ok, response.error_code) == (False, code)
    assert (root.parent / "secret.txt").read_text() == "outside"


def test_no_roots_allow_nothing(root: Path) -> None:
    response = perform(FileRequest(request_id="r", op=FileOp.STAT, path=str(root)))
    assert response.error_code == "outside_roots"


def test_a_link_out_of_the_root_is_refused(root: Path) -> None:
    (root / "escape").symlink_to(root.parent)  # a directory link
    (root / "leak.txt").symlink_to(root.parent / "secret.txt")
    assert ask(root, FileOp.READ, root / "escape" / "secret.txt").error_code == "outside_roots"
    assert ask(root, FileOp.READ, root / "leak.txt").error_code == "outside_roots"
    assert ask(root, FileOp.LIST, root / "escape").error_code == "outside_roots"
    # writing through the link: refused, the file outside is untouched
    write = ask(root, FileOp.WRITE, root / "escape" / "secret.txt", offset=0,
                data=_b64(b"pwned"), upload_id="u5")  # fmt: skip
    assert write.error_code == "outside_roots"
    final_link = ask(root, FileOp.WRITE, root / "leak.txt", offset=0, data=_b64(b"x"),
                     upload_id="u6")  # fmt: skip
    assert final_link.error_code == "unsafe_path"
    assert ask(root, FileOp.MKDIR, root / "escape" / "made").error_code == "outside_roots"
    assert (root.parent / "secret.txt").read_text() == "outside"
    assert not (root.parent / "made").exists()
    # deleting the link removes the link only
    ok(ask(root, FileOp.DELETE, root / "leak.txt"))
    assert (root.parent / "secret.txt").exists()


def test_a_link_inside_the_root_is_followed(root: Path) -> None:
    (root / "alias").symlink_to(root / "docs")
    names = [e["name"] for e in ok(ask(root, FileOp.LIST, root / "alias"))["entries"]]
    assert names == ["a.txt"]


def test_a_root_itself_cannot_be_deleted(root: Path) -> None:
    assert ask(root, FileOp.DELETE, root, recursive=True).error_code == "unsafe_path"
    assert root.exists()


def test_rename_out_of_the_roots_is_refused(root: Path) -> None:
    moved = ask(root, FileOp.RENAME, root / "b.bin", target=str(root.parent / "b.bin"))
    assert moved.error_code == "outside_roots"
    assert (root / "b.bin").exists()


async def test_the_service_answers_every_request(root: Path) -> None:
    answers: list[FileResponse] = []

    async def emit(message: Any) -> None:
        answers.append(message)

    service = FileService(emit)
    service.handle(FileRequest(request_id="1", op=FileOp.STAT, path=str(root), roots=[str(root)]))
    service.handle(FileRequest(request_id="2", op=FileOp.STAT, path="/etc", roots=[str(root)]))
    for _ in range(200):
        if len(answers) == 2:
            break
        await asyncio.sleep(0.01)
    await service.aclose()
    by_id = {a.request_id: a for a in answers}
    assert by_id["1"].ok and by_id["2"].error_code == "outside_roots"
