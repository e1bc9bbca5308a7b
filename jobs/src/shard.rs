//! `--shard i/N`: which buckets of users a job instance owns. Bucket `b` belongs to shard
//! `b % N`, so N shards together cover every bucket exactly once, and each one reads and
//! writes only its own buckets' files.

use std::fmt;
use std::str::FromStr;

use warehouse::BUCKETS;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    pub index: u32,
    pub count: u32,
}

impl Shard {
    pub const ALL: Shard = Shard { index: 0, count: 1 };

    pub fn buckets(self) -> impl Iterator<Item = u32> {
        (0..BUCKETS).filter(move |b| b % self.count == self.index)
    }

    /// Work that is not per user (the scheme master, NAV history) is done by shard 0 only.
    pub fn is_first(self) -> bool {
        self.index == 0
    }
}

impl Default for Shard {
    fn default() -> Self {
        Self::ALL
    }
}

impl fmt::Display for Shard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

impl FromStr for Shard {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let usage = || format!("`{text}`: expected i/N with 0 <= i < N <= {BUCKETS}, e.g. 0/4");
        let (index, count) = text.split_once('/').ok_or_else(usage)?;
        let index: u32 = index.trim().parse().map_err(|_| usage())?;
        let count: u32 = count.trim().parse().map_err(|_| usage())?;
        if count == 0 || count > BUCKETS || index >= count {
            return Err(usage());
        }
        Ok(Shard { index, count })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_cover_every_bucket_once() {
        for count in [1, 3, 4, 7, 64] {
            let mut seen: Vec<u32> = (0..count)
                .flat_map(|index| Shard { index, count }.buckets())
                .collect();
            seen.sort();
            assert_eq!(seen, (0..BUCKETS).collect::<Vec<_>>());
        }
        assert_eq!("1/4".parse(), Ok(Shard { index: 1, count: 4 }));
        for bad in ["4/4", "1", "a/2", "0/0", "0/65"] {
            assert!(bad.parse::<Shard>().is_err(), "{bad}");
        }
    }
}
