//! Wire adapters for upstream providers. Each adapter turns an OpenAI-format request into an HTTP
//! call on its provider ([`client`]), whose transport failures [`client::Error::class`] reads as
//! the failure policy's classes.

pub mod anthropic;
pub mod assembled;
pub mod client;
pub mod fault;
pub mod openai;
pub mod sse;

/// Client headers passed on to the provider, with the kinds of provider that take each: those
/// that change what an API does. Hop-by-hop headers, the client's credentials and anything else
/// never are.
pub const FORWARDED: [(&str, &[crate::config::ProviderKind]); 4] = [
    ("openai-beta", &[crate::config::ProviderKind::Openai]),
    ("idempotency-key", &[crate::config::ProviderKind::Openai, crate::config::ProviderKind::Anthropic]),
    ("anthropic-beta", &[crate::config::ProviderKind::Anthropic]),
    ("anthropic-version", &[crate::config::ProviderKind::Anthropic]),
];
