"""The ``wcs-audit`` command: one entry point for the local stack and every service."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence
from typing import Any

from projections.progress import Progress, ProgressSink
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
    import uvloop

    from projections.app import run_projector

    # uvloop, as the receiver: measured 8 % less projector CPU per event than asyncio's loop
    return uvloop.run(run_projector(settings))


def show_progress(label: str, unit: str) -> ProgressSink:
    """A progress sink that redraws one line on stderr, ended once the task is done."""

    def show(progress: Progress) -> None:
        share = 100 * progress.done / progress.total if progress.total else 100.0
        print(
            f"\r{label}  {progress.done}/{progress.total} {unit}  {share:5.1f}%  "
            f"{progress.rate:,.0f}/s",
            end="\n" if progress.done >= progress.total else "",
            file=sys.stderr,
            flush=True,
        )

    return show


def cmd_projections_rebuild(args: argparse.Namespace, settings: Settings) -> int:
    import uvloop

    from projections.guard import ProjectionsBusyError
    from projections.rebuild import TruncatedTopicError, rebuild
    from wcs_audit.heap import BATCH_YOUNG_THRESHOLD, settle_heap
    from wcs_audit.logs import configure_logging

    configure_logging(settings.log_level)
    settle_heap(BATCH_YOUNG_THRESHOLD)
    show = show_progress("rebuild", "records")
    try:
        result = uvloop.run(rebuild(settings, show, allow_truncated=args.allow_truncated))
    except (ProjectionsBusyError, TruncatedTopicError) as error:
        print(f"wcs-audit: {error}", file=sys.stderr)
        return 1
    print(f"rebuilt from {result.done} records in {result.seconds:.1f}s and swapped in")
    return 0


def cmd_projections_prune(args: argparse.Namespace, settings: Settings) -> int:
    import datetime

    import uvloop

    from projections.guard import ProjectionsBusyError
    from projections.prune import prune
    from wcs_audit.logs import configure_logging

    configure_logging(settings.log_level)
    before = datetime.datetime.now(datetime.UTC) - datetime.timedelta(days=args.older_than)
    show = show_progress("prune", "hooks")
    try:
        result = uvloop.run(prune(settings, before, show, dry_run=args.dry_run))
    except ProjectionsBusyError as error:
        print(f"wcs-audit: {error}", file=sys.stderr)
        return 1
    done = "would delete" if args.dry_run else "deleted"
    print(
        f"{done} {result.hooks} hooks received before {before.isoformat(timespec='seconds')} "
        f"and {result.payloads} bodies no other hook has, in {result.seconds:.1f}s"
    )
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
            *(
                (f"projector-{index}", functools.partial(cmd_projector, argparse.Namespace(), one))
                for index, one in enumerate(projector_settings(settings))
            ),
        ]
    )
    return 0


def projector_settings(settings: Settings) -> list[Settings]:
    """The settings of each of ``projector_processes`` projectors (one consumer group): the
    metrics port of the N-th is the configured one + N (0 stays 0: any free port)."""
    port = settings.projector_metrics_port
    return [
        settings.replace(projector_metrics_port=port + index if port else 0)
        for index in range(settings.projector_processes)
    ]


def cmd_simulate(args: argparse.Namespace, settings: Settings) -> int:
    import asyncio
    from datetime import datetime
    from pathlib import Path

    from simulator.load import Progress as LoadProgress
    from simulator.load import render_progress
    from simulator.run import projector_env, simulate
    from simulator.scenario import ALL_QUIRKS, Quirks, Scenario

    base = ALL_QUIRKS if args.quirks else Quirks()
    quirks = Quirks(
        duplicates=base.duplicates if args.duplicates is None else args.duplicates,
        reorder=base.reorder if args.reorder is None else args.reorder,
        lost_terminals=base.lost_terminals if args.lose_terminals is None else args.lose_terminals,
        skew_s=base.skew_s if args.skew is None else args.skew,
        burst=base.burst if args.burst is None else args.burst,
    )
    start = datetime.fromisoformat(args.start).timestamp() if args.start else None
    scenario = Scenario(
        seed=args.seed,
        nodes=args.nodes,
        sessions=args.sessions,
        duration_s=args.minutes * 60,
        speed=args.speed,
        quirks=quirks,
        **({"start": start} if start is not None else {}),
    )
    url = (
        args.url or settings.sim_url or f"http://{settings.http_host}:{settings.http_port}/apps/wcs"
    )
    print("projector settings for this speed:", file=sys.stderr)
    for name, value in projector_env(scenario).items():
        print(f"  {name}={value}", file=sys.stderr)

    def show(progress: LoadProgress) -> None:
        print("\r" + render_progress(progress), end="", file=sys.stderr, flush=True)

    outcome = asyncio.run(
        simulate(
            scenario,
            url,
            Path(args.truth),
            connections=args.connections or settings.sim_connections,
            timeout_s=settings.sim_timeout_s,
            progress=show,
            client=args.client,
        )
    )
    print(file=sys.stderr)
    print("\n".join(outcome.report.lines()))
    truth = outcome.truth
    print(
        f"truth     {args.truth}: {len(truth.sessions)} sessions, {len(truth.legs)} legs, "
        f"{len(truth.calls)} calls; tolerance {truth.run.tolerance_s:.2f} simulated s"
    )
    return 0 if outcome.report.non_200 == 0 else 1


def cmd_check(args: argparse.Namespace, settings: Settings) -> int:
    from pathlib import Path

    from simulator.check import compare, read_projections
    from simulator.truth import read_truth

    truth = read_truth(Path(args.truth))
    mismatches = compare(truth, read_projections(settings.database_url))
    for mismatch in mismatches:
        print(mismatch)
    print(
        f"{len(mismatches)} mismatches ({len(truth.sessions)} sessions, {len(truth.legs)} legs, "
        f"{len(truth.calls)} calls; tolerance {truth.run.tolerance_s:.2f} simulated s)"
    )
    if truth.run.undelivered_sessions:
        print(
            f"left out: {len(truth.run.undelivered_sessions)} sessions with hooks the receiver "
            f"did not accept ({truth.run.non_200} hooks), and therefore the views"
        )
    return 1 if mismatches else 0


def add_simulator_commands(commands: Any) -> None:
    """``simulate`` and ``check``: a simulated WCS day and its comparison with the database."""
    simulate = commands.add_parser(
        "simulate", help="simulate WCS nodes posting hooks to the receiver (open-loop load)"
    )
    simulate.add_argument("--nodes", type=int, default=2, help="WCS nodes (default 2)")
    simulate.add_argument("--sessions", type=int, default=50, help="concurrent sessions")
    simulate.add_argument("--minutes", type=float, default=120, help="simulated minutes")
    simulate.add_argument("--speed", type=float, default=100, help="times faster than real")
    simulate.add_argument("--seed", type=int, default=1, help="the same seed, the same day")
    simulate.add_argument("--start", help="simulated start, ISO 8601 (default 2026-05-28)")
    simulate.add_argument("--quirks", action="store_true", help="every WCS quirk on")
    simulate.add_argument("--duplicates", type=float, help="share of hooks sent twice")
    simulate.add_argument("--reorder", type=float, help="share of events held back up to 0.5 s")
    simulate.add_argument("--lose-terminals", type=float, help="share of legs losing their end")
    simulate.add_argument("--skew", type=float, help="node 0 clock skew, seconds (createDate)")
    simulate.add_argument("--burst", type=int, help="players joining one stream in 1 s")
    simulate.add_argument("--truth", default="sim-truth.jsonl", help="ground-truth file")
    simulate.add_argument("--url", help="receiver base URL (default: WCS_AUDIT_SIM_URL)")
    simulate.add_argument("--connections", type=int, help="HTTP connection pool size")
    simulate.add_argument(
        "--client",
        choices=("lean", "aiohttp"),
        default="lean",
        help="lean: built-in HTTP/1.1 pool, ~4x aiohttp's rate (plain http only)",
    )
    simulate.set_defaults(handler=cmd_simulate)
    check = commands.add_parser(
        "check", help="compare a simulation's ground truth with the read models and views"
    )
    check.add_argument("--truth", required=True, help="ground-truth file of `simulate`")
    check.set_defaults(handler=cmd_check)


MAX_DAYS = 36_500  # a century: a cut-off any datetime can hold


def positive_days(value: str) -> float:
    """``--older-than``: a number of days above 0, at most :data:`MAX_DAYS`."""
    days = float(value)
    if not 0 < days <= MAX_DAYS:
        raise argparse.ArgumentTypeError(f"expected days above 0 and up to {MAX_DAYS}, got {value}")
    return days


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
    rebuild = projections_commands.add_parser(
        "rebuild", help="recompute every projection from the start of the topic and swap in"
    )
    rebuild.add_argument(
        "--allow-truncated",
        action="store_true",
        help="rebuild even when retention deleted the topic's first records "
        "(the rows they built are lost)",
    )
    rebuild.set_defaults(handler=cmd_projections_rebuild)
    prune = projections_commands.add_parser(
        "prune",
        help="delete the audit log's old hooks from PostgreSQL (hook_log, and the bodies no "
        "other hook has); the read models and Kafka keep theirs. Stop the projectors first",
    )
    prune.add_argument(
        "--older-than",
        type=positive_days,
        required=True,
        metavar="DAYS",
        help="delete the hooks received more than DAYS days ago",
    )
    prune.add_argument(
        "--dry-run", action="store_true", help="count what would be deleted, delete nothing"
    )
    prune.set_defaults(handler=cmd_projections_prune)

    receiver = commands.add_parser("receiver", help="the WCS hook receiver (HTTP -> Kafka)")
    receiver.set_defaults(handler=cmd_receiver)

    run = commands.add_parser("run", help="receiver and projector together, restarted if they die")
    run.set_defaults(handler=cmd_run)

    add_simulator_commands(commands)
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
