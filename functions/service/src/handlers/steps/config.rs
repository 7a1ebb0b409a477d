//! What each step binary reads from its environment, once, at init (variables per step in
//! `docs/workflow-contract.md`). Every error names the variable to fix.

use std::sync::Arc;

use aftersales_domain::Policy;

use super::diagnose::DiagnoseDeps;
use super::execute_refund::ExecuteRefundDeps;
use super::notify::{NotifyDeps, SurveyLink};
use super::propose::ProposeDeps;
use super::survey::SurveyDeps;
use crate::adapters::feedback::{DepartmentQueues, SqsFeedbackPublisher};
use crate::adapters::notify::{FanOut, MerchantWebhookChannel, SesEmailChannel};
use crate::adapters::payment::{
    HttpTimeouts, MerchantEndpointGateway, PaymentError, PaymentGateway, StripeApiKey,
    StripeGateway, http_client,
};
use crate::clock::SystemClock;
use crate::config::{self, ConfigError, SecretSource, optional_env, required_env};
use crate::signature::WebhookSecret;
use crate::store::{DynamoStore, TableNames};

/// Why a step's configuration is unusable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StepConfigError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("environment variable {name} must be one of {expected}, not '{value}'")]
    Invalid {
        name: &'static str,
        expected: &'static str,
        value: String,
    },
    #[error("{name}: {reason}")]
    Unusable { name: &'static str, reason: String },
    #[error("set at least one of {0}: the customer must be reachable")]
    NoChannel(&'static str),
}

/// `diagnose` and `propose`: the tables and the merchant policy.
#[derive(Debug, Clone)]
pub struct RulesConfig {
    pub tables: TableNames,
    pub policy: Policy,
}

impl RulesConfig {
    pub fn from_env() -> Result<RulesConfig, StepConfigError> {
        Ok(RulesConfig {
            tables: config::table_names()?,
            policy: config::policy_from_env()?,
        })
    }

    pub fn diagnose_deps(self, dynamodb: aws_sdk_dynamodb::Client) -> DiagnoseDeps {
        DiagnoseDeps {
            store: Arc::new(DynamoStore::new(dynamodb, self.tables)),
            policy: Arc::new(self.policy),
            clock: Arc::new(SystemClock),
        }
    }

    pub fn propose_deps(self, dynamodb: aws_sdk_dynamodb::Client) -> ProposeDeps {
        ProposeDeps {
            store: Arc::new(DynamoStore::new(dynamodb, self.tables)),
            policy: Arc::new(self.policy),
            clock: Arc::new(SystemClock),
        }
    }
}

/// Where refunds are made (`PAYMENT_PROVIDER`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GatewayConfig {
    /// The merchant's refund endpoint, signed with the webhook secret.
    MerchantEndpoint { url: String, secret: SecretSource },
    /// Stripe; the API key from Secrets Manager (`PAYMENT_API_KEY_SECRET_ID`) or, locally,
    /// `STRIPE_API_KEY`. `STRIPE_BASE_URL` points at a Stripe-compatible server (tests).
    Stripe {
        api_key: SecretSource,
        base_url: Option<String>,
    },
}

/// `execute-refund`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefundConfig {
    pub tables: TableNames,
    pub gateway: GatewayConfig,
}

impl RefundConfig {
    pub const PROVIDER_ENV: &'static str = "PAYMENT_PROVIDER";
    pub const ENDPOINT_ENV: &'static str = "REFUND_ENDPOINT_URL";
    pub const API_KEY_SECRET_ENV: &'static str = "PAYMENT_API_KEY_SECRET_ID";
    pub const API_KEY_ENV: &'static str = "STRIPE_API_KEY";
    pub const STRIPE_BASE_URL_ENV: &'static str = "STRIPE_BASE_URL";

    pub fn from_env() -> Result<RefundConfig, StepConfigError> {
        let provider = required_env(Self::PROVIDER_ENV)?;
        let gateway = match provider.as_str() {
            "merchant_endpoint" => GatewayConfig::MerchantEndpoint {
                url: required_env(Self::ENDPOINT_ENV)?,
                secret: SecretSource::from_env()?,
            },
            "stripe" => GatewayConfig::Stripe {
                api_key: match optional_env(Self::API_KEY_SECRET_ENV)? {
                    Some(secret_id) => SecretSource::SecretsManager { secret_id },
                    // The key itself is the local alternative to the secret (tests, local runs).
                    None => SecretSource::Value(optional_env(Self::API_KEY_ENV)?.ok_or(
                        ConfigError::NoSecret {
                            wanted: Self::API_KEY_SECRET_ENV,
                            alternative: Self::API_KEY_ENV,
                        },
                    )?),
                },
                base_url: optional_env(Self::STRIPE_BASE_URL_ENV)?,
            },
            _ => {
                return Err(StepConfigError::Invalid {
                    name: Self::PROVIDER_ENV,
                    expected: "merchant_endpoint, stripe",
                    value: provider,
                });
            }
        };
        Ok(RefundConfig {
            tables: config::table_names()?,
            gateway,
        })
    }

    /// The step's dependencies: the store is also the refund ledger.
    pub async fn deps(
        self,
        aws: &aws_types::SdkConfig,
    ) -> Result<ExecuteRefundDeps, StepConfigError> {
        let gateway = self.gateway(aws).await?;
        let store = Arc::new(DynamoStore::new(
            aws_sdk_dynamodb::Client::new(aws),
            self.tables,
        ));
        Ok(ExecuteRefundDeps {
            store: store.clone(),
            ledger: store,
            gateway: Arc::from(gateway),
            clock: Arc::new(SystemClock),
        })
    }

    /// Builds the gateway, reading its secret (one Secrets Manager call at most).
    pub async fn gateway(
        &self,
        aws: &aws_types::SdkConfig,
    ) -> Result<Box<dyn PaymentGateway>, StepConfigError> {
        let unusable = |name: &'static str| {
            move |e: PaymentError| StepConfigError::Unusable {
                name,
                reason: e.to_string(),
            }
        };
        let http = http_client(HttpTimeouts::default()).map_err(unusable("payment HTTP client"))?;
        match &self.gateway {
            GatewayConfig::MerchantEndpoint { url, secret } => {
                let secret = secret.load(aws).await?.into_iter().next().ok_or_else(|| {
                    StepConfigError::Unusable {
                        name: SecretSource::SECRET_ID_ENV,
                        reason: "no webhook secret".to_owned(),
                    }
                })?;
                let gateway = MerchantEndpointGateway::new(http, url, secret)
                    .map_err(unusable(Self::ENDPOINT_ENV))?;
                Ok(Box::new(gateway))
            }
            GatewayConfig::Stripe { api_key, base_url } => {
                let key = api_key.text(aws).await?;
                let key = StripeApiKey::new(key.trim()).map_err(unusable(Self::API_KEY_ENV))?;
                let mut gateway = StripeGateway::new(http, key);
                if let Some(base_url) = base_url {
                    gateway = gateway
                        .with_base_url(base_url)
                        .map_err(unusable(Self::STRIPE_BASE_URL_ENV))?;
                }
                Ok(Box::new(gateway))
            }
        }
    }
}

/// `notify`.
#[derive(Debug, Clone)]
pub struct NotifyConfig {
    pub tables: TableNames,
    pub policy: Policy,
    /// `NOTIFICATION_WEBHOOK_URL`: the storefront's notification webhook.
    pub webhook_url: Option<String>,
    /// `NOTIFICATION_EMAIL_FROM`: the SES sender address.
    pub email_from: Option<String>,
    /// Signs webhook calls and survey links (`WEBHOOK_SECRET_ID` / `AFTERSALES_WEBHOOK_SECRET`).
    pub webhook_secret: Option<SecretSource>,
    /// `RETURN_ADDRESS`: where customers send returns.
    pub return_address: Option<String>,
    /// `SURVEY_URL`: the storefront's survey page, `{ticket_id}` where the id goes.
    pub survey_url: Option<String>,
}

impl NotifyConfig {
    pub const WEBHOOK_URL_ENV: &'static str = "NOTIFICATION_WEBHOOK_URL";
    pub const EMAIL_FROM_ENV: &'static str = "NOTIFICATION_EMAIL_FROM";
    pub const RETURN_ADDRESS_ENV: &'static str = "RETURN_ADDRESS";
    pub const SURVEY_URL_ENV: &'static str = "SURVEY_URL";

    pub fn from_env() -> Result<NotifyConfig, StepConfigError> {
        let webhook_url = optional_env(Self::WEBHOOK_URL_ENV)?;
        let email_from = optional_env(Self::EMAIL_FROM_ENV)?;
        if webhook_url.is_none() && email_from.is_none() {
            return Err(StepConfigError::NoChannel(
                "NOTIFICATION_WEBHOOK_URL, NOTIFICATION_EMAIL_FROM",
            ));
        }
        let webhook_secret = match SecretSource::from_env() {
            Ok(source) => Some(source),
            Err(ConfigError::NoSecret { .. }) if webhook_url.is_none() => None,
            Err(other) => return Err(other.into()),
        };
        let survey_url = optional_env(Self::SURVEY_URL_ENV)?;
        if let Some(url) = &survey_url
            && !url.contains("{ticket_id}")
        {
            return Err(StepConfigError::Invalid {
                name: Self::SURVEY_URL_ENV,
                expected: "a URL containing {ticket_id}",
                value: url.clone(),
            });
        }
        Ok(NotifyConfig {
            tables: config::table_names()?,
            policy: config::policy_from_env()?,
            webhook_url,
            email_from,
            webhook_secret,
            return_address: optional_env(Self::RETURN_ADDRESS_ENV)?,
            survey_url,
        })
    }

    /// The step's dependencies: the configured channels (webhook first, then email), reading
    /// the webhook secret once. The SES client is built only when email is configured.
    pub async fn deps(self, aws: &aws_types::SdkConfig) -> Result<NotifyDeps, StepConfigError> {
        let secret: Option<WebhookSecret> = match &self.webhook_secret {
            Some(source) => source.load(aws).await?.into_iter().next(),
            None => None,
        };
        let mut channels = FanOut::default();
        if let Some(url) = &self.webhook_url {
            let secret = secret.clone().ok_or(ConfigError::NoSecret {
                wanted: SecretSource::SECRET_ID_ENV,
                alternative: SecretSource::VALUE_ENV,
            })?;
            let webhook = MerchantWebhookChannel::new(url, secret).map_err(|e| {
                StepConfigError::Unusable {
                    name: Self::WEBHOOK_URL_ENV,
                    reason: e.to_string(),
                }
            })?;
            channels = channels.with(Arc::new(webhook));
        }
        if let Some(from) = &self.email_from {
            let ses = aws_sdk_sesv2::Client::new(aws);
            channels = channels.with(Arc::new(SesEmailChannel::new(ses, from.clone())));
        }
        Ok(NotifyDeps {
            store: Arc::new(DynamoStore::new(
                aws_sdk_dynamodb::Client::new(aws),
                self.tables,
            )),
            channels,
            policy: Arc::new(self.policy),
            clock: Arc::new(SystemClock),
            return_address: self.return_address,
            survey_link: self
                .survey_url
                .map(|template| SurveyLink { template, secret }),
        })
    }
}

/// `survey`.
#[derive(Debug, Clone)]
pub struct SurveyConfig {
    pub tables: TableNames,
    pub policy: Policy,
    pub queues: DepartmentQueues,
}

impl SurveyConfig {
    pub fn from_env() -> Result<SurveyConfig, StepConfigError> {
        Ok(SurveyConfig {
            tables: config::table_names()?,
            policy: config::policy_from_env()?,
            queues: DepartmentQueues {
                quality: required_env("QUALITY_QUEUE_URL")?,
                logistics: required_env("LOGISTICS_QUEUE_URL")?,
                warehouse: required_env("WAREHOUSE_QUEUE_URL")?,
                service: required_env("SERVICE_QUEUE_URL")?,
            },
        })
    }

    pub fn deps(self, dynamodb: aws_sdk_dynamodb::Client, sqs: aws_sdk_sqs::Client) -> SurveyDeps {
        SurveyDeps {
            store: Arc::new(DynamoStore::new(dynamodb, self.tables)),
            feedback: Arc::new(SqsFeedbackPublisher::new(sqs, self.queues)),
            policy: Arc::new(self.policy),
            clock: Arc::new(SystemClock),
        }
    }
}
