//! The private proxy's JSON-RPC service (SPEC §4.7), called through its own Hyper node.
//!
//! - `incomingConnection {domain, token, endpoint}` → `{message: "ok"}` ([`IncomingConnection`]):
//!   from the public proxy's SNI bridge; dial `endpoint`, write `token`, serve the connection.
//! - `announceConnection {proxy, domain, expires_at}` → `"ok"` ([`AnnounceConnection`]): a tenant
//!   announces `domain` to the public proxy `proxy`.
//! - `getAnnouncements {}` → `[{expires_at, proxy, domain, operator?}]` ([`GetAnnouncements`]).

use std::net::SocketAddr;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tandem_types::{OperatorName, Token};

use crate::methods::methods;
use crate::{Call, OkText};

methods! {
    /// The private proxy's methods.
    Method {
        /// A connection waits at the public proxy ([`IncomingConnection`]).
        IncomingConnection = "incomingConnection",
        /// Announce a domain to a public proxy ([`AnnounceConnection`]).
        AnnounceConnection = "announceConnection",
        /// The live announcements ([`GetAnnouncements`]).
        GetAnnouncements = "getAnnouncements",
    }
}

/// `incomingConnection`: a TLS connection for `domain` waits at the public proxy's pairing
/// `endpoint`; the private side joins it with `token`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IncomingConnection {
    /// The TLS server name the client asked for.
    pub domain: String,
    /// The private side's single-use token (base64 in JSON).
    pub token: Token,
    /// The public proxy's pairing endpoint, `HOST:PORT`.
    pub endpoint: String,
    /// The TLS client's address as the public proxy saw it (after its PROXY header, if any).
    /// Tandem addition, absent from the original's calls (and ignored by the original): a
    /// private proxy that sends a PROXY v2 header to its backend names this client.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<SocketAddr>,
}

/// The answer to `incomingConnection`: `{"message": "ok"}`. Decoding accepts any answer: the
/// caller (the public proxy's SNI bridge) acts only on success or error, as the original did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Acknowledged {
    /// Always `ok`.
    pub message: String,
}

impl<'de> Deserialize<'de> for Acknowledged {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        serde::de::IgnoredAny::deserialize(deserializer).map(|_| Acknowledged::ok())
    }
}

impl Acknowledged {
    /// `{"message": "ok"}`.
    pub fn ok() -> Self {
        Self {
            message: "ok".into(),
        }
    }
}

impl Call for IncomingConnection {
    type Method = Method;
    const METHOD: Method = Method::IncomingConnection;
    type Result = Acknowledged;
}

/// `announceConnection`: announce `domain` to the public proxy `proxy` until `expires_at`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AnnounceConnection {
    /// The public proxy's operator.
    pub proxy: OperatorName,
    /// The TLS server name.
    pub domain: String,
    /// Until when (RFC 3339); `null` or absent = no expiry; not in the future = withdraw.
    #[serde(default, with = "crate::time")]
    pub expires_at: Option<DateTime<Utc>>,
}

impl Call for AnnounceConnection {
    type Method = Method;
    const METHOD: Method = Method::AnnounceConnection;
    type Result = OkText;
}

/// `getAnnouncements` (no params).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GetAnnouncements {}

impl Call for GetAnnouncements {
    type Method = Method;
    const METHOD: Method = Method::GetAnnouncements;
    type Result = Vec<PrivateAnnouncement>;
}

/// `{expires_at, proxy, domain, operator}` as the private proxy stores it and its
/// `getAnnouncements` returns it (the original's three fields plus the owning tenant). Names stay
/// text: stored records predate [`OperatorName`]'s validation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PrivateAnnouncement {
    /// When it stops; `None` = never.
    pub expires_at: Option<DateTime<Utc>>,
    /// The public proxy it is announced to.
    pub proxy: String,
    /// The domain.
    pub domain: String,
    /// The tenant that announced it (the owner); `None` in records written before owners were
    /// kept: such an entry may be claimed by any tenant allowed the domain (the old behaviour).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub operator: Option<String>,
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::{decode_params, decode_result, encode_params, encode_result};

    #[test]
    fn method_names_round_trip() {
        for m in Method::ALL {
            assert_eq!(m.as_str().parse::<Method>().unwrap(), *m);
        }
        assert!("requestConnection".parse::<Method>().is_err());
    }

    #[test]
    fn incoming_connection_carries_the_token_as_base64() {
        let call = IncomingConnection {
            domain: "foo.hd-2.local".into(),
            token: Token::from_bytes([5; 32]),
            endpoint: "127.0.0.1:1".into(),
            source: None,
        };
        let params = encode_params(&call).unwrap();
        assert_eq!(
            serde_json::Value::Object(params.clone()),
            json!({"domain": "foo.hd-2.local", "token": Token::from_bytes([5; 32]).to_base64(),
                "endpoint": "127.0.0.1:1"})
        );
        assert_eq!(decode_params::<IncomingConnection>(params).unwrap(), call);
        let mut short = encode_params(&call).unwrap();
        short.insert("token".into(), json!("AAAA"));
        let err = decode_params::<IncomingConnection>(short).unwrap_err();
        assert!(err.to_string().starts_with("token: "), "{err}");
        assert_eq!(
            encode_result::<IncomingConnection>(&Acknowledged::ok()).unwrap(),
            json!({"message": "ok"})
        );
        for answer in [json!({"message": "ok"}), json!(null), json!({})] {
            assert!(decode_result::<IncomingConnection>(answer).is_ok());
        }
        let with_source = IncomingConnection {
            source: Some("[2001:db8::1]:4000".parse().unwrap()),
            ..call
        };
        let params = encode_params(&with_source).unwrap();
        assert_eq!(params["source"], json!("[2001:db8::1]:4000"));
        assert_eq!(
            decode_params::<IncomingConnection>(params).unwrap(),
            with_source
        );
    }

    #[test]
    fn announce_connection_answers_ok_text() {
        assert_eq!(
            encode_result::<AnnounceConnection>(&OkText).unwrap(),
            json!("ok")
        );
        assert!(decode_result::<AnnounceConnection>(json!("ok")).is_ok());
        assert!(decode_result::<AnnounceConnection>(json!("nope")).is_err());
        let p = json!({"proxy": "public-proxy-1", "domain": "a.x"});
        let call = decode_params::<AnnounceConnection>(p.as_object().cloned().unwrap()).unwrap();
        assert_eq!(call.expires_at, None);
        assert_eq!(call.proxy, "public-proxy-1");
    }
}
