//! Replays the fuzz corpus and every crash reproducer through the fuzz targets' bodies
//! (`ringkv_server::fuzz`), so that an input that once crashed a target, or any input the
//! fuzzer found interesting, is checked by every test run, without a fuzzer.
//!
//! `scripts/fuzz.sh` runs the fuzzer itself and grows the corpus.

use std::path::{Path, PathBuf};

use ringkv_server::fuzz;

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../ringkv-fuzz")
}

/// The files directly in `dir` (none if it does not exist).
fn inputs(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    files
}

#[test]
fn every_corpus_input_and_crash_reproducer_runs_clean() {
    for target in fuzz::TARGETS {
        let corpus = inputs(&fuzz_dir().join("corpus").join(target));
        assert!(
            !corpus.is_empty(),
            "the corpus of {target} is missing: run scripts/fuzz.sh"
        );
        let reproducers = inputs(&fuzz_dir().join("artifacts").join(target));
        for file in corpus.iter().chain(&reproducers) {
            let data = std::fs::read(file).expect("read a corpus file");
            // A panic names the file through this message's context: the test's output shows
            // the last file replayed.
            eprintln!("replaying {}", file.display());
            fuzz::run(target, &data).expect("a known target");
        }
    }
}

#[test]
fn the_seeds_run_clean() {
    for target in fuzz::TARGETS {
        let seeds = fuzz::seeds(target);
        assert!(!seeds.is_empty(), "{target} has seeds");
        for seed in seeds {
            fuzz::run(target, &seed).expect("a known target");
        }
    }
}

/// `scripts/fuzz.sh` calls this (it is ignored otherwise) to put the seeds in the corpus.
#[test]
#[ignore = "writes the seed inputs into the corpus; run by scripts/fuzz.sh"]
fn write_seeds() {
    for target in fuzz::TARGETS {
        let dir = fuzz_dir().join("corpus").join(target);
        std::fs::create_dir_all(&dir).expect("create the corpus directory");
        for (i, seed) in fuzz::seeds(target).iter().enumerate() {
            std::fs::write(dir.join(format!("seed-{i:02}")), seed).expect("write a seed");
        }
    }
}
