//! How users are spread over the warehouse's buckets: the unit a shard reads and writes, and
//! the `bucket=` directory of every per-user table (`warehouse::layout` re-exports this).

/// Users, and everything keyed by user, are split into this many buckets by
/// `user_id % BUCKETS`. A shard `i/N` owns the buckets `b` with `b % N == i`, so any N that
/// divides 64 balances exactly.
pub const BUCKETS: u32 = 64;

pub fn bucket_of(user_id: i64) -> u32 {
    user_id.rem_euclid(i64::from(BUCKETS)) as u32
}
