#!/usr/bin/env python3
"""Alternating timer: runs each command once per round (order reversed every other round, after
20 warm-up rounds), RUNS rounds (default 300), and prints each median in ms and as a ratio to
the last command. Drift of the machine (frequency, other load) then hits every command alike,
which sequential runners (hyperfine, one command after another) do not give.

Usage: RUNS=300 python3 benches/alternate.py "CMD A" "CMD B" ... "BASELINE CMD"
"""
import os, shlex, statistics, sys, time
runs = int(os.environ.get("RUNS", "300"))
cmds = [shlex.split(c) for c in sys.argv[1:]]
times = [[] for _ in cmds]
devnull = os.open("/dev/null", os.O_WRONLY)
def run(c):
    t0 = time.perf_counter_ns()
    pid = os.posix_spawnp(c[0], c, os.environ, file_actions=[(os.POSIX_SPAWN_DUP2, devnull, 1)])
    _, st = os.waitpid(pid, 0)
    return time.perf_counter_ns() - t0
for _ in range(20):
    for c in cmds: run(c)
for i in range(runs):
    order = range(len(cmds)) if i % 2 == 0 else reversed(range(len(cmds)))
    for j in order:
        times[j].append(run(cmds[j]))
base = statistics.median(times[-1])
for c, t in zip(sys.argv[1:], times):
    m = statistics.median(t)
    print(f"{m/1e6:8.3f} ms  {m/base:5.2f}x  {c}")
