//! The service directory's JSON-RPC service (`sd`, SPEC §3), called by Hyper's directory client
//! and the `hyper sd` commands.
//!
//! - `submitRecords {records}` → `"ok"` ([`SubmitRecords`])
//! - `getTip {}` → the last record of the best chain or `null` ([`GetTip`])
//! - `getRecords {after}` → the records after `after` (all for `""`) ([`GetRecords`])
//! - `getEntries {}` → every entry ([`GetEntries`]); `getEntry {name}` → one ([`GetEntry`])

use serde::{Deserialize, Serialize};
use tandem_directory::entry::DirectoryEntry;
use tandem_directory::record::SignedChangeRecord;
use tandem_types::OperatorName;

use crate::methods::methods;
use crate::{Call, OkText};

methods! {
    /// The service directory's methods.
    Method {
        /// Append a signed batch ([`SubmitRecords`]).
        SubmitRecords = "submitRecords",
        /// The tip ([`GetTip`]).
        GetTip = "getTip",
        /// Records after a hash ([`GetRecords`]).
        GetRecords = "getRecords",
        /// Every entry ([`GetEntries`]).
        GetEntries = "getEntries",
        /// One entry ([`GetEntry`]).
        GetEntry = "getEntry",
    }
}

/// `submitRecords`: a signed batch extending the tip. The server decodes each record on its own,
/// bounded as stored records are (so it reads `records` as raw values, not through this type).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SubmitRecords {
    /// The batch, in chain order.
    pub records: Vec<SignedChangeRecord>,
}

impl Call for SubmitRecords {
    type Method = Method;
    const METHOD: Method = Method::SubmitRecords;
    type Result = OkText;
}

/// `getTip` (no params).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GetTip {}

impl Call for GetTip {
    type Method = Method;
    const METHOD: Method = Method::GetTip;
    type Result = Option<SignedChangeRecord>;
}

/// `getRecords`: the records after the record `after` (empty or absent: all of them).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GetRecords {
    /// A record hash (64 lowercase hex digits) or empty.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after: Option<String>,
}

impl Call for GetRecords {
    type Method = Method;
    const METHOD: Method = Method::GetRecords;
    type Result = Vec<SignedChangeRecord>;
}

/// `getEntries` (no params).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GetEntries {}

impl Call for GetEntries {
    type Method = Method;
    const METHOD: Method = Method::GetEntries;
    type Result = Vec<DirectoryEntry>;
}

/// `getEntry`: the entry of operator `name` (`404 not found` when it has none).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GetEntry {
    /// The operator.
    pub name: OperatorName,
}

impl Call for GetEntry {
    type Method = Method;
    const METHOD: Method = Method::GetEntry;
    type Result = DirectoryEntry;
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;
    use crate::{decode_params, encode_params};

    #[test]
    fn params_are_the_originals() {
        let get = GetRecords {
            after: Some(String::new()),
        };
        assert_eq!(
            Value::Object(encode_params(&get).unwrap()),
            json!({"after": ""})
        );
        assert_eq!(
            decode_params::<GetRecords>(json!({"after": null}).as_object().cloned().unwrap())
                .unwrap(),
            GetRecords::default()
        );
        assert_eq!(
            Value::Object(
                encode_params(&GetEntry {
                    name: "hd-1".parse().unwrap()
                })
                .unwrap()
            ),
            json!({"name": "hd-1"})
        );
        assert!(decode_params::<GetEntry>(serde_json::Map::new()).is_err());
        assert_eq!(encode_params(&GetTip {}).unwrap(), serde_json::Map::new());
        assert_eq!(Method::NAMES.len(), 5);
    }
}
