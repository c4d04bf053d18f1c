"""`rnnkit train --threads N` for several N, alternating, optionally beside a busy process.

Each round runs one short training per thread count, in turn (1 2, 2 1, 1 2, ...), so a change in
the machine's load hits every count alike; the figure is the run-average tokens/s that
`rnnkit train --json` reports (tokens trained / training seconds). With --busy, a Python process
spinning on one core runs beside the trainings: what a second job on a 2-core machine does.

    python benchmarks/threads.py --threads 1,2 --rounds 3 --steps 60            # the default model
    python benchmarks/threads.py --threads 1,2 --rounds 2 --steps 30 --busy     # contended
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import tempfile


def train_once(threads: int, steps: int, extra: list[str], out: str) -> dict:
    command = [
        sys.executable,
        "-m",
        "rnnkit",
        "train",
        "--threads",
        str(threads),
        "--steps",
        str(steps),
        "--eval-interval",
        str(steps),
        "--sample-tokens",
        "0",
        "--quiet",
        "--json",
        "--out",
        out,
        *extra,
    ]
    done = subprocess.run(command, capture_output=True, text=True, check=True)
    return json.loads(done.stdout.splitlines()[-1])


def load_average() -> float:
    return os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", default="1,2", help="comma-separated thread counts (default 1,2)")
    parser.add_argument("--rounds", type=int, default=3, help="runs per thread count (default 3)")
    parser.add_argument("--steps", type=int, default=60, help="training steps per run (default 60)")
    parser.add_argument("--busy", action="store_true", help="keep one core busy with another process meanwhile")
    parser.add_argument("--extra", default="", help='more `rnnkit train` options, e.g. "--data toy --hidden 64"')
    args = parser.parse_args()
    counts = [int(part) for part in args.threads.split(",")]
    busy = subprocess.Popen([sys.executable, "-c", "while True: pass"]) if args.busy else None
    try:
        with tempfile.TemporaryDirectory() as tmp:
            for index in range(args.rounds):
                for threads in counts if index % 2 == 0 else counts[::-1]:
                    result = train_once(threads, args.steps, shlex.split(args.extra), f"{tmp}/run-{index}-{threads}")
                    print(
                        json.dumps(
                            {
                                "threads": threads,
                                "busy": args.busy,
                                "steps": result["steps"],
                                "seconds": round(result["seconds"], 2),
                                "tokens_per_s": round(result["tokens_per_s"]),
                                "load_average": load_average(),
                            }
                        ),
                        flush=True,
                    )
    finally:
        if busy is not None:
            busy.kill()
            busy.wait()


if __name__ == "__main__":
    main()
