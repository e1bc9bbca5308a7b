//! Integration tests of the `sipline` jobs: the real binary against real files, a real local
//! HTTP server and a real PostgreSQL. One test crate, so it links once.

mod abuse;
mod api;
mod charts;
mod copy_binary;
mod crash;
mod date_rules;
mod debits;
mod error_reports;
// The capital-gains oracle written from the rules alone (issue 36), shared with pipeline's tests.
#[path = "../../../pipeline/tests/support/gains_oracle.rs"]
mod gains_oracle;
mod graphql;
mod housekeeping;
mod intraday;
mod journey;
mod monitoring;
mod nav_ingest;
mod notify;
mod operations;
mod portfolio;
mod preferences;
mod publish;
mod replica;
mod rerun;
mod rerun_property;
mod schemes;
mod secrets;
mod sip;
mod sip_changes;
mod sql;
mod statements;
mod support;
mod traces;
