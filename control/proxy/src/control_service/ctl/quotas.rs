//! `proxy ctl quotas`: each operator's quotas as `used/limit` (`-` for unlimited) and its
//! bandwidth limits, as a table or JSON.

use std::io::Write;

use serde_json::{Value, json};
use tandem_proto::control as pb;

/// `used/limit`, or `used/-` when unlimited.
fn cell(q: &pb::QuotaUse) -> String {
    match q.limit {
        0 => format!("{}/-", q.used),
        l => format!("{}/{l}", q.used),
    }
}

/// A rate in bytes per second as `12.5 MB/s`, `-` when unlimited.
fn rate(bytes_per_second: u64) -> String {
    match bytes_per_second {
        0 => "-".to_owned(),
        b if b >= 1_000_000 => format!("{:.1} MB/s", b as f64 / 1e6),
        b if b >= 1_000 => format!("{:.1} kB/s", b as f64 / 1e3),
        b => format!("{b} B/s"),
    }
}

fn operator_json(o: &pb::OperatorQuotas) -> Value {
    let quotas: serde_json::Map<String, Value> = o
        .quotas
        .iter()
        .map(|q| {
            let limit = (q.limit > 0).then_some(q.limit);
            (q.quota.clone(), json!({"used": q.used, "limit": limit}))
        })
        .collect();
    json!({
        "operator": o.operator,
        "quotas": quotas,
        "pair_bytes_per_second": (o.pair_bytes_per_second > 0).then_some(o.pair_bytes_per_second),
        "operator_bytes_per_second":
            (o.operator_bytes_per_second > 0).then_some(o.operator_bytes_per_second),
    })
}

/// Writes the quotas table (or JSON).
pub(super) fn render(
    out: &mut impl Write,
    answer: &pb::QuotasResponse,
    json: bool,
) -> std::io::Result<()> {
    if json {
        let all: Vec<Value> = answer.operators.iter().map(operator_json).collect();
        let doc = json!({"operators": all, "truncated": answer.truncated});
        return writeln!(out, "{doc}");
    }
    let width = answer
        .operators
        .iter()
        .map(|o| o.operator.len())
        .chain([8])
        .max()
        .unwrap_or(8);
    writeln!(
        out,
        "{:width$}  {:>12}  {:>12}  {:>14}  {:>22}  {:>11}  {:>11}",
        "OPERATOR", "LIVE", "WAITING", "PER MINUTE", "BYTES TODAY", "PAIR BW", "OPERATOR BW"
    )?;
    for o in &answer.operators {
        let get = |name: &str| {
            o.quotas
                .iter()
                .find(|q| q.quota == name)
                .map_or_else(|| "-".to_owned(), cell)
        };
        writeln!(
            out,
            "{:width$}  {:>12}  {:>12}  {:>14}  {:>22}  {:>11}  {:>11}",
            o.operator,
            get("live_pairs"),
            get("waiting_pairs"),
            get("pairs_per_minute"),
            get("bytes_per_day"),
            rate(o.pair_bytes_per_second),
            rate(o.operator_bytes_per_second),
        )?;
    }
    if answer.truncated {
        writeln!(out, "(more operators than listed)")?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer() -> pb::QuotasResponse {
        let q = |quota: &str, used, limit| pb::QuotaUse {
            quota: quota.into(),
            used,
            limit,
        };
        pb::QuotasResponse {
            operators: vec![pb::OperatorQuotas {
                operator: "hd-1".into(),
                quotas: vec![
                    q("live_pairs", 3, 10),
                    q("pairs_per_minute", 1, 0),
                    q("waiting_pairs", 0, 2),
                    q("bytes_per_day", 12, 0),
                ],
                pair_bytes_per_second: 125_000,
                operator_bytes_per_second: 0,
            }],
            truncated: false,
        }
    }

    #[test]
    fn a_table_row_and_json_per_operator() {
        let mut out = Vec::new();
        render(&mut out, &answer(), false).unwrap();
        let text = String::from_utf8(out).unwrap();
        let row = text.lines().nth(1).unwrap();
        let cells: Vec<&str> = row.split_whitespace().collect();
        assert_eq!(
            cells,
            ["hd-1", "3/10", "0/2", "1/-", "12/-", "125.0", "kB/s", "-"]
        );
        let mut out = Vec::new();
        render(&mut out, &answer(), true).unwrap();
        let v: Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(
            v["operators"][0]["quotas"]["live_pairs"],
            json!({"used": 3, "limit": 10})
        );
        assert_eq!(
            v["operators"][0]["quotas"]["bytes_per_day"]["limit"],
            Value::Null
        );
        assert_eq!(v["operators"][0]["pair_bytes_per_second"], 125_000);
    }
}
