//! Loader behaviour on real files: merge, `$include`, `$ref`, vars, `$DIR`, errors with file and key.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use tandem_settings::loader::MAX_FILE_BYTES;
use tandem_settings::{HyperSettings, Loader, SdSettings, SettingsError};

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    fs::create_dir_all(path.parent().expect("has a parent")).expect("mkdir");
    fs::write(&path, text).expect("write");
    path
}

fn no_env(_: &str) -> Option<String> {
    None
}

fn load(paths: &[PathBuf]) -> Result<serde_json::Value, SettingsError> {
    Loader::with_env(&no_env).load_paths(paths).map(|(v, _)| v)
}

#[test]
fn directory_files_merge_in_name_order() {
    let dir = tempfile::tempdir().expect("tempdir");
    write(
        dir.path(),
        "002_more.yml",
        "channels: [{name: b}]\nkeep: null\nscalar: later\nmap: {y: 2}\n",
    );
    write(
        dir.path(),
        "001_base.yml",
        "channels: [{name: a}]\nkeep: 1\nscalar: first\nmap: {x: 1}\n",
    );
    write(dir.path(), "003_replace.json", r#"{"map!": {"z": 3}}"#);
    write(dir.path(), "notes.txt", "not: settings");
    let v = load(&[dir.path().to_path_buf()]).expect("loads");
    assert_eq!(
        v,
        serde_json::json!({"channels": [{"name": "a"}, {"name": "b"}], "keep": 1, "scalar": "later", "map": {"z": 3}})
    );
}

#[test]
fn includes_refs_and_dir() {
    let dir = tempfile::tempdir().expect("tempdir");
    write(
        dir.path(),
        "parts/tls.yml",
        "ca_certificate_files: [\"/$DIR/../certs/root.crt\"]\n",
    );
    write(dir.path(), "parts/channels.yml", "- {name: included}\n");
    let main = write(
        dir.path(),
        "role/001.yml",
        "tls: {$include: ../parts/tls.yml, verify_client: false}\n\
         channels: [{name: own}, {$include: ../parts/channels.yml}]\n\
         copy: {$ref: channels.1.name}\n",
    );
    let v = load(&[main]).expect("loads");
    // $DIR is the including file's directory; paths are normalised when they become PathBufs.
    let ca = v["tls"]["ca_certificate_files"][0]
        .as_str()
        .expect("a string");
    assert_eq!(
        ca,
        format!("{}/role/../certs/root.crt", dir.path().display())
    );
    assert_eq!(v["tls"]["verify_client"], false);
    assert_eq!(
        v["channels"],
        serde_json::json!([{"name": "own"}, {"name": "included"}])
    );
    assert_eq!(v["copy"], "included");
}

#[test]
fn include_cycles_and_absolute_includes_are_rejected() {
    let dir = tempfile::tempdir().expect("tempdir");
    write(dir.path(), "a.yml", "x: {$include: b.yml}\n");
    write(dir.path(), "b.yml", "y: {$include: a.yml}\n");
    let err = load(&[dir.path().join("a.yml")]).expect_err("cycle");
    assert!(err.to_string().contains("include cycle"), "{err}");
    let abs = write(dir.path(), "c.yml", "x: {$include: /etc/passwd}\n");
    let err = load(&[abs]).expect_err("absolute");
    assert!(err.to_string().contains("not allowed"), "{err}");
}

#[test]
fn vars_from_env_with_default_required_and_escape() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = write(
        dir.path(),
        "s.yml",
        "vars:\n  PORT: {type: int, source: env, variable: T_PORT, default: 4444}\n  \
         HOST: {type: string, source: env, variable: T_HOST}\n  \
         NAME: {type: string, source: literal, value: hd-1}\n\
         port: $PORT\naddr: \"$HOST:$PORT\"\nprice: \"$$5 for $NAME\"\n",
    );
    let env: BTreeMap<&str, &str> = [("T_HOST", "example")].into();
    let lookup = |n: &str| env.get(n).map(|v| (*v).to_owned());
    let (v, _) = Loader::with_env(&lookup)
        .load_paths(std::slice::from_ref(&file))
        .expect("loads");
    assert_eq!(v["port"], 4444);
    assert_eq!(v["addr"], "example:4444");
    assert_eq!(v["price"], "$5 for hd-1");
    assert_eq!(v["_vars"]["PORT"]["variable"], "T_PORT");

    let required = write(
        dir.path(),
        "r.yml",
        "vars:\n  X: {type: string, source: env, variable: T_X, required: true}\nx: $X\n",
    );
    let err = load(&[required]).expect_err("required var");
    assert!(err.to_string().contains("T_X is required"), "{err}");
}

#[test]
fn undefined_variable_names_file_and_key() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = write(
        dir.path(),
        "u.yml",
        "channels:\n  - settings: {bind_address: \"localhost:$NOPE\"}\n",
    );
    let err = load(std::slice::from_ref(&file)).expect_err("undefined");
    let issue = &err.issues()[0];
    assert_eq!(issue.file.as_deref(), Some(file.as_path()));
    assert_eq!(issue.key, "channels[0].settings.bind_address");
    assert!(
        issue.reason.contains("undefined variable $NOPE"),
        "{}",
        issue.reason
    );
}

#[test]
fn oversized_file_is_rejected() {
    let dir = tempfile::tempdir().expect("tempdir");
    let big =
        "a: \"".to_owned() + &"x".repeat(usize::try_from(MAX_FILE_BYTES).expect("fits")) + "\"\n";
    let file = write(dir.path(), "big.yml", &big);
    let err = load(&[file]).expect_err("too large");
    assert!(err.to_string().contains("larger than the limit"), "{err}");
}

const SD_OK: &str = "jsonrpc_server:\n  bind_address: \"127.0.0.1:0\"\n\
directory:\n  datastore: {type: file, settings: {filename: /tmp/x.records}}\n  ca_certificate_files: [/r.crt]\n";

fn sd_error(base: &str, override_text: &str) -> (SettingsError, PathBuf, PathBuf) {
    let dir = tempfile::tempdir().expect("tempdir");
    let a = write(dir.path(), "001.yml", base);
    let b = write(dir.path(), "002.yml", override_text);
    let (v, prov) = Loader::with_env(&no_env)
        .load_paths(&[dir.path().to_path_buf()])
        .expect("loads");
    let err = SdSettings::from_merged(&v, &prov).expect_err("invalid");
    (err, a, b)
}

#[test]
fn unknown_key_names_file_key_and_reason() {
    let (err, _, b) = sd_error(
        SD_OK,
        "jsonrpc_server:\n  tls: {ca_certificate_files: [/r.crt], verify_clients: false}\n",
    );
    let issue = &err.issues()[0];
    assert_eq!(issue.file.as_deref(), Some(b.as_path()));
    assert_eq!(issue.key, "jsonrpc_server.tls.verify_clients");
    assert!(issue.reason.contains("unknown key"), "{}", issue.reason);
}

#[test]
fn bad_values_are_all_reported_with_their_files() {
    let (err, a, b) = sd_error(
        SD_OK,
        "jsonrpc_server: {bind_address!: \"localhost:65536\"}\n\
         directory:\n  datastore!: {type: redis, settings: {addresses: [x:1], database: 101, password: \"\"}}\n  ca_certificate_files!: []\n",
    );
    let found: Vec<(&str, Option<&Path>)> = err
        .issues()
        .iter()
        .map(|i| (i.key.as_str(), i.file.as_deref()))
        .collect();
    assert_eq!(
        found,
        vec![
            ("jsonrpc_server.bind_address", Some(b.as_path())),
            ("directory.datastore.settings.database", Some(b.as_path())),
            ("directory.ca_certificate_files", Some(b.as_path())),
        ],
        "{err}"
    );
    assert!(err.to_string().contains("out of range"), "{err}");
    assert!(
        err.issues()
            .iter()
            .all(|i| i.file.as_deref() != Some(a.as_path()))
    );
}

#[test]
fn hyper_channel_errors_name_the_channel_index_and_quic_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = write(
        dir.path(),
        "h.yml",
        "name: op\ndirectory: {type: json, settings: {path: /d}}\nchannels:\n\
         - {name: s, type: stdout}\n\
         - {name: g, type: grpc_server, settings: {tls: {ca_certificate_files: [/r], certificate_file: relative.crt, key_file: /k}}}\n\
         - {name: q, type: quic}\n\
         - {name: t, type: stdout}\n",
    );
    let (v, prov) = Loader::with_env(&no_env)
        .load_paths(&[file])
        .expect("loads");
    let err = HyperSettings::from_merged(&v, &prov).expect_err("invalid");
    let keys: Vec<&str> = err.issues().iter().map(|i| i.key.as_str()).collect();
    assert_eq!(
        keys,
        vec![
            "channels[1].settings.tls.certificate_file",
            "channels[2].type",
            "channels[3].type"
        ],
        "{err}"
    );
    assert!(err.to_string().contains("not supported by Tandem"), "{err}");
    assert!(err.to_string().contains("at most one per type"), "{err}");
}

#[test]
fn missing_env_var_is_a_clear_error() {
    let err = Loader::with_env(&no_env)
        .load_from_env("TANDEM_NOT_SET")
        .expect_err("no paths");
    assert_eq!(err.kind(), "no_paths");
    assert!(err.to_string().contains("TANDEM_NOT_SET"));
}
