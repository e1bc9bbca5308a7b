"""The DAGs under a real Apache Airflow: they import, their task graphs are what the README
says, every task's command line is one `sipline` accepts, and the operator turns the real
binary's exit codes into the right Airflow outcome.

Needs SIPLINE_BIN (the built `sipline`); .ci/run sets it.
"""

from __future__ import annotations

import os
import subprocess
import types
from pathlib import Path

import pendulum
import pytest
from airflow.dag_processing.dagbag import DagBag
from airflow.sdk.definitions.mappedoperator import MappedOperator
from airflow.sdk.exceptions import AirflowException, AirflowFailException, AirflowSkipException

DAGS = Path(__file__).resolve().parent.parent / "dags"
SIPLINE = os.environ["SIPLINE_BIN"]


@pytest.fixture(scope="module")
def dagbag() -> DagBag:
    return DagBag(dag_folder=str(DAGS))


def test_dags_import_without_errors(dagbag):
    assert dagbag.import_errors == {}
    assert set(dagbag.dag_ids) == {"sipline_daily", "sipline_hourly", "sipline_notify"}


def upstream(dag) -> dict[str, set[str]]:
    return {task.task_id: set(task.upstream_task_ids) for task in dag.tasks}


def test_daily_runs_ingest_then_execution_then_valuation_then_publish(dagbag):
    dag = dagbag.get_dag("sipline_daily")
    assert upstream(dag) == {
        "business_day": set(),
        "nav_ingest_amfi": {"business_day"},
        "sips_export": {"business_day"},
        "debits_ingest": {"sips_export"},
        "sip_execute": {"nav_ingest_amfi", "debits_ingest"},
        "orders_execute": {"sip_execute"},
        "portfolio_value": {"orders_execute"},
        "publish": {"portfolio_value"},
        "housekeeping": {"publish"},
    }
    # The batches fan out over the shards; dates run one at a time, in order.
    for task_id in ("sip_execute", "portfolio_value"):
        task = dag.get_task(task_id)
        assert isinstance(task, MappedOperator)
        assert task.partial_kwargs["depends_on_past"] is True
    assert dag.max_active_runs == 1
    # A late NAV file is retried for hours; the rest retries a few times.
    assert dag.get_task("nav_ingest_amfi").retries >= 12
    assert all(task.execution_timeout is not None for task in dag.tasks)
    assert dag.get_task("business_day").retries == 0


def test_hourly_values_every_shard_without_xirr_then_publishes(dagbag):
    dag = dagbag.get_dag("sipline_hourly")
    assert upstream(dag) == {
        "portfolio_value_hourly": set(),
        "publish_hourly": {"portfolio_value_hourly"},
    }
    task = dag.get_task("portfolio_value_hourly")
    assert "--hourly" in task.partial_kwargs["arguments"]
    assert dag.get_task("publish_hourly").arguments[:2] == ["publish", "--hourly"]


def test_notify_dispatches_every_minute_one_pass_at_a_time(dagbag):
    dag = dagbag.get_dag("sipline_notify")
    assert upstream(dag) == {"notify_dispatch": set()}
    assert dag.max_active_runs == 1
    assert dag.get_task("notify_dispatch").arguments[:2] == ["notify", "dispatch"]


def commands(dag, logical_date) -> list[tuple[str, list[str]]]:
    """Every task's command for one run, templates rendered as Airflow renders them."""
    env = dag.get_template_env()
    context = {
        "logical_date": logical_date,
        "dag_run": types.SimpleNamespace(run_after=logical_date),
        "var": types.SimpleNamespace(value=types.SimpleNamespace(get=lambda key, default=None: default)),
        **dag.user_defined_macros,
    }
    render = lambda text: env.from_string(text).render(**context)  # noqa: E731
    out = []
    for task in dag.tasks:
        if isinstance(task, MappedOperator):
            arguments = task.partial_kwargs["arguments"]
            for shard in task.expand_input.value["shard"]:
                out.append((task.task_id, [render(a) for a in arguments] + ["--shard", shard]))
        else:
            out.append((task.task_id, [render(a) for a in task.arguments]))
    return out


@pytest.mark.parametrize("dag_id", ["sipline_daily", "sipline_hourly", "sipline_notify"])
def test_every_task_command_is_one_sipline_accepts(dagbag, dag_id):
    # 23:00 IST on Tuesday 2025-03-04 (the daily trigger), and 00:05 IST on Wednesday.
    for logical_date in (
        pendulum.datetime(2025, 3, 4, 17, 30, tz="UTC"),
        pendulum.datetime(2025, 3, 4, 18, 35, tz="UTC"),
    ):
        rendered = commands(dagbag.get_dag(dag_id), logical_date)
        assert rendered
        for task_id, arguments in rendered:
            # As on a worker, whose environment holds the dispatcher's signing secret.
            run = subprocess.run(
                [SIPLINE, "--check-args", *arguments],
                capture_output=True,
                text=True,
                env={**os.environ, "SIPLINE_WEBHOOK_SECRET": "from-the-environment"},
            )
            assert run.returncode == 0, (task_id, arguments, run.stderr)


def test_the_business_date_is_the_ist_day_of_the_run(dagbag):
    daily = dict(commands(dagbag.get_dag("sipline_daily"), pendulum.datetime(2025, 3, 4, 17, 30, tz="UTC")))
    assert daily["publish"] == ["publish", "--date", "2025-03-04"]
    hourly = commands(dagbag.get_dag("sipline_hourly"), pendulum.datetime(2025, 3, 4, 18, 35, tz="UTC"))
    # 00:05 IST on the 5th values the 4th's holdings, stored as hour 0.
    assert hourly[0][1][:7] == ["portfolio", "value", "--hourly", "--date", "2025-03-04", "--hour", "0"]
    assert dict(hourly)["publish_hourly"] == ["publish", "--hourly", "--date", "2025-03-04"]


def run_operator(arguments):
    from sipline_common import SiplineOperator

    os.environ["SIPLINE_BIN"] = SIPLINE
    return SiplineOperator(task_id="probe", arguments=arguments).execute(context={})


def test_exit_codes_become_skip_retry_or_fail(tmp_path):
    warehouse = ["--warehouse", str(tmp_path)]
    # A business day: success, the summary line is the XCom.
    assert "is a business day" in run_operator(["calendar", "check", "--date", "2025-03-04"])
    # Holi: the day's tasks are skipped.
    with pytest.raises(AirflowSkipException):
        run_operator(["calendar", "check", "--date", "2025-03-14"])
    # Nothing to execute yet (exit 4): a retryable failure, not a final one.
    with pytest.raises(AirflowException) as missing:
        run_operator(["sip", "execute", "--date", "2025-03-04", *warehouse])
    assert not isinstance(missing.value, AirflowFailException)
    assert "exit 4" in str(missing.value)
    # A usage error (exit 2): final, no retry.
    with pytest.raises(AirflowFailException) as usage:
        run_operator(["sip", "execute", "--date", "2025-02-30", *warehouse])
    assert "exit 2" in str(usage.value)
    # Bad input (exit 3): a NAV file with an impossible date is final, no retry.
    bad = tmp_path / "NAVAll.txt"
    bad.write_text(
        "Scheme Code;ISIN Div Payout/ ISIN Growth;ISIN Div Reinvestment;Scheme Name;Net Asset Value;Date\r\n"
        "119551;INF209KA12Z1;-;Some Fund - Direct Growth;105.0576;31-Feb-2024\r\n"
    )
    with pytest.raises(AirflowFailException) as bad_input:
        run_operator(["nav", "ingest", "--source", "amfi", "--input", str(bad), *warehouse])
    assert "exit 3" in str(bad_input.value)
    # An internal error (exit 1: here the database is unreachable): retried, not final.
    with pytest.raises(AirflowException) as internal:
        run_operator(["db", "migrate", "--database-url", "postgres://sipline@127.0.0.1:1/none"])
    assert not isinstance(internal.value, (AirflowFailException, AirflowSkipException))
    assert "exit 1" in str(internal.value)


def test_no_nav_dated_the_day_retries_then_ends_the_night_waiting(tmp_path):
    """A market holiday the list does not have: AMFI's file still shows the previous business
    day. `nav ingest --date D` exits 7; the task retries like a late file, and on its last try
    the night ends skipped (downstream skipped too), not failed: nobody is paged, and the next
    business day's run settles the day."""
    from types import SimpleNamespace

    from sipline_common import SiplineOperator

    os.environ["SIPLINE_BIN"] = SIPLINE
    monday = tmp_path / "NAVAll.txt"
    monday.write_text(
        "Scheme Code;ISIN Div Payout/ ISIN Growth;ISIN Div Reinvestment;Scheme Name;Net Asset Value;Date\r\n"
        "Open Ended Schemes(Equity Scheme - Large Cap Fund)\r\n"
        "Some Mutual Fund\r\n"
        "119551;INF209KA12Z1;-;Some Fund - Direct Growth;105.0576;25-Jan-2027\r\n"
    )
    arguments = ["nav", "ingest", "--source", "amfi", "--input", str(monday), "--date", "2027-01-26",
                 "--warehouse", str(tmp_path / "wh")]
    task = SiplineOperator(task_id="nav_ingest_amfi", arguments=arguments, retries=24)
    with pytest.raises(AirflowException) as early:
        task.execute(context={"ti": SimpleNamespace(try_number=1)})
    assert not isinstance(early.value, (AirflowFailException, AirflowSkipException))
    assert "exit 7" in str(early.value)
    with pytest.raises(AirflowSkipException) as deadline:
        task.execute(context={"ti": SimpleNamespace(try_number=25)})
    assert "exit 7" in str(deadline.value) and "next business day" in str(deadline.value)


def test_the_job_is_told_which_task_and_run_it_is(tmp_path):
    from sipline_common import SiplineOperator

    # A stand-in binary that prints what it was told, as its summary line.
    probe = tmp_path / "sipline"
    probe.write_text(
        "#!/bin/sh\n"
        'echo "$AIRFLOW_CTX_DAG_ID $AIRFLOW_CTX_TASK_ID $AIRFLOW_CTX_DAG_RUN_ID $AIRFLOW_CTX_TRY_NUMBER $*"\n'
    )
    probe.chmod(0o755)
    os.environ["SIPLINE_BIN"] = str(probe)
    try:
        ti = types.SimpleNamespace(dag_id="sipline_daily", task_id="publish", try_number=2)
        summary = SiplineOperator(task_id="publish", arguments=["publish", "--date", "2025-03-04"]).execute(
            context={"ti": ti, "run_id": "scheduled__2025-03-04T17:30:00+00:00"}
        )
    finally:
        os.environ["SIPLINE_BIN"] = SIPLINE
    assert summary == "sipline_daily publish scheduled__2025-03-04T17:30:00+00:00 2 publish --date 2025-03-04"
