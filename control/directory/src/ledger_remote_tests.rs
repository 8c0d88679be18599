//! A directory client's updates ([`Ledger::apply_remote`]) under the sd's chain rules: a lying sd's reordered,
//! thinned, duplicated or rolled-back chain is refused and changes nothing.

use std::collections::BTreeMap;

use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use serde_json::json;

use super::tests::{T0, T1, fixture, groups};
use super::*;

const T2: &str = "2023-01-01T00:00:00Z";

type State = (Option<String>, usize, BTreeMap<String, DirectoryEntry>);

/// What a client serves from: tip, chain length, entries.
fn state(ledger: &Ledger) -> State {
    (
        ledger.tip().map(|r| r.hash.clone()),
        ledger.chain().len(),
        ledger.entries().clone(),
    )
}

fn hd1_groups(ledger: &Ledger) -> Vec<String> {
    ledger
        .entry("hd-1")
        .map(|e| e.groups.clone())
        .unwrap_or_default()
}

/// A signed chain `[root, a, b, c, d]` (hd-1's groups: root, a, b, c, d), and a client holding its first two.
fn chain_and_client(f: &super::tests::Fixture) -> (Vec<SignedChangeRecord>, Ledger) {
    let chain = f
        .admin
        .sign_chain(
            "",
            ["root", "a", "b", "c", "d"]
                .iter()
                .map(|g| groups("hd-1", g, T0))
                .collect(),
        )
        .unwrap();
    let mut client = Ledger::new();
    client
        .apply_remote(chain[..2].to_vec(), &f.verifier)
        .unwrap();
    assert_eq!(hd1_groups(&client), vec!["a".to_string()]);
    (chain, client)
}

/// Serves `records` to `client` and expects a refusal that leaves the client as it was.
fn refused(
    client: &mut Ledger,
    records: Vec<SignedChangeRecord>,
    verifier: &Verifier,
) -> RemoteError {
    let before = state(client);
    let err = client.apply_remote(records, verifier).unwrap_err();
    assert_eq!(
        state(client),
        before,
        "a refused update changes nothing ({err})"
    );
    err
}

#[test]
fn remote_updates_follow_client_rules() {
    let f = fixture();
    let mut server = Ledger::new();
    let first = f
        .admin
        .sign_chain("", vec![groups("hd-1", "a", T1)])
        .unwrap();
    server
        .apply(server.check_append(&first, &f.verifier).unwrap())
        .unwrap();
    let mut client = Ledger::new();
    client
        .apply_remote(server.records_after("").to_vec(), &f.verifier)
        .unwrap();
    let more = f
        .admin
        .sign_chain(&first[0].hash, vec![groups("hd-1", "b", T1)])
        .unwrap();
    server
        .apply(server.check_append(&more, &f.verifier).unwrap())
        .unwrap();
    let tip = client.tip().unwrap().hash.clone();
    client
        .apply_remote(server.records_after(&tip).to_vec(), &f.verifier)
        .unwrap();
    assert_eq!(client.chain().len(), 2);
    assert_eq!(hd1_groups(&client), vec!["b".to_string()]);

    let dangling = f
        .admin
        .sign_chain(&"a".repeat(64), vec![groups("hd-1", "x", T1)])
        .unwrap();
    let err = refused(&mut client, dangling, &f.verifier);
    assert!(matches!(err, RemoteError::NotARoot { .. }), "{err}");
    assert!(err.to_string().starts_with("expected a new root record"));
    let outdated = f
        .admin
        .sign_chain("", vec![groups("hd-1", "old", T0)])
        .unwrap();
    let err = refused(&mut client, outdated, &f.verifier);
    assert_eq!(err.kind(), "outdated");
    assert!(
        err.to_string()
            .starts_with("server tried to provide an outdated service directory"),
        "{err}"
    );
    let mut forged = f
        .admin
        .sign_chain(&client.tip().unwrap().hash, vec![groups("hd-1", "z", T1)])
        .unwrap();
    forged[0].record.data = json!(["evil"]);
    let err = refused(&mut client, forged, &f.verifier);
    assert!(
        matches!(
            err,
            RemoteError::Chain(ChainError::Rejected {
                source: RecordError::InvalidHash,
                ..
            })
        ),
        "{err}"
    );
}

#[test]
fn remote_refuses_a_reordered_chain() {
    let f = fixture();
    let (chain, mut client) = chain_and_client(&f);
    let reordered = vec![chain[2].clone(), chain[4].clone(), chain[3].clone()];
    let err = refused(&mut client, reordered, &f.verifier);
    let RemoteError::Chain(ChainError::Unlinked {
        position,
        hash,
        parent,
        expected,
    }) = &err
    else {
        panic!("expected unlinked, got {err}");
    };
    assert_eq!(*position, 1);
    assert_eq!((hash, parent), (&chain[4].hash, &chain[3].hash));
    assert_eq!(expected, &chain[2].hash);
    assert_eq!(err.kind(), "unlinked");
    assert!(
        err.to_string()
            .contains("does not extend the record before it")
    );
}

#[test]
fn remote_refuses_a_thinned_chain() {
    let f = fixture();
    let (chain, mut client) = chain_and_client(&f);
    // c is dropped: the client would end at d having never seen c.
    let thinned = vec![chain[2].clone(), chain[4].clone()];
    let err = refused(&mut client, thinned, &f.verifier);
    assert!(
        matches!(
            &err,
            RemoteError::Chain(ChainError::Unlinked { position: 1, hash, .. }) if *hash == chain[4].hash
        ),
        "{err}"
    );
    // The whole chain with a record dropped, served as if the client's tip were unknown.
    let rolled_back = vec![chain[0].clone(), chain[2].clone()];
    let err = refused(&mut client, rolled_back, &f.verifier);
    assert_eq!(err.kind(), "duplicate", "{err}");
}

#[test]
fn remote_refuses_a_duplicate() {
    let f = fixture();
    let (chain, mut client) = chain_and_client(&f);
    let twice = vec![chain[2].clone(), chain[2].clone()];
    let err = refused(&mut client, twice, &f.verifier);
    assert!(
        matches!(
            err,
            RemoteError::Chain(ChainError::Duplicate { position: 1, .. })
        ),
        "{err}"
    );
    // A record the client already holds, and a replay of the whole chain from its own root (a rollback to a prefix).
    for replay in [vec![chain[1].clone()], chain[..2].to_vec()] {
        let err = refused(&mut client, replay, &f.verifier);
        assert!(
            matches!(
                err,
                RemoteError::Chain(ChainError::Duplicate { position: 0, .. })
            ),
            "{err}"
        );
    }
}

#[test]
fn remote_refuses_a_root_in_the_middle_that_is_not_a_newer_reset() {
    let f = fixture();
    let (chain, mut client) = chain_and_client(&f);
    for at in [T0, "2020-01-01T00:00:00Z"] {
        let root = f
            .admin
            .sign_chain("", vec![groups("hd-1", "other", at)])
            .unwrap();
        let err = refused(
            &mut client,
            vec![chain[2].clone(), root[0].clone()],
            &f.verifier,
        );
        assert!(
            matches!(
                err,
                RemoteError::Outdated(ChainError::ResetNotNewer { position: 1, .. })
            ),
            "{at}: {err}"
        );
        // First in the list too: a different root as old as the local one does not replace it.
        let err = refused(&mut client, root, &f.verifier);
        assert_eq!(err.kind(), "outdated", "{at}: {err}");
    }
}

#[test]
fn remote_accepts_a_valid_incremental_update() {
    let f = fixture();
    let (chain, mut client) = chain_and_client(&f);
    client.apply_remote(Vec::new(), &f.verifier).unwrap();
    // A prefix of what follows (the rest comes with the next refresh).
    client
        .apply_remote(chain[2..4].to_vec(), &f.verifier)
        .unwrap();
    assert_eq!(client.tip().unwrap().hash, chain[3].hash);
    assert_eq!(hd1_groups(&client), vec!["c".to_string()]);
    client
        .apply_remote(chain[4..].to_vec(), &f.verifier)
        .unwrap();
    assert_eq!(client.chain(), &chain[..]);
    assert_eq!(hd1_groups(&client), vec!["d".to_string()]);
    assert_eq!(client.entry("hd-1").unwrap().records.len(), 5);
}

#[test]
fn remote_accepts_a_valid_newer_reset() {
    let f = fixture();
    let (chain, mut client) = chain_and_client(&f);
    let newer = f
        .admin
        .sign_chain("", vec![groups("hd-2", "n", T1), groups("hd-2", "m", T1)])
        .unwrap();
    client.apply_remote(newer.clone(), &f.verifier).unwrap();
    assert_eq!(client.chain(), &newer[..]);
    assert!(client.entry("hd-1").is_none());
    assert_eq!(client.entry("hd-2").unwrap().groups, vec!["m".to_string()]);

    // A newer root later in the list, as the sd accepts it in a batch: the chain restarts there.
    let (chain2, mut client2) = chain_and_client(&f);
    let newest = f
        .admin
        .sign_chain("", vec![groups("hd-3", "z", T2)])
        .unwrap();
    client2
        .apply_remote(vec![chain2[2].clone(), newest[0].clone()], &f.verifier)
        .unwrap();
    assert_eq!(client2.chain(), &newest[..]);
    assert!(client2.entry("hd-1").is_none());
    // The replaced chain is forgotten: it neither counts as held nor can be continued.
    assert_eq!(client2.stored_len(), 1);
    let err = refused(&mut client2, chain[3..].to_vec(), &f.verifier);
    assert_eq!(err.kind(), "not_a_root", "{err}");
}

/// Indices into a 5-record chain: a subset in any order, or any list with repeats.
fn served() -> impl Strategy<Value = Vec<usize>> {
    let all: Vec<usize> = (0..5).collect();
    prop_oneof![
        prop::sample::subsequence(all, 0..=5).prop_flat_map(|v| Just(v).prop_shuffle()),
        prop::collection::vec(0..5usize, 0..=6),
    ]
}

#[test]
fn remote_accepts_only_a_continuation_of_the_chain() {
    let f = fixture();
    let (chain, _) = chain_and_client(&f);
    let mut runner = TestRunner::new(Config::with_cases(256));
    runner
        .run(&(0..=5usize, served()), |(held, served)| {
            let mut client = Ledger::new();
            client
                .apply_remote(chain[..held].to_vec(), &f.verifier)
                .map_err(|e| TestCaseError::fail(e.to_string()))?;
            let before = state(&client);
            let records = served.iter().map(|&i| chain[i].clone()).collect();
            let continuation = served.iter().copied().eq(held..held + served.len());
            match client.apply_remote(records, &f.verifier) {
                Ok(()) => {
                    prop_assert!(continuation, "accepted {served:?} after {held}");
                    prop_assert_eq!(client.chain(), &chain[..held + served.len()]);
                }
                Err(e) => {
                    prop_assert!(!continuation, "refused {served:?} after {held}: {e}");
                    prop_assert_eq!(state(&client), before);
                }
            }
            Ok(())
        })
        .unwrap();
}
