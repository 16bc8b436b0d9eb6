//! Wire adapters for upstream providers. Each adapter turns an OpenAI-format request into an HTTP
//! call on its provider ([`client`]), whose transport failures [`client::Error::class`] reads as
//! the failure policy's classes.

/// A searcher for a constant byte string, built once where it is used: building one costs more
/// than searching a stream's chunk with it, and the searches run on every chunk of every stream.
/// `finder!(rev NEEDLE)` searches from the end.
macro_rules! finder {
    (rev $needle:expr) => {{
        static FINDER: std::sync::LazyLock<memchr::memmem::FinderRev<'static>> =
            std::sync::LazyLock::new(|| memchr::memmem::FinderRev::new($needle));
        &*FINDER
    }};
    ($needle:expr) => {{
        static FINDER: std::sync::LazyLock<memchr::memmem::Finder<'static>> =
            std::sync::LazyLock::new(|| memchr::memmem::Finder::new($needle));
        &*FINDER
    }};
}

pub mod answer;
pub mod anthropic;
pub mod assembled;
pub mod client;
mod conns;
pub mod fault;
pub mod openai;
pub mod sse;

use axum::http::HeaderName;

use crate::config::ProviderKind;

/// Client headers passed on to the provider, with the kinds of provider that take each: those
/// that change what an API does. Hop-by-hop headers, the client's credentials and anything else
/// never are. (Names as constants: a name given as a string is parsed on every use.)
pub const FORWARDED: [(HeaderName, &[ProviderKind]); 4] = [
    (HeaderName::from_static("openai-beta"), &[ProviderKind::Openai]),
    (HeaderName::from_static("idempotency-key"), &[ProviderKind::Openai, ProviderKind::Anthropic]),
    (HeaderName::from_static("anthropic-beta"), &[ProviderKind::Anthropic]),
    (anthropic::VERSION_HEADER, &[ProviderKind::Anthropic]),
];
