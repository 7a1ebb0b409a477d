//! The Lambda bootstrap every binary shares: logging, init failures, the HTTP event loop.

use std::convert::Infallible;
use std::fmt::Display;
use std::future::Future;

use aws_lambda_events::apigw::{ApiGatewayV2httpRequest, ApiGatewayV2httpResponse};
use lambda_runtime::{LambdaEvent, service_fn};

/// Starts logging to stdout: JSON lines when `AWS_LAMBDA_LOG_FORMAT=JSON`, the level from
/// `AWS_LAMBDA_LOG_LEVEL` or `RUST_LOG` (default INFO). Call it first thing in `main`.
pub fn init_tracing() {
    lambda_runtime::tracing::init_default_subscriber();
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

/// The AWS configuration every function builds its SDK clients from:
/// `aws_config::load_defaults(BehaviorVersion::latest())` with the same default HTTPS client
/// (hyper 1, rustls with aws-lc, proxy settings from the environment), except how it gets its
/// root certificates; see [`tls`]. Build it once and share it between the clients.
pub async fn aws_config() -> aws_config::SdkConfig {
    let loader = aws_config::defaults(aws_config::BehaviorVersion::latest());
    match tls::system_ca_bundle() {
        Some(pem) => loader.http_client(tls::aws_https_client(pem)),
        None => loader,
    }
    .load()
    .await
}

/// Root certificates for the HTTPS clients (AWS SDK, reqwest), read once per process.
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

    /// `builder` with the bundle as its only roots, when there is one.
    pub fn with_roots(builder: reqwest::ClientBuilder) -> reqwest::ClientBuilder {
        match reqwest_roots() {
            Some(roots) => builder.tls_certs_only(roots),
            None => builder,
        }
    }

    /// The SDK's default HTTPS client (aws-smithy-runtime's `default_https_client`: hyper 1,
    /// rustls on aws-lc, proxy configuration from the environment), trusting `pem` only.
    pub fn aws_https_client(pem: &'static [u8]) -> SharedHttpClient {
        let tls = TlsContext::builder()
            .with_trust_store(TrustStore::empty().with_pem_certificate(pem))
            .build()
            .expect("a TLS context without additional server names always builds");
        let client = Builder::new().build_with_connector_fn(move |settings, components| {
            let mut builder = Connector::builder()
                .tls_provider(Provider::Rustls(CryptoMode::AwsLc))
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
