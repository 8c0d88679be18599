use super::rules_tests::{NOW, t};
use super::*;

fn allowed() -> Vec<String> {
    vec![".internal-server.local".to_owned()]
}

fn until(domain: &str, exp: &str) -> (String, Expiry) {
    (domain.to_owned(), Expiry::Until(t(exp)))
}

fn never(domain: &str) -> (String, Expiry) {
    (domain.to_owned(), Expiry::Never)
}

fn withdraw(domain: &str) -> (String, Expiry) {
    (
        domain.to_owned(),
        Expiry::Withdraw(t("2025-12-25T10:00:00Z")),
    )
}

/// Plans and applies; returns the results and the records written.
fn announce(
    table: &mut PublicTable,
    operator: &str,
    requested: &[(String, Expiry)],
    now: DateTime<Utc>,
) -> (Vec<Result<Outcome, Refusal>>, Vec<PublicAnnouncement>) {
    let plan = table.plan(operator, &allowed(), requested, now);
    let writes = plan.writes().cloned().collect();
    table.apply(plan.changes);
    (plan.results, writes)
}

fn operator_of(table: &PublicTable, domain: &str, now: DateTime<Utc>) -> Option<String> {
    table.route(domain, now).map(|a| a.operator.clone())
}

#[test]
fn allowed_taken_and_unchanged_announcements() {
    let mut table = PublicTable::default();
    let now = t(NOW);
    let (results, writes) = announce(
        &mut table,
        "op-a",
        &[
            never("foo.internal-server.local"),
            never("evil.example.com"),
        ],
        now,
    );
    assert_eq!(
        results,
        vec![Ok(Outcome::Announced), Err(Refusal::NotAllowed)]
    );
    assert_eq!(writes.len(), 1);
    let (results, writes) = announce(
        &mut table,
        "op-b",
        &[never("FOO.internal-server.local")],
        now,
    );
    assert_eq!(results, vec![Err(Refusal::Taken)]);
    assert!(writes.is_empty());
    let (results, writes) = announce(
        &mut table,
        "op-a",
        &[never("foo.internal-server.local")],
        now,
    );
    assert_eq!(results, vec![Ok(Outcome::Unchanged)]);
    assert!(
        writes.is_empty(),
        "an unchanged announcement is not rewritten"
    );
    assert_eq!(
        operator_of(&table, "Foo.Internal-Server.Local", now).as_deref(),
        Some("op-a")
    );
    assert!(table.route("bar.internal-server.local", now).is_none());
}

#[test]
fn an_expired_domain_is_free_again_and_pruned() {
    let mut table = PublicTable::default();
    let domain = "foo.internal-server.local";
    announce(
        &mut table,
        "op-a",
        &[until(domain, "2026-01-01T10:00:05Z")],
        t(NOW),
    );
    let later = t("2026-01-01T10:00:06Z");
    assert!(table.route(domain, later).is_none());
    assert!(table.live(later).is_empty());
    let (results, _) = announce(&mut table, "op-b", &[never(domain)], later);
    assert_eq!(results, vec![Ok(Outcome::Announced)]);
    assert_eq!(operator_of(&table, domain, later).as_deref(), Some("op-b"));
    assert_eq!(table.held_by("op-a"), 0, "the old owner's quota is freed");
    assert_eq!(table.held_by("op-b"), 1);
    let mut other = PublicTable::default();
    other.replay(vec![PublicAnnouncement {
        expires_at: Some(t(NOW)),
        operator: "x".into(),
        domain: "a.internal-server.local".into(),
    }]);
    assert_eq!(other.prune(later), 1);
    assert!(other.is_empty());
    assert_eq!(other.held_by("x"), 0);
}

#[test]
fn replay_keeps_the_last_write_per_domain() {
    let mut table = PublicTable::default();
    let a = |op: &str| PublicAnnouncement {
        expires_at: None,
        operator: op.into(),
        domain: "foo.internal-server.local".into(),
    };
    assert_eq!(table.replay(vec![a("op-a"), a("op-b")]), 0);
    assert_eq!(table.len(), 1);
    assert_eq!(
        operator_of(&table, "foo.internal-server.local", t(NOW)).as_deref(),
        Some("op-b")
    );
    assert_eq!((table.held_by("op-a"), table.held_by("op-b")), (0, 1));
}

#[test]
fn one_operator_cannot_hold_more_than_its_quota() {
    let mut table = PublicTable::new(Rules {
        quota: 3,
        max_lifetime: TimeDelta::days(7),
    });
    let now = t(NOW);
    let names: Vec<_> = (0..5)
        .map(|i| never(&format!("d{i}.internal-server.local")))
        .collect();
    let (results, writes) = announce(&mut table, "greedy", &names, now);
    assert_eq!(
        results,
        vec![
            Ok(Outcome::Announced),
            Ok(Outcome::Announced),
            Ok(Outcome::Announced),
            Err(Refusal::OverQuota { quota: 3 }),
            Err(Refusal::OverQuota { quota: 3 }),
        ]
    );
    assert_eq!(writes.len(), 3);
    // Renewing what it holds is not a new domain; others still announce.
    let (results, _) = announce(&mut table, "greedy", &names[..1], now);
    assert_eq!(results, vec![Ok(Outcome::Unchanged)]);
    let (results, _) = announce(&mut table, "other", &names[3..], now);
    assert_eq!(
        results,
        vec![Ok(Outcome::Announced), Ok(Outcome::Announced)]
    );
    // Withdrawing frees quota.
    let (results, _) = announce(&mut table, "greedy", &[withdraw(&names[0].0)], now);
    assert_eq!(results, vec![Ok(Outcome::Withdrawn)]);
    let (results, _) = announce(
        &mut table,
        "greedy",
        &[never("d9.internal-server.local")],
        now,
    );
    assert_eq!(results, vec![Ok(Outcome::Announced)]);
    assert_eq!(table.held_by("greedy"), 3);
}

#[test]
fn only_the_owner_withdraws_and_a_withdrawal_creates_nothing() {
    let mut table = PublicTable::default();
    let now = t(NOW);
    let domain = "foo.internal-server.local";
    announce(
        &mut table,
        "owner",
        &[until(domain, "2026-01-02T10:00:00Z")],
        now,
    );
    // Another operator's withdrawal (or change) is refused; the owner keeps routing.
    let (results, writes) = announce(&mut table, "thief", &[withdraw(domain)], now);
    assert_eq!(results, vec![Err(Refusal::Taken)]);
    assert!(writes.is_empty());
    let (results, _) = announce(
        &mut table,
        "thief",
        &[until(domain, "2026-01-01T10:00:01Z")],
        now,
    );
    assert_eq!(results, vec![Err(Refusal::Taken)]);
    assert_eq!(operator_of(&table, domain, now).as_deref(), Some("owner"));
    // A withdrawal of nothing held creates no entry.
    let (results, writes) = announce(
        &mut table,
        "thief",
        &[withdraw("free.internal-server.local")],
        now,
    );
    assert_eq!(results, vec![Ok(Outcome::NothingToWithdraw)]);
    assert!(writes.is_empty());
    assert_eq!(table.len(), 1);
    // The owner's withdrawal is written (with its past expiry) and removes the entry.
    let (results, writes) = announce(&mut table, "owner", &[withdraw(domain)], now);
    assert_eq!(results, vec![Ok(Outcome::Withdrawn)]);
    assert_eq!(writes.len(), 1);
    assert!(writes[0].expires_at.unwrap() < now);
    assert!(table.is_empty());
    assert_eq!(table.held_by("owner"), 0);
    // Replaying the records (announcement, withdrawal) leaves nothing live.
    let mut replayed = PublicTable::default();
    replayed.replay(vec![
        PublicAnnouncement {
            expires_at: Some(t("2026-01-02T10:00:00Z")),
            operator: "owner".into(),
            domain: domain.into(),
        },
        writes[0].clone(),
    ]);
    replayed.prune(now);
    assert!(replayed.is_empty());
}

#[test]
fn small_extensions_are_applied_in_memory_and_written_by_compaction() {
    let mut table = PublicTable::default();
    let now = t(NOW);
    let domain = "foo.internal-server.local";
    let (_, writes) = announce(
        &mut table,
        "op",
        &[until(domain, "2026-01-08T10:00:00Z")],
        now,
    );
    assert_eq!(writes.len(), 1);
    let later = t("2026-01-01T10:10:00Z");
    let (results, writes) = announce(
        &mut table,
        "op",
        &[until(domain, "2026-01-08T10:10:00Z")],
        later,
    );
    assert_eq!(results, vec![Ok(Outcome::Renewed)]);
    assert!(writes.is_empty(), "a 10-minute extension is not written");
    assert_eq!(
        table.route(domain, later).unwrap().expires_at,
        Some(t("2026-01-08T10:10:00Z")),
        "but it routes with the new expiry"
    );
    // Two days on, a renewal moves the stored expiry by more than a quarter: written.
    let days_later = t("2026-01-03T10:10:00Z");
    let (results, writes) = announce(
        &mut table,
        "op",
        &[until(domain, "2026-01-10T10:10:00Z")],
        days_later,
    );
    assert_eq!(results, vec![Ok(Outcome::Announced)]);
    assert_eq!(writes.len(), 1);
    // A compaction snapshot carries the in-memory expiry; afterwards it is the stored one.
    announce(
        &mut table,
        "op",
        &[until(domain, "2026-01-10T10:20:00Z")],
        t("2026-01-03T10:20:00Z"),
    );
    assert_eq!(
        table.snapshot()[0].expires_at,
        Some(t("2026-01-10T10:20:00Z"))
    );
    table.mark_durable();
    let (_, writes) = announce(
        &mut table,
        "op",
        &[until(domain, "2026-01-10T10:15:00Z")],
        t("2026-01-03T10:20:00Z"),
    );
    assert_eq!(writes.len(), 1, "shortening is always written");
}

#[test]
fn the_table_bound_holds_whatever_the_quotas() {
    let mut table = PublicTable::new(Rules {
        quota: MAX_ANNOUNCEMENTS,
        max_lifetime: TimeDelta::days(7),
    });
    table.replay((0..MAX_ANNOUNCEMENTS).map(|i| PublicAnnouncement {
        expires_at: None,
        operator: format!("op-{}", i % 7),
        domain: format!("d{i}.internal-server.local"),
    }));
    assert_eq!(table.len(), MAX_ANNOUNCEMENTS);
    let (results, _) = announce(
        &mut table,
        "late",
        &[never("new.internal-server.local")],
        t(NOW),
    );
    assert_eq!(results, vec![Err(Refusal::Full)]);
    let (results, _) = announce(
        &mut table,
        "op-0",
        &[withdraw("d0.internal-server.local")],
        t(NOW),
    );
    assert_eq!(results, vec![Ok(Outcome::Withdrawn)]);
    let (results, _) = announce(
        &mut table,
        "late",
        &[never("new.internal-server.local")],
        t(NOW),
    );
    assert_eq!(results, vec![Ok(Outcome::Announced)]);
}

#[test]
fn repeated_domains_in_one_call_see_each_other() {
    let mut table = PublicTable::new(Rules {
        quota: 1,
        max_lifetime: TimeDelta::days(7),
    });
    let now = t(NOW);
    let d = "foo.internal-server.local";
    let (results, writes) = announce(
        &mut table,
        "op",
        &[
            until(d, "2026-01-02T10:00:00Z"),
            until(d, "2026-01-01T12:00:00Z"),
            withdraw(d),
            never(d),
        ],
        now,
    );
    assert_eq!(
        results,
        vec![
            Ok(Outcome::Announced),
            Ok(Outcome::Announced),
            Ok(Outcome::Withdrawn),
            Ok(Outcome::Announced),
        ]
    );
    assert_eq!(writes.len(), 4);
    assert_eq!(table.route(d, now).unwrap().expires_at, None);
    assert_eq!(table.held_by("op"), 1);
}
