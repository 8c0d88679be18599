//! The `json` directory client: unsigned records files, directory name filter and order, and
//! re-reading only when files change.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use serde_json::json;
use tandem_hyper::dirclient::DirectoryClient;
use tandem_settings::hyper::JsonDirectorySettings;

fn record(name: &str, section: &str, data: serde_json::Value) -> serde_json::Value {
    json!({"name": name, "section": section, "data": data, "created_at": "2021-05-17T10:00:00Z"})
}

fn write(path: &std::path::Path, records: Vec<serde_json::Value>) {
    std::fs::write(
        path,
        serde_json::to_vec(&json!({ "records": records })).unwrap(),
    )
    .unwrap();
}

#[tokio::test]
async fn reads_matching_files_in_name_order_and_rereads_only_on_change() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    write(
        &dir.join("001_default.json"),
        vec![
            record("hd-1", "groups", json!(["a"])),
            record("hd-2", "groups", json!(["b"])),
        ],
    );
    write(
        &dir.join("002_more.json"),
        vec![record("hd-1", "groups", json!(["later file wins"]))],
    );
    std::fs::write(dir.join("notes.txt"), "not json").unwrap();
    std::fs::write(dir.join("json"), "no character before json: not matched").unwrap();
    let client = DirectoryClient::json(
        "hd-1",
        &JsonDirectorySettings {
            path: dir.to_owned(),
        },
    );

    let first = client.entries().await.unwrap();
    assert_eq!(first["hd-1"].groups, vec!["later file wins"]);
    assert_eq!(first["hd-2"].groups, vec!["b"]);
    assert_eq!(
        first["hd-1"].records.len(),
        2,
        "every applied record is kept on the entry"
    );
    assert_eq!(client.own_entry().await.unwrap().name, "hd-1");
    assert!(client.cache_status().is_none());

    let again = client.entries().await.unwrap();
    assert!(
        Arc::ptr_eq(&first, &again),
        "unchanged files are not re-read"
    );

    write(
        &dir.join("002_more.json"),
        vec![record("hd-3", "groups", json!(["a new operator"]))],
    );
    let changed = client.entries().await.unwrap();
    assert_eq!(changed["hd-1"].groups, vec!["a"]);
    assert_eq!(changed["hd-3"].groups, vec!["a new operator"]);

    std::fs::remove_file(dir.join("002_more.json")).unwrap();
    assert!(
        !client.entries().await.unwrap().contains_key("hd-3"),
        "a removed file is noticed"
    );
    assert_eq!(
        client.entry("nobody").await.unwrap_err().kind(),
        "unknown_operator"
    );
}

#[tokio::test]
async fn a_single_file_and_broken_files_give_clear_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("directory.json");
    write(
        &file,
        vec![record(
            "op-1",
            "channels",
            json!([{"type": "grpc_server", "settings": {"address": "localhost:4444"}}]),
        )],
    );
    let client = DirectoryClient::json("op-1", &JsonDirectorySettings { path: file.clone() });
    let entry = client.own_entry().await.unwrap();
    assert_eq!(entry.channels[0].kind, "grpc_server");

    std::fs::write(&file, "{\"records\": [").unwrap();
    let err = client.entries().await.unwrap_err();
    assert!(
        matches!(err, tandem_directory::source::SourceError::Files { .. }),
        "{err:?}"
    );
    assert!(err.to_string().contains("directory.json"), "{err}");

    let missing = DirectoryClient::json(
        "op-1",
        &JsonDirectorySettings {
            path: tmp.path().join("absent"),
        },
    );
    assert!(
        missing
            .entries()
            .await
            .unwrap_err()
            .to_string()
            .contains("absent")
    );
}
