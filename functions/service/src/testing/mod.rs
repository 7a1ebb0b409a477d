//! Test support for this crate and the workspace (enabled by the `testing` feature).

pub mod moto;
pub mod store_contract;

/// The functions' AWS settings ([`crate::runtime::AwsEnvironment`]) for a test endpoint: us-east-1
/// and static test credentials.
pub fn aws_environment(endpoint_url: &str) -> crate::runtime::AwsEnvironment {
    crate::runtime::AwsEnvironment {
        region: "us-east-1".to_owned(),
        access_key_id: "testing".to_owned(),
        secret_access_key: "testing".to_owned(),
        session_token: None,
        endpoint_url: Some(endpoint_url.to_owned()),
    }
}
