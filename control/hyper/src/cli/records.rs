//! `hyper sd submit-records | get-entries | sign | verify` (SPEC §3.8).

use std::path::Path;

use serde::Deserialize;
use serde_json::Value;
use tracing::info;

use super::error::CliError;
use crate::sdclient::SdClient;
use tandem_directory::signing::Signer;
use tandem_directory::verify::{SigningPins, Verifier};
use tandem_directory::{ChangeRecord, RecordTime, SignedData};
use tandem_settings::HyperSettings;
use tandem_settings::hyper::{DirectorySettings, SigningSettings};

/// The largest records or data file read, in bytes.
pub const MAX_INPUT_BYTES: u64 = 16 * 1024 * 1024;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RecordsFile {
    records: Vec<ChangeRecord>,
}

/// Signs every record of `file` as a chain after the directory's tip (or as a new root chain with
/// `reset`) and submits them in one call. Returns how many records were submitted.
pub async fn submit_records(
    settings: &HyperSettings,
    file: &Path,
    reset: bool,
) -> Result<usize, CliError> {
    let signing = settings.signing.as_ref().ok_or(CliError::NoSigning)?;
    let signer = load_signer(signing)?;
    let verifier = load_verifier(signing)?;
    verifier.check_signing_certificate(signer.certificate_der(), &settings.name)?;
    let parsed: RecordsFile = parse_json(file)?;
    let now = RecordTime::from_utc(chrono::Utc::now());
    let records: Vec<ChangeRecord> = parsed
        .records
        .into_iter()
        .map(|r| ChangeRecord {
            created_at: now.clone(),
            ..r
        })
        .collect();
    let client = api_client(settings)?;
    let parent = if reset {
        String::new()
    } else {
        client.tip().await?.map(|t| t.hash).unwrap_or_default()
    };
    let signed = signer.sign_chain(&parent, records)?;
    let no_pins = SigningPins::default();
    for record in &signed {
        verifier.verify_record(record, &no_pins)?;
    }
    client.submit(&signed).await?;
    info!(count = signed.len(), reset, file = %file.display(), "records submitted");
    Ok(signed.len())
}

/// Every entry of the directory, or one entry with `name`, as JSON.
pub async fn get_entries(settings: &HyperSettings, name: Option<&str>) -> Result<Value, CliError> {
    let client = api_client(settings)?;
    let value = match name {
        Some(name) => serde_json::to_value(client.entry(name).await?),
        None => serde_json::to_value(client.entries().await?),
    };
    Ok(value.unwrap_or(Value::Null))
}

/// `hyper sd sign FILE`: signs `StructuredHash` of the file's JSON.
pub fn sign(settings: &HyperSettings, file: &Path) -> Result<SignedData, CliError> {
    let signing = settings.signing.as_ref().ok_or(CliError::NoSigning)?;
    let data: Value = parse_json(file)?;
    Ok(load_signer(signing)?.sign_data(data)?)
}

/// `hyper sd verify FILE NAME`: verifies a signed file's certificate chain (valid for `name`) and signature.
pub fn verify(settings: &HyperSettings, file: &Path, name: &str) -> Result<String, CliError> {
    let signing = settings.signing.as_ref().ok_or(CliError::NoSigning)?;
    let signed: SignedData = parse_json(file)?;
    let signer = load_verifier(signing)?.verify_signed_data(&signed, Some(name))?;
    Ok(signer.name)
}

fn api_client(settings: &HyperSettings) -> Result<SdClient, CliError> {
    match &settings.directory {
        DirectorySettings::Api(api) => Ok(SdClient::from_settings(api, settings.timeouts.call)?),
        _ => Err(CliError::NoApiDirectory),
    }
}

fn load_signer(signing: &SigningSettings) -> Result<Signer, CliError> {
    let key = read_text(&signing.key_file)?;
    let cert = read_text(&signing.certificate_file)?;
    Ok(Signer::from_pem(&key, &cert)?)
}

fn load_verifier(signing: &SigningSettings) -> Result<Verifier, CliError> {
    Ok(Verifier::from_files(
        std::slice::from_ref(&signing.ca_certificate_file),
        &signing.ca_intermediate_certificate_files,
    )?)
}

fn read_text(path: &Path) -> Result<String, CliError> {
    let bytes = read_bounded(path)?;
    String::from_utf8(bytes).map_err(|_| CliError::Input {
        path: path.to_owned(),
        reason: "not UTF-8 text".into(),
    })
}

fn parse_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T, CliError> {
    let bytes = read_bounded(path)?;
    serde_json::from_slice(&bytes).map_err(|e| CliError::Input {
        path: path.to_owned(),
        reason: e.to_string(),
    })
}

fn read_bounded(path: &Path) -> Result<Vec<u8>, CliError> {
    let read_err = |source| CliError::Read {
        path: path.to_owned(),
        source,
    };
    let len = std::fs::metadata(path).map_err(read_err)?.len();
    if len > MAX_INPUT_BYTES {
        return Err(CliError::Input {
            path: path.to_owned(),
            reason: format!("{len} bytes is more than the {MAX_INPUT_BYTES} bytes allowed"),
        });
    }
    std::fs::read(path).map_err(read_err)
}
