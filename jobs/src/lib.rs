//! The batch jobs of sipline as a library: each module is one job (`nav_ingest`,
//! `sip_execute`, `debits_ingest`, `portfolio_value`, `publish`, `sips_export`, `notify`, `generate`,
//! `nav_sample`, `sql`), plus what they share that is not warehouse access (`exit` codes,
//! `fetch` with retries, `postgres` connections, `job_runs`, `shard`, `progress`). No job
//! imports another: what two jobs read lives in `warehouse`. The `sipline` binary is
//! `main.rs`; `cli` holds its arguments and `commands` turns them into job options.

pub mod cli;
pub mod commands;
pub mod debits_ingest;
pub mod demo;
pub mod generate;
pub mod housekeeping;
pub mod job_runs;
pub mod nav_ingest;
pub mod nav_sample;
pub mod notify;
pub mod orders_execute;
pub mod plumbing;
pub mod portfolio_value;
pub mod publish;
pub mod scheme_rules;
pub mod shard;
pub mod sip_execute;
pub mod sips_export;
pub mod sql;
pub mod totals;
