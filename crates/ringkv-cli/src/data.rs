//! `get`, `get-many`, `put` and `delete` through the SDK.

use std::io::{Read as _, Write as _};
use std::path::Path;

use anyhow::{Context as _, bail};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use ringkv::{Bucket, ReadOptions, Value, WriteOptions};
use serde_json::json;

use crate::format::hex;

/// What `put` and `delete` share.
#[derive(Debug)]
pub struct WriteArgs {
    pub context: Option<String>,
    pub w: Option<u8>,
    pub overwrite: bool,
    pub ttl: Option<std::time::Duration>,
}

/// A time to live as `put --ttl` takes it: a positive whole number with an optional unit,
/// `ms`, `s` (the default), `m`, `h` or `d`.
pub fn parse_ttl(text: &str) -> Result<std::time::Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: u64 = number
        .parse()
        .map_err(|_| format!("{text:?}: expected a number with an optional unit, like 15m"))?;
    let millis = match unit {
        "ms" => 1,
        "" | "s" => 1_000,
        "m" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        other => return Err(format!("{other:?}: the unit is one of ms, s, m, h, d")),
    };
    match number.checked_mul(millis) {
        Some(0) => Err("a time to live must be positive".into()),
        Some(ms) => Ok(std::time::Duration::from_millis(ms)),
        None => Err(format!("{text:?} is too long a time to live")),
    }
}

pub async fn get(
    bucket: &Bucket,
    key: &str,
    r: Option<u8>,
    output: Option<&Path>,
    as_json: bool,
) -> anyhow::Result<()> {
    let mut opts = ReadOptions::default();
    opts.r = r;
    let read = bucket.get_with(key, &opts).await?;
    if let Some(path) = output {
        return match read.siblings() {
            [value] => write_value(path, value),
            [] => bail!("{key} is not found: nothing written to {}", path.display()),
            several => bail!(
                "{key} has {} siblings: read it without --output, resolve them and write one",
                several.len()
            ),
        };
    }
    show_read(bucket, key, &read, as_json, false);
    Ok(())
}

/// Prints what a read of `key` returned: its siblings and the context to write with (one
/// JSON object with `--json`); `named`: text output names the key first.
fn show_read(bucket: &Bucket, key: &str, read: &Value, as_json: bool, named: bool) {
    let context =
        hex(&bucket
            .client()
            .context_to_bytes(bucket.name(), key.as_bytes(), read.context()));
    let siblings = Values::of(read.siblings());
    if as_json {
        println!(
            "{}",
            json!({ "key": key, "found": read.is_found(), "siblings": siblings.texts, "encoding": siblings.encoding, "context": context })
        );
        return;
    }
    match (named, read.is_found()) {
        (true, true) => println!("{key}:"),
        (true, false) => println!("{key}: not found"),
        (false, false) => println!("not found"),
        (false, true) => {}
    }
    siblings.print();
    println!("context {context}");
}

/// `get-many`: every key's siblings and context (a JSON object per line with `--json`), or
/// its error; fails once all are shown if any key failed.
pub async fn get_many(
    bucket: &Bucket,
    keys: &[String],
    r: Option<u8>,
    as_json: bool,
) -> anyhow::Result<()> {
    let mut opts = ReadOptions::default();
    opts.r = r;
    let mut failed = 0;
    for (key, result) in keys.iter().zip(bucket.get_many_with(keys, &opts).await) {
        match result {
            Ok(read) => show_read(bucket, key, &read, as_json, true),
            Err(e) if as_json => {
                failed += 1;
                println!("{}", json!({ "key": key, "error": e.to_string() }));
            }
            Err(e) => {
                failed += 1;
                println!("{key}: error: {e}");
            }
        }
    }
    if failed > 0 {
        bail!("{failed} of {} keys could not be read", keys.len());
    }
    Ok(())
}

/// Values as the command line shows them: as text when every one is UTF-8, else every one in
/// base64, the encoding named (`utf-8` or `base64`).
struct Values {
    texts: Vec<String>,
    encoding: &'static str,
}

impl Values {
    fn of(values: &[bytes::Bytes]) -> Values {
        let utf8: Option<Vec<String>> = values
            .iter()
            .map(|v| std::str::from_utf8(v).ok().map(str::to_string))
            .collect();
        match utf8 {
            Some(texts) => Values {
                texts,
                encoding: "utf-8",
            },
            None => Values {
                texts: values.iter().map(|v| BASE64.encode(v)).collect(),
                encoding: "base64",
            },
        }
    }

    fn print(&self) {
        let tag = if self.encoding == "utf-8" {
            ""
        } else {
            " (base64)"
        };
        for (i, s) in self.texts.iter().enumerate() {
            println!("sibling {}{tag}: {s}", i + 1);
        }
    }
}

/// The bytes of the file at `path`, or of standard input for `-`.
pub fn read_value(path: &Path) -> anyhow::Result<Vec<u8>> {
    if path == Path::new("-") {
        let mut value = Vec::new();
        std::io::stdin()
            .read_to_end(&mut value)
            .context("reading the value from standard input")?;
        Ok(value)
    } else {
        std::fs::read(path).with_context(|| format!("reading the value from {}", path.display()))
    }
}

/// Writes `value` to the file at `path`, or to standard output for `-`.
fn write_value(path: &Path, value: &[u8]) -> anyhow::Result<()> {
    if path == Path::new("-") {
        let mut out = std::io::stdout().lock();
        out.write_all(value)
            .and_then(|()| out.flush())
            .context("writing the value to standard output")
    } else {
        std::fs::write(path, value)
            .with_context(|| format!("writing the value to {}", path.display()))
    }
}

/// Writes `value`, or deletes the key when `value` is `None`.
pub async fn put(
    bucket: &Bucket,
    key: &str,
    value: Option<Vec<u8>>,
    args: WriteArgs,
    as_json: bool,
) -> anyhow::Result<()> {
    let context = args
        .context
        .map(|c| {
            let bytes = parse_hex(&c)?;
            bucket
                .client()
                .context_from_bytes(bucket.name(), key.as_bytes(), &bytes)
                .context("--context")
        })
        .transpose()?;
    let mut opts = WriteOptions::default().with_overwrite(args.overwrite);
    if let Some(w) = args.w {
        opts = opts.with_w(w);
    }
    opts.ttl = args.ttl;
    let (op, receipt) = match value {
        Some(value) => (
            "put",
            bucket.put_with(key, value, context.as_ref(), &opts).await?,
        ),
        None => (
            "delete",
            bucket.delete_with(key, context.as_ref(), &opts).await?,
        ),
    };
    let ids = |v: &[ringkv::NodeId]| v.iter().map(|id| id.to_string()).collect::<Vec<_>>();
    // What the write left, like a read: the next write can use its context.
    let written = &receipt.written;
    let context =
        hex(&bucket
            .client()
            .context_to_bytes(bucket.name(), key.as_bytes(), written.context()));
    let siblings = Values::of(written.siblings());
    if as_json {
        println!(
            "{}",
            json!({ "op": op, "key": key, "home": ids(&receipt.home), "fallback": ids(&receipt.fallback), "siblings": siblings.texts, "encoding": siblings.encoding, "context": context })
        );
    } else {
        println!(
            "{op} {key}: acknowledged by {} home replica(s){}",
            receipt.home.len(),
            if receipt.fallback.is_empty() {
                String::new()
            } else {
                format!(" and {} fallback(s)", receipt.fallback.len())
            }
        );
        siblings.print();
        println!("context {context}");
    }
    Ok(())
}

/// The bytes of a `--context` as `ringkv get` prints it (hex).
fn parse_hex(text: &str) -> anyhow::Result<Vec<u8>> {
    // ASCII first: slicing by bytes below must never split a multi-byte character.
    if !text.is_ascii() || !text.len().is_multiple_of(2) {
        anyhow::bail!("--context is hex, as `ringkv get` prints it");
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16))
        .collect::<Result<Vec<u8>, _>>()
        .context("--context is hex, as `ringkv get` prints it")
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use ringkv::Context;

    use super::*;

    #[test]
    fn contexts_round_trip_through_hex_and_garbage_is_an_error_not_a_panic() {
        let ctx = Context::new([(ringkv::NodeId(7), 3)].into_iter().collect());
        let bytes = parse_hex(&hex(&ctx.to_bytes())).expect("round trip");
        assert_eq!(Context::from_bytes(&bytes).expect("a context"), ctx);
        for bad in ["0", "zz", "é1"] {
            assert!(parse_hex(bad).is_err(), "{bad:?}");
        }
        for bad in ["", "01ff"] {
            let bytes = parse_hex(bad).expect("hex");
            assert!(Context::from_bytes(&bytes).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn a_ttl_takes_a_unit_or_means_seconds() {
        assert_eq!(parse_ttl("90"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_ttl("15m"), Ok(Duration::from_secs(900)));
        assert_eq!(parse_ttl("2h"), Ok(Duration::from_secs(7_200)));
        assert_eq!(parse_ttl("7d"), Ok(Duration::from_secs(604_800)));
        assert_eq!(parse_ttl("500ms"), Ok(Duration::from_millis(500)));
        assert!(parse_ttl("0").is_err());
        assert!(parse_ttl("5w").is_err());
        assert!(parse_ttl("m").is_err());
        assert!(parse_ttl("-1").is_err());
        assert!(parse_ttl("99999999999999999d").is_err());
    }
}
