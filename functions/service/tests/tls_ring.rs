//! The functions' HTTPS clients (`runtime::tls`: the SDKs' hyper client and reqwest, both on
//! rustls with ring) complete a real TLS handshake with a server on loopback, trust exactly the
//! roots they are given, and refuse a server they do not trust.

use std::sync::Arc;

use aftersales_service::config::SecretSource;
use aftersales_service::runtime::tls;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

/// A self-signed certificate for `localhost`: its PEM (the root a client must trust) and a TLS
/// server on loopback that answers every request with `body` (Secrets Manager's JSON content
/// type). Returns the port.
struct HttpsServer {
    port: u16,
    pem: String,
    der: CertificateDer<'static>,
}

async fn https_server(body: &'static str) -> HttpsServer {
    tls::install_crypto_provider();
    let certified = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    let der = certified.cert.der().clone();
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(
        certified.signing_key.serialize_der(),
    ));
    let config = rustls::ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(vec![der.clone()], key)
        .unwrap();
    let acceptor = TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                // A client that refuses the certificate ends the handshake: nothing to answer.
                let Ok(mut stream) = acceptor.accept(tcp).await else {
                    return;
                };
                read_request(&mut stream).await;
                let response = format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: application/x-amz-json-1.1\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = stream.write_all(response.as_bytes()).await;
                let _ = stream.shutdown().await;
            });
        }
    });
    HttpsServer {
        port,
        pem: certified.cert.pem(),
        der,
    }
}

/// Reads one HTTP/1.1 request: the head, then `Content-Length` bytes of body.
async fn read_request(stream: &mut (impl AsyncReadExt + Unpin)) {
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let n = stream.read(&mut buf).await.unwrap_or(0);
        if n == 0 {
            return;
        }
        seen.extend_from_slice(&buf[..n]);
        if let Some(end) = seen.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&seen[..end]).to_ascii_lowercase();
            let length: usize = head
                .lines()
                .find_map(|line| line.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(0);
            if seen.len() >= end + 4 + length {
                return;
            }
        }
    }
}

const SECRET_JSON: &str = r#"{"ARN":"arn:aws:secretsmanager:eu-west-1:123456789012:secret:webhook","Name":"webhook","SecretString":"whsec_over_tls_0123456789abcdef","VersionId":"v1"}"#;

fn sdk_config(server: &HttpsServer, trusted_pem: Option<&'static [u8]>) -> aws_types::SdkConfig {
    aftersales_service::testing::aws_environment(&format!("https://localhost:{}", server.port))
        .sdk_config()
        .into_builder()
        .http_client(tls::aws_https_client(trusted_pem))
        .build()
}

#[tokio::test]
async fn the_sdk_client_speaks_tls_on_ring_to_a_server_it_trusts() {
    let server = https_server(SECRET_JSON).await;
    let pem: &'static [u8] = Box::leak(server.pem.clone().into_bytes().into_boxed_slice());
    let source = SecretSource::SecretsManager {
        secret_id: "webhook".to_owned(),
    };

    let secret = source.text(&sdk_config(&server, Some(pem))).await.unwrap();

    assert_eq!(secret, "whsec_over_tls_0123456789abcdef");
}

#[tokio::test]
async fn the_sdk_client_refuses_a_server_outside_its_roots() {
    let server = https_server(SECRET_JSON).await;
    let other = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    let other_pem: &'static [u8] = Box::leak(other.cert.pem().into_bytes().into_boxed_slice());
    let source = SecretSource::SecretsManager {
        secret_id: "webhook".to_owned(),
    };

    let error = source
        .text(&sdk_config(&server, Some(other_pem)))
        .await
        .unwrap_err();

    let shown = format!("{error:?}");
    assert!(
        shown.contains("certificate") || shown.contains("dispatch"),
        "{shown}"
    );
}

#[tokio::test]
async fn reqwest_speaks_tls_on_ring_and_refuses_an_untrusted_server() {
    let server = https_server(r#"{"ok":true}"#).await;
    let url = format!("https://localhost:{}/hook", server.port);

    let trusting = tls::client_builder()
        .tls_certs_only([reqwest::Certificate::from_der(&server.der).unwrap()])
        .build()
        .unwrap();
    let response = trusting.post(&url).body("{}").send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.text().await.unwrap(), r#"{"ok":true}"#);

    // The functions' own client trusts the system roots only.
    let error = tls::client_builder()
        .build()
        .unwrap()
        .post(&url)
        .body("{}")
        .send()
        .await
        .unwrap_err();
    assert!(error.is_connect(), "{error:?}");
}
