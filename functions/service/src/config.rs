//! Configuration the binaries read once at start-up: environment variables (each error names
//! the variable), the webhook secret and the merchant policy. A Lambda whose configuration is
//! wrong fails its init with one clear line instead of failing every request.

use std::path::PathBuf;

use aftersales_domain::Policy;

use crate::signature::WebhookSecret;
use crate::store::TableNames;

/// Why the configuration could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    #[error("environment variable {name} is not set")]
    Missing { name: String },
    #[error("environment variable {name} is set but empty")]
    Empty { name: String },
    #[error("environment variable {name} must be {expected}")]
    Invalid {
        name: String,
        expected: &'static str,
    },
    #[error("environment variable {name} is not valid UTF-8")]
    NotUnicode { name: String },
    #[error("set {wanted} or {alternative} (the webhook secret)")]
    NoSecret {
        wanted: &'static str,
        alternative: &'static str,
    },
    #[error("the webhook secret from {from} is unusable: {reason}")]
    Secret { from: String, reason: String },
    #[error("the policy file {path} (from {variable}) is unusable: {reason}")]
    Policy {
        variable: &'static str,
        path: PathBuf,
        reason: String,
    },
}

/// The value of `name`, which must be set and not empty.
pub fn required_env(name: &str) -> Result<String, ConfigError> {
    optional_env(name)?.ok_or_else(|| ConfigError::Missing {
        name: name.to_owned(),
    })
}

/// The value of `name` if it is set; set but empty is an error (a template typo, not a choice).
pub fn optional_env(name: &str) -> Result<Option<String>, ConfigError> {
    match std::env::var(name) {
        Ok(value) if value.trim().is_empty() => Err(ConfigError::Empty {
            name: name.to_owned(),
        }),
        Ok(value) => Ok(Some(value)),
        Err(std::env::VarError::NotPresent) => Ok(None),
        Err(std::env::VarError::NotUnicode(_)) => Err(ConfigError::NotUnicode {
            name: name.to_owned(),
        }),
    }
}

/// The DynamoDB table names (`TICKETS_TABLE`, `LEDGER_TABLE`).
pub fn table_names() -> Result<TableNames, ConfigError> {
    Ok(TableNames {
        tickets: required_env(TableNames::TICKETS_ENV)?,
        ledger: required_env(TableNames::LEDGER_ENV)?,
    })
}

/// Where the webhook secret comes from.
#[derive(Clone, PartialEq, Eq)]
pub enum SecretSource {
    /// A Secrets Manager secret (name or ARN) whose `SecretString` holds the secret; during a
    /// rotation, the old and the new one on separate lines.
    SecretsManager { secret_id: String },
    /// The secret itself, for the local stack and tests.
    Value(String),
}

impl std::fmt::Debug for SecretSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SecretSource::SecretsManager { secret_id } => f
                .debug_struct("SecretsManager")
                .field("secret_id", secret_id)
                .finish(),
            SecretSource::Value(_) => f.write_str("Value(<redacted>)"),
        }
    }
}

impl SecretSource {
    /// The Secrets Manager secret (name or ARN) holding the webhook secret: what the template sets.
    pub const SECRET_ID_ENV: &'static str = "WEBHOOK_SECRET_ID";
    /// The webhook secret itself: the local stack's variable, for local runs and tests.
    pub const VALUE_ENV: &'static str = "AFTERSALES_WEBHOOK_SECRET";

    /// `WEBHOOK_SECRET_ID` if set, else `AFTERSALES_WEBHOOK_SECRET`.
    pub fn from_env() -> Result<SecretSource, ConfigError> {
        if let Some(secret_id) = optional_env(Self::SECRET_ID_ENV)? {
            return Ok(SecretSource::SecretsManager { secret_id });
        }
        if let Some(value) = optional_env(Self::VALUE_ENV)? {
            return Ok(SecretSource::Value(value));
        }
        Err(ConfigError::NoSecret {
            wanted: Self::SECRET_ID_ENV,
            alternative: Self::VALUE_ENV,
        })
    }

    /// Reads the secret (one network call for Secrets Manager: call it once, at init).
    pub async fn load(
        &self,
        aws: &aws_types::SdkConfig,
    ) -> Result<Vec<WebhookSecret>, ConfigError> {
        secrets_from_value(&self.origin(), &self.text(aws).await?)
    }

    /// Where the secret comes from, as errors name it.
    fn origin(&self) -> String {
        match self {
            SecretSource::Value(_) => Self::VALUE_ENV.to_owned(),
            SecretSource::SecretsManager { secret_id } => {
                format!("Secrets Manager secret {secret_id}")
            }
        }
    }

    /// The secret's text: the value itself, or the Secrets Manager secret's `SecretString`. The
    /// Secrets Manager client is built here, only when a secret comes from there: building an
    /// SDK client costs init time (its endpoint rules and configuration), wasted when the secret
    /// is given as a value.
    pub async fn text(&self, aws: &aws_types::SdkConfig) -> Result<String, ConfigError> {
        let secret_id = match self {
            SecretSource::Value(value) => return Ok(value.clone()),
            SecretSource::SecretsManager { secret_id } => secret_id,
        };
        let from = self.origin();
        let output = aws_sdk_secretsmanager::Client::new(aws)
            .get_secret_value()
            .secret_id(secret_id)
            .send()
            .await
            .map_err(|e| ConfigError::Secret {
                from: from.clone(),
                reason: aws_sdk_secretsmanager::error::DisplayErrorContext(&e).to_string(),
            })?;
        output
            .secret_string()
            .map(str::to_owned)
            .ok_or_else(|| ConfigError::Secret {
                from,
                reason: "it has no SecretString".to_owned(),
            })
    }
}

/// The secrets in `value`: one per non-blank line, surrounding whitespace ignored.
pub fn secrets_from_value(from: &str, value: &str) -> Result<Vec<WebhookSecret>, ConfigError> {
    let secrets: Vec<WebhookSecret> = value
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty())
        .filter_map(|line| WebhookSecret::new(line).ok())
        .collect();
    if secrets.is_empty() {
        return Err(ConfigError::Secret {
            from: from.to_owned(),
            reason: "it is empty".to_owned(),
        });
    }
    Ok(secrets)
}

/// The merchant policy file (TOML, `docs/policy.md`), when not the documented default.
pub const POLICY_FILE_ENV: &str = "AFTERSALES_POLICY_FILE";

/// The policy from the file named by `AFTERSALES_POLICY_FILE`, or the documented default.
pub fn policy_from_env() -> Result<Policy, ConfigError> {
    let Some(path) = optional_env(POLICY_FILE_ENV)? else {
        return Ok(Policy::default_policy());
    };
    let path = PathBuf::from(path);
    let failed = |reason: String| ConfigError::Policy {
        variable: POLICY_FILE_ENV,
        path: path.clone(),
        reason,
    };
    let text = std::fs::read_to_string(&path).map_err(|e| failed(e.to_string()))?;
    Policy::from_toml_str(&text).map_err(|e| failed(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    // Each test uses its own variable names: the environment is shared by every test thread.
    fn set(name: &str, value: &str) {
        // SAFETY: the names are unique to one test, so no other thread reads or writes them.
        unsafe { std::env::set_var(name, value) }
    }

    #[test]
    fn a_missing_variable_is_named_in_the_error() {
        let error = required_env("AFTERSALES_TEST_NEVER_SET").unwrap_err();
        assert_eq!(
            error.to_string(),
            "environment variable AFTERSALES_TEST_NEVER_SET is not set"
        );
    }

    #[test]
    fn an_empty_variable_is_an_error_not_a_value() {
        set("AFTERSALES_TEST_EMPTY", "  ");
        assert_eq!(
            required_env("AFTERSALES_TEST_EMPTY"),
            Err(ConfigError::Empty {
                name: "AFTERSALES_TEST_EMPTY".into()
            })
        );
        assert!(optional_env("AFTERSALES_TEST_EMPTY").is_err());
        set("AFTERSALES_TEST_SET", "tickets");
        assert_eq!(required_env("AFTERSALES_TEST_SET").unwrap(), "tickets");
    }

    #[test]
    fn a_secret_value_may_hold_several_secrets_one_per_line() {
        let secrets = secrets_from_value("test", "whsec_old\n  whsec_new  \n\n").unwrap();
        assert_eq!(secrets.len(), 2);
        assert!(matches!(
            secrets_from_value("test", " \n"),
            Err(ConfigError::Secret { .. })
        ));
    }

    #[test]
    fn debug_output_never_shows_a_secret_value() {
        let source = SecretSource::Value("whsec_super_secret".into());
        assert_eq!(format!("{source:?}"), "Value(<redacted>)");
    }
}
