//! The Lambda bootstrap every binary shares: logging, init failures, the HTTP event loop.

use std::convert::Infallible;
use std::fmt::Display;
use std::future::Future;

use aws_credential_types::Credentials;
use aws_credential_types::provider::SharedCredentialsProvider;
use aws_lambda_events::apigw::{ApiGatewayV2httpRequest, ApiGatewayV2httpResponse};
use aws_smithy_runtime_api::client::behavior_version::BehaviorVersion;
use aws_types::SdkConfig;
use aws_types::region::Region;
use lambda_runtime::{LambdaEvent, service_fn};
use tracing_subscriber::filter::{LevelFilter, Targets};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

use crate::config::{ConfigError, optional_env};

/// Starts logging to stdout as Lambda's advanced logging controls ask (see [`LogSettings`]).
/// Call it first thing in `main`.
///
/// This is `lambda_runtime::tracing::init_default_subscriber`'s behaviour without its
/// `EnvFilter`, whose regular expressions (regex-automata, regex-syntax) were about 200 KB
/// of every function's binary for a level and a few `target=level` directives; and
/// without ANSI colour codes, which CloudWatch shows as escape characters.
pub fn init_tracing() {
    let settings = LogSettings::from_lookup(|name| std::env::var(name).ok());
    let layer = tracing_subscriber::fmt::layer()
        .with_target(false)
        .without_time()
        .with_writer(std::io::stdout);
    let registry = tracing_subscriber::registry().with(settings.filter);
    if settings.json {
        registry.with(layer.json()).init();
    } else {
        registry.with(layer).init();
    }
    for directive in settings.ignored {
        tracing::warn!(
            directive,
            "RUST_LOG directive ignored: expected LEVEL or TARGET=LEVEL"
        );
    }
}

/// How a function logs, from the variables Lambda's advanced logging controls set:
/// - `AWS_LAMBDA_LOG_FORMAT=JSON`: one JSON object per line (any other value: plain text lines);
/// - `AWS_LAMBDA_LOG_LEVEL` (`TRACE`, `DEBUG`, `INFO`, `WARN`, `ERROR`, `FATAL`) sets the level;
/// - `RUST_LOG` adds comma-separated `LEVEL` or `TARGET=LEVEL` directives (for example
///   `aftersales_service=debug`); a bare level there is the default when `AWS_LAMBDA_LOG_LEVEL`
///   is not set; directives that do not parse are ignored and named in a warning;
/// - otherwise `INFO`.
#[derive(Debug)]
pub struct LogSettings {
    pub json: bool,
    pub filter: Targets,
    /// `RUST_LOG` directives that did not parse.
    pub ignored: Vec<String>,
}

impl LogSettings {
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> LogSettings {
        let json = lookup("AWS_LAMBDA_LOG_FORMAT").is_some_and(|f| f.eq_ignore_ascii_case("json"));
        let mut filter = Targets::new();
        let mut rust_log_level = None;
        let mut ignored = Vec::new();
        for directive in lookup("RUST_LOG").unwrap_or_default().split(',') {
            let directive = directive.trim();
            if directive.is_empty() {
                continue;
            }
            match directive.parse::<Targets>() {
                Ok(parsed) => {
                    rust_log_level = parsed.default_level().or(rust_log_level);
                    filter.extend(parsed);
                }
                Err(_) => ignored.push(directive.to_owned()),
            }
        }
        let lambda_level = lookup("AWS_LAMBDA_LOG_LEVEL").map(|level| {
            match level.trim().to_ascii_uppercase().as_str() {
                "FATAL" => LevelFilter::ERROR,
                other => other.parse().unwrap_or(LevelFilter::INFO),
            }
        });
        let level = lambda_level.or(rust_log_level).unwrap_or(LevelFilter::INFO);
        LogSettings {
            json,
            filter: filter.with_default(level),
            ignored,
        }
    }
}

/// Logs why initialisation failed (one line naming what to fix) and hands the error back for
/// `main` to return, so Lambda reports an init error instead of serving with bad configuration.
pub fn init_failed<E>(error: E) -> lambda_runtime::Error
where
    E: Display + Into<lambda_runtime::Error>,
{
    tracing::error!(error = %error, "initialisation failed");
    error.into()
}

/// Serves API Gateway HTTP API events with `handler`, which answers every event (refusals and
/// failures included) with an HTTP response.
pub async fn serve_http<H, F>(handler: H) -> Result<(), lambda_runtime::Error>
where
    H: Fn(ApiGatewayV2httpRequest) -> F,
    F: Future<Output = ApiGatewayV2httpResponse>,
{
    lambda_runtime::run(service_fn(|event: LambdaEvent<ApiGatewayV2httpRequest>| {
        let response = handler(event.payload);
        async move { Ok::<_, Infallible>(response.await) }
    }))
    .await
}

/// The AWS configuration every function builds its SDK clients from, read from the environment
/// Lambda gives every function (see [`AwsEnvironment`]), with the HTTPS client of [`tls`]. Build
/// it once and share it between the clients.
pub fn aws_config() -> Result<SdkConfig, ConfigError> {
    AwsEnvironment::from_env().map(|environment| environment.sdk_config())
}

/// The region, credentials and endpoint the SDK clients use, as Lambda sets them for every
/// function: `AWS_REGION` (or `AWS_DEFAULT_REGION`), the execution role's temporary credentials
/// in `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY` and `AWS_SESSION_TOKEN`, and, to point the
/// functions at an AWS API emulator, `AWS_ENDPOINT_URL`.
///
/// This replaces `aws_config::load_defaults`, whose provider chains (profile files, SSO, web
/// identity through STS, ECS and EC2 metadata) never apply in Lambda, where the environment
/// credentials always come first: building those chains was a millisecond of each function's
/// init, and aws-config (with the STS client it brings) a few hundred kilobytes of each binary.
/// Retries, timeouts, the identity cache and the async sleep are the SDK clients' defaults for
/// [`BehaviorVersion::latest`], as before.
#[derive(Clone, PartialEq, Eq)]
pub struct AwsEnvironment {
    pub region: String,
    pub access_key_id: String,
    pub secret_access_key: String,
    pub session_token: Option<String>,
    /// Every service's endpoint, instead of the AWS one for the region.
    pub endpoint_url: Option<String>,
}

impl AwsEnvironment {
    pub const REGION_ENV: &str = "AWS_REGION";
    pub const DEFAULT_REGION_ENV: &str = "AWS_DEFAULT_REGION";
    pub const ACCESS_KEY_ID_ENV: &str = "AWS_ACCESS_KEY_ID";
    pub const SECRET_ACCESS_KEY_ENV: &str = "AWS_SECRET_ACCESS_KEY";
    pub const SESSION_TOKEN_ENV: &str = "AWS_SESSION_TOKEN";
    pub const ENDPOINT_URL_ENV: &str = "AWS_ENDPOINT_URL";

    /// Reads the process environment; the error names the variable to set or fix.
    pub fn from_env() -> Result<AwsEnvironment, ConfigError> {
        Self::from_lookup(optional_env)
    }

    /// Reads the variables through `lookup` (`Ok(None)`: not set), as [`optional_env`] does.
    pub fn from_lookup(
        lookup: impl Fn(&str) -> Result<Option<String>, ConfigError>,
    ) -> Result<AwsEnvironment, ConfigError> {
        let required = |name: &str| {
            lookup(name)?.ok_or_else(|| ConfigError::Missing {
                name: name.to_owned(),
            })
        };
        let region = match lookup(Self::REGION_ENV)? {
            Some(region) => region,
            None => lookup(Self::DEFAULT_REGION_ENV)?.ok_or_else(|| ConfigError::Missing {
                name: Self::REGION_ENV.to_owned(),
            })?,
        };
        let endpoint_url = lookup(Self::ENDPOINT_URL_ENV)?;
        if let Some(url) = &endpoint_url
            && !(url.starts_with("http://") || url.starts_with("https://"))
        {
            return Err(ConfigError::Invalid {
                name: Self::ENDPOINT_URL_ENV.to_owned(),
                expected: "an http:// or https:// URL",
            });
        }
        Ok(AwsEnvironment {
            region,
            access_key_id: required(Self::ACCESS_KEY_ID_ENV)?,
            secret_access_key: required(Self::SECRET_ACCESS_KEY_ENV)?,
            session_token: lookup(Self::SESSION_TOKEN_ENV)?,
            endpoint_url,
        })
    }

    /// The SDK configuration: these settings, the latest behaviour version, and the HTTPS client
    /// of [`tls`] (rustls on ring, trusting the system CA bundle read once).
    pub fn sdk_config(self) -> SdkConfig {
        let credentials = Credentials::new(
            self.access_key_id,
            self.secret_access_key,
            self.session_token,
            None,
            "Environment",
        );
        let mut builder = SdkConfig::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new(self.region))
            .credentials_provider(SharedCredentialsProvider::new(credentials));
        if let Some(url) = self.endpoint_url {
            builder = builder.endpoint_url(url);
        }
        builder
            .http_client(tls::aws_https_client(tls::system_ca_bundle()))
            .build()
    }
}

impl std::fmt::Debug for AwsEnvironment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AwsEnvironment")
            .field("region", &self.region)
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &"<redacted>")
            .field(
                "session_token",
                &self.session_token.as_ref().map(|_| "<redacted>"),
            )
            .field("endpoint_url", &self.endpoint_url)
            .finish()
    }
}

/// The HTTPS clients (AWS SDK, reqwest): rustls on ring, root certificates read once per process.
///
/// By default both the AWS SDK's client and reqwest load the platform's roots with
/// `rustls-native-certs`, which reads the CA bundle file *and* every file of the certificate
/// directories (about 150 certificates twice, 290 files on Debian); reqwest does it once per
/// client and the SDK once per SDK client built (`validate_base_client_config` builds a connector
/// it throws away, only to load the certificates early) and again for its first request. That
/// was most of each function's init time (profiled with strace: 443 file operations under
/// /etc/ssl/certs per load; notify, with three SDK clients and a webhook client, loaded and parsed
/// them four times). Here the bundle file found the same way (`openssl_probe`, which
/// `rustls-native-certs` uses) is read once and handed to each client as its only roots: the same
/// certificates, one small read instead of hundreds, and no connector built only to be dropped.
pub mod tls {
    use std::sync::OnceLock;

    use aws_smithy_http_client::proxy::ProxyConfig;
    use aws_smithy_http_client::tls::rustls_provider::CryptoMode;
    use aws_smithy_http_client::tls::{Provider, TlsContext, TrustStore};
    use aws_smithy_http_client::{Builder, Connector};
    use aws_smithy_runtime_api::client::connector_metadata::ConnectorMetadata;
    use aws_smithy_runtime_api::client::http::{
        HttpClient, HttpConnectorSettings, SharedHttpClient, SharedHttpConnector,
    };
    use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
    use aws_smithy_runtime_api::shared::IntoShared;
    use aws_smithy_types::config_bag::ConfigBag;

    /// The system's CA bundle (PEM), or `None` when the platform default must be kept: no bundle
    /// file found or readable, or `SSL_CERT_FILE` / `SSL_CERT_DIR` set (then the clients load the
    /// native roots themselves, honouring those variables, as they always did).
    pub fn system_ca_bundle() -> Option<&'static [u8]> {
        static BUNDLE: OnceLock<Option<Vec<u8>>> = OnceLock::new();
        BUNDLE
            .get_or_init(|| {
                if openssl_probe::has_ssl_cert_env_vars() {
                    return None;
                }
                let file = openssl_probe::probe().cert_file?;
                std::fs::read(file)
                    .ok()
                    .filter(|pem| pem.windows(11).any(|w| w == b"-----BEGIN "))
            })
            .as_deref()
    }

    /// Makes ring the process's rustls crypto provider, unless one is installed already. The
    /// SDKs' client names ring itself; reqwest takes the process's provider and panics without
    /// one, so every reqwest client is built from [`client_builder`], which calls this first.
    pub fn install_crypto_provider() {
        if rustls::crypto::CryptoProvider::get_default().is_none() {
            // Err: another thread installed one in between, which is as good.
            let _ = rustls::crypto::ring::default_provider().install_default();
        }
    }

    /// The bundle's certificates for reqwest (parsed once per process), or `None` for reqwest's
    /// own platform verifier (see [`system_ca_bundle`]).
    pub fn reqwest_roots() -> Option<Vec<reqwest::Certificate>> {
        static ROOTS: OnceLock<Option<Vec<reqwest::Certificate>>> = OnceLock::new();
        ROOTS
            .get_or_init(|| {
                let certs = reqwest::Certificate::from_pem_bundle(system_ca_bundle()?).ok()?;
                (!certs.is_empty()).then_some(certs)
            })
            .clone()
    }

    /// A reqwest client builder: rustls on ring ([`install_crypto_provider`]), the bundle as its
    /// only roots when there is one. Build every reqwest client from it.
    pub fn client_builder() -> reqwest::ClientBuilder {
        install_crypto_provider();
        let builder = reqwest::Client::builder();
        match reqwest_roots() {
            Some(roots) => builder.tls_certs_only(roots),
            None => builder,
        }
    }

    /// The SDKs' HTTPS client: aws-smithy-http-client's hyper 1 client with rustls on ring and
    /// the proxy configuration from the environment, as the SDKs' `default-https-client` builds
    /// it (on aws-lc), trusting `pem` only, or the platform's roots without a bundle.
    pub fn aws_https_client(pem: Option<&'static [u8]>) -> SharedHttpClient {
        let trust_store = match pem {
            Some(pem) => TrustStore::empty().with_pem_certificate(pem),
            None => TrustStore::default(),
        };
        let tls = TlsContext::builder()
            .with_trust_store(trust_store)
            .build()
            .expect("a TLS context without additional server names always builds");
        let client = Builder::new().build_with_connector_fn(move |settings, components| {
            let mut builder = Connector::builder()
                .tls_provider(Provider::Rustls(CryptoMode::Ring))
                .tls_context(tls.clone());
            builder.set_connector_settings(settings.cloned());
            if let Some(components) = components {
                builder.set_sleep_impl(components.sleep_impl());
            }
            builder.set_proxy_config(Some(ProxyConfig::from_env()));
            builder.build()
        });
        NoEagerConnector(client).into_shared()
    }

    /// Delegates to the SDK's client but skips its `validate_base_client_config`, which builds a
    /// connector (TLS configuration and root store included) for every SDK client created and
    /// drops it, only so that the native certificates are loaded at init; the bundle here is
    /// already loaded, and the connector a request uses is built (and cached) on first use as
    /// before.
    #[derive(Debug)]
    struct NoEagerConnector(SharedHttpClient);

    impl HttpClient for NoEagerConnector {
        fn http_connector(
            &self,
            settings: &HttpConnectorSettings,
            components: &RuntimeComponents,
        ) -> SharedHttpConnector {
            self.0.http_connector(settings, components)
        }

        fn validate_final_config(
            &self,
            components: &RuntimeComponents,
            cfg: &ConfigBag,
        ) -> Result<(), aws_smithy_runtime_api::box_error::BoxError> {
            self.0.validate_final_config(components, cfg)
        }

        fn connector_metadata(&self) -> Option<ConnectorMetadata> {
            self.0.connector_metadata()
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use aws_credential_types::provider::ProvideCredentials;

    use super::*;

    fn lookup(
        vars: &[(&str, &str)],
    ) -> impl Fn(&str) -> Result<Option<String>, ConfigError> + use<> {
        let vars: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        move |name| Ok(vars.get(name).cloned())
    }

    const LAMBDA: &[(&str, &str)] = &[
        ("AWS_REGION", "eu-west-1"),
        ("AWS_DEFAULT_REGION", "eu-west-1"),
        ("AWS_ACCESS_KEY_ID", "ASIAEXAMPLE"),
        ("AWS_SECRET_ACCESS_KEY", "secret-key"),
        ("AWS_SESSION_TOKEN", "session-token"),
    ];

    fn without(name: &str) -> Vec<(&'static str, &'static str)> {
        LAMBDA.iter().copied().filter(|(k, _)| *k != name).collect()
    }

    #[tokio::test]
    async fn lambdas_environment_gives_the_region_and_the_role_credentials() {
        let environment = AwsEnvironment::from_lookup(lookup(LAMBDA)).unwrap();
        assert_eq!(environment.region, "eu-west-1");
        assert_eq!(environment.endpoint_url, None);

        let config = environment.sdk_config();
        assert_eq!(config.region().map(|r| r.as_ref()), Some("eu-west-1"));
        assert_eq!(config.endpoint_url(), None);
        assert_eq!(config.behavior_version(), Some(BehaviorVersion::latest()));
        let credentials = config
            .credentials_provider()
            .unwrap()
            .provide_credentials()
            .await
            .unwrap();
        assert_eq!(credentials.access_key_id(), "ASIAEXAMPLE");
        assert_eq!(credentials.secret_access_key(), "secret-key");
        assert_eq!(credentials.session_token(), Some("session-token"));
    }

    #[test]
    fn the_region_falls_back_to_aws_default_region_and_aws_region_wins() {
        let mut vars = without("AWS_REGION");
        vars.retain(|(k, _)| *k != "AWS_DEFAULT_REGION");
        vars.push(("AWS_DEFAULT_REGION", "ap-southeast-2"));
        let environment = AwsEnvironment::from_lookup(lookup(&vars)).unwrap();
        assert_eq!(environment.region, "ap-southeast-2");

        vars.push(("AWS_REGION", "us-west-2"));
        let environment = AwsEnvironment::from_lookup(lookup(&vars)).unwrap();
        assert_eq!(environment.region, "us-west-2");
    }

    #[test]
    fn a_missing_region_or_key_is_named() {
        let mut no_region = without("AWS_REGION");
        no_region.retain(|(k, _)| *k != "AWS_DEFAULT_REGION");
        for (vars, name) in [
            (no_region, "AWS_REGION"),
            (without("AWS_ACCESS_KEY_ID"), "AWS_ACCESS_KEY_ID"),
            (without("AWS_SECRET_ACCESS_KEY"), "AWS_SECRET_ACCESS_KEY"),
        ] {
            let error = AwsEnvironment::from_lookup(lookup(&vars)).unwrap_err();
            assert_eq!(
                error.to_string(),
                format!("environment variable {name} is not set")
            );
        }
        // Credentials without a session token (an IAM user's keys) are complete.
        let environment =
            AwsEnvironment::from_lookup(lookup(&without("AWS_SESSION_TOKEN"))).unwrap();
        assert_eq!(environment.session_token, None);
    }

    #[test]
    fn an_endpoint_url_overrides_every_service_and_must_be_http() {
        let mut vars = LAMBDA.to_vec();
        vars.push(("AWS_ENDPOINT_URL", "http://127.0.0.1:5000"));
        let config = AwsEnvironment::from_lookup(lookup(&vars))
            .unwrap()
            .sdk_config();
        assert_eq!(config.endpoint_url(), Some("http://127.0.0.1:5000"));

        vars.pop();
        vars.push(("AWS_ENDPOINT_URL", "127.0.0.1:5000"));
        let error = AwsEnvironment::from_lookup(lookup(&vars)).unwrap_err();
        assert_eq!(
            error.to_string(),
            "environment variable AWS_ENDPOINT_URL must be an http:// or https:// URL"
        );
    }

    #[test]
    fn a_lookup_error_is_passed_on() {
        let error = AwsEnvironment::from_lookup(|name| {
            Err(ConfigError::Empty {
                name: name.to_owned(),
            })
        })
        .unwrap_err();
        assert_eq!(
            error.to_string(),
            "environment variable AWS_REGION is set but empty"
        );
    }

    #[test]
    fn debug_output_never_shows_the_secret_key_or_token() {
        let environment = AwsEnvironment::from_lookup(lookup(LAMBDA)).unwrap();
        let debug = format!("{environment:?}");
        assert!(!debug.contains("secret-key"), "{debug}");
        assert!(!debug.contains("session-token"), "{debug}");
        assert!(debug.contains("eu-west-1"), "{debug}");
    }

    fn log_settings(vars: &[(&str, &str)]) -> LogSettings {
        let vars: HashMap<&str, &str> = vars.iter().copied().collect();
        LogSettings::from_lookup(|name| vars.get(name).map(|v| (*v).to_owned()))
    }

    /// The levels enabled for `target`, most severe first (ERROR, WARN, INFO, DEBUG, TRACE).
    fn enabled(settings: &LogSettings, target: &str) -> Vec<tracing::Level> {
        use tracing::Level;
        [
            Level::ERROR,
            Level::WARN,
            Level::INFO,
            Level::DEBUG,
            Level::TRACE,
        ]
        .into_iter()
        .filter(|level| settings.filter.would_enable(target, level))
        .collect()
    }

    #[test]
    fn logs_info_and_above_as_text_by_default() {
        let settings = log_settings(&[]);
        assert!(!settings.json);
        assert_eq!(settings.filter.default_level(), Some(LevelFilter::INFO));
        assert!(settings.ignored.is_empty());
    }

    #[test]
    fn lambdas_log_level_and_format_are_followed() {
        let settings = log_settings(&[
            ("AWS_LAMBDA_LOG_FORMAT", "JSON"),
            ("AWS_LAMBDA_LOG_LEVEL", "DEBUG"),
        ]);
        assert!(settings.json);
        assert_eq!(settings.filter.default_level(), Some(LevelFilter::DEBUG));
        // FATAL is Lambda's highest level; tracing's is ERROR. Unknown levels log INFO.
        let fatal = log_settings(&[("AWS_LAMBDA_LOG_LEVEL", "FATAL")]);
        assert_eq!(fatal.filter.default_level(), Some(LevelFilter::ERROR));
        let unknown = log_settings(&[("AWS_LAMBDA_LOG_LEVEL", "LOUD")]);
        assert_eq!(unknown.filter.default_level(), Some(LevelFilter::INFO));
        let text = log_settings(&[("AWS_LAMBDA_LOG_FORMAT", "Text")]);
        assert!(!text.json);
    }

    #[test]
    fn rust_log_adds_target_directives_and_names_the_ones_it_ignores() {
        let settings = log_settings(&[
            ("AWS_LAMBDA_LOG_LEVEL", "WARN"),
            ("RUST_LOG", "aftersales_service=debug, info ,h2=nonsense,,"),
        ]);
        // AWS_LAMBDA_LOG_LEVEL wins over RUST_LOG's bare level.
        assert_eq!(settings.filter.default_level(), Some(LevelFilter::WARN));
        assert_eq!(enabled(&settings, "aftersales_service::handlers").len(), 4);
        assert_eq!(enabled(&settings, "aws_smithy_runtime").len(), 2);
        assert_eq!(settings.ignored, ["h2=nonsense"]);

        // Without AWS_LAMBDA_LOG_LEVEL, RUST_LOG's bare level is the default.
        let settings = log_settings(&[("RUST_LOG", "error,aftersales_domain=trace")]);
        assert_eq!(settings.filter.default_level(), Some(LevelFilter::ERROR));
        assert_eq!(enabled(&settings, "aftersales_domain::policy").len(), 5);
        assert_eq!(enabled(&settings, "hyper").len(), 1);
    }
}
