"""compare(backend="ray") on a real local Ray (2 CPUs), started once for this module and shut down after.

The workers import this module by name to unpickle its handlers: the fixture puts tests/ on the
PYTHONPATH the local Ray's processes inherit. The handler of the __main__ test is sent by value.
"""

import asyncio
import functools
import json
import os
import signal
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from pathlib import Path

import pytest

import llmkit
from llmkit.calllog import configure_log
from llmkit.calllog.sqlite import SQLiteStore

try:
    import ray
except ImportError as exc:  # an unsupported Python: say so, except on CI, where Ray must be there
    if os.environ.get("CI"):
        raise
    pytest.skip(f"Ray is not installed ({exc}): pip install 'llmkit[ray]'", allow_module_level=True)

from llmkit.backends.ray import RayBackend, release_workers

TESTS = Path(__file__).resolve().parent


@pytest.fixture(scope="session")
def cluster():
    """A local Ray with 2 CPUs; its processes see tests/ on their PYTHONPATH. Stopped at the end."""
    env = {
        "RAY_AUTH_MODE": "disabled",  # Ray 2.60 turns token authentication on by default
        "PYTHONPATH": os.pathsep.join(filter(None, [str(TESTS), os.environ.get("PYTHONPATH")])),
    }
    saved = {name: os.environ.get(name) for name in env}
    os.environ.update(env)  # inherited by the Ray processes started now, and only by them
    # Ray's session files (logs, sockets) in a folder removed afterwards, not left in /tmp/ray.
    with tempfile.TemporaryDirectory(prefix="llmkit-ray-", ignore_cleanup_errors=True) as folder:
        try:
            ray.init(num_cpus=2, include_dashboard=False, configure_logging=False, _temp_dir=folder)
        finally:
            for name, value in saved.items():
                os.environ.pop(name, None) if value is None else os.environ.__setitem__(name, value)
        try:
            yield ray.get_runtime_context().gcs_address
        finally:
            release_workers()
            ray.shutdown()


# -- handlers the workers import from this module ---------------------------------------------------
class Echo(llmkit.CustomLLM):
    """``model: prompt``; the model "fail" fails with a 503, "where" answers with its process id."""

    async def acompletion(self, model, messages, **kwargs):
        if model == "fail":
            raise llmkit.CustomLLMError(503, "down for maintenance")
        text = str(os.getpid()) if model == "where" else f"{model}: {messages[-1]['content']}"
        return llmkit.ModelResponse(
            model=model,
            choices=[{"message": {"content": text}}],
            usage={"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5},
        )


@ray.remote(num_cpus=0)
class Gauge:
    """Counts the calls in flight across every worker: in all, and by each key (a model, a process)."""

    def __init__(self):
        self.reset()

    def reset(self):
        self.now, self.peak, self.total, self.total_peak = {}, {}, 0, 0

    def enter(self, *keys):
        for key in keys:
            self.now[key] = self.now.get(key, 0) + 1
            self.peak[key] = max(self.peak.get(key, 0), self.now[key])
        self.total += 1
        self.total_peak = max(self.total_peak, self.total)

    def leave(self, *keys):
        for key in keys:
            self.now[key] -= 1
        self.total -= 1

    def peaks(self):
        return self.total_peak, dict(self.peak)


class Gauged(llmkit.CustomLLM):
    async def acompletion(self, model, messages, **kwargs):
        gauge = ray.get_actor(kwargs["optional_params"]["gauge"])
        keys = (model, f"pid {os.getpid()}")
        await gauge.enter.remote(*keys)
        await asyncio.sleep(0.2)
        await gauge.leave.remote(*keys)
        return llmkit.ModelResponse(model=model, choices=[{"message": {"content": "ok"}}])


class Interrupting(llmkit.CustomLLM):
    """Prompt "3" presses Ctrl-C in the driver and then waits; the others answer at once."""

    async def acompletion(self, model, messages, **kwargs):
        options = kwargs["optional_params"]
        if messages[-1]["content"] == "3":
            await asyncio.to_thread(Path(options["pid_file"]).write_text, str(os.getpid()))
            os.kill(options["driver_pid"], signal.SIGINT)
            await asyncio.sleep(60)
        return llmkit.ModelResponse(model=model, choices=[{"message": {"content": "done"}}])


class Dying(llmkit.CustomLLM):
    """Kills its worker process: model "once" on its first attempt at a prompt, "always" every time."""

    async def acompletion(self, model, messages, **kwargs):
        marker = Path(kwargs["optional_params"]["marker_dir"]) / f"{model}-{messages[-1]['content']}"
        if model == "always" or not marker.exists():
            marker.touch()
            os._exit(1)
        return llmkit.ModelResponse(model=model, choices=[{"message": {"content": "survived"}}])


class SharedSQLite(SQLiteStore):
    """A log the workers can open themselves (as a PostgreSQL log would be): they write, the driver not."""

    def __init__(self, path):
        super().__init__(path)
        self.path = path

    def for_workers(self):
        return functools.partial(SharedSQLite, self.path)


def use(provider, handler):
    llmkit.custom_provider_map = [{"provider": provider, "custom_handler": handler}]


# -- the same comparison, on Ray -----------------------------------------------------------------------
SAME = ["prompt_index", "prompt", "model", "sample", "response", "status", "error", "prompt_tokens",
        "completion_tokens", "total_tokens", "tokens_estimated", "cost_usd", "check_has_colon", "passed"]  # fmt: skip


def test_same_rows_in_the_same_order_as_the_local_backend_and_each_call_logged_once(cluster, log):
    use("ray", Echo())
    llmkit.register_model_cost("ray/a", input_cost_per_token=1e-6, output_cost_per_token=2e-6)  # here, not there
    args = (["ray/a", "ray/fail", "demo/echo"], ["one", "two", "three"])
    options = {"samples": 2, "checks": [llmkit.checks.contains(":", name="has_colon")], "progress": False}
    local = llmkit.compare(*args, **options)
    remote = llmkit.compare(*args, backend="ray", **options)

    assert list(remote.columns) == list(local.columns)
    assert remote[SAME[:6]].astype(str).values.tolist() == local[SAME[:6]].astype(str).values.tolist()
    # the demo provider counts tokens with what the worker's machine has (tiktoken's cache, or an
    # estimate): only the handler that reports its usage gives the same counts and costs everywhere
    ours = remote["model"] != "demo/echo"
    assert remote[ours][SAME].astype(str).values.tolist() == local[ours][SAME].astype(str).values.tolist()
    assert remote.dtypes.to_dict() == local.dtypes.to_dict()
    assert (remote[remote["model"] == "ray/a"]["cost_usd"] == 7e-6).all()  # priced as the driver prices
    failed = remote[remote["model"] == "ray/fail"]
    assert (failed["status"] == "error").all() and failed["error"].str.contains("down for maintenance").all()

    run_id = remote["run_id"][0]
    assert remote["run_id"].nunique() == 1 and run_id != local["run_id"][0]
    logged = log.to_dataframe(run_id=run_id)
    assert sorted(logged["call_id"]) == sorted(remote["call_id"])  # every call once, in the driver's log
    assert set(logged["source"]) == {"batch"}
    node = ray.get_runtime_context().get_node_id()
    assert all(meta == {"ray_node_id": node} for meta in logged["metadata"])
    # the check results are annotations on the calls, as for the local backend
    annotated = log.annotations()
    assert set(annotated[annotated["name"] == "checks"]["call_id"]) >= set(remote["call_id"])


def test_the_calls_run_in_worker_processes_and_the_workers_stay_warm(cluster, log):
    use("ray", Echo())
    first = llmkit.compare(["ray/where"], ["a", "b", "c", "d"], backend="ray", progress=False)
    second = llmkit.compare(["ray/where"], ["a", "b"], backend="ray", progress=False)
    workers = {int(pid) for pid in first["response"]}
    assert os.getpid() not in workers and 1 <= len(workers) <= 2
    assert {int(pid) for pid in second["response"]} <= workers  # the same processes, started once


def test_a_handler_defined_in_main_travels_by_value(cluster, tmp_path):
    script = tmp_path / "shout.py"
    script.write_text(
        textwrap.dedent(
            """
            import json, os
            import llmkit

            class Shout(llmkit.CustomLLM):
                async def acompletion(self, model, messages, **kwargs):
                    text = messages[-1]["content"].upper() + " from " + str(os.getpid())
                    return llmkit.ModelResponse(model=model, choices=[{"message": {"content": text}}])

            if __name__ == "__main__":
                llmkit.custom_provider_map = [{"provider": "shout", "custom_handler": Shout()}]
                df = llmkit.compare(["shout/it"], ["hi", "there"], backend="ray", progress=False)
                logged = llmkit.calls.to_dataframe(run_id=df["run_id"][0])
                print(json.dumps({"responses": df["response"].tolist(), "pid": os.getpid(), "logged": len(logged)}))
            """
        )
    )
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}  # nothing of tests/ importable
    env.update(RAY_ADDRESS=cluster, RAY_AUTH_MODE="disabled", LLMKIT_LOG_PATH=str(tmp_path / "calls.db"))
    result = subprocess.run(
        [sys.executable, str(script)], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=180
    )
    assert result.returncode == 0, result.stderr[-3000:]
    out = json.loads(result.stdout.strip().splitlines()[-1])
    answers = [text.split(" from ") for text in out["responses"]]
    assert [text for text, _ in answers] == ["HI", "THERE"]
    assert all(int(pid) != out["pid"] for _, pid in answers) and out["logged"] == 2


def test_global_limits_hold_across_workers_as_the_handlers_count_them(cluster, log):
    use("gauge", Gauged())
    models = ["gauge/a", "gauge/b", "gauge/c"]
    prompts = [str(i) for i in range(6)]

    gauge = Gauge.options(name="gauge").remote()  # one actor, reset between runs: a process costs seconds
    llmkit.compare(models, prompts, backend="ray", concurrency=4, per_model_concurrency=1, progress=False,
                   gauge="gauge")  # fmt: skip
    total, peaks = ray.get(gauge.peaks.remote())
    assert total == 3 and [peaks[name] for name in "abc"] == [1, 1, 1]  # three models, one call each at a time
    assert max(peak for key, peak in peaks.items() if key.startswith("pid")) >= 2  # a worker runs several

    ray.get(gauge.reset.remote())
    llmkit.compare(models, prompts, backend="ray", concurrency=3, progress=False, gauge="gauge")
    assert ray.get(gauge.peaks.remote())[0] == 3

    # resources per job: each worker holds one CPU and runs one job at a time, whatever concurrency says
    ray.get(gauge.reset.remote())
    df = llmkit.compare(models, prompts[:2], backend=RayBackend(num_cpus=1), concurrency=8, progress=False,
                        gauge="gauge")  # fmt: skip
    total, peaks = ray.get(gauge.peaks.remote())
    assert (df["status"] == "ok").all() and total <= 2  # two CPUs in the cluster
    assert {peak for key, peak in peaks.items() if key.startswith("pid")} == {1}


def test_ctrl_c_cancels_the_calls_in_flight_and_returns_the_finished_rows(cluster, log, tmp_path):
    use("intr", Interrupting())
    pid_file = tmp_path / "worker.pid"
    df = llmkit.compare("intr/m", [str(i) for i in range(8)], backend="ray", concurrency=1, progress=False,
                        driver_pid=os.getpid(), pid_file=str(pid_file))  # fmt: skip
    assert df["prompt_index"].tolist() == [0, 1, 2] and (df["status"] == "ok").all()
    logged = log.to_dataframe(run_id=df["run_id"][0])
    assert logged["status"].tolist() == ["ok", "ok", "ok", "cancelled"]  # the 4th call, once, from its worker
    assert logged["metadata"].iloc[-1]["ray_node_id"] == ray.get_runtime_context().get_node_id()
    assert _gone(int(pid_file.read_text()))  # the worker that was running it is stopped


def _gone(pid, wait=20.0):
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.1)
    return False


def test_a_dead_worker_is_replaced_and_its_job_retried_once(cluster, log, tmp_path):
    use("die", Dying())
    df = llmkit.compare(["die/once", "die/always"], ["p"], backend="ray", concurrency=1, progress=False,
                        marker_dir=str(tmp_path))  # fmt: skip
    once, always = df.to_dict("records")
    assert once["status"] == "ok" and once["response"] == "survived"  # its first worker died; the retry answered
    assert always["status"] == "error"
    assert always["error"].startswith("WorkerLostError: the Ray worker running this call died, and so did the one")
    logged = log.to_dataframe(run_id=df["run_id"][0])
    assert sorted(logged["call_id"]) == sorted(df["call_id"])  # one record each, the lost one made by the driver
    assert logged.set_index("model").loc["die/always", "error_type"] == "WorkerLostError"


def test_workers_write_a_shared_log_themselves_and_the_driver_does_not(cluster, tmp_path):
    configure_log(SharedSQLite(tmp_path / "shared.db"))
    try:
        use("ray", Echo())
        df = llmkit.compare(["ray/a", "ray/fail"], ["x", "y"], backend="ray", progress=False)
        logged = llmkit.calls.to_dataframe(run_id=df["run_id"][0])
        assert sorted(logged["call_id"]) == sorted(df["call_id"])  # four calls, once each
        node = ray.get_runtime_context().get_node_id()
        assert all(meta == {"ray_node_id": node} for meta in logged["metadata"])
    finally:
        configure_log()


def test_workers_write_the_shared_postgres_log_themselves_each_call_once(cluster, postgres_server):
    import pickle

    from postgres_server import PASSWORD

    url = postgres_server.create_database(f"ray_{os.getpid()}_{time.time_ns()}")
    configure_log(url=url)
    try:
        driver = llmkit.calls._store()
        opener = driver.for_workers()
        shown = f"{opener!r} {opener}"
        assert PASSWORD not in shown and "***" in shown
        assert str(pickle.loads(pickle.dumps(opener))()) == str(driver)  # opens the same database elsewhere
        written_here = []
        write = driver.write
        driver.write = lambda records: (written_here.extend(records), write(records))  # a spy: still written
        use("ray", Echo())
        llmkit.register_model_cost("ray/a", input_cost_per_token=1e-6, output_cost_per_token=2e-6)
        prompts = [f"p{i}" for i in range(30)]
        df = llmkit.compare(["ray/a", "ray/fail"], prompts, samples=2, backend="ray", progress=False)
        logged = llmkit.calls.to_dataframe(run_id=df["run_id"][0])
        assert len(df) == 120 and sorted(logged["call_id"]) == sorted(df["call_id"])  # every call, once
        assert logged["call_id"].is_unique and logged["session_id"].ne(llmkit.calls.session_id).all()
        assert not [r for r in written_here if r.get("run_id") == df["run_id"][0]]  # none went through the driver
        node = ray.get_runtime_context().get_node_id()
        assert all(meta == {"ray_node_id": node} for meta in logged["metadata"])
        priced = logged[logged["model"] == "ray/a"]["cost_usd"]
        assert (priced == 7e-6).all() and (df[df["model"] == "ray/a"]["cost_usd"] == 7e-6).all()  # the driver's prices

        def connections():
            with driver.database.connection() as conn:
                sql = "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
                return conn.execute(sql).fetchone()[0]

        before = connections()
        again = llmkit.compare(["ray/a"], prompts, backend="ray", progress=False)  # the warm workers again
        assert len(llmkit.calls.to_dataframe(run_id=again["run_id"][0])) == 30
        assert connections() == before  # each worker kept its store open, rather than open another
    finally:
        configure_log()


# -- bad input -------------------------------------------------------------------------------------------
def test_an_unknown_backend_lists_the_backends():
    with pytest.raises(ValueError, match="unknown backend 'dask'; backends: local, ray"):
        llmkit.compare(["demo/echo"], ["x"], backend="dask", progress=False)


def test_without_ray_installed_the_error_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # what an environment without Ray gives: ImportError
    with pytest.raises(ImportError, match=r"pip install 'llmkit\[ray\]'"):
        llmkit.compare(["demo/echo"], ["x"], backend="ray", progress=False)


def test_a_handler_that_cannot_be_pickled_is_named(cluster):
    class Locked(Echo):
        def __init__(self):
            self.lock = threading.Lock()

    use("locked", Locked())
    with pytest.raises(TypeError, match="the handler of provider 'locked' \\(Locked\\) cannot be sent to Ray workers"):
        llmkit.compare(["locked/a"], ["x"], backend="ray", progress=False)


def test_a_handler_the_workers_cannot_import_is_named_with_the_fix(cluster, tmp_path, monkeypatch):
    (tmp_path / "private_handlers.py").write_text(
        "import llmkit\n\nclass Private(llmkit.CustomLLM):\n    async def acompletion(self, model, messages, **kw):\n"
        "        return llmkit.ModelResponse(model=model, choices=[{'message': {'content': 'hidden'}}])\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))  # importable here, not in the workers
    import private_handlers

    llmkit.register_provider("private", private_handlers.Private())
    with pytest.raises(ImportError) as caught:
        llmkit.compare(["private/a"], ["x"], backend="ray", progress=False)
    message = str(caught.value)
    assert "provider 'private'" in message and "No module named 'private_handlers'" in message
    assert "py_modules" in message and "__main__" in message
    sys.modules.pop("private_handlers", None)


def test_ray_options_given_as_call_parameters_are_refused(cluster):
    with pytest.raises(TypeError, match=r"backend=llmkit.backends.RayBackend\(num_gpus=1\)"):
        llmkit.compare(["demo/echo"], ["x"], backend="ray", num_gpus=1, progress=False)
    with pytest.raises(ValueError, match="num_gpus=1 per job, but the Ray cluster has 0 GPU"):
        llmkit.compare(["demo/echo"], ["x"], backend=RayBackend(num_gpus=1), progress=False)


def test_an_unreachable_cluster_fails_at_once_naming_the_address():
    code = (
        "import llmkit, llmkit.backends\n"
        "backend = llmkit.backends.RayBackend(address='127.0.0.1:9')\n"
        "llmkit.compare(['demo/echo'], ['x'], backend=backend, progress=False)"
    )
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode != 0
    assert "ConnectionError: cannot reach a Ray cluster at '127.0.0.1:9'" in result.stderr
