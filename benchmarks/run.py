"""One command for the performance targets: each figure beside its baseline, measured in this run.

    ./scripts/benchmark.sh            (or: .venv/bin/python -m benchmarks.run [--quick])

Every figure is a ratio against a baseline measured side by side, in interleaved rounds, as the
median of the rounds: the machine's speed cancels out, and nothing here is a timed test. Rows:

- export: ``kedro airflow export`` of a synthetic 5000-node pipeline against kedro-airflow's
  ``kedro airflow create`` of the same project; compile + render of it in-process (absolute).
- parse: an exported DAG against its bare twin (the same task ids and edges as EmptyOperators),
  at 10, 100, 1000 and 5000 nodes, each parsed as the DAG processor does: a fresh process per
  parse, Airflow's own modules that the file imports already imported, then ``DagBag``.
  kedro-airflow's DAG of the same pipeline is parsed beside them.
- tracking requests: MLflow requests per node task and per DAG run (start + end tasks), counted
  in a real ``mlflow server``'s access log over chains of 2 and 6 trivial nodes.
- scheduler (skipped with ``--quick``): a chain of trivial node tasks with MLflow on against a
  chain of empty ``@task``s, per slot, in a real LocalExecutor deployment (PostgreSQL); the
  example DAG against ``kedro run`` of the same pipeline.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Callable, Iterator
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))
os.environ.pop("PYTHONDONTWRITEBYTECODE", None)  # deployments keep bytecode caches; so do we

import conftest  # noqa: E402  (sets up an isolated Airflow home for dag.test runs)

from benchmarks.synthetic import write_synthetic_project  # noqa: E402

Row = tuple[str, str, str, str]  # figure, measured, baseline, ratio (with its target)
KEDRO = str(Path(sys.executable).with_name("kedro"))


def interleaved(rounds: int, **contenders: Callable[[], float]) -> dict[str, float]:
    """The median of each contender's measurements, taken in turns, round after round."""
    samples: dict[str, list[float]] = {name: [] for name in contenders}
    for _ in range(rounds):
        for name, measure in contenders.items():
            samples[name].append(measure())
    return {name: statistics.median(values) for name, values in samples.items()}


def wall(command: list[str], cwd: Path) -> Callable[[], float]:
    def measure() -> float:
        start = time.perf_counter()
        subprocess.run(command, cwd=cwd, check=True, capture_output=True, timeout=900)
        return time.perf_counter() - start

    return measure


def ratio(value: float, baseline: float, target: float | None) -> str:
    text = f"{value / baseline:.2f}x"
    if target is not None:
        text += f" (target <= {target:g}x: {'ok' if value / baseline <= target else 'MISSED'})"
    return text


# --- export --------------------------------------------------------------------------------

def export_rows(root: Path, rounds: int) -> list[Row]:
    project, _ = write_synthetic_project(root / "export", nodes=5000)
    ours = ["export", "--target-dir", str(root / "export-ours")]
    theirs = ["create", "--target-dir", str(root / "export-kedro-airflow")]
    medians = interleaved(
        rounds,
        ours=wall([KEDRO, "airflow", *ours], project),
        kedro_airflow=wall([KEDRO, "airflow", *theirs], project),
    )
    probe = textwrap.dedent(
        f"""
        import os, time
        from pathlib import Path
        os.chdir({str(project)!r})
        from airflow_kedro_mlflow import compiler, config, renderer
        from airflow_kedro_mlflow.kedro_project import bootstrap, create_session
        bootstrap(Path.cwd())
        from kedro.framework.project import pipelines
        pipeline = pipelines["__default__"]  # the project's own code: not ours to time
        context = create_session(Path.cwd(), env=None, conf_source=None, with_hooks=False).load_context()
        catalog = compiler.catalog_resolver(context.config_loader["catalog"])
        settings = config.load_pipeline_settings(context.config_loader, Path("conf"), None, "__default__")
        start = time.perf_counter()
        manifest = compiler.compile_pipeline(pipeline, catalog=catalog, package_name="synthetic",
                                             project_name="synthetic", pipeline_name="__default__", env=None)
        renderer.render_dag(manifest, settings, "..", None)
        print("SECONDS", time.perf_counter() - start)
        """
    )
    samples = []
    for _ in range(rounds):
        out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
        samples.append(float(out.stdout.split("SECONDS")[-1]))
    compile_render = statistics.median(samples)
    return [
        ("export 5000 nodes (CLI wall)", f"{medians['ours']:.2f} s",
         f"{medians['kedro_airflow']:.2f} s kedro-airflow",
         ratio(medians["ours"], medians["kedro_airflow"], 1.0)),
        ("compile + render 5000 nodes (in-process)", f"{compile_render:.3f} s", "0.5 s target",
         ratio(compile_render, 0.5, 1.0)),
    ]


# --- parse ---------------------------------------------------------------------------------

PARSE_PROBE = textwrap.dedent(
    """
    import sys, time
    from airflow.utils.file import iter_airflow_imports
    import airflow.sdk, importlib
    for module in iter_airflow_imports(sys.argv[1]):  # the DAG processor's pre-import
        try:
            importlib.import_module(module)
        except Exception:
            pass
    from airflow_kedro_mlflow.dagbag import load_dagbag
    bag = load_dagbag(sys.argv[2])  # an empty folder: DagBag's own setup is not the file's cost
    start = time.perf_counter()
    found = bag.process_file(sys.argv[1])
    elapsed = time.perf_counter() - start
    assert found and not bag.import_errors, bag.import_errors
    print("SECONDS", elapsed, sum(len(d.tasks) for d in found))
    """
)


def bare_twin(dag_file: Path) -> str:
    """A DAG with the exported DAG's task ids and edges, made of EmptyOperators only."""
    probe = (
        "import sys, json\n"
        "from airflow_kedro_mlflow.dagbag import load_dagbag\n"
        "bag = load_dagbag(sys.argv[1])\n"
        "dag = next(iter(bag.dags.values()))\n"
        "print('SHAPE', json.dumps([[t.task_id, sorted(t.downstream_task_ids)] for t in dag.tasks]))\n"
    )
    out = subprocess.run([sys.executable, "-c", probe, str(dag_file)], capture_output=True,
                         text=True, check=True).stdout
    shape = json.loads(out.split("SHAPE", 1)[1])
    return "\n".join([
        "from airflow.providers.standard.operators.empty import EmptyOperator",
        "from airflow.sdk import DAG",
        "with DAG(dag_id='bare_twin', schedule=None) as dag:",
        "    tasks = {}",
        f"    shape = {shape!r}",
        "    for task_id, _ in shape:",
        "        tasks[task_id] = EmptyOperator(task_id=task_id.replace('.', '__'))",
        "    for task_id, downstream in shape:",
        "        for other in downstream:",
        "            tasks[task_id] >> tasks[other]",
        "",
    ])


def parse_seconds(dag_file: Path, empty: Path) -> float:
    out = subprocess.run([sys.executable, "-c", PARSE_PROBE, str(dag_file), str(empty)],
                         capture_output=True, text=True, check=True, timeout=600).stdout
    return float(out.split("SECONDS")[-1].split()[0])


def parse_rows(root: Path, rounds: int, sizes: list[int]) -> list[Row]:
    rows = []
    empty = root / "empty-dags"
    empty.mkdir()
    for size in sizes:
        project, _ = write_synthetic_project(root / f"parse-{size}", nodes=size, width=min(10, size))
        dags = root / f"parse-{size}-dags"
        subprocess.run([KEDRO, "airflow", "export", "--target-dir", str(dags)], cwd=project,
                       check=True, capture_output=True)
        subprocess.run([KEDRO, "airflow", "create", "--target-dir", str(dags / "kedro_airflow")],
                       cwd=project, check=True, capture_output=True)
        exported = dags / "synthetic.py"
        twin = dags / "twin" / "bare_twin.py"
        twin.parent.mkdir()
        twin.write_text(bare_twin(exported))
        theirs = next((dags / "kedro_airflow").glob("*.py"))
        for path in (exported, twin, theirs):  # warm the bytecode caches, as a deployment has
            parse_seconds(path, empty)
        medians = interleaved(
            rounds,
            ours=lambda: parse_seconds(exported, empty),
            twin=lambda: parse_seconds(twin, empty),
            kedro_airflow=lambda: parse_seconds(theirs, empty),
        )
        rows.append((
            f"parse {size} nodes (DagBag)",
            f"{medians['ours'] * 1000:.1f} ms",
            f"{medians['twin'] * 1000:.1f} ms bare twin",
            ratio(medians["ours"], medians["twin"], 1.3)
            + f"; kedro-airflow {medians['kedro_airflow'] / medians['twin']:.2f}x",
        ))
    return rows


# --- MLflow requests -----------------------------------------------------------------------

def tracking_requests(root: Path, nodes: int, server: conftest.MlflowServer) -> int:
    project, _ = write_synthetic_project(root / f"requests-{nodes}", nodes=nodes, width=1,
                                         package=f"chain{nodes}")
    conf = project / "conf" / "base"
    (conf / "mlflow.yml").write_text(
        f"server:\n  mlflow_tracking_uri: {server.url}\ntracking:\n  experiment:\n    name: bench\n")
    dags = conftest.DAGS_FOLDER / f"requests-{nodes}"
    subprocess.run([KEDRO, "airflow", "export", "--target-dir", str(dags)], cwd=project,
                   check=True, capture_output=True)
    log = server.root / "server.log"
    before = _requests(log)
    result = conftest.run_dag(dags / f"chain{nodes}.py", f"chain{nodes}")
    if result.state != "success":
        raise RuntimeError(f"benchmark DAG run failed: {result!r}")
    return _requests(log) - before


def _requests(log: Path) -> int:
    text = log.read_text() if log.exists() else ""
    return sum(1 for line in text.splitlines() if "/api/2.0/mlflow/" in line and '"' in line)


def request_rows(root: Path) -> list[Row]:
    with conftest.running_mlflow_server(root / "mlflow-server") as server:
        small, large = tracking_requests(root, 2, server), tracking_requests(root, 6, server)
    per_node = (large - small) / 4
    per_run = small - 2 * per_node
    return [
        ("MLflow requests per node task", f"{per_node:.1f}", "5 target", ratio(per_node, 5, 1.0)),
        ("MLflow requests per DAG run (start + end)", f"{per_run:.0f}", "-", "-"),
    ]


# --- a real scheduler ----------------------------------------------------------------------

EMPTY_CHAIN = '''
from airflow.sdk import DAG, task

with DAG(dag_id="empty_chain", schedule=None, catchup=False) as dag:
    previous = None
    for index in range({count}):
        @task(task_id=f"t{{index}}")
        def step():
            return None

        current = step()
        if previous is not None:
            previous >> current
        previous = current
'''


def scheduler_rows(root: Path, rounds: int) -> list[Row]:
    from airflow_cluster import airflow_cluster

    chain = 9
    dags = root / "scheduler-dags"
    dags.mkdir()
    (dags / "empty_chain.py").write_text(EMPTY_CHAIN.format(count=chain + 2))  # + start and end
    with contextlib.ExitStack() as stack:
        server = stack.enter_context(conftest.running_mlflow_server(root / "scheduler-mlflow"))
        project, _ = write_synthetic_project(root / "scheduler", nodes=chain, width=1, package="chain")
        (project / "conf" / "base" / "mlflow.yml").write_text(
            f"server:\n  mlflow_tracking_uri: {server.url}\ntracking:\n  experiment:\n    name: bench\n")
        subprocess.run([KEDRO, "airflow", "export", "--target-dir", str(dags)], cwd=project,
                       check=True, capture_output=True)
        example = conftest.copy_example(root / "example" / "wine_classifier")
        subprocess.run([KEDRO, "airflow", "export", "--target-dir", str(dags)], cwd=example,
                       check=True, capture_output=True)
        cluster = stack.enter_context(airflow_cluster(root / "cluster", dags))

        def dag_seconds(dag_id: str) -> Callable[[], float]:
            def measure() -> float:
                run_id = cluster.trigger(dag_id)
                run = cluster.wait(dag_id, run_id, timeout=900)
                if run["state"] != "success":
                    raise RuntimeError(f"{dag_id} run {run_id} ended {run['state']}")
                return _seconds(run["start_date"], run["end_date"])

            return measure

        for dag_id in ("empty_chain", "chain", "wine_classifier"):  # warm: parsed, caches filled
            dag_seconds(dag_id)()
        medians = interleaved(rounds, empty=dag_seconds("empty_chain"), chain=dag_seconds("chain"),
                              example=dag_seconds("wine_classifier"))
        kedro_run = interleaved(rounds, run=wall([KEDRO, "run"], example))["run"]
    tasks = chain + 2
    return [
        (f"chain slot, MLflow on ({tasks} tasks)", f"{medians['chain'] / tasks:.2f} s",
         f"{medians['empty'] / tasks:.2f} s empty @task", ratio(medians["chain"], medians["empty"], 1.3)),
        ("example DAG, MLflow on (real scheduler)", f"{medians['example']:.1f} s",
         f"{kedro_run:.1f} s kedro run", ratio(medians["example"], kedro_run, 3.0)),
    ]


def _seconds(start: str, end: str) -> float:
    from datetime import datetime

    return (datetime.fromisoformat(end) - datetime.fromisoformat(start)).total_seconds()


# --- the table -----------------------------------------------------------------------------

def table(rows: list[Row]) -> str:
    header = ("figure", "measured", "baseline", "ratio")
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(4)]
    lines = ["| " + " | ".join(h.ljust(w) for h, w in zip(header, widths)) + " |",
             "|" + "|".join("-" * (w + 2) for w in widths) + "|"]
    lines += ["| " + " | ".join(str(c).ljust(w) for c, w in zip(r, widths)) + " |" for r in rows]
    return "\n".join(lines)


@contextlib.contextmanager
def scratch() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="akm-bench-") as folder:
        yield Path(folder)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds per figure")
    parser.add_argument("--quick", action="store_true", help="skip the real-scheduler rows")
    args = parser.parse_args()
    subprocess.run([sys.executable, "-m", "airflow", "db", "migrate"], check=True,
                   capture_output=True, timeout=600)
    rows: list[Row] = []
    with scratch() as root:
        for name, section in (
            ("export", lambda: export_rows(root, args.rounds)),
            ("parse", lambda: parse_rows(root, args.rounds, [10, 100, 1000, 5000])),
            ("tracking requests", lambda: request_rows(root)),
            *([] if args.quick else [("scheduler", lambda: scheduler_rows(root, max(3, args.rounds // 2)))]),
        ):
            print(f"measuring {name}...", file=sys.stderr, flush=True)
            rows += section()
    print(table(rows))
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    finally:
        import shutil

        shutil.rmtree(conftest.AIRFLOW_HOME, ignore_errors=True)
