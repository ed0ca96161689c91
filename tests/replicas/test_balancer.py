"""Two replicas behind a real nginx, on one PostgreSQL database and one Redis.

Everything is a real process: two `steward serve` replicas (so that one can be SIGKILLed),
Debian's nginx run unprivileged with deploy/nginx/steward.conf itself (only the replica
addresses, the listening port and TLS are changed, see `render_nginx_config`), and a real
`steward-agent` that knows nothing but the balancer's address. Without PostgreSQL, Redis or
nginx the tests are skipped, except under CI=true where they fail.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from steward.protocol import MAX_FILE_CHUNK
from steward.server.settings import Settings
from tests.faults.conftest import FINAL, RealAgent, command, wait_final, wait_online
from tests.support import (
    IN_CI,
    REDIS_URL,
    Databases,
    SeededTenant,
    Seeder,
    free_port,
    require_redis,
    wait_for,
)

pytestmark = pytest.mark.skipif(os.name != "posix", reason="uses POSIX processes and signals")

REPO = Path(__file__).resolve().parents[2]
NGINX_CONF = REPO / "deploy" / "nginx" / "steward.conf"
CLIENT_ADDRESS = "127.0.0.2"  # a "remote" client: loopback, but not the balancer's address
PASSWORD = "correct-horse-battery"


def _unavailable(reason: str) -> None:
    if IN_CI:
        pytest.fail(f"CI=true requires it: {reason}")
    pytest.skip(reason)


def _nginx_binary() -> str:
    found = shutil.which("nginx") or ("/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else "")
    if not found:
        _unavailable("nginx is not installed (scripts/ensure-nginx.sh installs Debian's package)")
    return found


def render_nginx_config(replica_ports: list[int], listen_port: int) -> str:
    """deploy/nginx/steward.conf with the test's replicas and port, over plain HTTP (the real
    agent has no option to trust a test certificate authority)."""
    source = NGINX_CONF.read_text()
    replica_line = re.compile(r"^(\s*)server 127\.0\.0\.1:\d+( [^;]*)?;\n", re.MULTILINE)
    matches = list(replica_line.finditer(source))
    assert len(matches) >= 2, "the config lists no replicas any more"
    indent, parameters = matches[0].group(1), matches[0].group(2) or ""
    replicas = "".join(f"{indent}server 127.0.0.1:{port}{parameters};\n" for port in replica_ports)
    source = source[: matches[0].start()] + replicas + source[matches[-1].end() :]
    https, plain = source.split("\n# Plain HTTP", 1)  # the redirect server is not needed
    assert "return 301" in plain
    https = re.sub(r"^\s*listen \[::\]:443[^;]*;\n", "", https, flags=re.MULTILINE)
    https, count = re.subn(
        r"^(\s*)listen 443[^;]*;", rf"\1listen 127.0.0.1:{listen_port};", https, flags=re.MULTILINE
    )
    assert count == 1, "the config's HTTPS listener changed"
    return re.sub(r"^\s*ssl_\w+\s[^;]*;\n", "", https, flags=re.MULTILINE)


class Nginx:
    """nginx as a child process, with its pid, logs and temporary files in its own directory."""

    def __init__(self, binary: str, replica_ports: list[int]) -> None:
        self.binary = binary
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        # Outside pytest's (private) tmp dir: run as root, nginx's workers are `nobody`.
        self.prefix = Path(tempfile.mkdtemp(prefix="steward-nginx-"))
        self.prefix.chmod(0o755)
        (self.prefix / "steward.conf").write_text(render_nginx_config(replica_ports, self.port))
        temp_paths = ""
        for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"):
            (self.prefix / kind).mkdir(mode=0o777)
            (self.prefix / kind).chmod(0o777)
            temp_paths += f"    {kind}_temp_path {self.prefix / kind};\n"
        (self.prefix / "nginx.conf").write_text(
            f"worker_processes 1;\npid {self.prefix / 'nginx.pid'};\n"
            f"error_log {self.prefix / 'error.log'} warn;\n"
            "events { worker_connections 512; }\n"
            f"http {{\n    access_log {self.prefix / 'access.log'};\n{temp_paths}"
            f"    include {self.prefix / 'steward.conf'};\n}}\n"
        )
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> Nginx:
        argv = [self.binary, "-p", str(self.prefix), "-c", str(self.prefix / "nginx.conf")]
        checked = subprocess.run(
            [*argv, "-e", str(self.prefix / "error.log"), "-t"],
            capture_output=True, text=True, timeout=30, check=False,
        )  # fmt: skip
        assert checked.returncode == 0, checked.stderr
        self.process = subprocess.Popen(
            [*argv, "-e", str(self.prefix / "error.log"), "-g", "daemon off;"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_for(lambda: _answers(f"{self.url}/healthz"), timeout=15)
        return self

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGQUIT)  # graceful: workers finish, then exit
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        shutil.rmtree(self.prefix, ignore_errors=True)


def _answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


@dataclass
class Replica:
    """`steward serve` as its own process."""

    name: str
    port: int
    env: dict[str, str]
    log_path: Path
    options: tuple[str, ...] = ()
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> Replica:
        steward = str(Path(sys.executable).parent / "steward")
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen(
                [steward, "serve", "--host", "127.0.0.1", "--port", str(self.port), *self.options],
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        wait_for(lambda: self.alive() and _answers(f"{self.url}/healthz"), timeout=30)
        return self

    def alive(self) -> bool:
        assert self.process is not None
        if self.process.poll() is not None:
            raise AssertionError(f"replica {self.name} exited:\n{self.log_path.read_text()}")
        return True

    def health(self) -> dict[str, Any]:
        body: dict[str, Any] = httpx.get(f"{self.url}/healthz", timeout=5).json()
        return body

    def kill(self) -> None:
        assert self.process is not None
        self.process.kill()  # SIGKILL: no goodbye to the agents, the database or Redis
        self.process.wait(10)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)


@dataclass
class Cluster:
    replicas: list[Replica]
    nginx: Nginx
    seeder: Seeder

    def client(self, url: str, slug: str, port: int, **headers: str) -> httpx.Client:
        """A client for `url` speaking to tenant `slug`'s host, from CLIENT_ADDRESS."""
        return httpx.Client(
            base_url=url,
            timeout=10,
            headers={"Host": f"{slug}.localhost:{port}"} | headers,
            transport=httpx.HTTPTransport(local_address=CLIENT_ADDRESS),
        )

    def via_balancer(self, slug: str, **headers: str) -> httpx.Client:
        return self.client(self.nginx.url, slug, self.nginx.port, **headers)

    def direct(self, replica: Replica, slug: str, **headers: str) -> httpx.Client:
        return self.client(replica.url, slug, replica.port, **headers)


@pytest.fixture(scope="module")
def cluster(databases: Databases, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    binary = _nginx_binary()
    require_redis()
    url = databases.create("postgresql")
    secret = "test-secret-" + uuid.uuid4().hex  # replicas share their secret, as in production
    base_env = os.environ | {
        "STEWARD_DATABASE_URL": url,
        "STEWARD_REDIS_URL": REDIS_URL,
        "STEWARD_SECRET_KEY": secret,
        "STEWARD_BASE_DOMAIN": "localhost",
        "STEWARD_LIGHT_HEARTBEAT_INTERVAL_S": "1",
        "STEWARD_STATUS_FLUSH_INTERVAL_S": "0.2",
        "STEWARD_OFFLINE_SWEEP_INTERVAL_S": "0.5",
        "STEWARD_JOB_SWEEP_INTERVAL_S": "0.5",
        "STEWARD_LEADER_CHECK_INTERVAL_S": "1",
        "STEWARD_LOG_LEVEL": "warning",
    }
    logs = tmp_path_factory.mktemp("replica-logs")
    replicas = []
    # Both ways to trust the balancer's address (and nobody else's): setting and option.
    trust = {"a": ({"STEWARD_FORWARDED_ALLOW_IPS": "127.0.0.1"}, ()),
             "b": ({}, ("--forwarded-allow-ips", "127.0.0.1"))}  # fmt: skip
    for name, (trust_env, options) in trust.items():
        data_dir = tmp_path_factory.mktemp(f"replica-{name}")
        env = base_env | trust_env | {"STEWARD_DATA_DIR": str(data_dir)}
        replicas.append(Replica(name, free_port(), env, logs / f"{name}.log", options))
    nginx = Nginx(binary, [replica.port for replica in replicas])
    try:
        for replica in replicas:
            replica.start()
        nginx.start()
        seeder = Seeder(
            Settings(
                data_dir=tmp_path_factory.mktemp("seeder"), database_url=url, secret_key=secret
            )
        )
        yield Cluster(replicas, nginx, seeder)
    finally:
        nginx.stop()
        for replica in replicas:
            replica.stop()


@pytest.fixture
def agents() -> Iterator[list[RealAgent]]:
    started: list[RealAgent] = []
    yield started
    for agent in started:
        agent.stop()


def _token(client: httpx.Client, tenant: SeededTenant) -> str:
    response = client.post(
        "/api/v1/auth/login", json={"email": tenant.admin_email, "password": PASSWORD}
    )
    assert response.status_code == 200, response.text
    return str(response.json()["access_token"])


def _session_addresses(client: httpx.Client) -> list[str]:
    """The addresses of the user's sessions, the current one first."""
    response = client.get("/api/v1/account/sessions")
    assert response.status_code == 200, response.text
    sessions = sorted(response.json(), key=lambda s: not s["current"])
    return [str(s["address"]) for s in sessions]


def test_a_login_on_one_replica_works_on_every_replica(cluster: Cluster) -> None:
    tenant = cluster.seeder.tenant()
    a, b = cluster.replicas
    spoofed = {"X-Forwarded-For": "198.51.100.7"}
    with cluster.via_balancer(tenant.slug, **spoofed) as balanced:
        # Two logins in a row: round robin sends one to each replica.
        bearer = {"Authorization": f"Bearer {_token(balanced, tenant)}"}
        bearer = {"Authorization": f"Bearer {_token(balanced, tenant)}"}
        # Through nginx the server sees the client's own address, never the one it claims.
        with cluster.via_balancer(tenant.slug, **bearer, **spoofed) as api:
            assert _session_addresses(api) == [CLIENT_ADDRESS] * 2
            for _ in range(4):  # round robin: both replicas answer
                assert api.get("/api/v1/account").status_code == 200
    for replica in (a, b):
        with cluster.direct(replica, tenant.slug, **spoofed) as direct:
            # Straight to a replica the header is not believed: 127.0.0.2 is no proxy of ours.
            direct.headers["Authorization"] = f"Bearer {_token(direct, tenant)}"
            assert _session_addresses(direct)[0] == CLIENT_ADDRESS
        with cluster.direct(replica, tenant.slug, **bearer) as api:
            assert api.get("/api/v1/account").status_code == 200
    with cluster.direct(a, tenant.slug) as on_a:
        bearer_from_a = {"Authorization": f"Bearer {_token(on_a, tenant)}"}
    with cluster.direct(b, tenant.slug, **bearer_from_a) as on_b:
        assert on_b.get("/api/v1/account").status_code == 200

    # The console: sign in through the balancer, then use the session cookie on each replica.
    with cluster.via_balancer(tenant.slug) as browser:
        form = browser.get("/login")
        csrf = re.search(r'name="csrf_token" value="([^"]+)"', form.text)
        assert csrf, form.text
        signed_in = browser.post(
            "/login",
            data={"email": tenant.admin_email, "password": PASSWORD, "csrf_token": csrf[1]},
        )
        assert signed_in.status_code == 303, signed_in.text
        cookies = "; ".join(f"{name}={value}" for name, value in browser.cookies.items())
    for replica in (a, b):
        with cluster.direct(replica, tenant.slug, Cookie=cookies) as page:
            devices = page.get("/devices")
            assert devices.status_code == 200, devices.headers  # not sent to /login
            assert tenant.admin_email in devices.text  # signed in as the admin


def _allow_shell(api: httpx.Client) -> None:
    # `sh -c` is high risk: let it run without an approver here.
    security = api.get("/api/v1/tenant/security").json()
    response = api.put("/api/v1/tenant/security", json=security | {"approval_for_high_risk": False})
    assert response.status_code == 200, response.text


def _submit(api: httpx.Client, device_id: str, shell: str) -> str:
    created = api.post(
        f"/api/v1/devices/{device_id}/commands",
        json={"type": "shell", "payload": {"command": shell}},
    )
    assert created.status_code == 201, created.text
    return str(created.json()["id"])


def _holder(replicas: list[Replica]) -> Replica:
    """The replica holding the one agent's WebSocket (asked directly, not through nginx)."""
    found = wait_for(
        lambda: [r for r in replicas if r.alive() and r.health()["agents_connected"] == 1],
        timeout=15,
    )
    assert len(found) == 1
    holder: Replica = found[0]
    return holder


def test_files_reach_an_agent_held_by_the_other_replica(
    cluster: Cluster, agents: list[RealAgent], tmp_path: Path
) -> None:
    """The file browser's requests go to whichever replica the console reaches; the relay
    carries them over Redis to the replica holding the agent's WebSocket, chunk by chunk."""
    tenant = cluster.seeder.tenant()
    agent = RealAgent(cluster.nginx.url, tmp_path / "agent").enroll(cluster.seeder.pin(tenant))
    agents.append(agent.start())
    with cluster.via_balancer(tenant.slug) as anonymous:
        bearer = {"Authorization": f"Bearer {_token(anonymous, tenant)}"}
    with cluster.via_balancer(tenant.slug, **bearer) as balanced:
        wait_online(balanced, agent.device_id)
    other = next(r for r in cluster.replicas if r is not _holder(cluster.replicas))
    content = os.urandom(3 * MAX_FILE_CHUNK + 17)
    target = tmp_path / "shared" / "blob.bin"
    target.parent.mkdir()
    with cluster.direct(other, tenant.slug, **bearer) as api:
        files = f"/api/v1/devices/{agent.device_id}/files"
        created = api.post(f"{files}/uploads", json={"path": str(target), "size": len(content)})
        assert created.status_code == 201, created.text
        upload = f"{files}/uploads/{created.json()['id']}"
        for offset in range(0, len(content), MAX_FILE_CHUNK):
            chunk = content[offset : offset + MAX_FILE_CHUNK]
            sent = api.put(upload, params={"offset": offset}, content=chunk)
            assert sent.status_code == 200, sent.text
        digest = hashlib.sha256(content).hexdigest()
        finished = api.post(f"{upload}/finish", json={"sha256": digest})
        assert finished.status_code == 200, finished.text
        assert target.read_bytes() == content
        listing = api.get(files, params={"path": str(target.parent)})
        assert [entry["name"] for entry in listing.json()["entries"]] == ["blob.bin"]
        downloaded = api.get(f"{files}/download", params={"path": str(target)})
        assert downloaded.status_code == 200, downloaded.text
        assert downloaded.content == content


def test_the_agent_follows_the_balancer_and_nothing_runs_twice_when_a_replica_dies(
    cluster: Cluster, agents: list[RealAgent], tmp_path: Path
) -> None:
    tenant = cluster.seeder.tenant()
    marker = tmp_path / "ran.txt"
    agent = RealAgent(cluster.nginx.url, tmp_path / "agent").enroll(cluster.seeder.pin(tenant))
    agents.append(agent.start())
    with cluster.via_balancer(tenant.slug) as anonymous:
        bearer = {"Authorization": f"Bearer {_token(anonymous, tenant)}"}
    with cluster.via_balancer(tenant.slug, **bearer) as balanced:
        _allow_shell(balanced)
        wait_online(balanced, agent.device_id)
    holder = _holder(cluster.replicas)
    other = next(r for r in cluster.replicas if r is not holder)

    # Submitted on the replica that does not hold the agent: Redis wakes the holder.
    with cluster.direct(other, tenant.slug, **bearer) as api:
        done = wait_final(api, _submit(api, agent.device_id, f"echo first >> {marker}"))
        assert done["status"] == "succeeded", done
        long_running = _submit(api, agent.device_id, f"sh -c 'sleep 3; echo done-$$ >> {marker}'")
        wait_for(lambda: command(api, long_running)["status"] == "running", timeout=10)

    holder.kill()
    # The balancer keeps answering: failed connections to the dead replica are retried on
    # the survivor (GETs), then the dead one is left alone.
    with cluster.via_balancer(tenant.slug, **bearer) as balanced:
        for _ in range(6):
            assert balanced.get("/api/v1/devices").status_code == 200
    # The agent reconnects through nginx to the survivor; its result arrives there.
    wait_for(lambda: other.health()["agents_connected"] == 1, timeout=20)
    with cluster.direct(other, tenant.slug, **bearer) as api:
        done = wait_final(api, long_running, timeout=30)
        assert done["status"] == "succeeded", done
        finals = [t["status"] for t in done["transitions"] if t["status"] in FINAL]
        assert finals == ["succeeded"], done["transitions"]
        time.sleep(1.0)  # a second run would append its line by now
        lines = marker.read_text().splitlines()
        assert lines[0] == "first" and len(lines) == 2 and lines[1].startswith("done-"), lines
        assert command(api, long_running)["transitions"] == done["transitions"]
        # The survivor takes over the periodic work too.
        wait_for(lambda: other.health()["leader"] is True, timeout=15)
        after = wait_final(api, _submit(api, agent.device_id, f"echo after >> {marker}"))
        assert after["status"] == "succeeded", after
