"""The README's first command as a new user runs it, and its ``--serve`` mode as a person explores
it: the Airflow UI in a real browser (Debian's headless Chromium, driven by selenium), from the
login to the MLflow run of a task triggered with a changed Kedro parameter.

One demo at a time (they share ``.airflow/``): the tests form one xdist group, in file order.
Screenshots of each browser step go to ``.airflow/ui-screenshots/``.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from conftest import REPO

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("demo")]

SCREENSHOTS = REPO / ".airflow" / "ui-screenshots"
CHROMIUM, CHROMEDRIVER = Path("/usr/bin/chromium"), Path("/usr/bin/chromedriver")


def _user_env() -> dict[str, str]:
    """A user's shell, not the tests' (no Airflow, MLflow or example settings)."""
    return {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "MLFLOW", "WINE_"))}


def test_demo_runs_the_example_on_a_real_scheduler():
    done = subprocess.run(["./scripts/demo.sh"], cwd=REPO, env=_user_env(), capture_output=True,
                          text=True, timeout=900)
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-6000:]
    runs = re.findall(r"^  (\S+)\s+(manual|asset_triggered)\s+(\w+)\s", output, re.MULTILINE)
    assert runs == [("wine_classifier_s3", "manual", "success"),
                    ("wine_classifier__inference_s3", "asset_triggered", "success"),
                    ("wine_classifier_s3", "manual", "success")], output[-4000:]
    # the first training made a champion, which started inference; the weaker one was kept out
    assert "Promotion gate: promoted" in output and "Promotion gate: kept out" in output, output
    assert "preloaded workers: kedro,wine_classifier" in output, output[-4000:]
    assert not re.search(r"Using '.*rich_logging\.yml'", output), output[:3000]


@dataclass
class ServedDemo:
    airflow_url: str
    password: str
    mlflow_url: str
    output: str

    def api(self, path: str) -> dict:
        token = _post_json(f"{self.airflow_url}/auth/token",
                           {"username": "admin", "password": self.password})["access_token"]
        request = urllib.request.Request(f"{self.airflow_url}/api/v2{path}",
                                         headers={"Authorization": f"Bearer {token}"})
        with urllib.request.urlopen(request, timeout=30) as response:
            return json.loads(response.read())


def _post_json(url: str, body: dict) -> dict:
    request = urllib.request.Request(url, method="POST", data=json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())


def _answers(url: str) -> bool:
    host, port = url.removeprefix("http://").split(":")
    with socket.socket() as sock:
        return sock.connect_ex((host, int(port))) == 0


@pytest.fixture(scope="module")
def served_demo() -> Iterator[ServedDemo]:
    """``./scripts/demo.sh --serve`` until its UIs are up; stopped by SIGTERM afterwards, which
    must end it with 0 and stop every server it started."""
    process = subprocess.Popen(["./scripts/demo.sh", "--serve"], cwd=REPO, env=_user_env(),
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines = []
    assert process.stdout is not None
    for line in process.stdout:  # the demo ends (EOF) on any failure: no endless wait
        lines.append(line)
        if "Ctrl-C stops everything" in line:
            break
    output = "".join(lines)
    found = re.search(r"Airflow UI: (\S+)\s+user admin, password (\S+)", output)
    mlflow = re.search(r"MLflow UI:\s+(\S+)", output)
    if not (found and mlflow):
        process.kill()
        pytest.fail(f"demo.sh --serve did not serve:\n{output[-6000:]}")
    demo = ServedDemo(found[1], found[2], mlflow[1], output)
    try:
        yield demo
    finally:
        process.send_signal(signal.SIGTERM)
        rest = process.communicate(timeout=120)[0]
        assert process.returncode == 0, rest[-3000:]
        assert not _answers(demo.airflow_url) and not _answers(demo.mlflow_url), rest[-3000:]


def test_served_demo_keeps_logs_links_and_parameters_reachable(served_demo):
    dags = {dag["dag_id"]: dag for dag in served_demo.api("/dags")["dags"]}
    assert {"wine_classifier_s3", "wine_classifier__inference_s3", "wine_classifier",
            "wine_classifier__inference"} <= set(dags)
    assert not any(dag["is_paused"] for dag in dags.values())
    params = served_demo.api("/dags/wine_classifier_s3/details")["params"]
    assert {"data_processing", "random_forest", "logistic_regression"} <= set(params)
    run = served_demo.api("/dags/wine_classifier_s3/dagRuns")["dag_runs"][0]
    task = (f"/dags/wine_classifier_s3/dagRuns/{urllib.request.quote(run['dag_run_id'], safe='')}"
            "/taskInstances/random_forest.train_model")
    events = served_demo.api(f"{task}/logs/1")["content"]
    log = json.dumps(events)
    assert "Running Kedro node 'random_forest.train_model'" in log, log[:3000]
    # nothing for a user to worry about: no library's deprecation or Kedro's catalog notice
    assert [e["event"] for e in events if e.get("level") == "warning"] == [], log[:3000]
    link = served_demo.api(f"{task}/links")["extra_links"]["MLflow run"]
    assert link.startswith(served_demo.mlflow_url), link
    run_id = link.rsplit("/", 1)[1]
    with urllib.request.urlopen(f"{served_demo.mlflow_url}/api/2.0/mlflow/runs/get?run_id={run_id}",
                                timeout=30) as response:
        tags = {t["key"]: t["value"] for t in json.loads(response.read())["run"]["data"]["tags"]}
    assert tags["kedro.node"] == "random_forest.train_model"


@pytest.fixture
def browser():
    if not (CHROMIUM.exists() and CHROMEDRIVER.exists()):
        pytest.skip("Debian's chromium and chromium-driver are not installed (scripts/test.sh "
                    "installs them with apt-get when it can)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage",
                     "--window-size=1600,1000"):
        options.add_argument(argument)
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    driver.implicitly_wait(15)
    shutil.rmtree(SCREENSHOTS, ignore_errors=True)
    SCREENSHOTS.mkdir(parents=True)
    print(f"screenshots: {SCREENSHOTS}")
    try:
        yield driver
    finally:
        driver.quit()


def test_a_person_triggers_with_a_changed_parameter_and_finds_it_in_mlflow(served_demo, browser):
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By

    shots = iter(range(1, 100))

    def shot(name: str) -> None:
        browser.save_screenshot(str(SCREENSHOTS / f"{next(shots):02d}-{name}.png"))

    def page_text() -> str:
        return browser.find_element(By.TAG_NAME, "body").text

    url = served_demo.airflow_url
    browser.get(url)
    browser.find_element(By.NAME, "username").send_keys("admin")
    browser.find_element(By.NAME, "password").send_keys(served_demo.password)
    shot("login")
    browser.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    _until(lambda: "Dags" in page_text(), "the home page after logging in")

    browser.get(f"{url}/dags/wine_classifier_s3")
    _until(lambda: "kedro_run_start" in page_text(), "the training DAG's tasks")
    text = page_text()
    assert all(name in text for name in ("data_processing", "random_forest", "kedro_promote_model",
                                         "kedro_run_end")), text[:2000]
    shot("dag")

    browser.find_element(By.CSS_SELECTOR, "button[aria-label='Trigger Dag']").click()
    label = browser.find_element(By.XPATH, "//label[contains(@class,'chakra-field__label')]"
                                           "[starts-with(normalize-space(.),'random_forest')]")
    text = page_text()
    assert all(name in text for name in ("data_processing", "logistic_regression")), text[:2000]
    editor = label.find_element(By.XPATH,
                                "./ancestor::*[.//div[contains(@class,'monaco-editor')]][1]")
    browser.execute_script("arguments[0].scrollIntoView({block: 'center'})", editor)
    # the forest's n_estimators (100 in parameters.yml) becomes 7: one token replaced, so the
    # JSON stays valid at every keystroke of the form's editor
    token = editor.find_element(By.XPATH, ".//div[contains(@class,'view-lines')]"
                                          "//span[normalize-space(.)='100']")
    ActionChains(browser).double_click(token).send_keys("7").perform()
    _until(lambda: '"n_estimators":\xa07' in _editor_text(editor), "the edited parameter")
    shot("trigger-form")
    runs_before = {r["dag_run_id"] for r in served_demo.api("/dags/wine_classifier_s3/dagRuns")[
        "dag_runs"]}
    next(b for b in browser.find_elements(By.CSS_SELECTOR, ".chakra-dialog__content button")
         if b.text == "Trigger").click()

    new_runs = _until(lambda: [r for r in served_demo.api("/dags/wine_classifier_s3/dagRuns")[
        "dag_runs"] if r["dag_run_id"] not in runs_before], "the triggered run")
    (run,) = new_runs
    assert run["conf"]["random_forest"]["model_options"]["n_estimators"] == 7, run["conf"]
    quoted = urllib.request.quote(run["dag_run_id"], safe="")
    browser.get(f"{url}/dags/wine_classifier_s3/runs/{quoted}")
    _until(lambda: served_demo.api(f"/dags/wine_classifier_s3/dagRuns/{quoted}")["state"]
           in ("success", "failed"), "the run to finish", timeout=600)
    browser.refresh()
    _until(lambda: "Success" in page_text() or "success" in page_text(), "the run's state")
    shot("run")
    assert served_demo.api(f"/dags/wine_classifier_s3/dagRuns/{quoted}")["state"] == "success"

    task = f"{url}/dags/wine_classifier_s3/runs/{quoted}/tasks/random_forest.train_model"
    browser.get(task)
    _until(lambda: "Running Kedro node 'random_forest.train_model'" in page_text(), "the task's log")
    shot("task-log")

    browser.get(f"{task}/details")
    link = browser.find_element(By.XPATH, "//a[normalize-space()='MLflow run']")
    assert link.get_attribute("href").startswith(served_demo.mlflow_url)
    shot("task-details")
    windows = set(browser.window_handles)
    link.click()
    _until(lambda: set(browser.window_handles) - windows or browser.current_url.startswith(
        served_demo.mlflow_url), "the MLflow run to open")
    opened = set(browser.window_handles) - windows
    if opened:
        browser.switch_to.window(opened.pop())
    _until(lambda: "random_forest.model_options.n_estimators" in page_text(), "the run's parameters",
           timeout=60)
    text = page_text()
    assert re.search(r"random_forest\.model_options\.n_estimators\s+7\b", text), text[:3000]
    assert "random_forest.train_model" in text
    parameter = browser.find_element(
        By.XPATH, "//*[normalize-space(text())='random_forest.model_options.n_estimators']")
    browser.execute_script("arguments[0].scrollIntoView({block: 'center'})", parameter)
    shot("mlflow-run")


def _editor_text(editor) -> str:
    from selenium.webdriver.common.by import By

    return editor.find_element(By.CSS_SELECTOR, ".view-lines").get_attribute("textContent")


def _until(check, what: str, timeout: float = 60):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            found = check()
        except Exception:  # the page is still rendering, or the API between two states
            found = None
        if found:
            return found
        time.sleep(1)
    raise AssertionError(f"waited {timeout:.0f}s for {what}")
