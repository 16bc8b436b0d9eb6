//! `[[clients]]`: the keys clients must present, each with a name that history, metrics and the
//! console show instead of an anonymous fingerprint.

use serde::Deserialize;
use sha2::{Digest, Sha256};
use toml::Spanned;

use super::{ConfigError, Ctx};

/// One client allowed to call the gateway.
#[derive(Clone, PartialEq, Eq)]
pub struct ClientConfig {
    /// Its name, as shown in history and on the console.
    pub name: String,
    /// SHA-256 of its key (the key itself is never kept).
    pub key_sha256: [u8; 32],
}

impl std::fmt::Debug for ClientConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientConfig").field("name", &self.name).finish_non_exhaustive()
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawClient {
    name: Spanned<String>,
    key_env: Option<Spanned<String>>,
    key_sha256: Option<Spanned<String>>,
}

/// SHA-256 of a key as it arrives in a request.
pub fn key_digest(key: &[u8]) -> [u8; 32] {
    Sha256::digest(key).into()
}

impl Ctx<'_> {
    /// `[[clients]]`: each with a name and either `key_env` (the key in an environment variable)
    /// or `key_sha256` (the hex SHA-256 of the key, e.g. from `printf %s KEY | sha256sum`).
    pub(super) fn clients(
        &self,
        raw: Vec<RawClient>,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Vec<ClientConfig>, ConfigError> {
        let mut out: Vec<ClientConfig> = Vec::with_capacity(raw.len());
        for (i, c) in raw.into_iter().enumerate() {
            let key = |k: &str| format!("clients[{i}].{k}");
            let name = c.name.get_ref().trim().to_string();
            if name.is_empty() || out.iter().any(|o| o.name == name) {
                return Err(self.err(Some(c.name.span()), key("name"), format!("'{name}' is empty or used twice")));
            }
            let digest = match (&c.key_env, &c.key_sha256) {
                (Some(var), None) => match env(var.get_ref()) {
                    Some(v) if v.trim().len() >= 16 => key_digest(v.trim().as_bytes()),
                    // A tool that serves nobody does not need the key: no request can match this.
                    _ if !self.keys_required => key_digest(format!("unset {i} {}", fastrand::u64(..)).as_bytes()),
                    _ => {
                        return Err(self.err(
                            Some(var.span()),
                            key("key_env"),
                            format!("environment variable {} must hold a key of at least 16 characters", var.get_ref()),
                        ));
                    }
                },
                (None, Some(hex)) => parse_hex(hex.get_ref()).ok_or_else(|| {
                    self.err(Some(hex.span()), key("key_sha256"), "must be 64 hex digits (a SHA-256)")
                })?,
                _ => {
                    return Err(self.err(
                        Some(c.name.span()),
                        key("key_env"),
                        "give exactly one of key_env and key_sha256",
                    ));
                }
            };
            if out.iter().any(|o| o.key_sha256 == digest) {
                return Err(self.err(Some(c.name.span()), key("name"), "two clients share one key"));
            }
            out.push(ClientConfig { name, key_sha256: digest });
        }
        Ok(out)
    }
}

fn parse_hex(s: &str) -> Option<[u8; 32]> {
    let s = s.trim();
    if s.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, b) in out.iter_mut().enumerate() {
        *b = u8::from_str_radix(s.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_digests_parse() {
        let d = key_digest(b"client-key-0123456789");
        let hex: String = d.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(parse_hex(&hex), Some(d));
        assert_eq!(parse_hex("abc"), None);
        assert_eq!(parse_hex(&"zz".repeat(32)), None);
    }
}
