//! YCSB's property files (`-P workloads/workloada`) and overrides (`-p key=value`).
//!
//! The format is the subset of Java's `.properties` that workload files use: one `key=value`
//! (or `key: value`, or `key value`) per line, `#` and `!` start comments. Later files and
//! `-p` overrides win over earlier ones, as in YCSB.

use std::collections::BTreeMap;
use std::path::Path;
use std::str::FromStr;

/// Why the properties are unusable.
#[derive(Debug, thiserror::Error)]
pub enum PropsError {
    #[error("reading {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("-p {0}: expected key=value")]
    Override(String),
    #[error("property {key}={value}: {reason}")]
    Invalid {
        key: String,
        value: String,
        reason: String,
    },
}

/// A merged set of properties.
#[derive(Debug, Clone, Default)]
pub struct Props {
    values: BTreeMap<String, String>,
}

impl Props {
    /// Adds the properties of a file over those already set.
    pub fn load_file(&mut self, path: &Path) -> Result<(), PropsError> {
        let text = std::fs::read_to_string(path).map_err(|source| PropsError::Read {
            path: path.display().to_string(),
            source,
        })?;
        self.load_str(&text);
        Ok(())
    }

    pub fn load_str(&mut self, text: &str) {
        for line in text.lines() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') || line.starts_with('!') {
                continue;
            }
            let split = line
                .find(['=', ':'])
                .or_else(|| line.find(char::is_whitespace));
            let (key, value) = match split {
                Some(at) => (&line[..at], &line[at + 1..]),
                None => (line, ""),
            };
            self.set(key.trim(), value.trim());
        }
    }

    /// Applies one `-p key=value`.
    pub fn set_override(&mut self, pair: &str) -> Result<(), PropsError> {
        let (key, value) = pair
            .split_once('=')
            .ok_or_else(|| PropsError::Override(pair.to_string()))?;
        self.set(key.trim(), value.trim());
        Ok(())
    }

    pub fn set(&mut self, key: &str, value: &str) {
        self.values.insert(key.to_string(), value.to_string());
    }

    pub fn get(&self, key: &str) -> Option<&str> {
        self.values.get(key).map(String::as_str)
    }

    pub fn str_or<'a>(&'a self, key: &str, default: &'a str) -> &'a str {
        self.get(key).unwrap_or(default)
    }

    /// The property parsed as `T`, or `default` when unset.
    pub fn parse_or<T>(&self, key: &str, default: T) -> Result<T, PropsError>
    where
        T: FromStr,
        T::Err: std::fmt::Display,
    {
        match self.get(key) {
            None => Ok(default),
            Some(value) => value.parse().map_err(|e: T::Err| PropsError::Invalid {
                key: key.to_string(),
                value: value.to_string(),
                reason: e.to_string(),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_workload_files_and_overrides() {
        let mut props = Props::default();
        props.load_str(
            "# a comment\n! another\nrecordcount=1000\nreadproportion: 0.5\n\
             requestdistribution zipfian\n  fieldcount = 10 \n",
        );
        props.set_override("recordcount=5").expect("valid override");
        assert_eq!(props.parse_or("recordcount", 0u64).ok(), Some(5));
        assert_eq!(props.parse_or("readproportion", 0.0f64).ok(), Some(0.5));
        assert_eq!(props.get("requestdistribution"), Some("zipfian"));
        assert_eq!(props.parse_or("fieldcount", 0u32).ok(), Some(10));
        assert_eq!(props.parse_or("missing", 7u32).ok(), Some(7));
        assert!(props.set_override("novalue").is_err());
        props.set("fieldcount", "ten");
        let error = props.parse_or("fieldcount", 0u32).map(|_| ()).err();
        assert!(error.is_some_and(|e| e.to_string().contains("fieldcount=ten")));
    }
}
