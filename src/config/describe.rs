//! `llmgw check`'s summary of a resolved config.

use std::time::Duration;

use super::Config;

impl Config {
    /// A human-readable summary of the resolved routes, for `llmgw check`.
    pub fn describe(&self) -> String {
        use std::fmt::Write;
        let secs = |d: Duration| humantime::format_duration(d).to_string();
        let mut out = String::new();
        let _ = writeln!(out, "config ok: {}", self.path.display());
        let _ = writeln!(
            out,
            "listen {}  data_dir {}  max body {} bytes  workers {}",
            self.server.listen,
            self.server.data_dir.display(),
            self.server.max_body_bytes,
            self.server.workers.map_or("one per core".to_string(), |n| n.to_string())
        );
        let _ = writeln!(out, "\nproviders:");
        for p in &self.providers {
            let key = match &p.api_key_env {
                Some(var) => format!("key from ${var} (set)"),
                None => "no key".to_string(),
            };
            let t = p.timeouts;
            let _ = writeln!(
                out,
                "  {:<12} {:?}  {}  {key}\n  {:<12} timeouts: connect {}, first byte {}, attempt {}, stream idle {}",
                p.name,
                p.kind,
                p.base_url,
                "",
                secs(t.connect),
                secs(t.first_byte),
                secs(t.attempt),
                secs(t.stream_idle)
            );
        }
        let _ = writeln!(out, "\nroutes:");
        for r in &self.routes {
            let total: u64 = r.targets.iter().map(|t| t.weight as u64).sum();
            let _ = writeln!(
                out,
                "  {}  ({:?}, up to {} attempts, deadline {})",
                r.model,
                r.strategy,
                r.max_attempts,
                secs(r.deadline)
            );
            let cache = if r.cache.enabled {
                format!("caches answers for {} (x-llmgw-cache: off skips it)", secs(r.cache.ttl))
            } else {
                "no caching (a request may opt in with x-llmgw-cache: on)".to_string()
            };
            let _ = writeln!(out, "    cache: {cache}");
            if r.resume {
                let _ = writeln!(out, "    resume: a broken stream is finished on a target marked 'can continue'");
            }
            for t in &r.targets {
                let share = 100.0 * t.weight as f64 / total as f64;
                let _ = writeln!(
                    out,
                    "    -> {:<12} model {:<24} weight {:>4}  ({share:.1}%){}",
                    self.providers[t.provider].name,
                    t.model,
                    t.weight,
                    if r.resume && t.prefill.can() { "  can continue" } else { "" }
                );
            }
        }
        out
    }
}
