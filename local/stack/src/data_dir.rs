//! The data directory: the store file and the generated webhook secret.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use aftersales_service::config::secrets_from_value;
use aftersales_service::signature::WebhookSecret;

/// The environment variable holding the webhook secret (one per line while rotating).
pub const SECRET_ENV: &str = "AFTERSALES_WEBHOOK_SECRET";
/// The generated secret's file in the data directory (mode 0600).
pub const SECRET_FILE: &str = "webhook-secret";

/// Creates `dir` if needed and checks this process can write there.
pub fn prepare(dir: &Path) -> Result<(), String> {
    let unwritable =
        |e: std::io::Error| format!("the data directory {} is not writable: {e}", dir.display());
    std::fs::create_dir_all(dir).map_err(unwritable)?;
    let probe = dir.join(".write-check");
    std::fs::write(&probe, b"").map_err(unwritable)?;
    std::fs::remove_file(&probe).map_err(unwritable)?;
    Ok(())
}

/// Where the secrets came from, for the start-up message.
pub enum SecretOrigin {
    Environment,
    /// Generated now; the value is shown once.
    Generated(String),
    File,
}

/// The secrets from `AFTERSALES_WEBHOOK_SECRET`, else the data directory's file, else a new one
/// written there with mode 0600.
pub fn webhook_secrets(dir: &Path) -> Result<(Vec<WebhookSecret>, SecretOrigin), String> {
    if let Ok(value) = std::env::var(SECRET_ENV) {
        let secrets = secrets_from_value(SECRET_ENV, &value).map_err(|e| e.to_string())?;
        return Ok((secrets, SecretOrigin::Environment));
    }
    let path = dir.join(SECRET_FILE);
    match std::fs::read_to_string(&path) {
        Ok(text) => {
            let secrets = secrets_from_value(&path.display().to_string(), &text)
                .map_err(|e| e.to_string())?;
            return Ok((secrets, SecretOrigin::File));
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => {
            return Err(format!(
                "the webhook secret {} cannot be read: {e}",
                path.display()
            ));
        }
    }
    let value = format!("whsec_{}", hex::encode(rand::random::<[u8; 32]>()));
    let written = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path)
        .and_then(|mut file| {
            file.write_all(value.as_bytes())?;
            file.sync_all()
        });
    written.map_err(|e| {
        format!(
            "the webhook secret {} cannot be written: {e}",
            path.display()
        )
    })?;
    let secrets = secrets_from_value("generated", &value).map_err(|e| e.to_string())?;
    Ok((secrets, SecretOrigin::Generated(value)))
}
