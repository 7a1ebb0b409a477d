//! Sending one message through several channels.

use std::sync::Arc;

use super::message::{Delivery, NotificationChannel, NotifyError, OutgoingMessage};

/// Sends each message through every channel, in order, and reports each channel's result.
/// One channel failing does not stop the others.
#[derive(Clone, Default)]
pub struct FanOut {
    channels: Vec<Arc<dyn NotificationChannel>>,
}

/// One channel's result within a [`FanOutReport`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChannelOutcome {
    pub channel: &'static str,
    pub result: Result<Delivery, NotifyError>,
}

/// The result of every channel, in the fan-out's order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FanOutReport {
    pub outcomes: Vec<ChannelOutcome>,
}

impl FanOut {
    pub fn new(channels: Vec<Arc<dyn NotificationChannel>>) -> Self {
        FanOut { channels }
    }

    /// Adds a channel after the existing ones.
    pub fn with(mut self, channel: Arc<dyn NotificationChannel>) -> Self {
        self.channels.push(channel);
        self
    }

    /// The channels' names, in sending order.
    pub fn channel_names(&self) -> Vec<&'static str> {
        self.channels.iter().map(|c| c.name()).collect()
    }

    pub async fn send(&self, msg: &OutgoingMessage) -> FanOutReport {
        let mut outcomes = Vec::with_capacity(self.channels.len());
        for channel in &self.channels {
            outcomes.push(ChannelOutcome {
                channel: channel.name(),
                result: channel.send(msg).await,
            });
        }
        FanOutReport { outcomes }
    }
}

impl std::fmt::Debug for FanOut {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FanOut")
            .field("channels", &self.channel_names())
            .finish()
    }
}

impl FanOutReport {
    /// The channels that accepted the message.
    pub fn deliveries(&self) -> Vec<&Delivery> {
        self.outcomes
            .iter()
            .filter_map(|o| o.result.as_ref().ok())
            .collect()
    }

    /// The channels that did not.
    pub fn failures(&self) -> Vec<&NotifyError> {
        self.outcomes
            .iter()
            .filter_map(|o| o.result.as_ref().err())
            .collect()
    }

    /// What the notify step should do: retry when any channel failed retryably (channels
    /// that dedup by idempotency key absorb the repeat); succeed when at least one channel
    /// delivered and none can still succeed later; otherwise fail with the first error.
    pub fn into_result(self) -> Result<Vec<Delivery>, NotifyError> {
        let mut deliveries = Vec::new();
        let mut first_error = None;
        for outcome in self.outcomes {
            match outcome.result {
                Ok(delivery) => deliveries.push(delivery),
                Err(error) if error.is_retryable() => return Err(error),
                Err(error) => {
                    first_error.get_or_insert(error);
                }
            }
        }
        match first_error {
            Some(error) if deliveries.is_empty() => Err(error),
            None if deliveries.is_empty() => Err(NotifyError::Misconfigured {
                channel: "fan_out",
                reason: "no notification channel is configured".into(),
            }),
            _ => Ok(deliveries),
        }
    }
}
