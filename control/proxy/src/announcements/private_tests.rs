use super::rules_tests::{NOW, t};
use super::*;

const PP: &str = "public-proxy-1.ga";

fn until(exp: &str) -> Expiry {
    Expiry::Until(t(exp))
}

fn withdraw() -> Expiry {
    Expiry::Withdraw(t("2025-12-25T10:00:00Z"))
}

/// Plans and applies; returns the outcome and whether a record was written.
fn announce(
    table: &mut PrivateTable,
    tenant: &str,
    domain: &str,
    expiry: Expiry,
    now: DateTime<Utc>,
) -> Result<(Outcome, bool), Refusal> {
    let (outcome, change) = table.plan(tenant, PP, domain, expiry, now)?;
    let wrote = change.as_ref().is_some_and(|c| c.write);
    if let Some(c) = change {
        table.apply(c);
    }
    Ok((outcome, wrote))
}

#[test]
fn private_table_matches_live_announcements_per_proxy() {
    let mut table = PrivateTable::default();
    let d = "foo.internal-server.local";
    assert_eq!(
        announce(&mut table, "hd-1", d, until("2026-01-01T10:00:05Z"), t(NOW)),
        Ok((Outcome::Announced, true))
    );
    assert_eq!(
        announce(&mut table, "hd-1", d, until("2026-01-01T10:00:05Z"), t(NOW)),
        Ok((Outcome::Unchanged, false))
    );
    assert!(table.matches(PP, "FOO.internal-server.local", t(NOW)));
    assert!(!table.matches("other", d, t(NOW)));
    let later = t("2026-01-01T10:00:06Z");
    assert!(!table.matches(PP, d, later));
    assert_eq!(table.prune(later), 1);
    assert!(table.live(later).is_empty());
    assert_eq!(table.held_by("hd-1"), 0);
}

#[test]
fn a_tenant_with_an_overlapping_suffix_cannot_expire_or_take_another_tenants_domain() {
    // hd-1 and hd-2 are both allowed `.internal-server.local` (the suffix check is the
    // caller's): hd-2 must still not touch hd-1's domain while it is live.
    let mut table = PrivateTable::default();
    let now = t(NOW);
    let d = "hd1-app.internal-server.local";
    announce(&mut table, "hd-1", d, until("2026-01-05T10:00:00Z"), now).unwrap();
    assert_eq!(
        announce(&mut table, "hd-2", d, withdraw(), now),
        Err(Refusal::Taken),
        "withdrawing another tenant's domain is refused"
    );
    assert_eq!(
        announce(&mut table, "hd-2", d, until("2026-01-01T10:00:01Z"), now),
        Err(Refusal::Taken),
        "shortening it is refused"
    );
    assert_eq!(
        announce(&mut table, "hd-2", d, Expiry::Never, now),
        Err(Refusal::Taken),
        "taking it over is refused"
    );
    let live = table.live(now);
    assert_eq!(live.len(), 1);
    assert_eq!(live[0].operator.as_deref(), Some("hd-1"));
    assert_eq!(live[0].expires_at, Some(t("2026-01-05T10:00:00Z")));
    // The owner renews (a one-day extension of a 4-day lifetime: kept in memory) and
    // withdraws; then the domain is free for hd-2.
    assert_eq!(
        announce(&mut table, "hd-1", d, until("2026-01-06T10:00:00Z"), now),
        Ok((Outcome::Renewed, false))
    );
    assert_eq!(
        table.live(now)[0].expires_at,
        Some(t("2026-01-06T10:00:00Z"))
    );
    assert_eq!(
        announce(&mut table, "hd-1", d, withdraw(), now),
        Ok((Outcome::Withdrawn, true))
    );
    assert!(!table.matches(PP, d, now));
    assert_eq!(
        announce(&mut table, "hd-2", d, Expiry::Never, now),
        Ok((Outcome::Announced, true))
    );
    assert_eq!(table.live(now)[0].operator.as_deref(), Some("hd-2"));
}

#[test]
fn quota_per_tenant_and_withdrawals_of_nothing() {
    let mut table = PrivateTable::new(Rules {
        quota: 2,
        max_lifetime: TimeDelta::days(7),
    });
    let now = t(NOW);
    for i in 0..2 {
        let d = format!("a{i}.internal-server.local");
        announce(&mut table, "hd-1", &d, Expiry::Never, now).unwrap();
    }
    assert_eq!(
        announce(
            &mut table,
            "hd-1",
            "a2.internal-server.local",
            Expiry::Never,
            now
        ),
        Err(Refusal::OverQuota { quota: 2 })
    );
    assert_eq!(
        announce(
            &mut table,
            "hd-2",
            "b0.internal-server.local",
            Expiry::Never,
            now
        ),
        Ok((Outcome::Announced, true)),
        "another tenant is not blocked"
    );
    assert_eq!(
        announce(
            &mut table,
            "hd-1",
            "zz.internal-server.local",
            withdraw(),
            now
        ),
        Ok((Outcome::NothingToWithdraw, false))
    );
    assert_eq!(table.len(), 3, "a withdrawal of nothing creates nothing");
}

#[test]
fn an_ownerless_legacy_entry_is_claimed_by_the_first_tenant_that_renews_it() {
    let mut table = PrivateTable::default();
    let now = t(NOW);
    let d = "old.internal-server.local";
    table.replay(vec![PrivateAnnouncement {
        expires_at: None,
        proxy: PP.into(),
        domain: d.into(),
        operator: None,
    }]);
    assert_eq!(
        announce(&mut table, "hd-1", d, Expiry::Never, now),
        Ok((Outcome::Announced, true)),
        "claiming writes the owner even when the expiry is unchanged"
    );
    assert_eq!(table.held_by("hd-1"), 1);
    assert_eq!(
        announce(&mut table, "hd-2", d, withdraw(), now),
        Err(Refusal::Taken)
    );
}

#[test]
fn small_private_extensions_are_not_written() {
    let mut table = PrivateTable::default();
    let d = "foo.internal-server.local";
    announce(&mut table, "hd-1", d, until("2026-01-08T10:00:00Z"), t(NOW)).unwrap();
    assert_eq!(
        announce(
            &mut table,
            "hd-1",
            d,
            until("2026-01-08T10:10:00Z"),
            t("2026-01-01T10:10:00Z")
        ),
        Ok((Outcome::Renewed, false))
    );
    assert_eq!(
        table.snapshot()[0].expires_at,
        Some(t("2026-01-08T10:10:00Z"))
    );
}
