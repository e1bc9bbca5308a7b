//! sipline's domain: exact money and NAV types, the NAV file formats AMFI and BSE publish, the
//! business calendar, the SIP execution rules, holdings, valuation and the synthetic universe.
//! No Arrow, no DataFusion: the tables' encodings live with the tables in `warehouse::schema`.
//! Nothing here touches the network, a database or
//! a file system beyond the `BufRead` it is handed; that keeps every rule testable on a few rows.
//!
//! Modules depend one way: `money` and `calendar` at the bottom; `nav`, `user`, `sip`,
//! `holdings`, `xirr` and `valuation` own their row types; `generate` builds a universe from all
//! of them.

pub mod bucket;
pub mod calendar;
pub mod debits;
pub mod generate;
pub mod holdings;
pub mod money;
pub mod nav;
pub mod orders;
pub mod sip;
pub mod user;
pub mod valuation;
pub mod xirr;
