//! The records of webhooks: endpoints, queued messages and their attempts.

use crate::domain::model::Millis;

/// An endpoint that receives an organization's events.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Webhook {
    pub id: String,
    pub org_id: String,
    pub url: String,
    /// Event names from [`super::EVENTS`].
    pub events: Vec<String>,
    pub description: Option<String>,
    pub enabled: bool,
    /// The signing secret, sealed; see [`super::signer::SecretBox`].
    pub secret_sealed: String,
    pub secret_pepper_version: i64,
    pub created_at: Millis,
    pub updated_at: Millis,
}

impl Webhook {
    pub fn wants(&self, event: &str) -> bool {
        self.enabled && self.events.iter().any(|e| e == event)
    }
}

/// Where a message is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MessageStatus {
    /// Waiting for its next attempt.
    Pending,
    /// A receiver answered 2xx.
    Delivered,
    /// Every attempt of its schedule failed.
    Failed,
}

impl MessageStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            MessageStatus::Pending => "pending",
            MessageStatus::Delivered => "delivered",
            MessageStatus::Failed => "failed",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "pending" => Some(MessageStatus::Pending),
            "delivered" => Some(MessageStatus::Delivered),
            "failed" => Some(MessageStatus::Failed),
            _ => None,
        }
    }
}

/// One event for one endpoint: the `webhook-id` of every attempt at delivering it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub id: String,
    pub webhook_id: String,
    pub org_id: String,
    pub event: String,
    /// The body sent, the same on every attempt.
    pub payload: String,
    pub status: MessageStatus,
    pub attempts: i64,
    /// Attempts made before the current schedule began (a redelivery starts a new one).
    pub schedule_base: i64,
    pub next_attempt_at: Option<Millis>,
    pub response_status: Option<i64>,
    pub last_error: Option<String>,
    pub created_at: Millis,
    pub delivered_at: Option<Millis>,
}

/// A message claimed by a worker, with the token that proves its lease.
#[derive(Debug, Clone)]
pub struct Claimed {
    pub message: Message,
    pub lease_token: String,
}

/// One attempt at delivering a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attempt {
    pub message_id: String,
    pub attempt: i64,
    pub at: Millis,
    pub duration_ms: i64,
    pub response_status: Option<i64>,
    pub error: Option<String>,
    pub response_excerpt: Option<String>,
}

/// What happened to an attempt, to record it.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub attempt: Attempt,
    /// `Some(at)`: try again then; `None` with `delivered` false: give up.
    pub next_attempt_at: Option<Millis>,
    pub delivered: bool,
}
