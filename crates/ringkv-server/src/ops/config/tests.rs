use std::path::{Path, PathBuf};

use clap::Parser;

use super::*;

#[test]
fn the_example_file_parses_and_matches_the_defaults() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../ringkvd.example.toml");
    let config = Config::from_file(&path).expect("example parses");
    let defaults = Config::default();
    assert_eq!(
        config.limits.max_value_bytes,
        defaults.limits.max_value_bytes
    );
    assert_eq!(config.cluster, defaults.cluster);
    assert_eq!(config.storage.durability, defaults.storage.durability);
    assert_eq!(
        config.storage.block_cache_mb,
        defaults.storage.block_cache_mb
    );
    assert_eq!(config.storage.checkpoint_dir, None);
    config.validate().expect("example is valid");
}

#[test]
fn checkpoints_go_next_to_the_data_unless_told() {
    let mut config = Config {
        data_dir: PathBuf::from("/var/lib/ringkvd/data"),
        ..Config::default()
    };
    assert_eq!(
        config.checkpoint_dir(),
        PathBuf::from("/var/lib/ringkvd/data.checkpoints")
    );
    config.storage.checkpoint_dir = Some(PathBuf::from("/backup"));
    assert_eq!(config.checkpoint_dir(), PathBuf::from("/backup"));
}

#[test]
fn flags_override_the_file_and_unknown_keys_are_refused() {
    jailed(|| {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("n.toml");
        std::fs::write(&path, "listen = \"127.0.0.1:9000\"\nweight = 3\n").expect("write");
        let args = Args::parse_from([
            "ringkvd",
            "-c",
            path.to_str().expect("utf8"),
            "--weight",
            "2",
        ]);
        let config = Config::load(&args).expect("loads");
        assert_eq!(config.listen, "127.0.0.1:9000");
        assert_eq!(config.weight, 2);

        std::fs::write(&path, "lisen = \"127.0.0.1:9000\"\n").expect("write");
        let err = Config::from_file(&path).expect_err("typo must be refused");
        assert!(format!("{err:#}").contains("lisen"), "{err:#}");
    });
}

#[test]
fn bad_bucket_quorums_are_refused_with_the_bucket_named() {
    let mut config = Config::default();
    config.cluster.buckets.named.insert(
        "carts".into(),
        ringkv_core::BucketProps {
            n: 2,
            r: 3,
            ..Default::default()
        },
    );
    let err = config.validate().expect_err("r > n");
    assert!(err.to_string().contains("carts"), "{err}");
}

#[test]
fn addresses_may_be_names_and_a_malformed_one_names_its_setting() {
    jailed(|| {
        let args = Args::parse_from([
            "ringkvd",
            "--listen",
            "0.0.0.0:7400",
            "--advertise",
            "ringkv-2.ringkv.prod.svc.cluster.local:7400",
            "--admin-listen",
            "localhost:9100",
        ]);
        let config = Config::load(&args).expect("names are addresses");
        assert_eq!(
            config.advertised(),
            "ringkv-2.ringkv.prod.svc.cluster.local:7400"
        );

        for (flag, bad) in [
            ("--listen", "7400"),
            ("--advertise", "ringkv-2 :7400"),
            ("--admin-listen", "localhost"),
        ] {
            let args = Args::parse_from(["ringkvd", flag, bad]);
            let err = Config::load(&args).expect_err("malformed address accepted");
            let setting = flag.trim_start_matches("--").replace('-', "_");
            assert!(
                matches!(&err, Error::Config { setting: s, .. } if *s == setting),
                "{err:?}"
            );
        }

        // Listening on every address needs an address to advertise.
        let args = Args::parse_from(["ringkvd", "--listen", "0.0.0.0:7400"]);
        assert!(Config::load(&args).is_err());
    });
}

/// One rule for every setting: `RINGKVD_<SECTION>__<KEY>` over the file, a flag (or its
/// variable) over both, and a variable that names no setting refused like a typo in the file.
#[test]
// figment's test jail returns figment's own (large) error type: not ours to shrink.
#[allow(clippy::result_large_err)]
fn the_environment_sets_any_setting_between_the_file_and_the_flags() {
    figment::Jail::expect_with(|jail| {
        jail.create_file(
            "n.toml",
            "weight = 3\nlisten = \"127.0.0.1:9000\"\n[storage]\nblock_cache_mb = 10\n",
        )?;
        jail.set_env("RINGKVD_STORAGE__BLOCK_CACHE_MB", "77");
        jail.set_env("RINGKVD_ANTI_ENTROPY__INTERVAL_MS", "1234");
        jail.set_env("RINGKVD_PURGE__PRUNE_ABOVE", "12");
        jail.set_env("RINGKVD_WEIGHT", "4");
        let config = Config::load(&Args::parse_from(["ringkvd", "-c", "n.toml"]))
            .map_err(|e| e.to_string())?;
        assert_eq!(
            config.storage.block_cache_mb, 77,
            "the environment over the file"
        );
        assert_eq!(config.anti_entropy.interval_ms, 1234);
        assert_eq!(config.purge.prune_above, 12);
        assert_eq!(config.weight, 4, "a flag's variable over the file");
        assert_eq!(
            config.listen, "127.0.0.1:9000",
            "the file over the defaults"
        );
        let flagged = Args::parse_from(["ringkvd", "-c", "n.toml", "--weight", "2"]);
        let config = Config::load(&flagged).map_err(|e| e.to_string())?;
        assert_eq!(config.weight, 2, "the flag over its variable");

        jail.set_env("RINGKVD_STORAGE__BLOK_CACHE_MB", "1");
        let err = Config::load(&flagged).expect_err("a misspelt variable is refused");
        assert!(err.to_string().contains("blok_cache_mb"), "{err}");
        Ok(())
    });
}

#[test]
fn a_missing_config_file_is_an_error() {
    jailed(|| {
        let args = Args::parse_from(["ringkvd", "-c", "/nonexistent/ringkvd.toml"]);
        let err = Config::load(&args).expect_err("missing file");
        assert!(
            err.to_string().contains("/nonexistent/ringkvd.toml"),
            "{err}"
        );
    });
}

/// Runs `test` in figment's jail: the tests that read the environment (through
/// `Config::load`) take turns, so one that sets a variable cannot leak it into another.
#[allow(clippy::result_large_err)]
fn jailed(test: impl FnOnce()) {
    figment::Jail::expect_with(|_| {
        test();
        Ok(())
    });
}
