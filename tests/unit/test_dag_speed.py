"""neurofuse.dag: the shortcuts for Snakemake's DAG give the same answers as Snakemake's own code."""

import inspect
import random
from types import SimpleNamespace

import pytest
import snakemake.api  # noqa: F401 - the import order Snakemake itself uses (snakemake.dag first is circular)
from snakemake.common import get_function_params, get_input_function_aux_params
from snakemake.dag import DAG, ScriptProcessor
from snakemake.exceptions import ChildIOException
from snakemake.jobs import Job
from snakemake.resources import Resource

from neurofuse import dag as nfdag


def test_cached_signature_gives_snakemake_the_same_parameters():
    def plain(wildcards, input, attempt):
        return attempt

    def open_ended(wildcards, **kwargs):
        return kwargs

    offered = {"input": [], "attempt": 2, "threads": 4, "rulename": "r"}
    before = {f: (list(get_function_params(f)), get_input_function_aux_params(f, offered))
              for f in (plain, open_ended)}
    assert nfdag.cache_signature(plain) and nfdag.cache_signature(open_ended)
    assert not nfdag.cache_signature(plain)  # once only
    for f in (plain, open_ended):
        assert (list(get_function_params(f)), get_input_function_aux_params(f, offered)) == before[f]
    assert get_input_function_aux_params(plain, offered) == {"input": [], "attempt": 2}
    assert not nfdag.cache_signature(len)  # builtins are left alone

    class Holder:
        def method(self, wildcards):
            return wildcards

    bound = Holder().method
    assert not nfdag.cache_signature(bound)  # bound methods too: their signature has no `self`
    assert list(get_function_params(bound)) == ["wildcards"]


def test_resource_evaluation_is_unchanged_by_the_cache():
    def mem_mb(wildcards, input, attempt):
        return 100 * attempt

    resource = Resource("mem_mb", mem_mb).standardize_size()
    rules = [SimpleNamespace(input=[], params=[], resources={"mem_mb": resource})]
    nfdag.cache_signatures(rules)
    assert nfdag.PARAMS_ATTR in Resource.evaluate.__dict__
    # The bound method Snakemake calls sees the cached mapping, equal to its own signature (no `self`).
    assert dict(get_function_params(resource.evaluate)) == dict(inspect.signature(resource.evaluate).parameters)
    assert list(get_function_params(resource.evaluate)) == ["args", "kwargs"]
    assert list(get_function_params(resource._evaluator)) == ["wildcards", "input", "attempt"]
    evaluated = resource.evaluate(None, input=[], attempt=3, threads=1, rulename="r")
    assert evaluated.value == 300


def _fake_dag(outputs):
    """An object with DAG.jobs: one job per (name, [paths])."""
    return SimpleNamespace(jobs=[_Job(name, paths) for name, paths in outputs])


class _Job:
    def __init__(self, name, paths):
        self.name, self.output = name, list(paths)

    def __lt__(self, other):
        return self.name < other.name

    def __repr__(self):
        return self.name


def _outcome(check, dag):
    try:
        check(dag)
    except ChildIOException as err:
        return str(err)
    return None


def test_output_check_agrees_with_snakemakes_own(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    current = DAG.check_directory_outputs
    original = getattr(current, "_neurofuse_original", current)  # Snakemake's own
    assert "Path(f).absolute()" in inspect.getsource(original)
    monkeypatch.setattr(DAG, "check_directory_outputs", original)
    assert nfdag.check_outputs_with_tuples()
    patched = DAG.check_directory_outputs
    try:
        rng = random.Random(0)
        parts = ["a", "b", "sub-01", "x.nii.gz", "..", ".", "b.tsv", "a-b", "a.b"]
        disagreements, errors = [], 0
        for trial in range(400):
            jobs = []
            for j in range(rng.randint(1, 5)):
                paths = []
                for _ in range(rng.randint(1, 3)):
                    path = "/".join(rng.choice(parts) for _ in range(rng.randint(1, 4)))
                    paths.append(("/" + path) if rng.random() < 0.3 else path)
                jobs.append((f"job{j}", paths))
            dag = _fake_dag(jobs)
            want, got = _outcome(original, dag), _outcome(patched, dag)
            errors += want is not None
            if want != got:
                disagreements.append((jobs, want, got))
        assert not disagreements, disagreements[:3]
        assert 20 < errors < 380  # both outcomes were exercised
        # The case it exists for: a file inside another job's output (directory).
        message = _outcome(patched, _fake_dag([("a", ["out/dir"]), ("b", ["out/dir/file.txt"])]))
        assert message is not None and "out/dir/file.txt" in message
    finally:
        DAG.check_directory_outputs = current


def test_script_is_checked_once_per_rule(monkeypatch):
    calls = []
    monkeypatch.setattr(ScriptProcessor, "process_job", lambda self, job: calls.append(job))
    assert nfdag.check_scripts_once_per_rule()
    processor = ScriptProcessor.__new__(ScriptProcessor)
    fixed = SimpleNamespace(name="fixed", basedir="/w", script="../scripts/a.py")
    templated = SimpleNamespace(name="templated", basedir="/w", script="../scripts/{wildcards.x}.py")
    jobs = [SimpleNamespace(rule=rule, is_script=True) for rule in (fixed, fixed, templated, templated, fixed)]
    for job in jobs:
        ScriptProcessor.process_job(processor, job)
    assert calls == [jobs[0], jobs[2], jobs[3]]


def test_script_that_cannot_be_read_still_stops_the_run(monkeypatch):
    def failing(self, job):
        raise RuntimeError("Script ../scripts/a.py not accessible")

    monkeypatch.setattr(ScriptProcessor, "process_job", failing)
    nfdag.check_scripts_once_per_rule()
    processor = ScriptProcessor.__new__(ScriptProcessor)
    job = SimpleNamespace(rule=SimpleNamespace(name="r", basedir="/w", script="../scripts/a.py"), is_script=True)
    for _ in range(2):  # a failed check is not remembered as passed
        with pytest.raises(RuntimeError, match="not accessible"):
            ScriptProcessor.process_job(processor, job)


def test_plain_snakemake_on_request(monkeypatch):
    for cls, name in ((DAG, "check_directory_outputs"), (ScriptProcessor, "process_job"), (Job, "log_info")):
        monkeypatch.setattr(cls, name, getattr(cls, name))  # put back after the test
    monkeypatch.delenv(nfdag.PLAIN_ENV, raising=False)
    assert nfdag.speed_up([]) == ["signatures", "scripts", "outputs", "unshown"]
    assert DAG.check_directory_outputs._neurofuse_tuples
    monkeypatch.setenv(nfdag.PLAIN_ENV, "outputs")  # one measure off: Snakemake's own code is back
    assert nfdag.speed_up([]) == ["signatures", "scripts", "unshown"]
    assert not hasattr(DAG.check_directory_outputs, "_neurofuse_tuples")
    assert ScriptProcessor.process_job._neurofuse_once_per_rule
    for value in ("1", "yes", "outputs,nonsense"):  # anything but a list of known names: all off
        monkeypatch.setenv(nfdag.PLAIN_ENV, value)
        assert nfdag.speed_up([]) == []
        assert not hasattr(ScriptProcessor.process_job, "_neurofuse_once_per_rule")
    monkeypatch.setenv(nfdag.PLAIN_ENV, "0")
    assert nfdag.speed_up([]) == ["signatures", "scripts", "outputs", "unshown"]


def test_signatures_left_alone_by_a_snakemake_that_does_not_read_them(monkeypatch):
    import snakemake.common

    for cls, name in ((DAG, "check_directory_outputs"), (ScriptProcessor, "process_job"), (Job, "log_info")):
        monkeypatch.setattr(cls, name, getattr(cls, name))  # put back after the test
    monkeypatch.delenv(nfdag.PLAIN_ENV, raising=False)
    monkeypatch.delattr(snakemake.common, "FUNC_OVERWRITE_PARAMS_ATTR")

    def f(wildcards):
        return []

    assert nfdag.cache_signatures([SimpleNamespace(input=[f], params=[], resources={})]) == 0
    assert nfdag.PARAMS_ATTR not in f.__dict__
    assert "signatures" not in nfdag.speed_up([])


def _log_info_calls(monkeypatch, quiet, rule_kwargs=None):
    """How many jobs Snakemake's own Job.log_info described, under a stream handler with ``quiet``."""
    import logging

    from snakemake.jobs import Job
    from snakemake.logging import DefaultFilter, logger

    calls = []
    monkeypatch.setattr(Job, "log_info", lambda self, indent=False, printshellcmd=True: calls.append(self))
    assert nfdag.describe_shown_jobs_only()
    handler = logging.StreamHandler()
    handler.addFilter(DefaultFilter(quiet, False, False, True, False))
    monkeypatch.setattr(logger, "handlers", [handler])
    monkeypatch.setattr(logger, "propagate", False)
    monkeypatch.setattr(logger, "level", logging.INFO)
    rule = SimpleNamespace(**dict(dict(shellcmd=None, message=None, is_checkpoint=False, is_handover=False),
                                  **(rule_kwargs or {})))
    Job.log_info(SimpleNamespace(rule=rule))
    return len(calls)


def test_job_description_built_only_when_shown(monkeypatch):
    from snakemake.settings.enums import Quietness

    assert _log_info_calls(monkeypatch, set()) == 1  # shown: Snakemake's own code
    assert _log_info_calls(monkeypatch, {Quietness.PROGRESS}) == 1
    assert _log_info_calls(monkeypatch, {Quietness.RULES, Quietness.HOST}) == 0  # nobody would see it
    for special in ({"shellcmd": "echo {wildcards.x}"}, {"message": "{input}"}, {"is_checkpoint": True},
                    {"is_handover": True}):
        assert _log_info_calls(monkeypatch, {Quietness.RULES}, special) == 1, special
