"""The ``wcs-audit`` command: one entry point for the local stack and every service."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence

from wcs_audit.settings import Settings, SettingsError
from wcs_audit.stack import StackError, stack_down, stack_status, stack_up

Command = Callable[[argparse.Namespace, Settings], int]


def cmd_stack_up(_: argparse.Namespace, settings: Settings) -> int:
    timings = stack_up(settings)
    print(f"kafka     {settings.kafka_bootstrap}  ready in {timings['kafka']:.1f}s")
    print(f"postgres  {settings.database_url}  ready in {timings['postgres']:.1f}s")
    return 0


def cmd_stack_down(_: argparse.Namespace, settings: Settings) -> int:
    stopped = stack_down(settings)
    print("stopped: " + (", ".join(stopped) if stopped else "nothing was running"))
    return 0


def cmd_stack_status(_: argparse.Namespace, settings: Settings) -> int:
    status = stack_status(settings)
    print(
        f"kafka     {status.kafka_bootstrap}  {'up' if status.kafka_up else 'down'}"
        f"{' (local)' if status.kafka_local else ''}"
    )
    print(
        f"postgres  {status.database_url}  {'up' if status.postgres_up else 'down'}"
        f"{' (local)' if status.postgres_local else ''}"
    )
    return 0 if status.kafka_up and status.postgres_up else 1


def cmd_migrate(args: argparse.Namespace, settings: Settings) -> int:
    from migrations.run import upgrade

    upgrade(settings.database_url, args.revision)
    print(f"database at {args.revision}")
    return 0


def cmd_receiver(_: argparse.Namespace, settings: Settings) -> int:
    from ingest.app import serve

    serve(settings)
    return 0


def cmd_projector(_: argparse.Namespace, settings: Settings) -> int:
    import asyncio

    from projections.app import run_projector

    return asyncio.run(run_projector(settings))


def cmd_projections_rebuild(_: argparse.Namespace, settings: Settings) -> int:
    import asyncio

    from projections.rebuild import Progress, rebuild
    from wcs_audit.logs import configure_logging

    configure_logging(settings.log_level)

    def show(progress: Progress) -> None:
        share = 100 * progress.applied / progress.total if progress.total else 100.0
        print(
            f"\rrebuild  {progress.applied}/{progress.total} records  {share:5.1f}%  "
            f"{progress.rate:,.0f}/s",
            end="\n" if progress.applied >= progress.total else "",
            file=sys.stderr,
            flush=True,
        )

    result = asyncio.run(rebuild(settings, show))
    print(f"rebuilt from {result.applied} records in {result.seconds:.1f}s and swapped in")
    return 0


def cmd_run(_: argparse.Namespace, settings: Settings) -> int:
    import functools

    from wcs_audit.logs import configure_logging
    from wcs_audit.supervise import supervise

    configure_logging(settings.log_level)
    wildcard = settings.http_host in {"0.0.0.0", "::"}  # noqa: S104 - a comparison, not a bind
    host = "<this-host>" if wildcard else settings.http_host
    print(
        f"WCS restUrl: http://{host}:{settings.http_port}/apps/wcs  (Ctrl-C stops)", file=sys.stderr
    )
    supervise(
        [
            ("receiver", functools.partial(cmd_receiver, argparse.Namespace(), settings)),
            ("projector", functools.partial(cmd_projector, argparse.Namespace(), settings)),
        ]
    )
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The command tree; each leaf sets ``handler`` to the function that runs it."""
    parser = argparse.ArgumentParser(prog="wcs-audit", description=__doc__)
    commands = parser.add_subparsers(required=True, metavar="COMMAND")

    stack = commands.add_parser("stack", help="local Kafka and PostgreSQL (no Docker needed)")
    stack_commands = stack.add_subparsers(required=True, metavar="ACTION")
    for name, handler, text in (
        ("up", cmd_stack_up, "start (or reuse) Kafka and PostgreSQL on loopback"),
        ("down", cmd_stack_down, "stop what `stack up` started"),
        ("status", cmd_stack_status, "print the Kafka bootstrap address and the database URL"),
    ):
        stack_commands.add_parser(name, help=text).set_defaults(handler=handler)

    migrate = commands.add_parser("migrate", help="upgrade the database schema (Alembic)")
    migrate.add_argument("revision", nargs="?", default="head")
    migrate.set_defaults(handler=cmd_migrate)

    projector = commands.add_parser(
        "projector", help="consume hooks from Kafka into the PostgreSQL read models"
    )
    projector.set_defaults(handler=cmd_projector)
    projections = commands.add_parser("projections", help="maintain the read models")
    projections_commands = projections.add_subparsers(required=True, metavar="ACTION")
    projections_commands.add_parser(
        "rebuild", help="recompute every projection from the start of the topic and swap in"
    ).set_defaults(handler=cmd_projections_rebuild)

    receiver = commands.add_parser("receiver", help="the WCS hook receiver (HTTP -> Kafka)")
    receiver.set_defaults(handler=cmd_receiver)

    run = commands.add_parser("run", help="receiver and projector together, restarted if they die")
    run.set_defaults(handler=cmd_run)

    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Runs one command; settings or stack errors print one line and exit 2."""
    args = build_parser().parse_args(argv)
    handler: Command = args.handler
    try:
        return handler(args, Settings.from_env(os.environ))
    except (SettingsError, StackError) as error:
        print(f"wcs-audit: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
