//! [`Call`]: a params type tied to its method and result type, and the four codec steps of a
//! call (encode/decode params, encode/decode result), each failing with a [`ContractError`].

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::MethodName;

/// The params of one method: which method it is and what it answers.
pub trait Call: Serialize + DeserializeOwned {
    /// The service's method enum.
    type Method: MethodName;
    /// This call's method.
    const METHOD: Self::Method;
    /// What the method answers.
    type Result: Serialize + DeserializeOwned;

    /// The wire name of [`Call::METHOD`].
    fn method() -> &'static str {
        Self::METHOD.as_str()
    }
}

/// Why a contract value could not be encoded or decoded.
#[derive(Debug, thiserror::Error)]
pub enum ContractError {
    /// Our own value could not be encoded (our fault: nothing is sent).
    #[error("{method}: encoding: {source}")]
    Encode {
        /// The method.
        method: &'static str,
        /// The serde error.
        source: serde_json::Error,
    },
    /// Our own params did not encode to a JSON object (our fault: nothing is sent).
    #[error("{method}: params must encode to a JSON object")]
    NotAnObject {
        /// The method.
        method: &'static str,
    },
    /// The caller's params do not fit the method (the caller's fault: invalid params).
    #[error("{}", at(path, source))]
    Params {
        /// The method.
        method: &'static str,
        /// Where in the params (`.` for the object itself, `connections[2].expires_at`, ...).
        path: String,
        /// The serde error.
        source: serde_json::Error,
    },
    /// The peer's result does not fit the method (the peer's fault).
    #[error("{method}: unexpected result: {}", at(path, source))]
    Result {
        /// The method.
        method: &'static str,
        /// Where in the result.
        path: String,
        /// The serde error.
        source: serde_json::Error,
    },
}

/// `path: error`, or only the error for the value itself (path `.`).
fn at(path: &str, source: &serde_json::Error) -> String {
    if path == "." {
        source.to_string()
    } else {
        format!("{path}: {source}")
    }
}

impl ContractError {
    /// A stable label for logs and metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Encode { .. } => "encode",
            Self::NotAnObject { .. } => "not_an_object",
            Self::Params { .. } => "params",
            Self::Result { .. } => "result",
        }
    }

    /// The method the value belongs to.
    pub fn method(&self) -> &'static str {
        match self {
            Self::Encode { method, .. }
            | Self::NotAnObject { method }
            | Self::Params { method, .. }
            | Self::Result { method, .. } => method,
        }
    }
}

/// The params object of `call` (what a client sends).
pub fn encode_params<C: Call>(call: &C) -> Result<Map<String, Value>, ContractError> {
    match serde_json::to_value(call) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err(ContractError::NotAnObject {
            method: C::method(),
        }),
        Err(source) => Err(ContractError::Encode {
            method: C::method(),
            source,
        }),
    }
}

/// The typed params of a received call (unknown keys, such as `_client`, are ignored).
pub fn decode_params<C: Call>(params: Map<String, Value>) -> Result<C, ContractError> {
    serde_path_to_error::deserialize(Value::Object(params)).map_err(|e| ContractError::Params {
        method: C::method(),
        path: e.path().to_string(),
        source: e.into_inner(),
    })
}

/// The JSON of a call's result (what a server answers).
pub fn encode_result<C: Call>(result: &C::Result) -> Result<Value, ContractError> {
    serde_json::to_value(result).map_err(|source| ContractError::Encode {
        method: C::method(),
        source,
    })
}

/// The typed result of a call from the JSON a server answered.
pub fn decode_result<C: Call>(result: Value) -> Result<C::Result, ContractError> {
    serde_path_to_error::deserialize(result).map_err(|e| ContractError::Result {
        method: C::method(),
        path: e.path().to_string(),
        source: e.into_inner(),
    })
}

/// A result that carries nothing: encodes as `{}`; decoding accepts any value (only success or
/// error matters, and the original's answers differ in shape).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Empty {}

impl<'de> Deserialize<'de> for Empty {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        serde::de::IgnoredAny::deserialize(deserializer).map(|_| Empty {})
    }
}

/// The result `"ok"`: the JSON string `ok` and nothing else.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OkText;

impl Serialize for OkText {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str("ok")
    }
}

impl<'de> Deserialize<'de> for OkText {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        if text == "ok" {
            Ok(OkText)
        } else {
            Err(serde::de::Error::invalid_value(
                serde::de::Unexpected::Str(&text),
                &"\"ok\"",
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::methods::methods;

    methods! {
        /// A test service.
        TestMethod {
            /// The only method.
            Probe = "probe",
        }
    }

    /// Params whose JSON is not an object, or cannot be encoded at all.
    #[derive(Debug, Serialize, Deserialize)]
    #[serde(untagged)]
    enum Odd {
        Text(String),
        /// JSON object keys must be strings: a map keyed by lists cannot be encoded.
        BadKeys(BTreeMap<Vec<u8>, u8>),
    }

    impl Call for Odd {
        type Method = TestMethod;
        const METHOD: TestMethod = TestMethod::Probe;
        type Result = Empty;
    }

    #[test]
    fn params_that_cannot_be_sent_are_a_typed_error_not_null() {
        let err = encode_params(&Odd::Text("x".into())).unwrap_err();
        assert!(matches!(
            err,
            ContractError::NotAnObject { method: "probe" }
        ));
        assert_eq!(err.kind(), "not_an_object");
        let bad = Odd::BadKeys(BTreeMap::from([(vec![1], 1)]));
        let err = encode_params(&bad).unwrap_err();
        assert_eq!(err.kind(), "encode", "{err}");
        assert_eq!(err.method(), "probe");
        assert_eq!(
            (TestMethod::ALL, TestMethod::NAMES),
            (&[TestMethod::Probe][..], &["probe"][..])
        );
    }

    #[test]
    fn ok_text_is_exactly_ok() {
        assert_eq!(serde_json::to_value(OkText).unwrap(), "ok");
        assert!(serde_json::from_value::<OkText>("ok".into()).is_ok());
        assert!(serde_json::from_value::<OkText>("OK".into()).is_err());
        assert!(serde_json::from_value::<OkText>(serde_json::Value::Null).is_err());
    }
}
