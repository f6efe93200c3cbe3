//! YCSB's `CoreWorkload`: which operation comes next, on which key, with which value.
//!
//! The properties and their defaults are YCSB's, so a workload file written for YCSB means
//! the same here. What differs, because every target stores a record as one opaque value:
//!
//! - a record is its `fieldcount` fields of `fieldlength` bytes concatenated (10 × 100 =
//!   1000 bytes by default); a read fetches the whole value (YCSB's `readallfields=true`);
//! - an update writes the whole record (YCSB's `writeallfields=true`), since no target
//!   here can write one field of a blob in place;
//! - scans (`scanproportion`, workload E) are refused: ringkv has no range scans by design.

use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;

use crate::generator::{
    AcknowledgedCounter, Discrete, ScrambledZipfian, SkewedLatest, Uniform, ZIPFIAN_CONSTANT,
    fnv_hash64,
};
use crate::props::{Props, PropsError};

/// One YCSB operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Op {
    Read,
    Update,
    Insert,
    ReadModifyWrite,
}

impl Op {
    pub const ALL: [Op; 4] = [Op::Read, Op::Update, Op::Insert, Op::ReadModifyWrite];

    /// YCSB's name for the operation in its report (`[READ]`, `[READ-MODIFY-WRITE]`...).
    pub fn report_name(self) -> &'static str {
        match self {
            Op::Read => "READ",
            Op::Update => "UPDATE",
            Op::Insert => "INSERT",
            Op::ReadModifyWrite => "READ-MODIFY-WRITE",
        }
    }
}

#[derive(Debug)]
enum KeyChooser {
    Uniform(Uniform),
    Zipfian(ScrambledZipfian),
    Latest(SkewedLatest),
}

/// A configured workload, shared by every worker.
#[derive(Debug)]
pub struct Workload {
    pub record_count: u64,
    pub operation_count: u64,
    /// Keys one read asks for (`batchsize`, default 1): above 1, a read is one batch
    /// (ringkv's `get_many`, Redis's `MGET`), and counts as that many operations.
    pub batch_size: usize,
    field_count: usize,
    field_length: usize,
    key_prefix: String,
    zero_padding: usize,
    ordered_inserts: bool,
    insert_end: u64,
    ops: Discrete<Op>,
    keys: KeyChooser,
    /// Key numbers the load phase inserts next.
    load_sequence: AtomicU64,
    /// Key numbers the run phase's inserts take, and which of them are acknowledged.
    inserts: AcknowledgedCounter,
    /// Random printable bytes that values are sliced from, so that making a value costs a
    /// reference count instead of the client's CPU.
    noise: Bytes,
}

/// Why a workload cannot run.
#[derive(Debug, thiserror::Error)]
pub enum WorkloadError {
    #[error(transparent)]
    Props(#[from] PropsError),
    #[error("{0}")]
    Unsupported(String),
}

const NOISE_LEN: usize = 1 << 16;

impl Workload {
    pub fn from_props(props: &Props) -> Result<Workload, WorkloadError> {
        let record_count: u64 = props.parse_or("recordcount", 0)?;
        let operation_count: u64 = props.parse_or("operationcount", 0)?;
        let batch_size: usize = props.parse_or("batchsize", 1)?;
        if !(1..=1024).contains(&batch_size) {
            return Err(WorkloadError::Unsupported(format!(
                "batchsize={batch_size}: from 1 to 1024"
            )));
        }
        let field_count: usize = props.parse_or("fieldcount", 10)?;
        let field_length: usize = props.parse_or("fieldlength", 100)?;
        let insert_start: u64 = props.parse_or("insertstart", 0)?;
        let insert_count: u64 =
            props.parse_or("insertcount", record_count.saturating_sub(insert_start))?;
        let read: f64 = props.parse_or("readproportion", 0.95)?;
        let update: f64 = props.parse_or("updateproportion", 0.05)?;
        let insert: f64 = props.parse_or("insertproportion", 0.0)?;
        let scan: f64 = props.parse_or("scanproportion", 0.0)?;
        let rmw: f64 = props.parse_or("readmodifywriteproportion", 0.0)?;
        let distribution = props.str_or("requestdistribution", "uniform");
        let length_distribution = props.str_or("fieldlengthdistribution", "constant");
        if scan > 0.0 {
            return Err(WorkloadError::Unsupported(
                "scans (workload E) are out of scope: ringkv has no range scans by design".into(),
            ));
        }
        if length_distribution != "constant" {
            return Err(WorkloadError::Unsupported(format!(
                "fieldlengthdistribution={length_distribution}: only constant is supported"
            )));
        }
        if field_count * field_length > NOISE_LEN {
            return Err(WorkloadError::Unsupported(format!(
                "records of {} bytes: at most {NOISE_LEN} are supported",
                field_count * field_length
            )));
        }
        let ops = Discrete::new([
            (read, Op::Read),
            (update, Op::Update),
            (insert, Op::Insert),
            (rmw, Op::ReadModifyWrite),
        ]);
        let keys = match distribution {
            "uniform" => KeyChooser::Uniform(Uniform::new(
                insert_start,
                (insert_start + insert_count).saturating_sub(1),
            )),
            "zipfian" => {
                // YCSB sizes the zipfian for the inserts the run is expected to make (twice
                // the proportion, its "fudge factor"), so new keys get their share of reads.
                let expected_new = (operation_count as f64 * insert * 2.0) as u64;
                KeyChooser::Zipfian(ScrambledZipfian::new(
                    insert_start,
                    insert_start + insert_count + expected_new,
                    ZIPFIAN_CONSTANT,
                ))
            }
            "latest" => KeyChooser::Latest(SkewedLatest::new(record_count)),
            other => {
                return Err(WorkloadError::Unsupported(format!(
                    "requestdistribution={other}: uniform, zipfian and latest are supported"
                )));
            }
        };
        let noise: Vec<u8> = (0..NOISE_LEN)
            .map(|_| b' ' + rand::random_range(0..95u8))
            .collect();
        Ok(Workload {
            record_count,
            operation_count,
            batch_size,
            field_count,
            field_length,
            key_prefix: props.str_or("keyprefix", "user").to_string(),
            zero_padding: props.parse_or("zeropadding", 1)?,
            ordered_inserts: props.str_or("insertorder", "hashed") == "ordered",
            insert_end: insert_start + insert_count,
            ops,
            keys,
            load_sequence: AtomicU64::new(insert_start),
            inserts: AcknowledgedCounter::new(record_count),
            noise: Bytes::from(noise),
        })
    }

    /// The key of record `number`: YCSB's `buildKeyName` (`user` + the FNV hash of the
    /// number, unless inserts are ordered, zero-padded to `zeropadding` digits).
    pub fn key(&self, number: u64) -> String {
        let number = if self.ordered_inserts {
            number as i64
        } else {
            fnv_hash64(number as i64)
        };
        let digits = number.to_string();
        let fill = self.zero_padding.saturating_sub(digits.len());
        let mut key = String::with_capacity(self.key_prefix.len() + fill + digits.len());
        key.push_str(&self.key_prefix);
        key.extend(std::iter::repeat_n('0', fill));
        key.push_str(&digits);
        key
    }

    /// A fresh record value.
    pub fn value(&self) -> Bytes {
        let len = self.field_count * self.field_length;
        let start = rand::random_range(0..=NOISE_LEN - len);
        self.noise.slice(start..start + len)
    }

    /// The next record the load phase inserts, until `insertcount` are done.
    pub fn next_load(&self) -> Option<u64> {
        let number = self.load_sequence.fetch_add(1, Ordering::Relaxed);
        (number < self.insert_end).then_some(number)
    }

    /// The run phase's next operation (`None` if every proportion is 0).
    pub fn next_op(&self) -> Option<Op> {
        self.ops.next()
    }

    /// A key that exists for a read or update: drawn from the distribution, and never one
    /// whose insert has not been acknowledged.
    pub fn next_existing(&self) -> u64 {
        let limit = self.inserts.last().unwrap_or(0);
        for _ in 0..1_000 {
            let number = match &self.keys {
                KeyChooser::Uniform(g) => g.next(),
                KeyChooser::Zipfian(g) => g.next(),
                KeyChooser::Latest(g) => g.next(&self.inserts),
            };
            if number <= limit {
                return number;
            }
        }
        limit
    }

    /// A new record number for an insert; acknowledge it with [`Workload::inserted`].
    pub fn next_insert(&self) -> u64 {
        self.inserts.next()
    }

    pub fn inserted(&self, number: u64) {
        self.inserts.acknowledge(number);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn workload(text: &str) -> Result<Workload, WorkloadError> {
        let mut props = Props::default();
        props.load_str(text);
        Workload::from_props(&props)
    }

    #[test]
    fn keys_are_ycsbs() {
        let w = workload("recordcount=10").expect("valid");
        assert_eq!(w.key(0), "user6284781860667377211");
        let ordered = workload("recordcount=10\ninsertorder=ordered\nzeropadding=5").expect("ok");
        assert_eq!(ordered.key(42), "user00042");
    }

    #[test]
    fn values_have_the_record_size() {
        let w = workload("recordcount=10").expect("valid");
        assert_eq!(w.value().len(), 1000);
        let small = workload("fieldcount=2\nfieldlength=8").expect("valid");
        assert_eq!(small.value().len(), 16);
    }

    #[test]
    fn load_covers_every_record_once() {
        let w = workload("recordcount=5").expect("valid");
        let loaded: Vec<u64> = std::iter::from_fn(|| w.next_load()).collect();
        assert_eq!(loaded, vec![0, 1, 2, 3, 4]);
    }

    #[test]
    fn reads_only_choose_acknowledged_keys() {
        let w = workload(
            "recordcount=100\noperationcount=100\nreadproportion=0.5\ninsertproportion=0.5\n\
             requestdistribution=latest",
        )
        .expect("valid");
        let fresh = w.next_insert();
        assert_eq!(fresh, 100);
        assert!((0..1000).all(|_| w.next_existing() < 100));
        w.inserted(fresh);
        assert!((0..1000).any(|_| w.next_existing() == 100));
    }

    #[test]
    fn refuses_what_it_cannot_run() {
        let scan = workload("scanproportion=0.05").map(|_| ()).err();
        assert!(scan.is_some_and(|e| e.to_string().contains("workload E")));
        assert!(workload("requestdistribution=hotspot").is_err());
        assert!(workload("fieldlengthdistribution=zipfian").is_err());
    }
}
