//! The upstream adapter: OpenAI-compatible providers (OpenAI, DeepSeek, Together, vLLM, llmgw
//! mock) spoken to as they are, Anthropic's Messages API through [`super::anthropic`]'s
//! translation, so everything past the adapter sees one dialect.

use std::time::Duration;

use axum::http::header::{AUTHORIZATION, CONTENT_TYPE, HOST, USER_AGENT};
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, Request, StatusCode, Uri};
use bytes::Bytes;

use super::client::{self, Client};
use crate::config::{ProviderConfig, ProviderKind, Timeouts};

/// A body stream from an upstream, in the OpenAI dialect.
pub type BodyStream = std::pin::Pin<Box<dyn futures_util::Stream<Item = Result<Bytes, client::Error>> + Send>>;

/// What a call on an upstream resolves to: its answer's head, or why there is none.
pub type Call = Result<client::Response, client::Error>;

/// The request id, the client's or the gateway's, as sent to providers and answered to clients.
pub const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Most of a health probe's answer read.
const PROBE_BODY_MAX: usize = 4 << 20;

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
    chat_url: Uri,
    embeddings_url: Uri,
    responses_url: Uri,
    models_url: Uri,
    count_tokens_url: Uri,
    /// Whether it serves the Responses API.
    pub responses: bool,
    auth: Option<HeaderValue>,
    /// The `host` header, made once: hyper's client formats it from the URL on every request
    /// that comes without one.
    host: Option<HeaderValue>,
    client: Client,
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
        let url = |suffix: &str| {
            format!("{}{suffix}", cfg.base_url)
                .parse::<Uri>()
                .map_err(|e| anyhow::anyhow!("provider '{}': bad base_url: {e}", cfg.name))
        };
        let chat = match cfg.kind {
            ProviderKind::Anthropic => "/messages",
            ProviderKind::Openai => ApiPath::ChatCompletions.suffix(),
        };
        let pool = client::Pool {
            connect_timeout: cfg.timeouts.connect,
            idle_timeout: Duration::from_secs(60),
            max_idle: 1024,
        };
        let chat_url = url(chat)?;
        let host = host_header(&chat_url);
        let client = Client::new(&chat_url, pool)?;
        if client.proxied() {
            tracing::info!(provider = %cfg.name, "reached through the environment's proxy");
        }
        Ok(Upstream {
            name: cfg.name.clone(),
            timeouts: cfg.timeouts,
            kind: cfg.kind,
            base_url: cfg.base_url.clone(),
            chat_url,
            embeddings_url: url(ApiPath::Embeddings.suffix())?,
            responses_url: url(ApiPath::Responses.suffix())?,
            models_url: url("/models")?,
            count_tokens_url: url("/messages/count_tokens")?,
            responses: cfg.responses,
            auth,
            host,
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
        request_id: &HeaderValue,
        forward: &HeaderMap,
    ) -> impl Future<Output = Call> + use<> {
        let url = match path {
            ApiPath::ChatCompletions => &self.chat_url,
            ApiPath::Embeddings => &self.embeddings_url,
            ApiPath::Responses => &self.responses_url,
            // The chat URL: Anthropic's `/messages` for an Anthropic provider.
            ApiPath::Messages => &self.chat_url,
        };
        let mut req = self.request(Method::POST, url, body);
        let headers = req.headers_mut();
        headers.insert(X_REQUEST_ID, request_id.clone());
        self.forward(headers, forward);
        self.authorize(headers, path == ApiPath::Messages && forward.contains_key(super::anthropic::VERSION_HEADER));
        self.client.send(req)
    }

    /// A request to `url` with the headers every call has: a JSON body (when it has one) and
    /// llmgw's user agent.
    fn request(&self, method: Method, url: &Uri, body: Bytes) -> Request<Bytes> {
        let json = !body.is_empty();
        let mut req = Request::new(body);
        *req.method_mut() = method;
        *req.uri_mut() = url.clone();
        let headers = req.headers_mut();
        if let Some(host) = &self.host {
            headers.insert(HOST, host.clone());
        }
        headers.insert(USER_AGENT, HeaderValue::from_static(concat!("llmgw/", env!("CARGO_PKG_VERSION"))));
        if json {
            headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        }
        req
    }

    /// The client's headers this kind of provider takes ([`super::FORWARDED`]).
    fn forward(&self, headers: &mut HeaderMap, forward: &HeaderMap) {
        if forward.is_empty() {
            return;
        }
        for (name, kinds) in &super::FORWARDED {
            if kinds.contains(&self.kind) {
                for v in forward.get_all(name) {
                    headers.append(name, v.clone());
                }
            }
        }
    }

    /// The provider's credentials (and Anthropic's version header, unless the client's own goes
    /// with a request in Anthropic's API).
    fn authorize(&self, headers: &mut HeaderMap, client_version: bool) {
        match (self.kind, &self.auth) {
            (ProviderKind::Openai, Some(auth)) => {
                headers.insert(AUTHORIZATION, auth.clone());
            }
            (ProviderKind::Anthropic, auth) => {
                if !client_version {
                    headers
                        .insert(super::anthropic::VERSION_HEADER, HeaderValue::from_static(super::anthropic::VERSION));
                }
                if let Some(key) = auth {
                    headers.insert("x-api-key", key.clone());
                }
            }
            (ProviderKind::Openai, None) => {}
        }
    }

    /// `POST /messages/count_tokens` on an Anthropic provider, `body` (model already the
    /// target's) as it is.
    pub fn count_tokens(&self, body: Bytes, forward: &HeaderMap) -> impl Future<Output = Call> + use<> {
        let mut req = self.request(Method::POST, &self.count_tokens_url, body);
        self.forward(req.headers_mut(), forward);
        self.authorize(req.headers_mut(), forward.contains_key(super::anthropic::VERSION_HEADER));
        self.client.send(req)
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
    pub fn decode(&self, path: ApiPath, status: StatusCode, body: Bytes) -> Bytes {
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

    fn decode_anthropic(&self, status: StatusCode, body: Bytes) -> Bytes {
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
    pub fn stream(&self, path: ApiPath, resp: client::Response, include_usage: bool, max_event: usize) -> BodyStream {
        use super::anthropic::{Translator, inbound::ToMessages, translate};
        let body = Box::pin(http_body_util::BodyExt::into_data_stream(resp.into_body()));
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
        let mut req = match kind {
            crate::config::ProbeKind::Completion => {
                let body = serde_json::json!({ "model": model, "max_tokens": 1, "messages": [{ "role": "user", "content": "ping" }] });
                self.request(Method::POST, &self.chat_url, Bytes::from(body.to_string()))
            }
            _ => self.request(Method::GET, &self.models_url, Bytes::new()),
        };
        self.authorize(req.headers_mut(), false);
        let answer = async {
            let resp = self.client.send(req).await.ok()?;
            let ok = resp.status().is_success();
            // Read to the end, so the connection goes back to the pool; a body past the bound
            // (a provider's model list is tens of KiB) is not held, its connection is closed.
            let body = http_body_util::Limited::new(resp.into_body(), PROBE_BODY_MAX);
            match http_body_util::BodyExt::collect(body).await {
                Ok(_) => Some(ok),
                Err(e) if e.is::<http_body_util::LengthLimitError>() => Some(ok),
                Err(_) => None,
            }
        };
        matches!(tokio::time::timeout(timeout, answer).await, Ok(Some(true)))
    }
}

/// The `host` header for calls to `url`, as HTTP/1.1 wants it: the host, and the port unless it
/// is the scheme's default.
fn host_header(url: &Uri) -> Option<HeaderValue> {
    let host = url.host()?;
    let default = match url.scheme_str() {
        Some("https") => 443,
        _ => 80,
    };
    match url.port_u16() {
        Some(port) if port != default => HeaderValue::from_str(&format!("{host}:{port}")).ok(),
        _ => HeaderValue::from_str(host).ok(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_host_header_names_the_port_only_when_it_is_not_the_default() {
        let host = |url: &str| host_header(&url.parse().unwrap()).unwrap();
        assert_eq!(host("https://api.openai.com/v1/chat/completions"), "api.openai.com");
        assert_eq!(host("https://api.example.com:443/v1"), "api.example.com");
        assert_eq!(host("http://127.0.0.1:8000/v1"), "127.0.0.1:8000");
        assert_eq!(host("http://vllm.internal/v1"), "vllm.internal");
        assert_eq!(host("https://[::1]:8443/v1"), "[::1]:8443");
    }
}
