//! Who invests: the warehouse's `users` rows, written by sign-up exports and by `generate`.

/// A `users` row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserRow {
    pub user_id: i64,
    pub auth_subject: String,
    /// Microseconds since the epoch, UTC.
    pub created_at_micros: i64,
}
