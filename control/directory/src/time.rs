//! `created_at` timestamps: parsed like Go's `time.Parse(time.RFC3339, ..)` and formatted exactly like Go's
//! `t.Format(time.RFC3339Nano)` of the parsed time, because that formatted text is what the record hash covers
//! (SPEC §3.3, `HashableTime`).

use std::cmp::Ordering;
use std::fmt;

use chrono::{DateTime, Datelike, Duration, NaiveDate, NaiveDateTime, NaiveTime, Timelike, Utc};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Why a timestamp is not RFC 3339 as Go's parser accepts it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid RFC 3339 time {input:?}: {reason}")]
pub struct TimeError {
    input: String,
    reason: &'static str,
}

/// A record's `created_at`: an instant plus the UTC offset it was written with.
///
/// Equality is representational (same instant, same offset, same `Z`-ness); use [`RecordTime::is_after`] to compare
/// instants as Go's `Time.After` does for chain selection.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RecordTime {
    utc: DateTime<Utc>,
    /// Offset east of UTC in seconds, as written (`Z` is 0).
    offset_secs: i32,
    /// Written with a literal `Z`. Only matters for Go's zero-time rule (see [`RecordTime::is_go_zero`]).
    zulu: bool,
}

impl RecordTime {
    /// Parses RFC 3339: `YYYY-MM-DDTHH:MM:SS[.fraction](Z|±hh:mm)`. A fraction longer than 9 digits is truncated to
    /// nanoseconds, as Go does; `,` is accepted as the decimal mark, as Go does. Leap seconds, hour 24 and
    /// one-digit fields are rejected.
    pub fn parse(input: &str) -> Result<Self, TimeError> {
        let err = |reason| TimeError {
            input: input.to_owned(),
            reason,
        };
        let b = input.as_bytes();
        if b.len() < 20 {
            return Err(err("too short"));
        }
        let num = |from: usize, len: usize| -> Result<u32, TimeError> {
            let digits = b.get(from..from + len).ok_or_else(|| err("truncated"))?;
            digits.iter().try_fold(0u32, |acc, d| {
                if d.is_ascii_digit() {
                    Ok(acc * 10 + u32::from(d - b'0'))
                } else {
                    Err(err("expected a digit"))
                }
            })
        };
        let lit = |at: usize, c: u8| {
            if b.get(at) == Some(&c) {
                Ok(())
            } else {
                Err(err("unexpected separator"))
            }
        };
        let year = num(0, 4)?;
        lit(4, b'-')?;
        let month = num(5, 2)?;
        lit(7, b'-')?;
        let day = num(8, 2)?;
        lit(10, b'T')?;
        let (hour, minute, second) = (num(11, 2)?, num(14, 2)?, num(17, 2)?);
        lit(13, b':')?;
        lit(16, b':')?;
        let mut at = 19;
        let mut nanos = 0u32;
        if matches!(b.get(at), Some(b'.' | b',')) {
            let start = at + 1;
            let end = start + b[start..].iter().take_while(|d| d.is_ascii_digit()).count();
            if end == start {
                return Err(err("empty fraction"));
            }
            for i in 0..9 {
                let digit = if start + i < end {
                    u32::from(b[start + i] - b'0')
                } else {
                    0
                };
                nanos = nanos * 10 + digit;
            }
            at = end;
        }
        let (offset_secs, zulu) = match b.get(at) {
            Some(b'Z') if at + 1 == b.len() => (0, true),
            Some(sign @ (b'+' | b'-')) if at + 6 == b.len() => {
                let (oh, om) = (num(at + 1, 2)?, num(at + 4, 2)?);
                lit(at + 3, b':')?;
                if oh > 23 || om > 59 {
                    return Err(err("offset out of range"));
                }
                let secs =
                    i32::try_from(oh * 3600 + om * 60).map_err(|_| err("offset out of range"))?;
                (if *sign == b'-' { -secs } else { secs }, false)
            }
            _ => return Err(err("expected Z or ±hh:mm at the end")),
        };
        let date =
            NaiveDate::from_ymd_opt(i32::try_from(year).map_err(|_| err("year"))?, month, day)
                .ok_or_else(|| err("date out of range"))?;
        if hour > 23 || minute > 59 || second > 59 {
            return Err(err("time out of range"));
        }
        let time = NaiveTime::from_hms_nano_opt(hour, minute, second, nanos)
            .ok_or_else(|| err("time out of range"))?;
        let local = NaiveDateTime::new(date, time);
        let utc = (local - Duration::seconds(i64::from(offset_secs))).and_utc();
        Ok(Self {
            utc,
            offset_secs,
            zulu,
        })
    }

    /// A UTC time (formats with `Z`), e.g. for stamping records with the current time.
    pub fn from_utc(utc: DateTime<Utc>) -> Self {
        Self {
            utc,
            offset_secs: 0,
            zulu: true,
        }
    }

    /// The instant.
    pub fn instant(&self) -> DateTime<Utc> {
        self.utc
    }

    /// Go's `Time.After`: strictly later instant.
    pub fn is_after(&self, other: &Self) -> bool {
        self.utc.cmp(&other.utc) == Ordering::Greater
    }

    /// Go's zero `time.Time` (`0001-01-01T00:00:00Z`, parsed with `Z`), which the structured hash skips as null.
    pub fn is_go_zero(&self) -> bool {
        self.zulu && self.is_go_zero_instant()
    }

    fn is_go_zero_instant(&self) -> bool {
        self.utc == go_zero_date().and_time(NaiveTime::MIN).and_utc()
    }

    /// Go's `Format(time.RFC3339Nano)`: fraction only when non-zero with trailing zeros trimmed; `Z` for a zero
    /// offset (also when written `+00:00`), else `±hh:mm`.
    pub fn to_rfc3339_nano(&self) -> String {
        let local = self.utc.naive_utc() + Duration::seconds(i64::from(self.offset_secs));
        let mut out = format!(
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}",
            local.year(),
            local.month(),
            local.day(),
            local.hour(),
            local.minute(),
            local.second()
        );
        let nanos = local.nanosecond();
        if nanos != 0 {
            let fraction = format!("{nanos:09}");
            out.push('.');
            out.push_str(fraction.trim_end_matches('0'));
        }
        if self.offset_secs == 0 {
            out.push('Z');
        } else {
            let sign = if self.offset_secs < 0 { '-' } else { '+' };
            let abs = self.offset_secs.unsigned_abs();
            out.push_str(&format!("{sign}{:02}:{:02}", abs / 3600, (abs % 3600) / 60));
        }
        out
    }
}

fn go_zero_date() -> NaiveDate {
    NaiveDate::from_ymd_opt(1, 1, 1).expect("0001-01-01 is a valid proleptic Gregorian date")
}

impl fmt::Display for RecordTime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_rfc3339_nano())
    }
}

impl Serialize for RecordTime {
    /// Go's RFC3339Nano text, except for Go's zero instant written with a numeric zero offset: that is kept as
    /// `+00:00`, because `Z` would read back as Go's zero time, which the record hash leaves out (found by the
    /// `directory_record` fuzz target: the stored form of such a record no longer matched its hash).
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let text = self.to_rfc3339_nano();
        match text.strip_suffix('Z') {
            Some(head) if !self.zulu && self.is_go_zero_instant() => {
                serializer.serialize_str(&format!("{head}+00:00"))
            }
            _ => serializer.serialize_str(&text),
        }
    }
}

impl<'de> Deserialize<'de> for RecordTime {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        Self::parse(&text).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn roundtrip(input: &str) -> String {
        RecordTime::parse(input).unwrap().to_rfc3339_nano()
    }

    #[test]
    fn formats_like_go_rfc3339_nano() {
        let vectors = [
            ("2021-05-17T10:00:00Z", "2021-05-17T10:00:00Z"),
            ("2023-07-26T11:36:28+02:00", "2023-07-26T11:36:28+02:00"),
            (
                "2023-07-26T11:36:28.500000000+02:00",
                "2023-07-26T11:36:28.5+02:00",
            ),
            ("2023-07-26T11:36:28.000Z", "2023-07-26T11:36:28Z"),
            (
                "2023-07-26T11:36:28.123456789123Z",
                "2023-07-26T11:36:28.123456789Z",
            ),
            ("2023-07-26T11:36:28,25Z", "2023-07-26T11:36:28.25Z"),
            ("2023-07-26T11:36:28+00:00", "2023-07-26T11:36:28Z"),
            ("2023-07-26T11:36:28-00:00", "2023-07-26T11:36:28Z"),
            ("2023-01-01T00:30:00-09:30", "2023-01-01T00:30:00-09:30"),
            (
                "2024-02-29T23:59:59.000000001+14:00",
                "2024-02-29T23:59:59.000000001+14:00",
            ),
        ];
        for (input, want) in vectors {
            assert_eq!(roundtrip(input), want, "input {input}");
        }
    }

    #[test]
    fn rejects_what_go_rejects() {
        for bad in [
            "2021-05-17 10:00:00Z",
            "2021-05-17t10:00:00Z",
            "2021-05-17T10:00:00z",
            "2021-05-17T10:00:00",
            "2021-02-30T10:00:00Z",
            "2021-05-17T24:00:00Z",
            "2021-05-17T10:00:60Z",
            "2021-05-17T10:00:00.Z",
            "2021-05-17T10:00:00+0200",
            "2021-05-17T10:00:00Zjunk",
            "21-05-17T10:00:00Z",
        ] {
            assert!(RecordTime::parse(bad).is_err(), "{bad} should be rejected");
        }
    }

    #[test]
    fn compares_instants_not_text() {
        let a = RecordTime::parse("2023-07-26T11:36:28+02:00").unwrap();
        let b = RecordTime::parse("2023-07-26T09:36:28Z").unwrap();
        assert!(!a.is_after(&b) && !b.is_after(&a));
        assert_ne!(a, b, "representations differ");
        let later = RecordTime::parse("2023-07-26T09:36:28.1Z").unwrap();
        assert!(later.is_after(&a));
    }

    #[test]
    fn go_zero_time_only_with_z() {
        assert!(
            RecordTime::parse("0001-01-01T00:00:00Z")
                .unwrap()
                .is_go_zero()
        );
        assert!(
            !RecordTime::parse("0001-01-01T00:00:00+00:00")
                .unwrap()
                .is_go_zero()
        );
        assert!(
            !RecordTime::parse("2021-05-17T10:00:00Z")
                .unwrap()
                .is_go_zero()
        );
    }

    #[test]
    fn zero_instant_with_numeric_offset_survives_serde() {
        for input in ["0001-01-01T00:00:00+00:00", "0001-01-01T00:00:00-00:00"] {
            let t = RecordTime::parse(input).unwrap();
            let text = serde_json::to_string(&t).unwrap();
            assert_eq!(text, "\"0001-01-01T00:00:00+00:00\"");
            let back: RecordTime = serde_json::from_str(&text).unwrap();
            assert_eq!(back.is_go_zero(), t.is_go_zero(), "{input}");
        }
        let zulu = RecordTime::parse("0001-01-01T00:00:00Z").unwrap();
        assert_eq!(
            serde_json::to_string(&zulu).unwrap(),
            "\"0001-01-01T00:00:00Z\""
        );
    }

    #[test]
    fn serde_uses_the_go_format() {
        let t: RecordTime = serde_json::from_str("\"2023-07-26T11:36:28.10+02:00\"").unwrap();
        assert_eq!(
            serde_json::to_string(&t).unwrap(),
            "\"2023-07-26T11:36:28.1+02:00\""
        );
    }
}
