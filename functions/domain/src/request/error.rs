//! Why a request was refused, in the shape of the API's error body.

use std::fmt;

use serde::Serialize;

/// The API error codes a request body can earn.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// The body is not a JSON object (malformed, truncated, or another JSON value).
    InvalidJson,
    /// A field is missing, unknown, of the wrong type, out of range, or inconsistent with others.
    InvalidField,
}

impl ErrorCode {
    pub const fn as_str(self) -> &'static str {
        match self {
            ErrorCode::InvalidJson => "invalid_json",
            ErrorCode::InvalidField => "invalid_field",
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The first thing wrong with a request body. Serialises to the inner object of the API error
/// body (`{"code", "message", "field"?}`); [`RequestError::to_api_error`] gives the whole body.
/// Messages never contain personal data (contact details, descriptions, URLs).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, thiserror::Error)]
pub struct RequestError {
    pub code: ErrorCode,
    /// What is wrong, in plain words: `"is required"`, `"line 'L9' is not in the order"`.
    pub message: String,
    /// The field at fault in the API's notation, `order.lines[2].quantity`; `None` when the
    /// body as a whole is at fault.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
}

impl RequestError {
    pub(crate) fn invalid_json(message: impl Into<String>) -> Self {
        RequestError {
            code: ErrorCode::InvalidJson,
            message: message.into(),
            field: None,
        }
    }

    pub(crate) fn invalid_field(field: impl Into<String>, message: impl Into<String>) -> Self {
        RequestError {
            code: ErrorCode::InvalidField,
            message: message.into(),
            field: Some(field.into()),
        }
    }

    /// The API error body: `{"error": {"code": "...", "message": "...", "field": "..."}}`, with
    /// `field` left out when the body as a whole is at fault.
    pub fn to_api_error(&self) -> serde_json::Value {
        let mut error = serde_json::Map::new();
        error.insert("code".into(), self.code.as_str().into());
        error.insert("message".into(), self.message.clone().into());
        if let Some(field) = &self.field {
            error.insert("field".into(), field.clone().into());
        }
        serde_json::json!({ "error": error })
    }
}

impl fmt::Display for RequestError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.field {
            Some(field) => write!(f, "{} at {field}: {}", self.code, self.message),
            None => write!(f, "{}: {}", self.code, self.message),
        }
    }
}
