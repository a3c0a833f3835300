"""Less work per job for Snakemake's DAG: what keeps ``snakemake -n`` of a large study fast.

Four measures, each giving Snakemake the answer its own code would compute, once per rule
or callable instead of once per job, or skipping work whose result nobody sees.
``workflow/Snakefile`` applies them (:func:`speed_up`). Savings measured by
``benchmarks/bench_dag.py`` on 1,000 subjects x 2 sessions x 2 runs (46,007 jobs),
``snakemake -n --quiet host rules``, CPU seconds, each with the other measures on (the
machine shared, 2 cores, load 3-8): all four together 84-88 -> 60-62 s. Since three light
steps were folded into the jobs they fed (34,007 jobs): 73 -> 52 s at load 5.

* ``signatures`` (:func:`cache_signatures`), about 9 s. Before calling a rule's input,
  ``params`` or ``resources`` function for a job, Snakemake asks for its signature
  (``inspect.signature``, to pass only the arguments it accepts: ``input``, ``attempt``,
  ``threads``...); for a resource twice (``Resource.evaluate``, then the function). It
  reads a callable's ``_overwrite_params`` attribute instead when there is one
  (``snakemake.common.get_function_params``; Snakemake sets it itself for functions it
  builds). We set it to the callable's own signature (``Resource.evaluate``'s without
  ``self``, as its bound method has), on plain functions only. Applied only if
  ``snakemake.common.FUNC_OVERWRITE_PARAMS_ATTR`` names that attribute.
* ``scripts`` (:func:`check_scripts_once_per_rule`), about 13 s. After the DAG,
  Snakemake checks for every job that its ``script:`` can be read: it formats the path
  with the job's wildcards and params, locates it, reads it. For a path without ``{``
  (all of ours) the answer is the same for every job of the rule, so it is computed once
  per rule; a failed check is not remembered, templated paths are checked per job.
* ``outputs`` (:func:`check_outputs_with_tuples`), about 4.5 s. Snakemake's check that no
  output lies inside another job's output sorts every output as a ``pathlib.Path`` and
  compares neighbours with ``os.path.commonpath``; we sort the same paths as tuples of
  their parts (the order ``Path`` sorts by) and compare neighbours by prefix, raising the
  same error for the same pair. Where pathlib would read a path differently (a leading
  ``//``, a platform other than POSIX) Snakemake's own check runs.
* ``unshown`` (:func:`describe_shown_jobs_only`), about 3 s. For the job stats Snakemake
  walks every job through its (dry-run) executor, which builds each job's log record
  (inputs, outputs, logs, reason, resources formatted) even when ``--quiet rules`` has
  every handler drop it. When no handler would show it, the record is not built.

The last three replace Snakemake methods (``snakemake.dag.ScriptProcessor.process_job``,
``snakemake.dag.DAG.check_directory_outputs``, ``snakemake.jobs.Job.log_info``,
Snakemake 9.27) and are made only for Snakemake 9 and when those exist; any other
version keeps its own code, just slower. ``NEUROFUSE_PLAIN_SNAKEMAKE=1`` turns all four
off, ``=scripts,outputs`` (names) some: to compare, or to rule them out when something
looks wrong. ``tests/workflow/test_dag_scale.py`` compares every job (rule, wildcards,
input, output, log, params, threads, resources, listed reason) and the quiet output with
and without them.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable
from types import MappingProxyType
from typing import Any

__all__ = ["cache_signature", "cache_signatures", "check_scripts_once_per_rule", "check_outputs_with_tuples", "describe_shown_jobs_only",
           "speed_up"]

#: Environment variable that leaves Snakemake as it is (see :func:`speed_up`).
PLAIN_ENV = "NEUROFUSE_PLAIN_SNAKEMAKE"
#: Attribute that Snakemake reads before ``inspect.signature`` (snakemake.common.FUNC_OVERWRITE_PARAMS_ATTR).
PARAMS_ATTR = "_overwrite_params"
#: The measures of :func:`speed_up`, by the names ``PLAIN_ENV`` accepts.
MEASURES = ("signatures", "scripts", "outputs", "unshown")


def turned_off() -> set[str]:
    """The measures ``PLAIN_ENV`` turns off: all for ``1`` (or any other value), or a comma list of names."""
    import os

    value = os.environ.get(PLAIN_ENV, "").strip()
    if value in ("", "0"):
        return set()
    names = {name.strip() for name in value.split(",")}
    return names if names <= set(MEASURES) else set(MEASURES)


def _reads_params_attr() -> bool:
    """Whether this Snakemake looks up a callable's parameters in ``PARAMS_ATTR`` first."""
    try:
        import snakemake.common
    except ImportError:
        return False
    return getattr(snakemake.common, "FUNC_OVERWRITE_PARAMS_ATTR", None) == PARAMS_ATTR and callable(
        getattr(snakemake.common, "get_function_params", None))


def cache_signature(func: Any, method: bool = False) -> bool:
    """Remember ``func``'s parameters on it (plain Python functions only); True if set now.

    ``method``: ``func`` is a class's function that Snakemake calls bound to an instance;
    the cached parameters leave out the first (``self``), as the bound method's signature does.
    """
    if not inspect.isfunction(func) or PARAMS_ATTR in func.__dict__:
        return False  # builtins, bound methods, callable objects: left to inspect.signature
    params = inspect.signature(func).parameters
    if method:
        params = MappingProxyType(dict(list(params.items())[1:]))
    func.__dict__[PARAMS_ATTR] = params
    return True


def _callables(item: Any) -> Iterable[Callable[..., Any]]:
    """The function behind a rule's input/params item: itself, or wrapped (``unpack``, flags)."""
    if callable(item):
        yield item
    inner = getattr(item, "callable", None)
    if inner is not None:
        yield inner
    file = getattr(item, "_file", None)
    if file is not None and getattr(file, "callable", None) is not None:
        yield file.callable


def cache_signatures(rules: Iterable[Any]) -> int:
    """Cache the signatures of every input, params and resources callable of ``rules``.

    Also covers Snakemake's own ``Resource.evaluate``, through which every resource is
    evaluated. Returns how many callables were newly cached.
    """
    if not _reads_params_attr():
        return 0  # this Snakemake does not read the attribute: nothing to gain
    try:
        from snakemake.resources import Resource
    except ImportError:
        return 0
    count = int(cache_signature(getattr(Resource, "evaluate", None), method=True))
    for rule in rules:
        items = list(rule.input) + list(rule.params)
        items += [getattr(resource, "_evaluator", None) for resource in (rule.resources or {}).values()]
        for item in items:
            for func in _callables(item):
                count += cache_signature(func)
    return count


def check_scripts_once_per_rule() -> bool:
    """Check a rule's ``script:`` once per rule instead of once per job (when its path is fixed).

    After building the DAG, Snakemake checks for every job that its script can be read
    (``snakemake.dag.ScriptProcessor``): it formats the path with the job's wildcards and
    params, locates and reads the file (saving: see the module docstring). When the path
    holds no ``{`` (every rule of ours), the answer is the same for all jobs of the rule,
    so it is computed once; other paths are checked per job as before. Returns False when
    this Snakemake has no such processor.
    """
    try:
        from snakemake.dag import ScriptProcessor
    except ImportError:
        return False
    original = getattr(ScriptProcessor, "process_job", None)
    if original is None:
        return False
    if getattr(original, "_neurofuse_once_per_rule", False):
        return True

    def process_job(self, job):
        script = getattr(job.rule, self.script_type, None)
        fixed = isinstance(script, str) and "{" not in script
        if not (fixed and getattr(job, f"is_{self.script_type}")):
            return original(self, job)
        checked = self.__dict__.setdefault("_neurofuse_checked", set())
        key = (job.rule.name, str(job.rule.basedir), script)
        if key not in checked:
            original(self, job)  # raises for a script that cannot be read
            checked.add(key)

    process_job._neurofuse_once_per_rule = True
    process_job._neurofuse_original = original
    ScriptProcessor.process_job = process_job
    return True


def _path_parts(path: str, cwd: str) -> tuple[str, ...] | None:
    """``Path(path).absolute().parts`` for POSIX paths without pathlib (None: leave it to pathlib)."""
    if not path.startswith("/"):
        path = cwd + "/" + path
    if path.startswith("//") and not path.startswith("///"):
        return None  # pathlib keeps a leading '//' as its own root
    return ("/",) + tuple(part for part in path.split("/") if part and part != ".")


def check_outputs_with_tuples() -> bool:
    """Snakemake's check that no output lies inside another job's output, on tuples instead of Paths.

    ``DAG.check_directory_outputs`` sorts every output of every job as a ``pathlib.Path``
    and compares neighbours with ``os.path.commonpath`` (pathlib's comparisons are Python
    code; saving: see the module docstring). This version sorts the same
    paths as tuples of their parts (the order ``Path`` itself sorts by), compares the
    same neighbours by prefix, and raises the same error for the same pair; it falls back
    to the original where pathlib would read a path differently (a leading ``//``, or a
    platform other than POSIX). Returns False when this Snakemake has no such check.
    """
    import os
    from pathlib import Path

    try:
        from snakemake.dag import DAG
        from snakemake.exceptions import ChildIOException
    except ImportError:
        return False
    original = getattr(DAG, "check_directory_outputs", None)
    if original is None or os.name != "posix":
        return False
    if getattr(original, "_neurofuse_tuples", False):
        return True

    def check_directory_outputs(self):
        cwd = os.getcwd()
        entries = set()
        for job in self.jobs:
            for f in job.output:
                parts = _path_parts(str(f), cwd)
                if parts is None:
                    return original(self)
                entries.add((parts, job))
        outputs = sorted(entries)
        for i in range(len(outputs) - 1):
            (a, job_a), (b, job_b) = outputs[i : i + 2]
            if len(b) > len(a) and b[: len(a)] == a and job_a != job_b:
                parent, child = (Path(*a), job_a), (Path(*b), job_b)
                raise ChildIOException(parent=parent, child=child)

    check_directory_outputs._neurofuse_tuples = True
    check_directory_outputs._neurofuse_original = original
    DAG.check_directory_outputs = check_directory_outputs
    return True


def _shown(logger: Any, event: Any) -> bool:
    """Whether an INFO record of ``event`` would reach any handler of ``logger`` (or its ancestors')."""
    import logging

    if not logger.isEnabledFor(logging.INFO):
        return False
    record = logging.LogRecord(logger.name, logging.INFO, __file__, 0, "", None, None)
    record.event = event
    if not logger.filter(record):
        return False
    current = logger
    while current is not None:
        if any(record.levelno >= handler.level and handler.filter(record) for handler in current.handlers):
            return True
        current = current.parent if current.propagate else None
    return False


def describe_shown_jobs_only() -> bool:
    """Build a job's description for the log only when a log handler will show it.

    Before running a job (in a dry run: for every job, for the job stats), Snakemake
    formats its inputs, outputs, logs, reason and resources into a log record, then the
    handlers drop it under ``--quiet rules`` (``snakemake.logging.DefaultFilter``). When no
    handler of Snakemake's logger (nor of its ancestors) accepts a job-info or
    shell-command record, this skips building them -- for jobs whose rule has no shell
    command and no message (formatting those can raise; they are left to Snakemake) and
    is no checkpoint or hand-over (those log a line no filter drops). Returns False when
    this Snakemake has no such method.
    """
    try:
        from snakemake.jobs import Job
        from snakemake.logging import LogEvent, logger
    except ImportError:
        return False
    original = getattr(Job, "log_info", None)
    events = [getattr(LogEvent, name, None) for name in ("JOB_INFO", "SHELLCMD")]
    if original is None or None in events:
        return False
    if getattr(original, "_neurofuse_original", None) is not None:
        return True

    def log_info(self, indent=False, printshellcmd=True):
        rule = self.rule
        plain = not (rule.shellcmd or rule.message or rule.is_checkpoint or rule.is_handover)
        if plain and not any(_shown(logger, event) for event in events):
            return None
        return original(self, indent=indent, printshellcmd=printshellcmd)

    log_info._neurofuse_original = original
    Job.log_info = log_info
    return True


def speed_up(rules: Iterable[Any]) -> list[str]:
    """Apply the measures of this module to a workflow's rules; the names of those in effect.

    The two replacements of Snakemake code are made only for the Snakemake major version
    they were written against (9). Measures turned off by ``NEUROFUSE_PLAIN_SNAKEMAKE``
    are not applied, and a replacement made earlier in this process is undone.
    """
    import snakemake

    off = turned_off()
    applied = []
    if "signatures" not in off and _reads_params_attr():
        cache_signatures(rules)
        applied.append("signatures")
    major_9 = str(getattr(snakemake, "__version__", "")).split(".")[0] == "9"
    for name, apply, owner, attr in (("scripts", check_scripts_once_per_rule, "dag.ScriptProcessor", "process_job"),
                                     ("outputs", check_outputs_with_tuples, "dag.DAG", "check_directory_outputs"),
                                     ("unshown", describe_shown_jobs_only, "jobs.Job", "log_info")):
        if name not in off and major_9 and apply():
            applied.append(name)
        elif name in off:
            _restore(owner, attr)
    return applied


def _restore(owner: str, attr: str) -> None:
    """Put Snakemake's own ``snakemake.<module>.<class>.<attr>`` back if this module replaced it."""
    import importlib

    module, _, name = owner.rpartition(".")
    cls = getattr(importlib.import_module(f"snakemake.{module}"), name, None)
    original = getattr(getattr(cls, attr, None), "_neurofuse_original", None)
    if original is not None:
        setattr(cls, attr, original)
