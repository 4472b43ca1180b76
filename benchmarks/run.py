"""One command for the performance targets: each figure beside its baseline, measured in this run.

    ./scripts/benchmark.sh            (or: .venv/bin/python -m benchmarks.run [--quick])

Every figure is a ratio against a baseline measured side by side, in interleaved rounds: each
round gives one paired ratio, and a row shows their median with the min and max, and the load the
machine was under. The machine's speed cancels out, and nothing here is a timed test; a row
misses its target only when its whole spread is over it. Rows:

- export: ``kedro airflow export`` of a synthetic 5000-node pipeline against kedro-airflow's
  ``kedro airflow create`` of the same project; compile + render of it in-process (absolute).
- parse: an exported DAG against its bare twin (the same task ids and edges as EmptyOperators),
  at 10, 100, 1000 and 5000 nodes, each parsed as the DAG processor does: a fresh process per
  parse, Airflow's own modules that the file imports already imported (the processor imports
  those once, before it forks a process per file), then ``DagBag`` and the serialization of
  the DAGs found (what the processor sends on).
  kedro-airflow's DAG of the same pipeline is parsed beside them.
- tracking requests: MLflow requests per node task and per DAG run (start + end tasks), counted
  in a real ``mlflow server``'s access log over chains of 2 and 6 trivial nodes.
- scheduler (skipped with ``--quick``), in a real LocalExecutor deployment (PostgreSQL): chains
  of trivial node tasks, MLflow on (a real ``mlflow server``) and off, against a chain of empty
  ``@task``s, slot by slot (what each task adds to the run's wall time: node tasks, start task,
  end task), and the peak RSS of their task processes (recorded by a listener plugin in every
  task alike); the example DAG, tracked to the server, against ``kedro run`` of the same
  pipeline.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import os
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))
os.environ.pop("PYTHONDONTWRITEBYTECODE", None)  # deployments keep bytecode caches; so do we

import conftest  # noqa: E402  (sets up an isolated Airflow home for dag.test runs)

from benchmarks.synthetic import write_synthetic_project  # noqa: E402

Row = tuple[str, str, str, str, str]  # figure, measured, baseline, ratio (spread, target), load
KEDRO = str(Path(sys.executable).with_name("kedro"))


@dataclass
class Samples:
    """Each contender's measurements, one per round, taken in turns; and the machine's load
    (1-minute load average) at each measurement."""

    values: dict[str, list[float]]
    load: list[float]

    def median(self, name: str) -> float:
        return statistics.median(self.values[name])


def interleaved(rounds: int, **contenders: Callable[[], float]) -> Samples:
    """Each contender measured once per round, in turns, round after round: a contender and
    its baseline see the same load, and each round gives one paired ratio."""
    samples = Samples({name: [] for name in contenders}, [])
    for _ in range(rounds):
        for name, measure in contenders.items():
            samples.values[name].append(measure())
            samples.load.append(os.getloadavg()[0])
    return samples


def wall(command: list[str], cwd: Path) -> Callable[[], float]:
    def measure() -> float:
        start = time.perf_counter()
        subprocess.run(command, cwd=cwd, check=True, capture_output=True, timeout=900)
        return time.perf_counter() - start

    return measure


def ratio(values: list[float], baselines: list[float], target: float | None) -> str:
    """The median of the paired ratios (round by round) and their spread, min to max; against
    a target: ``ok`` when the median meets it, ``MISSED`` only when the whole spread is over
    it, ``unclear`` in between (the noise of this run is larger than the margin)."""
    ratios = sorted(v / b for v, b in zip(values, baselines, strict=True))
    low, middle, high = ratios[0], statistics.median(ratios), ratios[-1]
    text = f"{middle:.2f}x ({low:.2f}-{high:.2f})"
    if target is not None:
        verdict = "ok" if middle <= target else "MISSED" if low > target else "unclear"
        text += f", target <= {target:g}x: {verdict}"
    return text


def load_text(load: list[float]) -> str:
    return f"{min(load):.1f}-{max(load):.1f}" if load else "-"


# --- export --------------------------------------------------------------------------------

def export_rows(root: Path, rounds: int) -> list[Row]:
    project, _ = write_synthetic_project(root / "export", nodes=5000)
    ours = ["export", "--target-dir", str(root / "export-ours")]
    theirs = ["create", "--target-dir", str(root / "export-kedro-airflow")]
    samples = interleaved(
        rounds,
        ours=wall([KEDRO, "airflow", *ours], project),
        kedro_airflow=wall([KEDRO, "airflow", *theirs], project),
    )
    probe = textwrap.dedent(
        f"""
        import os, time
        from pathlib import Path
        os.chdir({str(project)!r})
        from airflow_kedro_mlflow.config import catalog, pipeline as config
        from airflow_kedro_mlflow.export import compiler, renderer
        from airflow_kedro_mlflow.config.kedro_project import bootstrap, create_session
        bootstrap(Path.cwd())
        from kedro.framework.project import pipelines
        pipeline = pipelines["__default__"]  # the project's own code: not ours to time
        context = create_session(Path.cwd(), env=None, conf_source=None, with_hooks=False).load_context()
        catalog = catalog.catalog_resolver(context.config_loader["catalog"])
        settings = config.load_pipeline_settings(context.config_loader, Path("conf"), None, "__default__")
        start = time.perf_counter()
        manifest = compiler.compile_pipeline(pipeline, catalog=catalog, package_name="synthetic",
                                             project_name="synthetic", pipeline_name="__default__", env=None)
        renderer.render_dag(manifest, settings, "..", None)
        print("SECONDS", time.perf_counter() - start)
        """
    )
    compile_render = []
    for _ in range(rounds):
        out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
        compile_render.append(float(out.stdout.split("SECONDS")[-1]))
    return [
        ("export 5000 nodes (CLI wall)", f"{samples.median('ours'):.2f} s",
         f"{samples.median('kedro_airflow'):.2f} s kedro-airflow",
         ratio(samples.values["ours"], samples.values["kedro_airflow"], 1.0),
         load_text(samples.load)),
        ("compile + render 5000 nodes (in-process)", f"{statistics.median(compile_render):.3f} s",
         "0.5 s target", ratio(compile_render, [0.5] * len(compile_render), 1.0), "-"),
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
    from airflow.serialization.serialized_objects import DagSerialization
    from airflow_kedro_mlflow.export.dagbag import load_dagbag
    bag = load_dagbag(sys.argv[2])  # an empty folder: DagBag's own setup is not the file's cost
    import gc
    gc.freeze()  # as the DAG processor does before it forks: GC skips what the parent holds
    start = time.perf_counter()
    found = bag.process_file(sys.argv[1])
    for dag in found:  # what the DAG processor sends to the scheduler
        DagSerialization.to_dict(dag)
    elapsed = time.perf_counter() - start
    assert found and not bag.import_errors, bag.import_errors
    print("SECONDS", elapsed, sum(len(d.tasks) for d in found))
    """
)


def dag_shape(dag_file: Path) -> dict:
    """The DAG arguments that change what Airflow does (tags, docs, params), the task ids and
    the edges of the one DAG in ``dag_file``, read by parsing it in a process of its own."""
    probe = (
        "import sys, json\n"
        "from airflow_kedro_mlflow.export.dagbag import load_dagbag\n"
        "bag = load_dagbag(sys.argv[1])\n"
        "dag = next(iter(bag.dags.values()))\n"
        "params = {k: dag.params.get_param(k) for k in dag.params}\n"
        "print('SHAPE', json.dumps({'tags': sorted(dag.tags), 'doc_md': dag.doc_md, 'params': "
        "{k: [p.value, p.schema, p.description] for k, p in params.items()}, 'tasks': "
        "[[t.task_id, sorted(t.downstream_task_ids)] for t in dag.tasks]}))\n"
    )
    out = subprocess.run([sys.executable, "-c", probe, str(dag_file)], capture_output=True,
                         text=True, check=True).stdout
    return json.loads(out.split("SHAPE", 1)[1])


def bare_twin(dag_file: Path) -> str:
    """The exported DAG with EmptyOperators for tasks: the same DAG arguments (params given after
    the tasks: like the export's tasks, the twin's carry no copy of them), the same task ids and
    edges, none of this package."""
    shape = dag_shape(dag_file)
    params = ", ".join(f"{name!r}: Param({value!r}, description={doc!r}, **{schema!r})"
                       for name, (value, schema, doc) in shape["params"].items())
    return "\n".join([
        "from airflow.providers.standard.operators.empty import EmptyOperator",
        "from airflow.sdk import DAG, Param",
        f"with DAG(dag_id='bare_twin', schedule=None, tags={shape['tags']!r}, "
        f"doc_md={shape['doc_md']!r}) as dag:",
        "    tasks = {}",
        f"    shape = {shape['tasks']!r}",
        "    for task_id, _ in shape:",
        "        tasks[task_id] = EmptyOperator(task_id=task_id.replace('.', '__'))",
        "    for task_id, downstream in shape:",
        "        for other in downstream:",
        "            tasks[task_id] >> tasks[other]",
        f"    dag.params = {{{params}}}",
        "",
    ])


def empty_task_twin(dag_file: Path, dag_id: str) -> str:
    """The exported DAG's tasks and edges as empty ``@task``s: what Airflow itself costs a run
    of that shape on a real scheduler (each task a process that does nothing), the floor under
    any DAG of exported nodes. (EmptyOperators would cost nothing: the scheduler skips them.)"""
    shape = dag_shape(dag_file)
    return "\n".join([
        "from airflow.sdk import DAG, task",
        f"with DAG(dag_id={dag_id!r}, schedule=None, catchup=False) as dag:",
        "    tasks = {}",
        f"    shape = {shape['tasks']!r}",
        "    for task_id, _ in shape:",
        "        @task(task_id=task_id.replace('.', '__'))",
        "        def step():",
        "            return None",
        "        tasks[task_id] = step()",
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
        samples = interleaved(
            rounds,
            ours=functools.partial(parse_seconds, exported, empty),
            twin=functools.partial(parse_seconds, twin, empty),
            kedro_airflow=functools.partial(parse_seconds, theirs, empty),
        )
        ours_ms = f"{samples.median('ours') * 1000:.1f} ms"
        rows += [
            (f"parse + serialize {size} nodes", ours_ms,
             f"{samples.median('twin') * 1000:.1f} ms bare twin",
             ratio(samples.values["ours"], samples.values["twin"], 1.3), load_text(samples.load)),
            (f"parse + serialize {size} nodes", ours_ms,
             f"{samples.median('kedro_airflow') * 1000:.1f} ms kedro-airflow's DAG",
             ratio(samples.values["ours"], samples.values["kedro_airflow"], 1.0),
             load_text(samples.load)),
        ]
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
        ("MLflow requests per node task", f"{per_node:.1f}", "5 target",
         ratio([per_node], [5], 1.0), "-"),
        ("MLflow requests per DAG run (start + end)", f"{per_run:.0f}", "-", "-", "-"),
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

PEAK_RSS_PLUGIN = '''
"""Records each task process's peak RSS: a listener, so it runs in the task process, after the
task, for every task alike (the baseline's empty tasks as the exported DAGs' tasks)."""
import json
import os
import resource

from airflow.listeners import hookimpl
from airflow.plugins_manager import AirflowPlugin


class _PeakRss:
    @hookimpl
    def on_task_instance_success(self, previous_state, task_instance):
        record = {"dag_id": task_instance.dag_id, "run_id": task_instance.run_id,
                  "task_id": task_instance.task_id,
                  "kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}
        with open(os.environ["AKM_BENCH_PEAK_RSS"], "a") as out:
            out.write(json.dumps(record) + "\\n")


class PeakRssPlugin(AirflowPlugin):
    name = "akm_benchmark_peak_rss"
    listeners = [_PeakRss()]
'''

def _track_to(project: Path, server_url: str, env: str = "base") -> None:
    """Track ``project``'s runs to the benchmark's ``mlflow server`` (whole blocks: an env's
    mlflow.yml replaces base's top-level keys)."""
    conf = project / "conf" / env
    conf.mkdir(parents=True, exist_ok=True)
    (conf / "mlflow.yml").write_text(
        f"server:\n  mlflow_tracking_uri: {server_url}\n"
        f"tracking:\n  experiment:\n    name: {project.name}\n"
        "  params:\n    long_params_strategy: truncate\n")


def _slots(run: dict, tasks: list[dict], order: list[str]) -> dict[str, float]:
    """Per task of a chain: from the end of the task before it (for the first, from when the run
    was queued: what a user who triggers it waits) to its own end, i.e. what the task adds to
    the run's wall time. The scheduler loop's cadence is in every slot (and its phase in the
    first: up to a second of noise), so a task that ends within the loop's period hides there."""
    ends = {t["task_id"]: t["end_date"] for t in tasks}
    slots, previous = {}, run["queued_at"] or run["start_date"]
    for task_id in order:
        slots[task_id] = _seconds(previous, ends[task_id])
        previous = ends[task_id]
    return slots


def _task_runs(tasks: list[dict], order: list[str]) -> dict[str, float]:
    """Per task: from when the scheduler queued it to its end (executor, process, the task):
    what the task itself costs, without the scheduler loop's cadence."""
    by_id = {t["task_id"]: t for t in tasks}
    return {task_id: _seconds(by_id[task_id]["queued_when"], by_id[task_id]["end_date"])
            for task_id in order}


@dataclass
class Deployment:
    """What one real-scheduler deployment measured: per DAG, run walls and per-task slots."""

    walls: Samples
    """Per DAG (and ``kedro run`` of the example, as ``kedro_run``), each round's wall time."""
    slots: dict[str, list[dict[str, float]]]
    task_runs: dict[str, list[dict[str, float]]]
    peak_rss_kb: dict[str, float]

    def slot(self, dag_id: str, positions: slice) -> list[float]:
        """Per round, the mean slot of the chain's tasks at ``positions``."""
        return self._mean(self.slots, dag_id, positions)

    def task_run(self, dag_id: str, positions: slice) -> list[float]:
        """Per round, the mean queued-to-end time of the chain's tasks at ``positions``."""
        return self._mean(self.task_runs, dag_id, positions)

    @staticmethod
    def _mean(times: dict[str, list[dict[str, float]]], dag_id: str, positions: slice) -> list[float]:
        order = CHAIN_ORDERS[dag_id]
        return [statistics.mean(r[t] for t in order[positions]) for r in times[dag_id]]


CHAIN_NODES = 9
CHAIN_TASKS = CHAIN_NODES + 2  # + start and end
_KEDRO_CHAIN = ["kedro_run_start", *(f"n_{i}_0" for i in range(CHAIN_NODES)), "kedro_run_end"]
CHAIN_ORDERS = {"empty_chain": [f"t{i}" for i in range(CHAIN_TASKS)], "chain": _KEDRO_CHAIN,
                "chain_untracked": _KEDRO_CHAIN}
PRELOAD_ENV = {  # Airflow 3.3's LocalExecutor: workers forked from a preloaded forkserver
    "AIRFLOW__CORE__MP_START_METHOD": "forkserver",
    "AIRFLOW__CORE__MP_FORKSERVER_PRELOAD": "airflow,airflow.executors.local_executor,"
                                            "airflow_kedro_mlflow.preload",
}


def measure_deployment(root: Path, rounds: int, dag_ids: list[str],
                       preload: bool = False) -> Deployment:
    """Run ``dag_ids`` (of: the empty chain, the tracked and untracked chains, the example) in
    interleaved rounds on a fresh LocalExecutor deployment, optionally with preloaded workers."""
    from airflow_cluster import airflow_cluster

    dags, plugins = root / "dags", root / "plugins"
    dags.mkdir(parents=True)
    plugins.mkdir()
    (plugins / "peak_rss.py").write_text(PEAK_RSS_PLUGIN)
    rss_log = root / "peak-rss.jsonl"
    (dags / "empty_chain.py").write_text(EMPTY_CHAIN.format(count=CHAIN_TASKS))
    slots: dict[str, list[dict[str, float]]] = {dag_id: [] for dag_id in CHAIN_ORDERS}
    task_runs: dict[str, list[dict[str, float]]] = {dag_id: [] for dag_id in CHAIN_ORDERS}
    with contextlib.ExitStack() as stack:
        server = stack.enter_context(conftest.running_mlflow_server(root / "mlflow"))
        tracked, _ = write_synthetic_project(root, nodes=CHAIN_NODES, width=1, package="chain")
        _track_to(tracked, server.url)
        untracked, _ = write_synthetic_project(root, nodes=CHAIN_NODES, width=1,
                                               package="chain_untracked")
        example = conftest.copy_example(root / "example" / "wine_classifier")
        _track_to(example, server.url, env="bench")
        for project, env in ((tracked, None), (untracked, None), (example, "bench")):
            subprocess.run([KEDRO, "airflow", "export", "--target-dir", str(dags),
                            *(["--env", env] if env else [])],
                           cwd=project, check=True, capture_output=True)
        (dags / "example_twin.py").write_text(
            empty_task_twin(dags / "wine_classifier.py", "example_twin"))
        env = {"AIRFLOW__CORE__PLUGINS_FOLDER": str(plugins), "AKM_BENCH_PEAK_RSS": str(rss_log)}
        if preload:
            env |= {**PRELOAD_ENV, "AIRFLOW__KEDRO_MLFLOW__PRELOAD_PROJECTS":
                    ",".join(str(p) for p in (tracked, untracked, example))}
        cluster = stack.enter_context(airflow_cluster(root / "cluster", dags, extra_env=env))

        def dag_seconds(dag_id: str, record: bool = True) -> Callable[[], float]:
            def measure() -> float:
                run_id = cluster.trigger(dag_id)
                run = cluster.wait(dag_id, run_id, timeout=900)
                if run["state"] != "success":
                    raise RuntimeError(f"{dag_id} run {run_id} ended {run['state']}")
                if record and dag_id in CHAIN_ORDERS:
                    tasks = cluster.task_instances(dag_id, run_id)
                    slots[dag_id].append(_slots(run, tasks, CHAIN_ORDERS[dag_id]))
                    task_runs[dag_id].append(_task_runs(tasks, CHAIN_ORDERS[dag_id]))
                return _seconds(run["start_date"], run["end_date"])

            return measure

        for dag_id in dag_ids:
            dag_seconds(dag_id, record=False)()  # warm: parsed, workers started, caches filled
        rss_log.unlink(missing_ok=True)
        contenders = {dag_id: dag_seconds(dag_id) for dag_id in dag_ids}
        if "wine_classifier" in dag_ids:  # its baseline, in the same rounds
            contenders["kedro_run"] = wall([KEDRO, "run", "--env", "bench"], example)
        walls = interleaved(rounds, **contenders)
    return Deployment(walls, slots, task_runs, _peak_rss(rss_log))


def scheduler_rows(root: Path, rounds: int) -> list[Row]:
    default = measure_deployment(root / "default", rounds,
                                 ["empty_chain", "chain", "chain_untracked", "wine_classifier",
                                  "example_twin"])
    preloaded = measure_deployment(root / "preloaded", rounds,
                                   ["empty_chain", "chain", "wine_classifier"], preload=True)
    nodes, first, last = slice(1, -1), slice(0, 1), slice(-1, None)
    rows: list[Row] = []
    for deployment, label in ((default, ""), (preloaded, ", preloaded workers")):
        load = load_text(deployment.walls.load)
        empty = deployment.slot("empty_chain", nodes)
        for dag_id, tracking in (("chain", "MLflow on"), ("chain_untracked", "MLflow off")):
            if deployment.slots[dag_id]:
                ours = deployment.slot(dag_id, nodes)
                rows.append((f"node task slot, {tracking}{label}", f"{statistics.median(ours):.2f} s",
                             f"{statistics.median(empty):.2f} s empty @task",
                             ratio(ours, empty, 1.2), load))
        for name, position, target in (("start", first, 1.3), ("end", last, 1.3)):
            ours, theirs = deployment.slot("chain", position), deployment.slot("empty_chain", position)
            rows.append((f"{name} task slot, MLflow on{label}", f"{statistics.median(ours):.2f} s",
                         f"{statistics.median(theirs):.2f} s empty @task",
                         ratio(ours, theirs, target), load))
        node_runs = deployment.task_run("chain", nodes)
        empty_runs = deployment.task_run("empty_chain", nodes)
        start_runs = deployment.task_run("chain", first)
        rows.append((f"node task run (queued to end), MLflow on{label}",
                     f"{statistics.median(node_runs):.2f} s",
                     f"{statistics.median(empty_runs):.2f} s empty @task",
                     ratio(node_runs, empty_runs, None), load))
        rows.append((f"start task run (queued to end), MLflow on{label}",
                     f"{statistics.median(start_runs):.2f} s",
                     f"{statistics.median(node_runs):.2f} s node task",
                     ratio(start_runs, node_runs, 1.0), load))
        walls = deployment.walls
        rows.append((f"chain run, MLflow on ({CHAIN_TASKS} tasks){label}",
                     f"{walls.median('chain'):.1f} s", f"{walls.median('empty_chain'):.1f} s empty @tasks",
                     ratio(walls.values["chain"], walls.values["empty_chain"], None), load))
        for dag_id, tracking in (("chain", "MLflow on"), ("chain_untracked", "MLflow off")):
            if dag_id in deployment.peak_rss_kb:
                rss, theirs_rss = deployment.peak_rss_kb[dag_id], deployment.peak_rss_kb["empty_chain"]
                rows.append((f"node task peak RSS, {tracking}{label}", f"{rss / 1024:.0f} MB",
                             f"{theirs_rss / 1024:.0f} MB empty @task",
                             ratio([rss], [theirs_rss], None), load))
        rows.append((f"example DAG, MLflow server{label}", f"{walls.median('wine_classifier'):.1f} s",
                     f"{walls.median('kedro_run'):.1f} s kedro run",
                     ratio(walls.values["wine_classifier"], walls.values["kedro_run"], 3.0), load))
        if "example_twin" in walls.values:  # Airflow's own floor for a DAG of that shape
            rows.append(("example DAG's shape as empty @tasks", f"{walls.median('example_twin'):.1f} s",
                         f"{walls.median('kedro_run'):.1f} s kedro run",
                         ratio(walls.values["example_twin"], walls.values["kedro_run"], None), load))
    return rows


def _peak_rss(log: Path) -> dict[str, float]:
    """Median peak RSS (KB) of the node tasks of each DAG (every task of the empty chain)."""
    by_dag: dict[str, list[int]] = {}
    for line in log.read_text().splitlines():
        record = json.loads(line)
        if record["task_id"] not in ("kedro_run_start", "kedro_run_end"):
            by_dag.setdefault(record["dag_id"], []).append(int(record["kb"]))
    return {dag_id: statistics.median(values) for dag_id, values in by_dag.items()}


def _seconds(start: str, end: str) -> float:
    from datetime import datetime

    return (datetime.fromisoformat(end) - datetime.fromisoformat(start)).total_seconds()


# --- the table -----------------------------------------------------------------------------

def table(rows: list[Row]) -> str:
    header = ("figure", "measured (median)", "baseline (median)",
              "ratio: median of paired rounds (min-max)", "load")
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    lines = ["| " + " | ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)) + " |",
             "|" + "|".join("-" * (w + 2) for w in widths) + "|"]
    lines += ["| " + " | ".join(str(c).ljust(w) for c, w in zip(r, widths, strict=True)) + " |"
              for r in rows]
    return "\n".join(lines)


@contextlib.contextmanager
def scratch() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="akm-bench-") as folder:
        yield Path(folder)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds per figure")
    parser.add_argument("--quick", action="store_true", help="skip the real-scheduler rows")
    parser.add_argument("--only", default="", help="comma-separated sections: " + ", ".join(SECTIONS))
    args = parser.parse_args()
    chosen = [n for n in args.only.split(",") if n] or [
        n for n in SECTIONS if not (args.quick and n == "scheduler")]
    unknown = set(chosen) - set(SECTIONS)
    if unknown:
        parser.error(f"--only: unknown sections {sorted(unknown)}; choose from {list(SECTIONS)}")
    subprocess.run([sys.executable, "-m", "airflow", "db", "migrate"], check=True,
                   capture_output=True, timeout=600)
    rows: list[Row] = []
    with scratch() as root:
        for name in chosen:
            print(f"measuring {name}...", file=sys.stderr, flush=True)
            rows += SECTIONS[name](root, args.rounds)
    print(preamble(args.rounds))
    print(table(rows))
    return 0


SECTIONS: dict[str, Callable[[Path, int], list[Row]]] = {
    "export": export_rows,
    "parse": lambda root, rounds: parse_rows(root, rounds, [10, 100, 1000, 5000]),
    "requests": lambda root, rounds: request_rows(root),
    "scheduler": scheduler_rows,
}


def preamble(rounds: int) -> str:
    from datetime import UTC, datetime

    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True,
                            text=True).stdout.strip() or "unknown"
    return (f"Measured {datetime.now(UTC):%Y-%m-%d %H:%M} UTC on {os.cpu_count()} cores at commit "
            f"{commit}, {rounds} interleaved rounds. Ratios: the median of the rounds' paired ratios "
            "(min-max); load: the 1-minute load average during the row's measurements.\n")


if __name__ == "__main__":
    try:
        sys.exit(main())
    finally:
        import shutil

        shutil.rmtree(conftest.AIRFLOW_HOME, ignore_errors=True)
