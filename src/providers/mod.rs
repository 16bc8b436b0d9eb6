//! Wire adapters for upstream providers. Each adapter turns an OpenAI-format request into an HTTP
//! call on its provider and reports transport failures as [`OutcomeClass`]es.

pub mod anthropic;
pub mod assembled;
pub mod fault;
pub mod openai;
pub mod sse;

use crate::outcome::OutcomeClass;

/// Classifies a transport error from reqwest.
pub fn classify(e: &reqwest::Error) -> OutcomeClass {
    if e.is_timeout() {
        OutcomeClass::Timeout
    } else if e.is_connect() {
        OutcomeClass::Connect
    } else if e.is_body() || e.is_decode() {
        OutcomeClass::StreamBroken
    } else {
        // A connection reset before any response byte behaves like a failed connect.
        OutcomeClass::Connect
    }
}
