//! What every job stands on and no job owns: the PostgreSQL connection and its COPY paths,
//! downloads, logs and traces, redaction of secrets, exit codes, memory and progress.
//! Nothing here imports a job or the command line; the jobs import it.

pub mod copy_binary;
pub mod error_reports;
pub mod exit;
pub mod fetch;
pub mod memory;
pub mod postgres;
pub mod progress;
pub mod redact;
pub mod telemetry;
