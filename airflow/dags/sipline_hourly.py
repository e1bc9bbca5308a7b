"""Intraday valuation: every hour, every user's portfolio without XIRR (a daily figure) into
`portfolio_hourly`, fanned out over the shards, then published to the API.

    portfolio_value_hourly[shards] ── publish_hourly

NAVs are published once a day, after the close, and corrected during the next; an intraday
run values the holdings of the last executed day (the day before the run's date, IST) at the
latest NAVs, stored with the hour it ran for. `publish --hourly` writes only the users whose
numbers changed since what the API shows, and skips (succeeds) when a newer hour or the next
daily publication is already served. Missed hours are not caught up: the next hour supersedes
them.
"""

from __future__ import annotations

from datetime import timedelta

import pendulum
from airflow.sdk import DAG, CronTriggerTimetable

from sipline_common import DEFAULT_ARGS, IST, MACROS, SiplineOperator, shards

with DAG(
    dag_id="sipline_hourly",
    description="Hourly portfolio valuation (no XIRR)",
    schedule=CronTriggerTimetable("5 * * * *", timezone=IST),
    start_date=pendulum.datetime(2025, 1, 1, tz=IST),
    catchup=False,
    max_active_runs=1,
    dagrun_timeout=timedelta(minutes=55),
    default_args={**DEFAULT_ARGS, "retries": 2, "retry_delay": timedelta(minutes=5)},
    user_defined_macros=MACROS,
    tags=["sipline"],
) as dag:
    portfolio_value_hourly = SiplineOperator.partial(
        task_id="portfolio_value_hourly",
        arguments=[
            "portfolio", "value", "--hourly",
            "--date", "{{ previous_date(logical_date, dag_run) }}",
            "--hour", "{{ ist_hour(logical_date, dag_run) }}",
        ],
        execution_timeout=timedelta(minutes=20),
    ).expand(shard=shards())
    publish_hourly = SiplineOperator(
        task_id="publish_hourly",
        arguments=["publish", "--hourly", "--date", "{{ previous_date(logical_date, dag_run) }}"],
        execution_timeout=timedelta(minutes=10),
    )

    portfolio_value_hourly >> publish_hourly
