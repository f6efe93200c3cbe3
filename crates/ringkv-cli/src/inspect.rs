//! `ring --key` and `explain`: where a key lives and what each replica holds of it.

use ringkv::Client;
use ringkv::transport::{Request, Response};
use ringkv_core::{ConflictPolicy, Member, NodeId, SiblingSet};
use serde_json::{Value, json};

use crate::admin::Admin;
use crate::format;

/// `ringkv ring --key K`: the preference list reads use, with the homes a write also needs
/// during a transfer.
pub fn ring(client: &Client, bucket: &str, key: &str, as_json: bool) -> anyhow::Result<()> {
    let rows = placement(client, bucket, key.as_bytes());
    let n = usize::from(client.ring().bucket(bucket).n);
    if as_json {
        println!(
            "{}",
            json!({ "key": key, "bucket": bucket, "n": n, "preference_list": rows })
        );
        return Ok(());
    }
    println!(
        "{:<4} {:<10} {:<6} {:<22} {:<12} node",
        "#", "role", "state", "address", "zone"
    );
    for r in rows {
        println!(
            "{:<4} {:<10} {:<6} {:<22} {:<12} {}",
            r["position"].to_string(),
            text(&r["role"]),
            if r["alive"].as_bool().unwrap_or(false) {
                "up"
            } else {
                "down"
            },
            text(&r["address"]),
            zone_text(&r["zone"]),
            text(&r["node"])
        );
    }
    Ok(())
}

/// Where a key's requests go: home replicas, during a transfer the extra homes writes reach,
/// then the fallbacks.
fn placement(client: &Client, bucket: &str, key: &[u8]) -> Vec<Value> {
    let ring = client.ring();
    let alive = client.alive_nodes();
    let n = usize::from(ring.bucket(bucket).n);
    let route = ring.route(bucket, key);
    let mut rows = Vec::new();
    let mut push = |m: &Member, role: &str| {
        rows.push(json!({
            "position": rows.len() + 1,
            "role": role,
            "node": m.id.to_string(),
            "address": m.addr,
            "zone": m.zone,
            "alive": alive.contains(&m.id),
        }));
    };
    let mut list = route.preference;
    for m in list.by_ref().take(n) {
        push(m, "home");
    }
    for m in &route.extra_homes {
        push(m, "new-home");
    }
    for m in list.filter(|m| !route.extra_homes.iter().any(|e| e.id == m.id)) {
        push(m, "fallback");
    }
    rows
}

/// What one replica answered `explain`: its own copy and its hints, or why it did not.
type Answer = Result<(Option<SiblingSet>, Vec<(NodeId, SiblingSet)>), String>;

/// `ringkv explain KEY`: asks every node of the key's preference list what it holds, its
/// own copy and its hints apart, and shows what a read merging them all would repair.
pub async fn explain(
    client: &Client,
    admin: &Admin,
    bucket: &str,
    key: &str,
    as_json: bool,
) -> anyhow::Result<()> {
    let ring = client.ring();
    let policy = ring.conflict_policy(bucket);
    let props = *ring.bucket(bucket);
    let rows = placement(client, bucket, key.as_bytes());
    let mut merged = SiblingSet::new();
    let mut replicas = Vec::new();
    for row in &rows {
        let addr = text(&row["address"]);
        let request = Request::Inspect {
            bucket: bucket.to_string(),
            key: key.as_bytes().to_vec().into(),
        };
        let answer: Answer = match admin.call(&addr, request).await {
            Ok(Response::Inspection { data, hints }) => Ok((data, hints)),
            Ok(other) => Err(format!("unexpected answer {other:?}")),
            Err(e) => Err(format!("{e:#}")),
        };
        if let Ok((data, hints)) = &answer {
            let homes = text(&row["role"]) != "fallback";
            if homes && let Some(data) = data {
                merged.merge(data, policy);
            }
            for (_, state) in hints {
                merged.merge(state, policy);
            }
        }
        replicas.push((row, answer));
    }
    let mut out = Vec::new();
    for (row, answer) in &replicas {
        let homes = text(&row["role"]) != "fallback";
        let entry = match answer {
            Ok((data, hints)) => {
                // A home replica that would end up different after merging the read's
                // result is one a read now would repair.
                let repair = homes && {
                    let mut copy = data.clone().unwrap_or_default();
                    copy.merge(&merged, policy)
                };
                json!({
                    "node": row["node"], "address": row["address"], "role": row["role"],
                    "alive": row["alive"],
                    "holds": data.as_ref().map(state_json),
                    "hints": hints.iter().map(|(home, s)| json!({ "for": home.to_string(), "state": state_json(s) })).collect::<Vec<_>>(),
                    "would_repair": repair,
                })
            }
            Err(e) => json!({
                "node": row["node"], "address": row["address"], "role": row["role"],
                "alive": row["alive"], "error": e,
            }),
        };
        out.push(entry);
    }
    let repairs: Vec<String> = out
        .iter()
        .filter(|e| e["would_repair"].as_bool() == Some(true))
        .map(|e| text(&e["address"]))
        .collect();
    let divergent = divergence(&replicas);
    if as_json {
        println!(
            "{}",
            json!({
                "key": key, "bucket": bucket, "n": props.n, "r": props.r, "w": props.w,
                "conflict": if policy == ConflictPolicy::Lww { "lww" } else { "siblings" },
                "epoch": ring.epoch().to_string(),
                "replicas": out,
                "merged": state_json(&merged),
                "read_would_repair": repairs,
                "divergent": divergent,
            })
        );
        return Ok(());
    }
    println!(
        "key {key:?} in bucket {bucket:?}: n={} r={} w={}, ring {}",
        props.n,
        props.r,
        props.w,
        ring.epoch()
    );
    println!(
        "{:<3} {:<9} {:<5} {:<21} {:<17} {:>8}  version vector / values",
        "#", "role", "state", "address", "node", "siblings"
    );
    for (i, e) in out.iter().enumerate() {
        let state = if e["alive"].as_bool() == Some(true) {
            "up"
        } else {
            "down"
        };
        let (siblings, detail) = match (&e["error"], &e["holds"]) {
            (Value::String(err), _) => ("?".to_string(), format!("error: {err}")),
            (_, Value::Null) => ("-".to_string(), "holds nothing".to_string()),
            (_, holds) => (
                holds["live"].to_string(),
                format!("{} {}", text(&holds["vv"]), holds["values"]),
            ),
        };
        println!(
            "{:<3} {:<9} {:<5} {:<21} {:<17} {:>8}  {detail}",
            i + 1,
            text(&e["role"]),
            state,
            text(&e["address"]),
            text(&e["node"]),
            siblings,
        );
        for hint in e["hints"].as_array().into_iter().flatten() {
            println!(
                "      holds a hint for {}: {} {}",
                text(&hint["for"]),
                text(&hint["state"]["vv"]),
                hint["state"]["values"]
            );
        }
    }
    let merged_json = state_json(&merged);
    println!(
        "a read of every replica merges to {} live sibling(s): {} {}",
        merged_json["live"],
        text(&merged_json["vv"]),
        merged_json["values"]
    );
    for problem in &divergent {
        println!("DIVERGENT: {problem}");
    }
    if !divergent.is_empty() {
        println!("a read cannot repair this: one dot names two different writes");
    } else if repairs.is_empty() {
        println!("a read now would repair nothing: the home replicas agree");
    } else {
        println!("a read now would repair {}", repairs.join(", "));
    }
    Ok(())
}

/// States the replicas hold that no merge can reconcile: one dot naming different writes on
/// two replicas (a dot minted twice), which also shows as values that differ under equal
/// version vectors. Merge keeps whichever copy it meets first and the other write is lost to
/// every reader, so `explain` says so rather than "the replicas agree".
fn divergence(replicas: &[(&Value, Answer)]) -> Vec<String> {
    let mut seen: Vec<(String, &ringkv_core::Sibling)> = Vec::new();
    let mut states: Vec<(String, &SiblingSet)> = Vec::new();
    let mut problems = Vec::new();
    for (row, answer) in replicas {
        let Ok((data, hints)) = answer else { continue };
        let address = text(&row["address"]);
        let held = data.iter().map(|s| (address.clone(), s)).chain(
            hints
                .iter()
                .map(|(home, s)| (format!("{address} (hint for {home})"), s)),
        );
        for (place, state) in held {
            for sibling in state.siblings() {
                let clash = seen
                    .iter()
                    .find(|(_, other)| other.dot == sibling.dot && *other != sibling);
                if let Some((other_place, _)) = clash {
                    problems.push(format!(
                        "dot {} names different writes on {other_place} and {place}",
                        sibling.dot
                    ));
                }
                seen.push((place.clone(), sibling));
            }
            for (other_place, other) in &states {
                if other.version_vector() == state.version_vector()
                    && format::values(other) != format::values(state)
                {
                    problems.push(format!(
                        "{other_place} and {place} hold different values under the same version \
                         vector {}",
                        format::version_vector(state.version_vector())
                    ));
                }
            }
            states.push((place, state));
        }
    }
    problems.sort();
    problems.dedup();
    problems
}

fn state_json(state: &SiblingSet) -> Value {
    json!({
        "live": state.live_count(),
        "siblings": state.siblings().len(),
        "vv": format::version_vector(state.version_vector()),
        "values": format::values(state),
    })
}

/// A JSON string's text (empty for anything else).
pub(crate) fn text(v: &Value) -> String {
    v.as_str().unwrap_or_default().to_string()
}

/// A zone label as shown in tables: `-` for none.
pub(crate) fn zone_text(v: &Value) -> String {
    match v.as_str() {
        None | Some("") => "-".to_string(),
        Some(zone) => zone.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use ringkv_core::{Actor, VersionVector};

    use super::*;

    fn written(value: &str, context: &VersionVector) -> SiblingSet {
        let mut state = SiblingSet::new();
        state
            .stamp(
                Actor::legacy(NodeId(1)),
                context,
                Some(Bytes::from(value.to_string())),
                1,
                None,
            )
            .expect("stamp");
        state
    }

    /// The review's restore scenario as `explain` sees it: two replicas hold `{A:2}` with
    /// different values. That is not "the replicas agree".
    #[test]
    fn one_dot_naming_two_writes_is_reported_divergent() {
        let v1 = written("v1", &VersionVector::new());
        let mut v2 = v1.clone();
        v2.stamp(
            Actor::legacy(NodeId(1)),
            v1.version_vector(),
            Some(Bytes::from("v2")),
            2,
            None,
        )
        .expect("stamp");
        let mut v3 = v1.clone();
        v3.stamp(
            Actor::legacy(NodeId(1)),
            &VersionVector::new(),
            Some(Bytes::from("v3")),
            3,
            None,
        )
        .expect("stamp");
        // v3 at the restored replica re-minted A:2 (with v1 beside it, as a blind put).
        let rows = [
            json!({ "address": "a" }),
            json!({ "address": "b" }),
            json!({ "address": "c" }),
        ];
        let replicas: Vec<(&Value, Answer)> = vec![
            (&rows[0], Ok((Some(v3), Vec::new()))),
            (&rows[1], Ok((Some(v2.clone()), Vec::new()))),
            (&rows[2], Ok((Some(v2), Vec::new()))),
        ];
        let problems = divergence(&replicas);
        assert!(
            problems
                .iter()
                .any(|p| p.contains("names different writes on")),
            "{problems:?}"
        );

        let agreeing: Vec<(&Value, Answer)> = vec![
            (&rows[0], Ok((Some(v1.clone()), Vec::new()))),
            (&rows[1], Ok((Some(v1), Vec::new()))),
            (&rows[2], Err("down".into())),
        ];
        assert_eq!(divergence(&agreeing), Vec::<String>::new());
    }
}
