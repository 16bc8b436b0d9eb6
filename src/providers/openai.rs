//! The upstream adapter: OpenAI-compatible providers (OpenAI, DeepSeek, Together, vLLM, llmgw
//! mock) spoken to as they are, Anthropic's Messages API through [`super::anthropic`]'s
//! translation, so everything past the adapter sees one dialect.

use std::time::Duration;

use bytes::Bytes;
use reqwest::header::{AUTHORIZATION, CONTENT_TYPE, HeaderValue};

use crate::config::{ProviderConfig, ProviderKind, Timeouts};

/// A body stream from an upstream, in the OpenAI dialect.
pub type BodyStream = std::pin::Pin<Box<dyn futures_util::Stream<Item = reqwest::Result<Bytes>> + Send>>;

/// One upstream provider: its pooled HTTP client, base URL and credentials.
pub struct Upstream {
    /// The provider's name from the config.
    pub name: String,
    /// Timeouts of attempts on this provider.
    pub timeouts: Timeouts,
    /// Its API's dialect.
    pub kind: ProviderKind,
    base_url: String,
    /// The endpoints' URLs, parsed once: a request clones one instead of parsing a string.
    chat_url: reqwest::Url,
    embeddings_url: reqwest::Url,
    responses_url: reqwest::Url,
    /// Whether it serves the Responses API.
    pub responses: bool,
    auth: Option<HeaderValue>,
    client: reqwest::Client,
}

impl std::fmt::Debug for Upstream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Upstream").field("name", &self.name).field("base_url", &self.base_url).finish_non_exhaustive()
    }
}

/// An upstream API path, relative to the provider's base URL.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ApiPath {
    /// `/chat/completions`.
    ChatCompletions,
    /// `/embeddings`.
    Embeddings,
    /// `/responses` (OpenAI's Responses API), passed through.
    Responses,
    /// Anthropic's Messages API spoken by the client: as it is to Anthropic providers,
    /// translated to chat completions for the others.
    Messages,
}

impl ApiPath {
    /// A short stable name (cache keys, logs).
    pub fn label(self) -> &'static str {
        match self {
            ApiPath::ChatCompletions => "chat_completions",
            ApiPath::Embeddings => "embeddings",
            ApiPath::Responses => "responses",
            ApiPath::Messages => "messages",
        }
    }

    fn suffix(self) -> &'static str {
        match self {
            ApiPath::ChatCompletions => "/chat/completions",
            ApiPath::Embeddings => "/embeddings",
            ApiPath::Responses => "/responses",
            ApiPath::Messages => "/chat/completions",
        }
    }
}

impl Upstream {
    /// Builds the adapter and its connection pool.
    pub fn new(cfg: &ProviderConfig) -> anyhow::Result<Upstream> {
        let auth = match &cfg.api_key {
            Some(key) => {
                let value = match cfg.kind {
                    ProviderKind::Openai => format!("Bearer {}", key.expose()),
                    ProviderKind::Anthropic => key.expose().to_string(),
                };
                let mut v = HeaderValue::from_str(&value).map_err(|_| {
                    anyhow::anyhow!("provider '{}': the key holds characters not allowed in a header", cfg.name)
                })?;
                v.set_sensitive(true);
                Some(v)
            }
            None => None,
        };
        let client = reqwest::Client::builder()
            .connect_timeout(cfg.timeouts.connect)
            .tcp_nodelay(true)
            .pool_idle_timeout(Duration::from_secs(60))
            .pool_max_idle_per_host(1024)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("llmgw/", env!("CARGO_PKG_VERSION")))
            .build()?;
        let url = |path: ApiPath| {
            let suffix = match (cfg.kind, path) {
                (ProviderKind::Anthropic, ApiPath::ChatCompletions) => "/messages",
                _ => path.suffix(),
            };
            reqwest::Url::parse(&format!("{}{suffix}", cfg.base_url))
                .map_err(|e| anyhow::anyhow!("provider '{}': bad base_url: {e}", cfg.name))
        };
        Ok(Upstream {
            name: cfg.name.clone(),
            timeouts: cfg.timeouts,
            kind: cfg.kind,
            base_url: cfg.base_url.clone(),
            chat_url: url(ApiPath::ChatCompletions)?,
            embeddings_url: url(ApiPath::Embeddings)?,
            responses_url: url(ApiPath::Responses)?,
            responses: cfg.responses,
            auth,
            client,
        })
    }

    /// Sends `body` (already rewritten for this provider) to `path`, with the client's
    /// `forward` headers this kind of provider takes. Resolves when the response headers arrive;
    /// the caller applies the first-byte timeout around it.
    pub fn post(
        &self,
        path: ApiPath,
        body: Bytes,
        request_id: &str,
        forward: &reqwest::header::HeaderMap,
    ) -> impl Future<Output = reqwest::Result<reqwest::Response>> + use<> {
        let mut req = self
            .client
            .post(match path {
                ApiPath::ChatCompletions => self.chat_url.clone(),
                ApiPath::Embeddings => self.embeddings_url.clone(),
                ApiPath::Responses => self.responses_url.clone(),
                // The chat URL: Anthropic's `/messages` for an Anthropic provider.
                ApiPath::Messages => self.chat_url.clone(),
            })
            .header(CONTENT_TYPE, "application/json")
            .header("x-request-id", request_id)
            .body(body);
        req = self.forward(req, forward);
        req = self.authorize(req, forward.contains_key("anthropic-version") && path == ApiPath::Messages);
        req.send()
    }

    /// The client's headers this kind of provider takes ([`super::FORWARDED`]).
    fn forward(
        &self,
        mut req: reqwest::RequestBuilder,
        forward: &reqwest::header::HeaderMap,
    ) -> reqwest::RequestBuilder {
        for (name, kinds) in super::FORWARDED {
            if kinds.contains(&self.kind) {
                for v in forward.get_all(name) {
                    req = req.header(name, v.clone());
                }
            }
        }
        req
    }

    /// The provider's credentials (and Anthropic's version header, unless the client's own goes
    /// with a request in Anthropic's API).
    fn authorize(&self, req: reqwest::RequestBuilder, client_version: bool) -> reqwest::RequestBuilder {
        match (self.kind, &self.auth) {
            (ProviderKind::Openai, Some(auth)) => req.header(AUTHORIZATION, auth.clone()),
            (ProviderKind::Anthropic, auth) => {
                let req = if client_version { req } else { req.header("anthropic-version", super::anthropic::VERSION) };
                match auth {
                    Some(key) => req.header("x-api-key", key.clone()),
                    None => req,
                }
            }
            (ProviderKind::Openai, None) => req,
        }
    }

    /// `POST /messages/count_tokens` on an Anthropic provider, `body` (model already the
    /// target's) as it is.
    pub fn count_tokens(
        &self,
        body: Bytes,
        forward: &reqwest::header::HeaderMap,
    ) -> impl Future<Output = reqwest::Result<reqwest::Response>> + use<> {
        let mut req = self
            .client
            .post(format!("{}/messages/count_tokens", self.base_url))
            .header(CONTENT_TYPE, "application/json")
            .body(body);
        req = self.forward(req, forward);
        self.authorize(req, forward.contains_key("anthropic-version")).send()
    }

    /// A client's body (model already the target's) in this provider's dialect; `Err` says why
    /// it cannot be sent here (the client's request is at fault: a 400).
    pub fn encode(&self, path: ApiPath, body: Bytes, max_tokens: u32) -> Result<Bytes, String> {
        match (self.kind, path) {
            (ProviderKind::Openai, ApiPath::Messages) => {
                let v = super::anthropic::inbound::chat_request(&body)?;
                Ok(Bytes::from(serde_json::to_vec(&v).expect("JSON serializes")))
            }
            (ProviderKind::Openai, _) | (ProviderKind::Anthropic, ApiPath::Messages) => Ok(body),
            (ProviderKind::Anthropic, ApiPath::ChatCompletions) => {
                let v = super::anthropic::request(&body, max_tokens)?;
                Ok(Bytes::from(serde_json::to_vec(&v).expect("JSON serializes")))
            }
            (ProviderKind::Anthropic, ApiPath::Embeddings) => {
                Err(format!("provider '{}' speaks Anthropic's API, which has no embeddings", self.name))
            }
            (ProviderKind::Anthropic, ApiPath::Responses) => {
                Err(format!("provider '{}' speaks Anthropic's API, which has no Responses API", self.name))
            }
        }
    }

    /// A whole answer in the client's dialect (an error body in its error shape).
    pub fn decode(&self, path: ApiPath, status: reqwest::StatusCode, body: Bytes) -> Bytes {
        let v = match (self.kind, path) {
            (ProviderKind::Openai, ApiPath::Messages) if status.is_success() => {
                super::anthropic::inbound::message(&body)
                    .unwrap_or_else(|| super::anthropic::inbound::error(502, &body))
            }
            (ProviderKind::Openai, ApiPath::Messages) => super::anthropic::inbound::error(status.as_u16(), &body),
            (ProviderKind::Openai, _) | (ProviderKind::Anthropic, ApiPath::Messages) => return body,
            (ProviderKind::Anthropic, _) => return self.decode_anthropic(status, body),
        };
        Bytes::from(serde_json::to_vec(&v).expect("JSON serializes"))
    }

    fn decode_anthropic(&self, status: reqwest::StatusCode, body: Bytes) -> Bytes {
        let v = if status.is_success() {
            let created = crate::clock::unix_ms() / 1000;
            super::anthropic::answer(&body, created).unwrap_or_else(|| super::anthropic::error(&body))
        } else {
            super::anthropic::error(&body)
        };
        Bytes::from(serde_json::to_vec(&v).expect("JSON serializes"))
    }

    /// A streamed answer's body, in the client's dialect; a translated one holds at most
    /// `max_event` bytes of an unfinished event.
    pub fn stream(&self, path: ApiPath, resp: reqwest::Response, include_usage: bool, max_event: usize) -> BodyStream {
        use super::anthropic::{Translator, inbound::ToMessages, translate};
        let body = Box::pin(resp.bytes_stream());
        match (self.kind, path) {
            (ProviderKind::Openai, ApiPath::Messages) => Box::pin(translate(body, ToMessages::default(), max_event)),
            (ProviderKind::Openai, _) | (ProviderKind::Anthropic, ApiPath::Messages) => body,
            (ProviderKind::Anthropic, _) => {
                let t = Translator::new(crate::clock::unix_ms() / 1000, include_usage);
                Box::pin(translate(body, t, max_event))
            }
        }
    }

    /// One health probe: `GET /models`, or a one-token completion of `model`. True on a 2xx
    /// answer within `timeout`.
    pub async fn probe(&self, kind: crate::config::ProbeKind, model: &str, timeout: Duration) -> bool {
        let body =
            serde_json::json!({ "model": model, "max_tokens": 1, "messages": [{ "role": "user", "content": "ping" }] });
        let req = match kind {
            crate::config::ProbeKind::Completion => self.client.post(self.chat_url.clone()).json(&body),
            _ => self.client.get(format!("{}/models", self.base_url)),
        };
        let req = self.authorize(req, false);
        let answer = async {
            let resp = req.send().await.ok()?;
            let ok = resp.status().is_success();
            resp.bytes().await.ok()?;
            Some(ok)
        };
        matches!(tokio::time::timeout(timeout, answer).await, Ok(Some(true)))
    }
}

#[derive(serde::Deserialize)]
struct UsageOnly {
    usage: Option<Usage>,
    /// The Responses API's stream events carry it in their `response`.
    response: Option<Box<UsageOnly>>,
}

#[derive(serde::Deserialize)]
struct Usage {
    #[serde(alias = "input_tokens")]
    prompt_tokens: Option<u32>,
    #[serde(alias = "output_tokens")]
    completion_tokens: Option<u32>,
}

/// (prompt, completion) tokens from a JSON answer's or stream chunk's `usage`, if it has one
/// (chat completions' names, or the Responses API's `input_tokens`/`output_tokens`).
pub fn usage_of(json: &[u8]) -> Option<(u32, u32)> {
    let o = serde_json::from_slice::<UsageOnly>(json).ok()?;
    let u = o.usage.or_else(|| o.response?.usage)?;
    Some((u.prompt_tokens.unwrap_or(0), u.completion_tokens.unwrap_or(0)))
}

/// Whether a provider's 400 says the request is longer than the model's context window, in the
/// words of common providers (OpenAI's `context_length_exceeded`, "maximum context length",
/// Anthropic's "prompt is too long", vLLM's and others' "context window"/"context length").
/// A content-policy refusal is not this: it is never failed over.
pub fn context_length_exceeded(body: &[u8]) -> bool {
    const SIGNS: [&str; 6] = [
        "context_length_exceeded",
        "maximum context length",
        "prompt is too long",
        "context window",
        "context length",
        "too many tokens",
    ];
    let text = String::from_utf8_lossy(body).to_ascii_lowercase();
    SIGNS.iter().any(|s| text.contains(s))
}

/// Usage reported by any event in a run of whole SSE events.
pub fn usage_in_events(events: &[u8]) -> Option<(u32, u32)> {
    const NEEDLE: &[u8] = b"\"usage\":{";
    // Most chunks have no usage: a fast scan before any parsing.
    memchr::memmem::find(events, NEEDLE)?;
    events
        .split(|&b| b == b'\n')
        .filter_map(|line| line.strip_prefix(b"data: ").or_else(|| line.strip_prefix(b"data:")))
        .find_map(usage_of)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn context_length_refusals_are_recognised_and_policy_ones_are_not() {
        assert!(context_length_exceeded(br#"{"error":{"message":"This model's maximum context length is 8192 tokens.","code":"context_length_exceeded"}}"#));
        assert!(context_length_exceeded(br#"{"type":"error","error":{"type":"invalid_request_error","message":"prompt is too long: 210000 tokens > 200000 maximum"}}"#));
        assert!(!context_length_exceeded(br#"{"error":{"message":"Your request was rejected by our safety system","code":"content_policy_violation"}}"#));
    }

    #[test]
    fn finds_usage() {
        assert_eq!(
            usage_of(br#"{"id":"x","usage":{"prompt_tokens":3,"completion_tokens":5,"total_tokens":8}}"#),
            Some((3, 5))
        );
        assert_eq!(usage_of(br#"{"id":"x","usage":null}"#), None);
        let events = b"data: {\"usage\":null}\n\ndata: {\"choices\":[],\"usage\":{\"prompt_tokens\":1,\"completion_tokens\":2}}\n\n";
        assert_eq!(usage_in_events(events), Some((1, 2)));
        assert_eq!(usage_in_events(b"data: [DONE]\n\n"), None);
    }
}
