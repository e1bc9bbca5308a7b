"""The nightly pipeline for one business date D (the run's logical date in IST):

    business_day ─┬─ nav_ingest_amfi ─────────────────┬─ sip_execute[shards] ── orders_execute ── portfolio_value[shards] ── publish ── housekeeping
                  └─ sips_export ── debits_ingest ────┘

AMFI publishes NAVAll.txt late in the evening IST; the run starts at 23:00 IST on weekdays and
`nav_ingest_amfi` retries (exit 4: the day's NAVs only partly out; exit 7: none dated D yet)
every 15 minutes for up to six hours. Still none dated D at the last try is a market holiday
nobody listed (AMFI's file keeps the previous business day's NAVs) or a very late file: the
task is skipped, so is the rest of the night, and nothing fails; the next business day's file
settles it and that run buys what fell due on D at its NAV. `debits_ingest` reads the bank's debit report for D (the Variable
`sipline_debit_report_url`, `{date}` replaced by D): its returns fail instalments due tonight
and reverse ones allotted earlier; a report not there means no returns tonight. NSE holidays skip the whole run (`calendar check` exits 5). Dates must run in order
(a day's execution reads the previous day's state): one run at a time, and the batches wait
for the previous date's success.
"""

from __future__ import annotations

from datetime import timedelta

import pendulum
from airflow.sdk import DAG, CronTriggerTimetable

from sipline_common import DATE, DEFAULT_ARGS, IST, MACROS, SiplineOperator, shards

AMFI_URL = "{{ var.value.get('sipline_amfi_navall_url', 'https://www.amfiindia.com/spages/NAVAll.txt') }}"
DEBIT_REPORT_URL = "{{ var.value.get('sipline_debit_report_url', '/var/lib/sipline/debits/{date}.csv') }}"

with DAG(
    dag_id="sipline_daily",
    description="NAV ingest, SIP execution, daily valuation with XIRR, publish",
    # The trigger time is the logical date, so D is the day the run starts on (IST).
    schedule=CronTriggerTimetable("0 23 * * 1-5", timezone=IST),
    start_date=pendulum.datetime(2025, 1, 1, tz=IST),
    catchup=False,
    max_active_runs=1,
    dagrun_timeout=timedelta(hours=10),
    default_args=DEFAULT_ARGS,
    user_defined_macros=MACROS,
    tags=["sipline"],
) as dag:
    business_day = SiplineOperator(
        task_id="business_day",
        arguments=["calendar", "check", "--date", DATE],
        retries=0,
        execution_timeout=timedelta(minutes=1),
    )
    nav_ingest_amfi = SiplineOperator(
        task_id="nav_ingest_amfi",
        arguments=["nav", "ingest", "--source", "amfi", "--input", AMFI_URL, "--date", DATE],
        retries=24,
        retry_delay=timedelta(minutes=15),
        retry_exponential_backoff=False,
        execution_timeout=timedelta(minutes=20),
    )
    # Mandates clients created through the API since yesterday, for tonight's execution.
    sips_export = SiplineOperator(
        task_id="sips_export",
        arguments=["sips", "export", "--date", DATE],
        execution_timeout=timedelta(minutes=30),
    )
    # The bank's returns, checked against tonight's mandates, for tonight's execution.
    debits_ingest = SiplineOperator(
        task_id="debits_ingest",
        arguments=["debits", "ingest", "--input", DEBIT_REPORT_URL, "--date", DATE, "--missing-ok"],
        execution_timeout=timedelta(minutes=20),
    )
    # Dates run in order (max_active_runs=1, depends_on_past), so a normal run has no later
    # date and `--rewind` retires nothing. A run that finds later dates is a clear of a past
    # date: the rewind retires their execution and valuation output (never settling an
    # instalment twice), and "clear with future" re-runs them in order. An uncleared later
    # date loses nothing either: the next run's window covers its instalments.
    sip_execute = SiplineOperator.partial(
        task_id="sip_execute",
        arguments=["sip", "execute", "--date", DATE, "--rewind"],
        depends_on_past=True,
        execution_timeout=timedelta(minutes=30),
    ).expand(shard=shards())
    # Orders placed through the API whose NAV date is the date (lumpsums, redemptions,
    # switches), against the lots tonight's SIP instalments left; one task: orders are few.
    orders_execute = SiplineOperator(
        task_id="orders_execute",
        arguments=["orders", "execute", "--date", DATE],
        depends_on_past=True,
        execution_timeout=timedelta(minutes=30),
    )
    portfolio_value = SiplineOperator.partial(
        task_id="portfolio_value",
        arguments=["portfolio", "value", "--date", DATE],
        depends_on_past=True,
        execution_timeout=timedelta(minutes=45),
    ).expand(shard=shards())
    publish = SiplineOperator(
        task_id="publish",
        arguments=["publish", "--date", DATE],
        execution_timeout=timedelta(hours=1),
    )
    # What the serving store no longer needs (idempotency keys, settled notifications archived
    # to the warehouse first, old job runs): after the night's publish, so it never competes
    # with it. Retentions are `sipline housekeeping --help`'s defaults.
    housekeeping = SiplineOperator(
        task_id="housekeeping",
        arguments=["housekeeping"],
        execution_timeout=timedelta(minutes=30),
    )

    business_day >> [nav_ingest_amfi, sips_export]
    sips_export >> debits_ingest
    [nav_ingest_amfi, debits_ingest] >> sip_execute >> orders_execute >> portfolio_value
    portfolio_value >> publish >> housekeeping
