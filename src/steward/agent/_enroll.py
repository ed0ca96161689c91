"""Enrollment: trade a one-time PIN for the agent's id and secret, and store them."""

from __future__ import annotations

import logging
import ssl
from pathlib import Path

import httpx
from pydantic import ValidationError

from steward import __version__
from steward.agent._collector import os_name_and_version
from steward.agent._errors import EnrollmentError, ServerBusy, ServerUnreachable, UnexpectedResponse
from steward.agent._http import api_url, error_from_body, parse_retry_after
from steward.agent._identity import clip, hostname, machine_id
from steward.agent._state import AgentState, default_state_dir, normalize_server_url, save_state
from steward.protocol import EnrollRequest, EnrollResponse, dump_message

logger = logging.getLogger("steward.agent")

ENROLL_TIMEOUT = httpx.Timeout(30.0, connect=10.0)


async def enroll(
    server_url: str,
    pin: str,
    *,
    state_dir: Path | None = None,
    http_transport: httpx.AsyncBaseTransport | None = None,
    ssl_context: ssl.SSLContext | None = None,
) -> AgentState:
    """Enroll this machine with the server and write `state.json` (mode 0600).

    Raises `EnrollmentError` (`pin_invalid`, `pin_used`, `pin_expired`, `rate_limited`,
    `invalid_server_url`, ...), `ServerUnreachable` or `ServerBusy`.
    """
    state_dir = state_dir or default_state_dir()
    try:
        server = normalize_server_url(server_url)
    except ValueError as exc:
        raise EnrollmentError("invalid_server_url", str(exc)) from exc
    try:
        request = EnrollRequest(
            pin=pin.strip(),
            machine_id=machine_id(state_dir),
            hostname=hostname(),
            agent_version=__version__,
            os_name=clip(os_name_and_version()[0], 255),
        )
    except ValidationError as exc:
        raise EnrollmentError("pin_invalid", "the PIN must be 1 to 32 characters") from exc

    url = api_url(server, "enroll")
    headers = {"Content-Type": "application/json", "User-Agent": f"steward-agent/{__version__}"}
    try:
        async with httpx.AsyncClient(
            transport=http_transport, timeout=ENROLL_TIMEOUT, verify=ssl_context or True
        ) as http:
            response = await http.post(url, content=dump_message(request), headers=headers)
    except httpx.HTTPError as exc:
        raise ServerUnreachable(f"cannot reach {url}: {exc or type(exc).__name__}") from exc

    if response.status_code == 503:
        _code, message = error_from_body(response.content, 503)
        retry_after = parse_retry_after(response.headers.get("retry-after"))
        raise ServerBusy(message, retry_after=retry_after)
    if response.status_code != 200:
        raise EnrollmentError(*error_from_body(response.content, response.status_code))
    try:
        enrolled = EnrollResponse.model_validate_json(response.content)
    except ValidationError as exc:
        raise UnexpectedResponse("invalid enrollment response", status=200) from exc

    state = AgentState(
        server_url=server,
        agent_id=enrolled.agent_id,
        agent_secret=enrolled.agent_secret,
        device_id=enrolled.device_id,
        tenant=enrolled.tenant,
    )
    path = save_state(state_dir, state)
    logger.info(
        "enrolled as device %s (tenant %s); state in %s", state.device_id, state.tenant, path
    )
    return state
