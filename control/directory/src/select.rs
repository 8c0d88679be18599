//! Chain selection over every stored record (the original's `buildChains` + `update`): records whose parent is empty
//! or unknown are roots; a DFS in storage order walks every root-to-leaf path; on each path the records that verify
//! against the valid records before them are kept (invalid ones are skipped, not chain-terminating); the path whose
//! first valid record has the latest `created_at` wins, ties going to the first found. Each record is verified once.

use std::collections::{HashMap, HashSet};

use super::record::SignedChangeRecord;
use super::verify::{SigningPins, Verifier};

enum Step {
    Visit(usize),
    Leave {
        kept: bool,
        undo: Option<(String, Option<String>)>,
    },
}

/// Indices (into `records`) of the selected chain's valid records, root first.
pub fn best_chain(records: &[SignedChangeRecord], verifier: &Verifier) -> Vec<usize> {
    let known: HashSet<&str> = records.iter().map(|r| r.hash.as_str()).collect();
    let mut roots = Vec::new();
    let mut children: HashMap<&str, Vec<usize>> = HashMap::new();
    for (i, record) in records.iter().enumerate() {
        if record.parent_hash.is_empty() || !known.contains(record.parent_hash.as_str()) {
            roots.push(i);
        } else {
            children
                .entry(record.parent_hash.as_str())
                .or_default()
                .push(i);
        }
    }
    let mut visited: HashSet<&str> = HashSet::new();
    let mut pins = SigningPins::default();
    let mut path: Vec<usize> = Vec::new();
    let mut best: Option<Vec<usize>> = None;
    let mut stack: Vec<Step> = roots.iter().rev().map(|&i| Step::Visit(i)).collect();
    while let Some(step) = stack.pop() {
        let i = match step {
            Step::Leave { kept, undo } => {
                if kept {
                    path.pop();
                }
                if let Some((name, previous)) = undo {
                    pins.restore(&name, previous);
                }
                continue;
            }
            Step::Visit(i) => i,
        };
        let record = &records[i];
        if !visited.insert(record.hash.as_str()) {
            continue;
        }
        let (kept, undo) = match verifier.verify_record(record, &pins) {
            Ok(_) => {
                path.push(i);
                (
                    true,
                    pins.observe(record)
                        .map(|previous| (record.record.name.clone(), previous)),
                )
            }
            Err(error) => {
                tracing::warn!(hash = %record.hash, kind = error.kind(), %error, "skipping a stored record that does not verify");
                (false, None)
            }
        };
        stack.push(Step::Leave { kept, undo });
        let next: Vec<usize> = children
            .get(record.hash.as_str())
            .map(|c| {
                c.iter()
                    .copied()
                    .filter(|&c| !visited.contains(records[c].hash.as_str()))
                    .collect()
            })
            .unwrap_or_default();
        if next.is_empty() {
            consider(records, &path, &mut best);
        }
        stack.extend(next.into_iter().rev().map(Step::Visit));
    }
    best.unwrap_or_default()
}

fn consider(records: &[SignedChangeRecord], path: &[usize], best: &mut Option<Vec<usize>>) {
    let Some(&first) = path.first() else { return };
    let better = match best.as_ref().and_then(|b| b.first()) {
        None => true,
        Some(&current) => records[first]
            .record
            .created_at
            .is_after(&records[current].record.created_at),
    };
    if better {
        *best = Some(path.to_vec());
    }
}
