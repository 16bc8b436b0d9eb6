//! Wire adapters for upstream providers. Each adapter turns an OpenAI-format request into an HTTP
//! call on its provider and reports transport failures as [`OutcomeClass`]es.

pub mod anthropic;
pub mod assembled;
pub mod fault;
pub mod openai;
pub mod sse;

use crate::outcome::OutcomeClass;

/// Client headers passed on to the provider, with the kinds of provider that take each: those
/// that change what an API does. Hop-by-hop headers, the client's credentials and anything else
/// never are.
pub const FORWARDED: [(&str, &[crate::config::ProviderKind]); 4] = [
    ("openai-beta", &[crate::config::ProviderKind::Openai]),
    ("idempotency-key", &[crate::config::ProviderKind::Openai, crate::config::ProviderKind::Anthropic]),
    ("anthropic-beta", &[crate::config::ProviderKind::Anthropic]),
    ("anthropic-version", &[crate::config::ProviderKind::Anthropic]),
];

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
