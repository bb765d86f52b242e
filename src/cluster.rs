//! Several daemons, one plant: which instance this is, and which sensors it owns.
//!
//! Daemons of a pair share everything (`cluster.shards = 1`, the default): each watches every
//! sensor, and identical anomalies collapse in Redis. With `cluster.shards = N`, the sensors are
//! split: a daemon with `cluster.shard = i` takes only the sensors whose id hashes to `i`:
//!
//! ```text
//! shard(sensor_id) = FNV-1a-64(the id's UTF-8 bytes) mod N
//! ```
//!
//! (FNV-1a with the 64-bit offset basis 0xcbf29ce484222325 and prime 0x100000001b3: an operator
//! can compute where a sensor lives with a few lines of any language; `GET /status` → `cluster`
//! shows it too, and a reading sent to the wrong shard is answered 421 naming the right one.)

use std::hash::Hasher;

/// The shard a sensor belongs to among `shards`.
pub fn shard_of(sensor_id: &str, shards: u32) -> u32 {
    let mut hasher = fnv::FnvHasher::default();
    hasher.write(sensor_id.as_bytes());
    u32::try_from(hasher.finish() % u64::from(shards.max(1))).unwrap_or(0)
}

/// Which sensors this daemon takes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Sharding {
    pub shards: u32,
    pub shard: u32,
}

impl Sharding {
    pub fn owns(&self, sensor_id: &str) -> bool {
        self.shards <= 1 || shard_of(sensor_id, self.shards) == self.shard
    }

    /// The shard that owns `sensor_id`.
    pub fn owner(&self, sensor_id: &str) -> u32 {
        shard_of(sensor_id, self.shards)
    }
}

/// This host's name, the default instance id.
pub fn hostname() -> String {
    let name = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| std::fs::read_to_string("/etc/hostname"))
        .unwrap_or_default();
    let name: String =
        name.trim().chars().filter(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')).take(64).collect();
    if name.is_empty() { "wtf-monitor".to_owned() } else { name }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_hash_is_the_documented_fnv_1a() {
        // FNV-1a-64("wtf-pipe-1") computed independently.
        let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
        for byte in b"wtf-pipe-1" {
            hash ^= u64::from(*byte);
            hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
        }
        assert_eq!(u64::from(shard_of("wtf-pipe-1", 7)), hash % 7);
    }

    #[test]
    fn every_sensor_has_exactly_one_owner() {
        for id in (0..1000).map(|i| format!("sensor-{i}")) {
            let owners = (0..3).filter(|&shard| Sharding { shards: 3, shard }.owns(&id)).count();
            assert_eq!(owners, 1, "{id}");
        }
        assert!(Sharding { shards: 1, shard: 0 }.owns("anything"));
        let spread: Vec<usize> =
            (0..3).map(|shard| (0..3000).filter(|i| shard_of(&format!("s-{i}"), 3) == shard).count()).collect();
        assert!(spread.iter().all(|count| *count > 800), "{spread:?}");
    }
}
