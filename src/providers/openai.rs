//! The adapter for OpenAI-compatible providers (OpenAI, DeepSeek, Together, vLLM, llmgw mock).

use std::time::Duration;

use bytes::Bytes;
use reqwest::header::{AUTHORIZATION, CONTENT_TYPE, HeaderValue};

use crate::config::{ProviderConfig, Timeouts};

/// One upstream provider: its pooled HTTP client, base URL and credentials.
pub struct Upstream {
    /// The provider's name from the config.
    pub name: String,
    /// Timeouts of attempts on this provider.
    pub timeouts: Timeouts,
    base_url: String,
    auth: Option<HeaderValue>,
    client: reqwest::Client,
}

impl std::fmt::Debug for Upstream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Upstream")
            .field("name", &self.name)
            .field("base_url", &self.base_url)
            .finish_non_exhaustive()
    }
}

/// An upstream API path, relative to the provider's base URL.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ApiPath {
    /// `/chat/completions`.
    ChatCompletions,
    /// `/embeddings`.
    Embeddings,
}

impl ApiPath {
    fn suffix(self) -> &'static str {
        match self {
            ApiPath::ChatCompletions => "/chat/completions",
            ApiPath::Embeddings => "/embeddings",
        }
    }
}

impl Upstream {
    /// Builds the adapter and its connection pool.
    pub fn new(cfg: &ProviderConfig) -> anyhow::Result<Upstream> {
        let auth = match &cfg.api_key {
            Some(key) => {
                let mut v =
                    HeaderValue::from_str(&format!("Bearer {}", key.expose())).map_err(|_| {
                        anyhow::anyhow!(
                            "provider '{}': the key holds characters not allowed in a header",
                            cfg.name
                        )
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
        Ok(Upstream {
            name: cfg.name.clone(),
            timeouts: cfg.timeouts,
            base_url: cfg.base_url.clone(),
            auth,
            client,
        })
    }

    /// Sends `body` (already rewritten for this provider) to `path`. Resolves when the response
    /// headers arrive; the caller applies the first-byte timeout around it.
    pub fn post(
        &self,
        path: ApiPath,
        body: Bytes,
        request_id: &str,
    ) -> impl Future<Output = reqwest::Result<reqwest::Response>> + use<> {
        let mut req = self
            .client
            .post(format!("{}{}", self.base_url, path.suffix()))
            .header(CONTENT_TYPE, "application/json")
            .header("x-request-id", request_id)
            .body(body);
        if let Some(auth) = &self.auth {
            req = req.header(AUTHORIZATION, auth.clone());
        }
        req.send()
    }
}
