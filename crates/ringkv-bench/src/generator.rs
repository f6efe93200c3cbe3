//! YCSB's number generators, ported so that a workload here draws the same keys with the same
//! skew as YCSB's `CoreWorkload` does against any other store.
//!
//! - [`Zipfian`]: Gray et al.'s "Quickly generating billion-record synthetic databases"
//!   method, as YCSB implements it, including its incremental zeta when the item count grows.
//! - [`ScrambledZipfian`]: a zipfian over a huge fixed item space, hashed (FNV-1a 64) into the
//!   key range, so that the popular keys are spread over the range instead of clustered at its
//!   start. YCSB's precomputed zeta for that space is used, as YCSB does.
//! - [`SkewedLatest`]: zipfian distance back from the newest acknowledged insert.
//! - [`Uniform`], [`AcknowledgedCounter`] and [`Discrete`] (the operation chooser).
//!
//! Every generator is shared by the workers (YCSB shares one instance among its threads), so
//! the mutable ones are behind atomics or a mutex.

use std::collections::BTreeSet;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

/// YCSB's default zipfian constant.
pub const ZIPFIAN_CONSTANT: f64 = 0.99;

/// The item space of [`ScrambledZipfian`] (YCSB's `ITEM_COUNT`).
const SCRAMBLED_ITEM_COUNT: u64 = 10_000_000_000;

/// zeta(SCRAMBLED_ITEM_COUNT + 1, 0.99), which YCSB precomputes because summing ten billion
/// terms takes minutes.
const SCRAMBLED_ZETAN: f64 = 26.469_028_201_783_02;

/// A uniform double in [0, 1), as `ThreadLocalRandom.nextDouble()` gives YCSB.
fn unit() -> f64 {
    rand::random::<f64>()
}

/// YCSB's `Utils.fnvhash64`: FNV-1a over the 8 little-end bytes of `value`, made non-negative
/// the way Java's `Math.abs` does (which leaves `i64::MIN` as it is).
pub fn fnv_hash64(value: i64) -> i64 {
    const OFFSET_BASIS: i64 = 0xCBF2_9CE4_8422_2325_u64 as i64;
    const PRIME: i64 = 1_099_511_628_211;
    let mut value = value;
    let mut hash = OFFSET_BASIS;
    for _ in 0..8 {
        let octet = value & 0xff;
        value >>= 8;
        hash ^= octet;
        hash = hash.wrapping_mul(PRIME);
    }
    hash.wrapping_abs()
}

/// The generalized harmonic number zeta(n, theta), summed from term `start` with `initial`
/// as the sum of the terms before it.
fn zeta_from(start: u64, n: u64, theta: f64, initial: f64) -> f64 {
    let mut sum = initial;
    for i in start..n {
        sum += 1.0 / ((i + 1) as f64).powf(theta);
    }
    sum
}

#[derive(Debug, Clone, Copy)]
struct ZipfState {
    /// Items the current zeta was computed for.
    count_for_zeta: u64,
    zetan: f64,
    eta: f64,
}

/// A zipfian over `[base, base + items)`: item `base` is the most popular.
#[derive(Debug)]
pub struct Zipfian {
    items: u64,
    base: u64,
    theta: f64,
    zeta2theta: f64,
    alpha: f64,
    state: Mutex<ZipfState>,
}

impl Zipfian {
    /// Over `[min, max]` with `constant` (YCSB: 0.99), computing zeta.
    pub fn new(min: u64, max: u64, constant: f64) -> Zipfian {
        let items = max - min + 1;
        Zipfian::with_zetan(min, max, constant, zeta_from(0, items, constant, 0.0))
    }

    /// Over `[min, max]` with a precomputed zeta for `max - min + 1` items.
    pub fn with_zetan(min: u64, max: u64, constant: f64, zetan: f64) -> Zipfian {
        let items = max - min + 1;
        let theta = constant;
        let zeta2theta = zeta_from(0, 2, theta, 0.0);
        let eta = Zipfian::eta(items, theta, zeta2theta, zetan);
        Zipfian {
            items,
            base: min,
            theta,
            zeta2theta,
            alpha: 1.0 / (1.0 - theta),
            state: Mutex::new(ZipfState {
                count_for_zeta: items,
                zetan,
                eta,
            }),
        }
    }

    fn eta(items: u64, theta: f64, zeta2theta: f64, zetan: f64) -> f64 {
        (1.0 - (2.0 / items as f64).powf(1.0 - theta)) / (1.0 - zeta2theta / zetan)
    }

    /// The next item with the configured item count.
    pub fn next(&self) -> u64 {
        self.next_of(self.items)
    }

    /// The next item of `[base, base + item_count)`. A larger count than the last extends zeta
    /// incrementally (YCSB does not shrink it: its `allowitemcountdecrease` is off).
    pub fn next_of(&self, item_count: u64) -> u64 {
        let (zetan, eta) = {
            let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
            if item_count > state.count_for_zeta {
                state.zetan = zeta_from(state.count_for_zeta, item_count, self.theta, state.zetan);
                state.count_for_zeta = item_count;
                // YCSB recomputes eta with the item count it was built for, not the new one.
                state.eta = Zipfian::eta(self.items, self.theta, self.zeta2theta, state.zetan);
            }
            (state.zetan, state.eta)
        };
        let u = unit();
        let uz = u * zetan;
        if uz < 1.0 {
            return self.base;
        }
        if uz < 1.0 + 0.5_f64.powf(self.theta) {
            return self.base + 1;
        }
        self.base + (item_count as f64 * (eta * u - eta + 1.0).powf(self.alpha)) as u64
    }
}

/// YCSB's `ScrambledZipfianGenerator` over `[min, max]`.
#[derive(Debug)]
pub struct ScrambledZipfian {
    min: u64,
    item_count: u64,
    zipfian: Zipfian,
}

impl ScrambledZipfian {
    pub fn new(min: u64, max: u64, constant: f64) -> ScrambledZipfian {
        let zipfian = if constant == ZIPFIAN_CONSTANT {
            Zipfian::with_zetan(0, SCRAMBLED_ITEM_COUNT, constant, SCRAMBLED_ZETAN)
        } else {
            Zipfian::new(0, SCRAMBLED_ITEM_COUNT, constant)
        };
        ScrambledZipfian {
            min,
            item_count: max - min + 1,
            zipfian,
        }
    }

    pub fn next(&self) -> u64 {
        let drawn = self.zipfian.next() as i64;
        self.min + (fnv_hash64(drawn) as u64 % self.item_count)
    }
}

/// Uniform over `[min, max]`.
#[derive(Debug)]
pub struct Uniform {
    min: u64,
    max: u64,
}

impl Uniform {
    pub fn new(min: u64, max: u64) -> Uniform {
        Uniform { min, max }
    }

    pub fn next(&self) -> u64 {
        rand::random_range(self.min..=self.max)
    }
}

/// Hands out increasing key numbers for inserts and knows the highest one below which every
/// insert has been acknowledged: readers choose only among keys that exist.
#[derive(Debug)]
pub struct AcknowledgedCounter {
    next: AtomicU64,
    acked: Mutex<Acked>,
}

#[derive(Debug)]
struct Acked {
    /// Every number up to and including `limit` has been acknowledged (`None`: none yet).
    limit: Option<u64>,
    /// Acknowledged numbers above `limit + 1`, waiting for the gap to fill.
    pending: BTreeSet<u64>,
}

impl AcknowledgedCounter {
    /// Numbers handed out start at `start`; those below it count as acknowledged.
    pub fn new(start: u64) -> AcknowledgedCounter {
        AcknowledgedCounter {
            next: AtomicU64::new(start),
            acked: Mutex::new(Acked {
                limit: start.checked_sub(1),
                pending: BTreeSet::new(),
            }),
        }
    }

    pub fn next(&self) -> u64 {
        self.next.fetch_add(1, Ordering::Relaxed)
    }

    /// The highest number below which every one has been acknowledged.
    pub fn last(&self) -> Option<u64> {
        self.acked.lock().unwrap_or_else(|p| p.into_inner()).limit
    }

    pub fn acknowledge(&self, value: u64) {
        let mut acked = self.acked.lock().unwrap_or_else(|p| p.into_inner());
        acked.pending.insert(value);
        loop {
            let want = acked.limit.map_or(0, |l| l + 1);
            if !acked.pending.remove(&want) {
                break;
            }
            acked.limit = Some(want);
        }
    }
}

/// YCSB's `SkewedLatestGenerator`: recent inserts are the most popular.
#[derive(Debug)]
pub struct SkewedLatest {
    zipfian: Zipfian,
}

impl SkewedLatest {
    /// `records`: how many keys exist when the run starts (at least 1).
    pub fn new(records: u64) -> SkewedLatest {
        SkewedLatest {
            zipfian: Zipfian::new(0, records.max(1) - 1, ZIPFIAN_CONSTANT),
        }
    }

    pub fn next(&self, counter: &AcknowledgedCounter) -> u64 {
        let max = counter.last().unwrap_or(0);
        max - self.zipfian.next_of(max).min(max)
    }
}

/// Picks one of several values with the given weights (YCSB's `DiscreteGenerator`).
#[derive(Debug, Clone)]
pub struct Discrete<T> {
    choices: Vec<(f64, T)>,
    sum: f64,
}

impl<T: Copy> Discrete<T> {
    /// Choices with weight 0 are dropped. Panics never; an empty set answers `None`.
    pub fn new(choices: impl IntoIterator<Item = (f64, T)>) -> Discrete<T> {
        let choices: Vec<(f64, T)> = choices.into_iter().filter(|(w, _)| *w > 0.0).collect();
        let sum = choices.iter().map(|(w, _)| w).sum();
        Discrete { choices, sum }
    }

    pub fn next(&self) -> Option<T> {
        let mut value = unit();
        for (weight, choice) in &self.choices {
            let share = weight / self.sum;
            if value < share {
                return Some(*choice);
            }
            value -= share;
        }
        self.choices.last().map(|(_, c)| *c)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnv_hash_matches_ycsb() {
        // Values printed by YCSB's Java definition of `Utils.fnvhash64` on a JVM.
        assert_eq!(fnv_hash64(0), 6_284_781_860_667_377_211);
        assert_eq!(fnv_hash64(1), 8_517_097_267_634_966_620);
        assert_eq!(fnv_hash64(12_345), 1_792_800_413_050_876_852);
        assert_eq!(fnv_hash64(999), 2_071_219_101_098_386_137);
    }

    #[test]
    fn scrambled_zeta_constant_is_zeta_of_its_space() {
        // Summing 10^10 terms is too slow for a test; check the tail estimate instead: zeta
        // over the first 10^6 terms plus the integral of the rest.
        let head = zeta_from(0, 1_000_000, ZIPFIAN_CONSTANT, 0.0);
        let s = 1.0 - ZIPFIAN_CONSTANT;
        let tail = ((SCRAMBLED_ITEM_COUNT as f64 + 1.0).powf(s) - 1_000_000_f64.powf(s)) / s;
        assert!(
            (head + tail - SCRAMBLED_ZETAN).abs() < 0.01,
            "{}",
            head + tail
        );
    }

    #[test]
    fn zipfian_prefers_the_first_items() {
        let zipf = Zipfian::new(0, 999, ZIPFIAN_CONSTANT);
        let mut counts = vec![0u32; 1000];
        for _ in 0..100_000 {
            let item = zipf.next();
            assert!(item < 1000);
            counts[item as usize] += 1;
        }
        // With theta 0.99 over 1000 items, item 0 takes about 1/zeta(1000) = 13% of draws.
        let first = f64::from(counts[0]) / 100_000.0;
        assert!((0.11..0.16).contains(&first), "item 0 drew {first}");
        assert!(counts[0] > counts[1] && counts[1] > counts[10] && counts[10] > counts[500]);
    }

    #[test]
    fn scrambled_zipfian_stays_in_range_and_is_skewed() {
        let zipf = ScrambledZipfian::new(100, 1099, ZIPFIAN_CONSTANT);
        let mut counts = std::collections::HashMap::new();
        for _ in 0..100_000 {
            let item = zipf.next();
            assert!((100..=1099).contains(&item));
            *counts.entry(item).or_insert(0u32) += 1;
        }
        let max = counts.values().max().copied().unwrap_or(0);
        // Uniform would give about 100 per item.
        assert!(max > 1_000, "hottest item drew {max}");
    }

    #[test]
    fn acknowledged_counter_waits_for_gaps() {
        let counter = AcknowledgedCounter::new(10);
        assert_eq!(counter.last(), Some(9));
        let (a, b, c) = (counter.next(), counter.next(), counter.next());
        assert_eq!((a, b, c), (10, 11, 12));
        counter.acknowledge(b);
        assert_eq!(counter.last(), Some(9));
        counter.acknowledge(a);
        assert_eq!(counter.last(), Some(11));
        counter.acknowledge(c);
        assert_eq!(counter.last(), Some(12));
    }

    #[test]
    fn skewed_latest_prefers_recent_keys() {
        let counter = AcknowledgedCounter::new(1000);
        let latest = SkewedLatest::new(1000);
        let mut recent = 0;
        for _ in 0..10_000 {
            let key = latest.next(&counter);
            assert!(key <= 999);
            if key >= 990 {
                recent += 1;
            }
        }
        assert!(
            recent > 3_000,
            "only {recent} of 10000 in the newest 10 keys"
        );
    }

    #[test]
    fn discrete_follows_weights() {
        let ops = Discrete::new([(0.95, 'r'), (0.05, 'u'), (0.0, 'i')]);
        let reads = (0..20_000).filter(|_| ops.next() == Some('r')).count();
        assert!((18_500..19_500).contains(&reads), "{reads}");
        assert_eq!(Discrete::<char>::new([]).next(), None);
    }
}
