use super::*;

pub(super) fn t(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

pub(super) const NOW: &str = "2026-01-01T10:00:00Z";

#[test]
fn expiry_must_be_in_the_future_and_within_the_maximum_lifetime() {
    let rules = Rules::default();
    let now = t(NOW);
    assert_eq!(rules.max_lifetime, TimeDelta::days(7));
    assert_eq!(
        rules.expiry(Some(t("2026-01-08T10:00:00Z")), now),
        Ok(Expiry::Until(t("2026-01-08T10:00:00Z"))),
        "exactly 7 days ahead (iris-client's now + 1 week) is accepted"
    );
    let err = rules
        .expiry(Some(t("2026-01-08T10:00:01Z")), now)
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "timed announcements need to expire in 7 days or less"
    );
    assert_eq!(rules.expiry(None, now), Ok(Expiry::Never));
    // Not in the future: a withdrawal (iris-client aborts with now - 1 week), never an
    // announcement.
    for past in ["2025-12-25T10:00:00Z", NOW] {
        assert_eq!(
            rules.expiry(Some(t(past)), now),
            Ok(Expiry::Withdraw(t(past)))
        );
    }
    let short = Rules {
        quota: 1,
        max_lifetime: TimeDelta::hours(2),
    };
    let err = short
        .expiry(Some(t("2026-01-01T12:00:01Z")), now)
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "timed announcements need to expire in 2 hours or less"
    );
}

#[test]
fn rules_come_from_the_settings() {
    let settings = AnnouncementSettings {
        per_operator_quota: std::num::NonZeroUsize::new(3).unwrap(),
        max_lifetime: std::time::Duration::from_secs(90),
    };
    let rules = Rules::new(&settings);
    assert_eq!(rules.quota, 3);
    assert_eq!(rules.max_lifetime, TimeDelta::seconds(90));
    assert_eq!(Rules::default().quota, 1024);
}

#[test]
fn an_extension_is_written_only_when_it_moves_expiry_by_more_than_a_quarter() {
    let now = t(NOW);
    let at = |hours: i64| Some(now + TimeDelta::hours(hours));
    // Stored 7 days ahead, renewed 10 minutes later to 7 days ahead: deferred.
    let stored = at(7 * 24);
    let renewed = Some(now + TimeDelta::hours(7 * 24) + TimeDelta::minutes(10));
    assert!(!needs_write(stored, renewed, now));
    // The stored expiry no longer covers 3/4 of the remaining lifetime: written.
    assert!(needs_write(at(5 * 24), at(7 * 24), now));
    assert!(!needs_write(at(6 * 24), at(7 * 24), now));
    // Shortening, permanence and its end, a stored expiry already past: always written.
    assert!(needs_write(at(7 * 24), at(6 * 24), now));
    assert!(needs_write(at(7 * 24), None, now));
    assert!(needs_write(None, at(7 * 24), now));
    assert!(needs_write(at(-1), at(7 * 24), now));
    assert!(!needs_write(at(3), at(3), now));
    assert!(!needs_write(None, None, now));
}

#[test]
fn refusals_name_their_reason_and_the_stored_json_keeps_the_original_shape() {
    assert_eq!(
        Refusal::OverQuota { quota: 1024 }.code_message(),
        (
            429,
            "announcement quota reached: at most 1024 domains per operator".into()
        )
    );
    assert_eq!(Refusal::Taken.code_message(), (409, "already taken".into()));
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
    // A private record of the original (no owner) still loads.
    let old: PrivateAnnouncement =
        serde_json::from_str(r#"{"expires_at":null,"proxy":"pp","domain":"d"}"#).unwrap();
    assert_eq!(old.operator, None);
    assert_eq!(
        serde_json::to_value(&old).unwrap(),
        serde_json::json!({"expires_at": null, "proxy": "pp", "domain": "d"})
    );
}
