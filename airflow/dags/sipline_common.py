"""What every sipline DAG shares: the operator that runs one `sipline` command, and the
conventions it maps — the business date of a run, the shards, the exit codes.

Each task is one idempotent `sipline` command keyed by the run's business date, so a retry,
a re-run or a backfill of a date writes the same output. Configuration comes from the worker's
environment, as for cron (see the README's Deployment section):

    SIPLINE_BIN         the sipline binary (default: `sipline` on PATH)
    SIPLINE_WAREHOUSE   the warehouse: a folder or an object-store URL (s3://bucket/prefix)
    DATABASE_URL        PostgreSQL, for sips export, publish and job_runs
    SIPLINE_SHARDS      how many shards the batches fan out to (read when the DAG is parsed)
"""

from __future__ import annotations

import os
import signal
import subprocess
from datetime import timedelta

import pendulum

# Airflow 3's task SDK: the interface DAG authors are promised stays stable across 3.x.
from airflow.sdk import BaseOperator
from airflow.sdk.exceptions import AirflowException, AirflowFailException, AirflowSkipException

IST = pendulum.timezone("Asia/Kolkata")

# sipline's exit codes (`sipline --help`).
EXIT_OK = 0
EXIT_USAGE = 2
EXIT_BAD_INPUT = 3
EXIT_MISSING_UPSTREAM = 4
EXIT_NOT_A_BUSINESS_DAY = 5
EXIT_LATER_DATES_RAN = 6
EXIT_NO_NAV_DATED_YET = 7


def _in_ist(logical_date, dag_run=None):
    """A run's moment in IST. Airflow 3 runs triggered by hand may have no logical date:
    those are for the moment they were asked to run after (`run_after`)."""
    moment = logical_date if logical_date is not None else getattr(dag_run, "run_after", None)
    if moment is None:
        raise ValueError("a sipline run needs a logical date or a run_after time")
    return pendulum.instance(moment).in_timezone(IST)


def business_date(logical_date, dag_run=None) -> str:
    """The date a run is for: its logical date in IST, where NAVs and SIPs are dated."""
    return _in_ist(logical_date, dag_run).strftime("%Y-%m-%d")


def previous_date(logical_date, dag_run=None) -> str:
    """The day before the run's date in IST: what an intraday run can value."""
    return (_in_ist(logical_date, dag_run) - timedelta(days=1)).strftime("%Y-%m-%d")


def ist_hour(logical_date, dag_run=None) -> int:
    return _in_ist(logical_date, dag_run).hour


# Available in every sipline DAG's templates.
MACROS = {
    "business_date": business_date,
    "previous_date": previous_date,
    "ist_hour": ist_hour,
}

DATE = "{{ business_date(logical_date, dag_run) }}"


def shards() -> list[str]:
    """`--shard i/N` for every shard: the batches fan out over them with dynamic task mapping,
    so a Celery or Kubernetes executor spreads them over workers."""
    count = int(os.environ.get("SIPLINE_SHARDS", "4"))
    if count < 1:
        raise ValueError(f"SIPLINE_SHARDS must be at least 1, not {count}")
    return [f"{i}/{count}" for i in range(count)]


def sipline_bin() -> str:
    return os.environ.get("SIPLINE_BIN", "sipline")


DEFAULT_ARGS = {
    "owner": "sipline",
    "retries": 3,
    "retry_delay": timedelta(minutes=2),
    "retry_exponential_backoff": True,
    "max_retry_delay": timedelta(minutes=30),
    "execution_timeout": timedelta(hours=1),
}


class SiplineOperator(BaseOperator):
    """Runs `sipline <arguments> [--shard i/N]`, streams its output into the task log, and
    turns its exit code into what Airflow should do next:

    - 0: success; the job's one-line summary (its last stdout line) goes to XCom.
    - 2 (usage), 3 (bad input): fail now, no retry — re-running cannot fix the input.
    - 4 (missing upstream, e.g. the NAV file is not published yet): fail this try, retry.
    - 5 (not a business day, from `calendar check`): skip, and the day's tasks with it.
    - 6 (a past date re-run after later dates ran, without `--rewind`): fail now, no retry.
    - anything else (internal error, killed): fail this try, retry.
    """

    template_fields = ("arguments", "shard")
    ui_color = "#e8f4ea"

    def __init__(self, *, arguments: list[str], shard: str | None = None, **kwargs):
        super().__init__(**kwargs)
        self.arguments = arguments
        self.shard = shard
        self._process: subprocess.Popen | None = None

    def command(self) -> list[str]:
        command = [sipline_bin(), *self.arguments]
        if self.shard is not None:
            command += ["--shard", self.shard]
        return command

    def execute(self, context):
        command = self.command()
        self.log.info("running: %s", shown(command))
        # Its own process group, so on_kill stops the job and anything it started.
        self._process = subprocess.Popen(
            command,
            env={**os.environ, **airflow_environment(context)},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        summary = None
        assert self._process.stdout is not None
        for line in self._process.stdout:
            line = line.rstrip("\n")
            self.log.info("%s", line)
            if line.strip():
                summary = line
        code = self._process.wait()
        ti = context.get("ti")
        # max_tries, not retries: a cleared task instance has its tries extended.
        max_tries = getattr(ti, "max_tries", None)
        if max_tries is None:
            max_tries = self.retries or 0
        final_try = getattr(ti, "try_number", 1) > max_tries
        return exit_code_outcome(code, command, summary, final_try=final_try)

    def on_kill(self):
        if self._process is not None and self._process.poll() is None:
            os.killpg(self._process.pid, signal.SIGTERM)


def airflow_environment(context) -> dict[str, str]:
    """What the job is told about the task running it (Airflow's own `AIRFLOW_CTX_*` names):
    its trace's root span carries them, so each task of a nightly run is one trace that
    names the DAG run (see the README's Traces)."""
    ti = context.get("ti")
    values = {
        "AIRFLOW_CTX_DAG_ID": getattr(ti, "dag_id", None),
        "AIRFLOW_CTX_TASK_ID": getattr(ti, "task_id", None),
        "AIRFLOW_CTX_DAG_RUN_ID": context.get("run_id"),
        "AIRFLOW_CTX_TRY_NUMBER": getattr(ti, "try_number", None),
    }
    return {name: str(value) for name, value in values.items() if value is not None}


def shown(command: list[str]) -> str:
    """A command as it may be logged: URLs (signed queries, tokens in paths) reduced to their
    scheme and host, as the cron script and sipline's own logs show them."""
    out = []
    for arg in command:
        if "://" in arg:
            scheme, rest = arg.split("://", 1)
            host = rest.split("/", 1)[0].split("?", 1)[0].split("#", 1)[0].rsplit("@", 1)[-1]
            out.append(f"{scheme}://{host}/…")
        else:
            out.append(arg)
    return " ".join(out)


def exit_code_outcome(code: int, command: list[str], summary: str | None, final_try: bool = False):
    """What a sipline exit code means for Airflow (see SiplineOperator). `final_try`: no
    retry is left, the night's deadline has come."""
    shown_command = shown(command)
    if code == EXIT_OK:
        return summary
    if code == EXIT_NOT_A_BUSINESS_DAY:
        raise AirflowSkipException(f"not a business day: {shown_command}")
    if code in (EXIT_USAGE, EXIT_BAD_INPUT):
        raise AirflowFailException(
            f"exit {code} (bad input or usage, retrying will not help): {shown_command}"
        )
    if code == EXIT_LATER_DATES_RAN:
        raise AirflowFailException(
            f"exit 6 (later dates already ran; re-run with --rewind, then re-run them): {shown_command}"
        )
    if code == EXIT_NO_NAV_DATED_YET:
        if final_try:
            # On a market holiday the file never shows the day: the night ends waiting, not
            # failed, and pages nobody. The next business day's file settles it (a weekday
            # without NAVs between two with NAVs is a holiday; what fell due then is bought at
            # that next day's NAV), and its run's window covers tonight's instalments.
            raise AirflowSkipException(
                f"exit 7 (no NAV dated the day by the deadline: a market holiday, or AMFI very late; "
                f"the next business day's run settles it): {shown_command}"
            )
        raise AirflowException(f"exit 7 (no NAV dated the day yet, will retry): {shown_command}")
    if code == EXIT_MISSING_UPSTREAM:
        raise AirflowException(f"exit 4 (upstream not there yet, will retry): {shown_command}")
    raise AirflowException(f"exit {code} (internal error): {shown_command}")
