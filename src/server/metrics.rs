//! `GET /metrics`: the gateway in the Prometheus text format (version 0.0.4). Counters and
//! histograms are kept since start by the live state; gauges (provider state, weights, in
//! flight) come from the latest snapshot, the same one every console shows. Labels stay few:
//! route, provider, outcome, state.

use std::fmt::Write;

use crate::metrics::totals::{BUCKETS_S, Histo, Totals};
use crate::outcome::OutcomeClass;
use crate::pipeline::Gateway;
use crate::snapshot::{Snapshot, Status};

/// The exposition.
pub fn render(gw: &Gateway, snap: &Snapshot) -> String {
    let mut out = String::with_capacity(32 * 1024);
    let cfg = &gw.config;
    let live = &gw.live;
    let routes: Vec<(usize, String)> = cfg.routes.iter().enumerate().map(|(r, x)| (r, esc(&x.model))).collect();
    // (route index, target index, route label, provider label)
    let targets: Vec<(usize, usize, &str, &str)> = cfg
        .routes
        .iter()
        .enumerate()
        .flat_map(|(r, route)| route.targets.iter().enumerate().map(move |(t, tc)| (r, t, tc.provider)))
        .map(|(r, t, p)| (r, t, routes[r].1.as_str(), cfg.providers[p].name.as_str()))
        .collect();

    head(&mut out, "llmgw_build_info", "gauge", "The running version.");
    let _ = writeln!(out, "llmgw_build_info{{version=\"{}\"}} 1", env!("CARGO_PKG_VERSION"));
    head(&mut out, "llmgw_uptime_seconds", "gauge", "Seconds since the gateway started.");
    let _ = writeln!(out, "llmgw_uptime_seconds {}", snap.uptime_s);

    head(&mut out, "llmgw_requests_total", "counter", "Client requests by route and how they ended.");
    for (r, route) in &routes {
        classes(&mut out, "llmgw_requests_total", &format!("route=\"{route}\""), live.route_totals(*r));
    }
    head(&mut out, "llmgw_retries_total", "counter", "Attempts after a request's first (failover, retries, hedges).");
    for (r, route) in &routes {
        let n = live.route_totals(*r).retries.load(std::sync::atomic::Ordering::Relaxed);
        let _ = writeln!(out, "llmgw_retries_total{{route=\"{route}\"}} {n}");
    }
    head(&mut out, "llmgw_retry_budget_exhausted_total", "counter", "Requests that found the retry budget spent.");
    for (r, route) in &routes {
        let n = live.route_totals(*r).budget_exhausted.load(std::sync::atomic::Ordering::Relaxed);
        let _ = writeln!(out, "llmgw_retry_budget_exhausted_total{{route=\"{route}\"}} {n}");
    }
    let route_histos = |out: &mut String, name: &str, help: &str, pick: fn(&Totals) -> &Histo| {
        head(out, name, "histogram", help);
        for (r, route) in &routes {
            histogram(out, name, &format!("route=\"{route}\""), pick(live.route_totals(*r)));
        }
    };
    route_histos(&mut out, "llmgw_request_duration_seconds", "Client requests answered, whole time.", |t| &t.latency);
    route_histos(&mut out, "llmgw_request_ttft_seconds", "Streamed requests: time to first token.", |t| &t.ttft);

    if !cfg.clients.is_empty() {
        head(
            &mut out,
            "llmgw_client_requests_total",
            "counter",
            "Requests of each configured client by how they ended.",
        );
        for (c, client) in cfg.clients.iter().enumerate() {
            let labels = format!("client=\"{}\"", esc(&client.name));
            classes(&mut out, "llmgw_client_requests_total", &labels, live.client_totals(c));
        }
        head(&mut out, "llmgw_client_tokens_total", "counter", "Tokens of each configured client's answers.");
        for (c, client) in cfg.clients.iter().enumerate() {
            let (i, o) = live.client_totals(c).tokens();
            let name = esc(&client.name);
            let _ = writeln!(out, "llmgw_client_tokens_total{{client=\"{name}\",kind=\"prompt\"}} {i}");
            let _ = writeln!(out, "llmgw_client_tokens_total{{client=\"{name}\",kind=\"completion\"}} {o}");
        }
    }
    head(&mut out, "llmgw_attempts_total", "counter", "Attempts on each target by how they ended.");
    for &(r, t, route, provider) in &targets {
        let labels = format!("route=\"{route}\",provider=\"{provider}\"");
        classes(&mut out, "llmgw_attempts_total", &labels, live.target_totals(r, t));
    }
    let target_histos = |out: &mut String, name: &str, help: &str, pick: fn(&Totals) -> &Histo| {
        head(out, name, "histogram", help);
        for &(r, t, route, provider) in &targets {
            histogram(out, name, &format!("route=\"{route}\",provider=\"{provider}\""), pick(live.target_totals(r, t)));
        }
    };
    target_histos(&mut out, "llmgw_attempt_duration_seconds", "Attempts that answered the client.", |t| &t.latency);
    target_histos(&mut out, "llmgw_attempt_ttft_seconds", "Streamed attempts: time to first token.", |t| &t.ttft);
    head(&mut out, "llmgw_tokens_total", "counter", "Tokens reported by providers' usage.");
    for &(r, t, route, provider) in &targets {
        let (i, o) = live.target_totals(r, t).tokens();
        let _ = writeln!(out, "llmgw_tokens_total{{route=\"{route}\",provider=\"{provider}\",kind=\"prompt\"}} {i}");
        let _ =
            writeln!(out, "llmgw_tokens_total{{route=\"{route}\",provider=\"{provider}\",kind=\"completion\"}} {o}");
    }
    head(&mut out, "llmgw_hedges_total", "counter", "Hedges started on a target, and how many answered first.");
    for &(r, t, route, provider) in &targets {
        let (started, won) = live.hedges(r, t);
        let _ = writeln!(
            out,
            "llmgw_hedges_total{{route=\"{route}\",provider=\"{provider}\",result=\"started\"}} {started}"
        );
        let _ = writeln!(out, "llmgw_hedges_total{{route=\"{route}\",provider=\"{provider}\",result=\"won\"}} {won}");
    }
    head(&mut out, "llmgw_target_weight", "gauge", "Effective weight of each target now (0: takes no traffic).");
    for (r, route) in snap.routes.iter().enumerate() {
        for t in &route.targets {
            let provider = &snap.providers[t.provider].name;
            let _ =
                writeln!(out, "llmgw_target_weight{{route=\"{}\",provider=\"{provider}\"}} {}", routes[r].1, t.weight);
        }
    }

    head(&mut out, "llmgw_provider_state", "gauge", "1 for the state each provider is in.");
    for p in &snap.providers {
        for s in Status::ALL {
            let v = u8::from(p.status == s);
            let _ = writeln!(out, "llmgw_provider_state{{provider=\"{}\",state=\"{}\"}} {v}", p.name, s.label());
        }
    }
    head(&mut out, "llmgw_in_flight", "gauge", "Attempts under way on each provider.");
    for p in &snap.providers {
        let _ = writeln!(out, "llmgw_in_flight{{provider=\"{}\"}} {}", p.name, p.in_flight);
    }
    head(&mut out, "llmgw_ejections_total", "counter", "Times outlier detection took each provider out of rotation.");
    for (p, pc) in cfg.providers.iter().enumerate() {
        let _ = writeln!(out, "llmgw_ejections_total{{provider=\"{}\"}} {}", pc.name, live.ejections(p));
    }

    head(&mut out, "llmgw_alert", "gauge", "Alerts pending or firing (1), by rule, subject and state.");
    for a in &snap.alerts {
        let state = if a.firing { "firing" } else { "pending" };
        let _ =
            writeln!(out, "llmgw_alert{{alert=\"{}\",subject=\"{}\",state=\"{state}\"}} 1", a.rule, esc(&a.subject));
    }
    head(&mut out, "llmgw_requests_rejected_total", "counter", "Client requests refused before routing.");
    let _ = writeln!(out, "llmgw_requests_rejected_total {}", live.rejected());
    head(&mut out, "llmgw_accept_errors_total", "counter", "Connections the listener failed to accept.");
    let _ = writeln!(out, "llmgw_accept_errors_total {}", live.accept_errors());
    if let Some(st) = &snap.store {
        let c = &st.cache;
        let lines = [
            ("llmgw_cache_hits_total", "counter", "Answers served from the cache.", c.hits),
            ("llmgw_cache_misses_total", "counter", "Cache lookups that found nothing fresh.", c.misses),
            ("llmgw_cache_stale_total", "counter", "Expired answers served because every target failed.", c.stale),
            ("llmgw_cache_entries", "gauge", "Answers in the cache.", c.entries),
            ("llmgw_cache_bytes", "gauge", "Bytes of the answers in the cache.", c.bytes),
            ("llmgw_history_records", "gauge", "Requests kept in the history.", st.history_records),
            (
                "llmgw_history_dropped_total",
                "counter",
                "History records dropped (the writer's queue was full).",
                st.dropped,
            ),
            ("llmgw_store_errors_total", "counter", "Store operations that failed.", st.errors),
        ];
        for (name, kind, help, v) in lines {
            head(&mut out, name, kind, help);
            let _ = writeln!(out, "{name} {v}");
        }
    }
    out
}

fn head(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

fn classes(out: &mut String, name: &str, labels: &str, t: &Totals) {
    for c in OutcomeClass::ALL {
        let _ = writeln!(out, "{name}{{{labels},outcome=\"{}\"}} {}", c.label(), t.of(c));
    }
}

fn histogram(out: &mut String, name: &str, labels: &str, h: &Histo) {
    let (buckets, sum) = h.read();
    for (b, le) in buckets.iter().zip(BUCKETS_S.iter().map(|b| b.to_string()).chain(["+Inf".to_string()])) {
        let _ = writeln!(out, "{name}_bucket{{{labels},le=\"{le}\"}} {b}");
    }
    let _ = writeln!(out, "{name}_sum{{{labels}}} {sum}");
    let _ = writeln!(out, "{name}_count{{{labels}}} {}", buckets[BUCKETS_S.len()]);
}

/// A label value, escaped as the text format asks.
fn esc(v: &str) -> String {
    v.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}
