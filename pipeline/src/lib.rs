//! sipline's domain: exact money and NAV types, the NAV file formats AMFI and BSE publish, the
//! business calendar, the SIP execution rules, the synthetic universe, and the Arrow schemas of
//! the warehouse tables. Nothing here touches the network, a database or a file system beyond
//! the `BufRead` it is handed; that keeps every rule testable on a few rows.

pub mod calendar;
pub mod generate;
pub mod money;
pub mod nav;
pub mod schema;
pub mod sip;
pub mod valuation;
pub mod xirr;
