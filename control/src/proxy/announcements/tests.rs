use super::*;

fn t(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

fn allowed() -> Vec<String> {
    vec![".internal-server.local".to_owned()]
}

fn req(domain: &str, exp: Option<&str>) -> (String, Option<DateTime<Utc>>) {
    (domain.to_owned(), exp.map(t))
}

const NOW: &str = "2026-01-01T10:00:00Z";

#[test]
fn allowed_taken_and_unchanged_announcements() {
    let mut table = PublicTable::default();
    let now = t(NOW);
    let plan = table.plan(
        "op-a",
        &allowed(),
        &[
            req("foo.internal-server.local", None),
            req("evil.example.com", None),
        ],
        now,
    );
    assert_eq!(plan.results, vec![Ok(()), Err(Refusal::NotAllowed)]);
    assert_eq!(plan.writes.len(), 1);
    table.apply(plan.writes);
    let plan = table.plan(
        "op-b",
        &allowed(),
        &[req("FOO.internal-server.local", None)],
        now,
    );
    assert_eq!(plan.results, vec![Err(Refusal::Taken)]);
    assert!(plan.writes.is_empty());
    let plan = table.plan(
        "op-a",
        &allowed(),
        &[req("foo.internal-server.local", None)],
        now,
    );
    assert_eq!(plan.results, vec![Ok(())]);
    assert!(
        plan.writes.is_empty(),
        "an unchanged announcement is not rewritten"
    );
    assert_eq!(
        table
            .route("Foo.Internal-Server.Local", now)
            .unwrap()
            .operator,
        "op-a"
    );
    assert!(table.route("bar.internal-server.local", now).is_none());
}

#[test]
fn an_expired_domain_is_free_again_and_pruned() {
    let mut table = PublicTable::default();
    let plan = table.plan(
        "op-a",
        &allowed(),
        &[req(
            "foo.internal-server.local",
            Some("2026-01-01T10:00:05Z"),
        )],
        t(NOW),
    );
    table.apply(plan.writes);
    let later = t("2026-01-01T10:00:06Z");
    assert!(table.route("foo.internal-server.local", later).is_none());
    assert!(table.live(later).is_empty());
    let plan = table.plan(
        "op-b",
        &allowed(),
        &[req("foo.internal-server.local", None)],
        later,
    );
    assert_eq!(plan.results, vec![Ok(())]);
    table.apply(plan.writes);
    assert_eq!(
        table
            .route("foo.internal-server.local", later)
            .unwrap()
            .operator,
        "op-b"
    );
    let mut other = PublicTable::default();
    other.apply(vec![PublicAnnouncement {
        expires_at: Some(t(NOW)),
        operator: "x".into(),
        domain: "a.internal-server.local".into(),
    }]);
    assert_eq!(other.prune(later), 1);
    assert!(other.is_empty());
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
        table
            .route("foo.internal-server.local", t(NOW))
            .unwrap()
            .operator,
        "op-b"
    );
}

#[test]
fn expiry_bound_and_the_stored_json_shape() {
    let now = t(NOW);
    assert!(expiry_ok(Some(t("2026-01-08T10:00:00Z")), now));
    assert!(!expiry_ok(Some(t("2026-01-08T10:00:01Z")), now));
    assert!(expiry_ok(None, now));
    let a = PublicAnnouncement {
        expires_at: None,
        operator: "op".into(),
        domain: "d".into(),
    };
    assert_eq!(
        serde_json::to_value(&a).unwrap(),
        serde_json::json!({"expires_at": null, "operator": "op", "domain": "d"})
    );
    let back: PublicAnnouncement = serde_json::from_str(
        r#"{"expires_at":"2026-01-01T12:00:00+02:00","operator":"op","domain":"d"}"#,
    )
    .unwrap();
    assert_eq!(back.expires_at, Some(t(NOW)));
}

#[test]
fn private_table_matches_live_announcements_per_proxy() {
    let mut table = PrivateTable::default();
    let a = PrivateAnnouncement {
        expires_at: Some(t("2026-01-01T10:00:05Z")),
        proxy: "pp".into(),
        domain: "foo.internal-server.local".into(),
    };
    assert_eq!(table.upsert(a.clone()), Ok(true));
    assert_eq!(table.upsert(a), Ok(false));
    assert!(table.matches("pp", "FOO.internal-server.local", t(NOW)));
    assert!(!table.matches("other", "foo.internal-server.local", t(NOW)));
    let later = t("2026-01-01T10:00:06Z");
    assert!(!table.matches("pp", "foo.internal-server.local", later));
    assert_eq!(table.prune(later), 1);
    assert!(table.live(later).is_empty());
}
