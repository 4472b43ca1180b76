"""DAG parse time of an exported DAG, as a ratio to a bare DAG of the same shape.

The scheduler's DAG processor parses every DAG file again and again, so what an exported DAG
costs to parse matters more than what its tasks cost to run. Baseline: the same tasks and edges
as plain ``EmptyOperator``s, parsed in the same way. Each parse runs in a fresh interpreter with
``airflow.sdk`` already imported (as in the DAG processor), and the median of several runs is used.

Usage: python benchmarks/parse_time.py [DAG_FILE] [--runs N] [--max-ratio R]
Exit status 1 when the ratio exceeds ``--max-ratio`` (default 3).
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PROBE = textwrap.dedent(
    """
    import runpy, sys, time
    import airflow.sdk  # paid by the DAG processor once, not per file
    start = time.perf_counter()
    namespace = runpy.run_path(sys.argv[1])
    elapsed = time.perf_counter() - start
    dags = [v for v in namespace.values() if type(v).__name__ == "DAG"]
    tasks = sum(len(d.tasks) for d in dags)
    print(f"{elapsed:.6f} {tasks}")
    """
)


def bare_twin(dag_file: Path) -> str:
    """A DAG with the exported DAG's task ids and edges, made of EmptyOperators only."""
    probe = (
        "import runpy, sys, json\n"
        "ns = runpy.run_path(sys.argv[1])\n"
        "dag = next(v for v in ns.values() if type(v).__name__ == 'DAG')\n"
        "print(json.dumps([[t.task_id, sorted(t.downstream_task_ids)] for t in dag.tasks]))\n"
    )
    out = subprocess.run([sys.executable, "-c", probe, str(dag_file)], capture_output=True,
                         text=True, check=True).stdout.strip().splitlines()[-1]
    lines = [
        "from airflow.providers.standard.operators.empty import EmptyOperator",
        "from airflow.sdk import DAG",
        "with DAG(dag_id='bare_twin', schedule=None) as dag:",
        "    tasks = {}",
        f"    shape = {out}",
        "    for task_id, _ in shape:",
        "        tasks[task_id] = EmptyOperator(task_id=task_id.replace('.', '__'))",
        "    for task_id, downstream in shape:",
        "        for other in downstream:",
        "            tasks[task_id] >> tasks[other]",
    ]
    return "\n".join(lines) + "\n"


def parse_seconds(dag_file: Path, runs: int) -> tuple[float, int]:
    samples, tasks = [], 0
    for _ in range(runs):
        out = subprocess.run([sys.executable, "-c", PROBE, str(dag_file)], capture_output=True,
                             text=True, check=True).stdout.split()
        samples.append(float(out[-2]))
        tasks = int(out[-1])
    return statistics.median(samples), tasks


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("dag_file", nargs="?", default=str(REPO / "dags" / "wine_classifier.py"))
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--max-ratio", type=float, default=3.0)
    args = parser.parse_args()
    dag_file = Path(args.dag_file)
    with tempfile.TemporaryDirectory() as scratch:
        twin = Path(scratch) / "bare_twin.py"
        twin.write_text(bare_twin(dag_file))
        bare, bare_tasks = parse_seconds(twin, args.runs)
    exported, tasks = parse_seconds(dag_file, args.runs)
    ratio = exported / bare
    print(f"bare twin: {bare * 1000:.1f} ms ({bare_tasks} tasks); "
          f"exported: {exported * 1000:.1f} ms ({tasks} tasks); ratio {ratio:.2f} "
          f"(max {args.max_ratio})")
    return 0 if ratio <= args.max_ratio else 1


if __name__ == "__main__":
    sys.exit(main())
