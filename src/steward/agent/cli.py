"""`steward-agent`: enroll this machine, run the agent, show its state.

Exit codes: 0 success, 1 failure (enrollment refused, server unreachable, unusable state),
2 not enrolled.
"""

from __future__ import annotations

import asyncio
import json
import logging
import signal
import sys
from pathlib import Path
from typing import Annotated

import typer

from steward import __version__
from steward.agent._agent import Agent, TransportMode
from steward.agent._enroll import enroll as enroll_agent
from steward.agent._errors import AgentError, NotEnrolled
from steward.agent._ledger import Ledger
from steward.agent._state import default_state_dir, load_state

EXIT_FAILURE = 1
EXIT_NOT_ENROLLED = 2

app = typer.Typer(
    name="steward-agent",
    help="The Steward agent: enroll this machine, then keep it connected to the server.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

StateDirOption = Annotated[
    Path | None,
    typer.Option(
        "--state-dir",
        help="Where the agent keeps its state. Default: $STEWARD_AGENT_STATE_DIR, else "
        "/var/lib/steward-agent as root, else ~/.local/state/steward-agent.",
        file_okay=False,
    ),
]


@app.callback()
def main(
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log debug details.")] = False,
) -> None:
    """Log to stderr with timestamps."""
    logging.basicConfig(
        stream=sys.stderr,
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        force=True,
    )
    if not verbose:  # one line per poll or frame is noise at INFO
        for noisy in ("httpx", "httpcore", "websockets"):
            logging.getLogger(noisy).setLevel(logging.WARNING)


@app.command()
def enroll(
    server: Annotated[
        str, typer.Option("--server", help="Server URL, e.g. https://steward.example")
    ],
    pin: Annotated[
        str,
        typer.Option("--pin", envvar="STEWARD_AGENT_PIN", help="Enrollment PIN from the console."),
    ],
    state_dir: StateDirOption = None,
) -> None:
    """Enroll this machine with a one-time PIN. Prints the new device id on stdout."""
    directory = state_dir or default_state_dir()
    try:
        state = asyncio.run(enroll_agent(server, pin, state_dir=directory))
    except AgentError as exc:
        typer.echo(f"enrollment failed: {exc.code}: {exc.message}", err=True)
        raise typer.Exit(EXIT_FAILURE) from None
    typer.echo(f"enrolled in tenant {state.tenant}; state stored in {directory}", err=True)
    typer.echo(state.device_id)


@app.command()
def run(
    state_dir: StateDirOption = None,
    transport: Annotated[
        TransportMode,
        typer.Option(
            "--transport", case_sensitive=False, help="auto: WebSocket, polling as fallback."
        ),
    ] = TransportMode.AUTO,
) -> None:
    """Run the agent in the foreground until SIGTERM or SIGINT."""
    directory = state_dir or default_state_dir()
    try:
        agent = Agent.from_state_dir(directory, transport=transport)
    except NotEnrolled:
        typer.echo(
            f"not enrolled: no state in {directory}. Run `steward-agent enroll --server URL "
            "--pin PIN` first.",
            err=True,
        )
        raise typer.Exit(EXIT_NOT_ENROLLED) from None
    except AgentError as exc:
        typer.echo(f"cannot start: {exc.code}: {exc.message}", err=True)
        raise typer.Exit(EXIT_FAILURE) from None
    logging.getLogger("steward.agent").info(
        "steward-agent %s starting: server %s, device %s, transport %s",
        __version__,
        agent.state.server_url,
        agent.state.device_id,
        agent.mode,
    )
    asyncio.run(_run_until_signalled(agent))


async def _run_until_signalled(agent: Agent) -> None:
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        try:
            loop.add_signal_handler(signum, agent.stop)
        except (NotImplementedError, RuntimeError):  # Windows: no loop signal handlers
            signal.signal(signum, lambda _signum, _frame: agent.stop())
    await agent.run()


@app.command()
def status(
    state_dir: StateDirOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Show what the agent has stored (never its secret)."""
    directory = state_dir or default_state_dir()
    try:
        state = load_state(directory)
        ledger_size = len(Ledger.in_dir(directory))
    except NotEnrolled:
        typer.echo(f"not enrolled (no state in {directory})", err=True)
        raise typer.Exit(EXIT_NOT_ENROLLED) from None
    except AgentError as exc:
        typer.echo(f"{exc.code}: {exc.message}", err=True)
        raise typer.Exit(EXIT_FAILURE) from None
    info = {**state.public_dict(), "state_dir": str(directory), "ledger_entries": str(ledger_size)}
    if as_json:
        typer.echo(json.dumps(info, indent=2))
    else:
        for key, value in info.items():
            typer.echo(f"{key}: {value}")
