//! `count_tokens` of Anthropic's API: asked of the route's first Anthropic target, as it is (the
//! model rewritten), its answer read within `proxy.max_response_bytes` and stripped of the
//! provider's key like any error. A route without an Anthropic target gets `None`: no count is
//! ever guessed.

use axum::http::StatusCode;
use bytes::Bytes;

use super::wire::{read_bounded, rewrite_model, sanitize_error};
use super::{Gateway, ProxyRequest};
use crate::config::ProviderKind;

impl Gateway {
    /// The provider's answer (status, JSON body), or why there is none: `Err` with the status
    /// and message for the client.
    pub async fn count_tokens(&self, req: &ProxyRequest) -> Result<(StatusCode, Bytes), (StatusCode, String)> {
        let route = &self.config.routes[req.route];
        let anthropic =
            |t: &&crate::config::TargetConfig| self.config.providers[t.provider].kind == ProviderKind::Anthropic;
        let Some(t) = route.targets.iter().find(anthropic) else {
            let msg = format!("count_tokens needs an Anthropic target, and route '{}' has none", route.model);
            return Err((StatusCode::NOT_FOUND, msg));
        };
        let up = &self.upstreams[t.provider];
        let body = rewrite_model(&req.body, req.model_span.clone(), &t.model);
        let no_answer = || (StatusCode::BAD_GATEWAY, format!("provider '{}' did not answer", up.name));
        let Ok(Ok(mut resp)) = tokio::time::timeout(up.timeouts.first_byte, up.count_tokens(body, &req.forward)).await
        else {
            return Err(no_answer());
        };
        let status = resp.status();
        match tokio::time::timeout(up.timeouts.attempt, read_bounded(&mut resp, self.config.proxy.max_response_bytes))
            .await
        {
            Ok(Ok(b)) if status.is_success() => Ok((status, b)),
            Ok(Ok(b)) => {
                let key = self.config.providers[t.provider].api_key.as_ref().map(|k| k.expose());
                Ok((status, sanitize_error(b, key)))
            }
            _ => Err(no_answer()),
        }
    }
}
