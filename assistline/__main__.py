"""The ``assistline`` command: ``serve``, ``db``, ``agent``, ``config``.

This is the one place that reads the environment: it builds the frozen
settings from defaults, ``--config`` and ``ASSISTLINE_*`` variables, sets up
logging, and hands each subsystem its section.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import getpass
import json
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import assistline
from assistline.errors import AssistlineError
from assistline.logs import configure_logging
from assistline.settings import Settings, describe, load_settings, mask_secret

logger = logging.getLogger("assistline")


def _variables_epilog() -> str:
    lines = [
        "environment variables (each overrides --config; flags override both):",
        "  ASSISTLINE_CONFIG\n      TOML file read before the variables below (default: none)",
    ]
    for info in describe(Settings()):
        default = mask_secret(info.value) if info.secret else info.value
        names = " or ".join((info.env, *info.aliases))
        lines.append(f"  {names}\n      {info.help} (default: {default!s})")
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    """The command line, with every environment variable listed in ``serve --help``."""
    parser = argparse.ArgumentParser(
        prog="assistline",
        description="Telephony and real-time media server for contact centres that collect "
        "payments.",
    )
    parser.add_argument("--version", action="version", version=assistline.__version__)
    parser.add_argument(
        "--config",
        type=Path,
        default=None,
        help="TOML file with [http], [store], [log] tables (env: ASSISTLINE_CONFIG)",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serve = commands.add_parser(
        "serve",
        help="run the server",
        description="Run the server: HTTP API, signalling, web client, database.",
        epilog=_variables_epilog(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    serve.add_argument("--host", default=None, help="listen address (ASSISTLINE_HTTP_HOST)")
    serve.add_argument("--port", type=int, default=None, help="HTTP port (ASSISTLINE_HTTP_PORT)")
    serve.add_argument(
        "--data-dir", type=Path, default=None, help="state directory (ASSISTLINE_STORE_DATA_DIR)"
    )

    db = commands.add_parser("db", help="database schema commands")
    db_commands = db.add_subparsers(dest="db_command", required=True, metavar="DB_COMMAND")
    db_commands.add_parser("migrate", help="apply pending migrations")
    db_commands.add_parser("status", help="list applied and pending migrations")

    agent = commands.add_parser("agent", help="the agent directory")
    agent_commands = agent.add_subparsers(
        dest="agent_command", required=True, metavar="AGENT_COMMAND"
    )
    add = agent_commands.add_parser(
        "add",
        help="add an agent; the phone's password is read from standard input",
        description="Add an agent whose SIP phone registers with SIP_USERNAME. The password "
        "(12 characters or more) is the first line of standard input, or asked twice on a "
        "terminal; it is stored only as a SIP digest (HA1). The SIP edge loads agents when "
        "`assistline serve` starts.",
    )
    add.add_argument("id", help="the agent's id (letters, digits, . _ -)")
    add.add_argument("--name", required=True, help="the agent's name as shown to supervisors")
    add.add_argument("--sip-username", required=True, help="the username of the agent's phone")
    agent_commands.add_parser("list", help="list agents: id, SIP username, state, name")
    console_password = agent_commands.add_parser(
        "set-console-password",
        help="set an agent's console password, read from standard input",
        description="Set the password the agent signs in to the browser console with (12 "
        "characters or more): the first line of standard input, or asked twice on a terminal. "
        "It is stored only as a scrypt hash; the agent's open console sessions are signed out.",
    )
    console_password.add_argument("id", help="the agent's id")

    commands.add_parser("config", help="print the effective configuration, secrets masked")
    return parser


def render_config(settings: Settings) -> str:
    """The effective configuration as TOML, each line naming its variable."""
    lines: list[str] = []
    section = ""
    for info in describe(settings):
        if info.section != section:
            section = info.section
            lines.append(f"{'' if not lines else chr(10)}[{section}]")
        value: Any = info.value
        shown = json.dumps(mask_secret(value) if info.secret else value, default=str)
        lines.append(f"{info.name} = {shown}  # {info.env}")
    return "\n".join(lines)


async def _db_command(settings: Settings, command: str) -> None:
    from assistline.store import migrations
    from assistline.store.database import connect, database_dsn

    async with database_dsn(settings.store) as dsn:
        connection = await connect(dsn, settings.store.connect_timeout)
        try:
            if command == "migrate":
                applied = await migrations.migrate(connection)
                for migration in applied:
                    print(f"applied {migration.version:04d}_{migration.name}")
                status = await migrations.status(connection)
                print(f"schema at version {status.current:04d}; nothing pending")
            else:
                status = await migrations.status(connection)
                for row in status.applied:
                    print(f"applied  {row.version:04d}_{row.name}  {row.applied_at.isoformat()}")
                for pending in status.pending:
                    print(f"pending  {pending.version:04d}_{pending.name}")
                print(f"schema at version {status.current:04d}, {len(status.pending)} pending")
        finally:
            await connection.close()


def _read_password(prompt: str = "phone password: ") -> str:
    if not sys.stdin.isatty():
        return sys.stdin.readline().rstrip("\r\n")
    password = getpass.getpass(prompt)
    if getpass.getpass("again: ") != password:
        raise AgentPasswordMismatchError()
    return password


class AgentPasswordMismatchError(AssistlineError):
    """The two passwords typed differ; nothing was changed."""


async def _agent_command(settings: Settings, args: argparse.Namespace) -> None:
    from assistline.queue.agents import AgentDirectory
    from assistline.store.database import open_store

    password = ""
    if args.agent_command == "add":
        password = _read_password()
    elif args.agent_command == "set-console-password":
        password = _read_password("console password: ")
    async with open_store(settings.store) as database:
        directory = AgentDirectory(database.pool, settings.sip.realm)
        if args.agent_command == "set-console-password":
            from assistline.signalling.agent_auth import set_console_password

            await set_console_password(database.pool, args.id, password)
            print(f"console password of agent {args.id} set; its console sessions are signed out")
        elif args.agent_command == "add":
            agent = await directory.create(args.id, args.name, args.sip_username, password)
            print(
                f"added agent {agent.id} ({agent.sip_username}); restart serve to admit its phone"
            )
        else:
            for agent in await directory.all():
                print(f"{agent.id}\t{agent.sip_username}\t{agent.state.value}\t{agent.name}")


def main(argv: Sequence[str] | None = None, environ: dict[str, str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    environ = dict(os.environ) if environ is None else environ
    args = build_parser().parse_args(argv)
    config_file = args.config or (
        Path(environ["ASSISTLINE_CONFIG"]) if "ASSISTLINE_CONFIG" in environ else None
    )
    overrides: dict[str, Any] = {}
    if args.command == "serve":
        overrides = {
            "http.host": args.host,
            "http.port": args.port,
            "store.data_dir": args.data_dir,
        }
    try:
        settings = load_settings(config_file, environ, overrides)
    except AssistlineError as error:
        print(f"assistline: {error}", file=sys.stderr)
        return 2
    configure_logging(settings.log)
    try:
        if args.command == "config":
            print(render_config(settings))
        elif args.command == "db":
            asyncio.run(_db_command(settings, args.db_command))
        elif args.command == "agent":
            asyncio.run(_agent_command(settings, args))
        else:
            from assistline.serve import serve

            with contextlib.suppress(KeyboardInterrupt):
                asyncio.run(serve(settings))
    except AssistlineError as error:
        logger.error("%s", error)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
