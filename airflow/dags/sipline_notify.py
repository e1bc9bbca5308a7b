"""Notification dispatch every minute: one bounded `notify dispatch` pass over the outbox
(webhook, email, SMS, push; retries and dead letters are the job's own). A pass that is still
busy when the next minute comes is not doubled up (one run at a time); several dispatchers
could share the queue safely, but one pass a minute plus a `notify worker` service for low
latency is the usual set-up.

Channel endpoints and the signing secret come from the worker's environment
(SIPLINE_WEBHOOK_URL, SIPLINE_WEBHOOK_SECRET, SIPLINE_SMTP_RELAY, …; see the README). Rotating
a key sets SIPLINE_WEBHOOK_PREVIOUS_SECRET there too, after `serve` holds any new link or callback
key (README, "Rotating a signing key").
"""

from __future__ import annotations

from datetime import timedelta

import pendulum
from airflow.sdk import DAG, CronTriggerTimetable

from sipline_common import DEFAULT_ARGS, IST, MACROS, SiplineOperator

with DAG(
    dag_id="sipline_notify",
    description="Deliver the notification outbox",
    schedule=CronTriggerTimetable("* * * * *", timezone=IST),
    start_date=pendulum.datetime(2025, 1, 1, tz=IST),
    catchup=False,
    max_active_runs=1,
    dagrun_timeout=timedelta(minutes=10),
    default_args={**DEFAULT_ARGS, "retries": 0},
    user_defined_macros=MACROS,
    tags=["sipline"],
) as dag:
    SiplineOperator(
        task_id="notify_dispatch",
        arguments=["notify", "dispatch", "--max-batches", "200"],
        execution_timeout=timedelta(minutes=9),
    )
