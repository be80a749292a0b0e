"""CPU time by component of the local pipeline, from ``/proc`` (Linux), for the benchmarks.

A snapshot sums user + system time of every live process under the role its command line
names; the difference of two snapshots, divided by the hooks handled in between, is what each
component costs per hook. Processes alive at both snapshots count, and so do those of a named
role started in between (a PostgreSQL backend opened by a projector's first batch, say); a
process that ended in between is not seen, nor is an unnamed one started in between (a load
tool run as a child within the window, like wrk or vegeta).

On this VM the figures depend on the load: at a few hundred hooks/s the receiver used
~2 ms of CPU per hook (every process wakes up for every request, and a waking vCPU is slow),
at saturation ~0.3 ms. Compare figures taken at the same rate.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

TICKS_PER_S = os.sysconf("SC_CLK_TCK")

ROLES = (  # (role, what its command line contains), first match wins
    ("kafka", "kafka.Kafka"),
    ("postgresql", "postgres"),
    ("receiver", "wcs_audit.cli receiver"),
    ("projector", "wcs_audit.cli projector"),
    ("echo", "bench.echo_app"),
)


def role_of(pid: int, cmdline: str, sender: int) -> str:
    """The component a process belongs to; the benchmark's own process is the sender."""
    if pid == sender:
        return "sender"
    for role, marker in ROLES:
        if marker in cmdline:
            return role
    return "other"


def process_seconds(stat: str) -> float:
    """User + system CPU seconds from the text of ``/proc/<pid>/stat``."""
    fields = stat.rsplit(")", 1)[1].split()  # the command name may hold spaces
    return (int(fields[11]) + int(fields[12])) / TICKS_PER_S


def snapshot(sender: int | None = None) -> dict[int, tuple[str, float]]:
    """Every live process: pid -> (role, CPU seconds so far)."""
    sender = os.getpid() if sender is None else sender
    processes: dict[int, tuple[str, float]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (
                (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode("utf-8", "replace")
            )
            seconds = process_seconds((entry / "stat").read_text())
        except (FileNotFoundError, ProcessLookupError, IndexError, ValueError):
            continue  # ended meanwhile, or a kernel thread without a readable stat
        processes[int(entry.name)] = (role_of(int(entry.name), cmdline, sender), seconds)
    return processes


def busy_seconds_by_role(
    before: dict[int, tuple[str, float]], after: dict[int, tuple[str, float]]
) -> dict[str, float]:
    """CPU seconds each role used between two snapshots (see the module docstring)."""
    used: dict[str, float] = {}
    for pid, (role, seconds) in after.items():
        prior = before.get(pid)
        if prior is not None and prior[0] == role and prior[1] <= seconds:
            used[role] = used.get(role, 0.0) + seconds - prior[1]
        elif role not in ("other", "sender"):  # started in between (or a reused pid)
            used[role] = used.get(role, 0.0) + seconds
    return used


def per_hook_us(used: dict[str, float], hooks: int) -> dict[str, float]:
    """Microseconds of CPU per hook for each role, and their total."""
    costs = {role: round(seconds / max(hooks, 1) * 1e6, 1) for role, seconds in used.items()}
    costs["total"] = round(sum(used.values()) / max(hooks, 1) * 1e6, 1)
    return dict(sorted(costs.items()))


def _all_cpus_ticks() -> list[int]:
    """The ``cpu`` line of ``/proc/stat``: user, nice, system, idle, iowait, irq, softirq,
    steal, … in clock ticks, summed over all cores."""
    return [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]


def machine_busy_s() -> float:
    """CPU seconds the whole machine has been busy (all cores, from ``/proc/stat``)."""
    ticks = _all_cpus_ticks()
    return (sum(ticks) - ticks[3] - ticks[4]) / TICKS_PER_S  # minus idle, iowait


def machine_steal_s() -> float:
    """CPU seconds the hypervisor did not run this VM's cores although they had work (steal
    time, from ``/proc/stat``): host contention, which no process here can show or avoid."""
    return _all_cpus_ticks()[7] / TICKS_PER_S


def python_speed_ms(repeat: int = 3) -> float:
    """This machine's speed for pure Python: the best of ``repeat`` timings, in ms, of one
    fixed loop (2 million additions), taken before the benchmark starts its services.

    Machines of the same kind here differ by up to 3x from day to day (the echo ceiling of
    ``bench.receiver`` was 38-52k hooks/s one day, 13-15k another); the targets are absolute
    rates, so every report carries this figure to tell a slower machine from a slower build.
    """
    best = float("inf")
    for _ in range(repeat):
        started = time.process_time()
        total = 0
        for i in range(2_000_000):
            total += i
        best = min(best, time.process_time() - started)
    return round(best * 1000, 1)
