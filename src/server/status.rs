//! The status page (`GET /status`, HTML from `assets/status.html`) and `GET /status.json`,
//! rendered from the latest snapshot like every other view: per route and provider,
//! "Operational", "Degraded Performance", "Partial Outage" or "Major Outage", and the recent
//! incidents from the event log.

use serde::Serialize;

use crate::snapshot::{Snapshot, Status};
use crate::state::EventKind;

/// How a route, a provider or the whole gateway is doing, as a status page says it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Level {
    /// All is well.
    Operational,
    /// Drained by an operator.
    Maintenance,
    /// Answering, but slower or with more errors than it should.
    Degraded,
    /// Part of it is down; requests still get answers.
    PartialOutage,
    /// Requests cannot be answered.
    MajorOutage,
}

impl Level {
    /// In words.
    pub fn words(self) -> &'static str {
        match self {
            Level::Operational => "Operational",
            Level::Maintenance => "Under Maintenance",
            Level::Degraded => "Degraded Performance",
            Level::PartialOutage => "Partial Outage",
            Level::MajorOutage => "Major Outage",
        }
    }

    fn of(s: Status) -> Level {
        match s {
            Status::Healthy | Status::Recovering => Level::Operational,
            Status::Drained => Level::Maintenance,
            Status::Degraded | Status::RateLimited => Level::Degraded,
            Status::Fault | Status::Ejected | Status::HalfOpen | Status::Unhealthy | Status::AuthFailed => {
                Level::PartialOutage
            }
        }
    }
}

/// The status of everything, as `/status.json` serves it.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// The worst level of any route.
    pub status: Level,
    /// `status` in words ("All Systems Operational" when all is well).
    pub description: String,
    /// Routes in config order.
    pub routes: Vec<RouteStatus>,
    /// Providers in config order.
    pub providers: Vec<ProviderStatus>,
    /// Recent health, failover, fault and alert events, newest first.
    pub incidents: Vec<Incident>,
    /// Alerts firing now.
    pub alerts: Vec<String>,
    /// Seconds the gateway has been up.
    pub uptime_s: u64,
}

/// One route.
#[derive(Debug, Clone, Serialize)]
pub struct RouteStatus {
    /// The model clients call.
    pub model: String,
    /// Its level.
    pub status: Level,
    /// Providers of its targets, in order.
    pub providers: Vec<String>,
}

/// One provider.
#[derive(Debug, Clone, Serialize)]
pub struct ProviderStatus {
    /// Its name.
    pub name: String,
    /// Its level.
    pub status: Level,
    /// Its state as the console names it.
    pub state: &'static str,
}

/// One incident.
#[derive(Debug, Clone, Serialize)]
pub struct Incident {
    /// How long ago, in seconds.
    pub ago_s: u64,
    /// What happened.
    pub text: String,
}

/// Incidents shown.
const INCIDENTS: usize = 20;

/// The report of a snapshot.
pub fn assess(s: &Snapshot) -> Report {
    let providers: Vec<ProviderStatus> = s
        .providers
        .iter()
        .map(|p| ProviderStatus { name: p.name.clone(), status: Level::of(p.status), state: p.status.label() })
        .collect();
    let routes: Vec<RouteStatus> = s
        .routes
        .iter()
        .map(|r| {
            let serving = r.targets.iter().any(|t| t.weight > 0);
            let worst = r.targets.iter().map(|t| providers[t.provider].status).max().unwrap_or(Level::Operational);
            let status = if !serving {
                Level::MajorOutage
            } else if r.panic {
                Level::PartialOutage.max(worst)
            } else {
                worst
            };
            RouteStatus {
                model: r.model.clone(),
                status,
                providers: r.targets.iter().map(|t| providers[t.provider].name.clone()).collect(),
            }
        })
        .collect();
    let status = routes.iter().map(|r| r.status).max().unwrap_or(Level::Operational);
    let description =
        if status == Level::Operational { "All Systems Operational".to_string() } else { status.words().to_string() };
    let now_ms = s.uptime_s * 1000;
    let incidents = s
        .events
        .iter()
        .rev()
        .filter(|e| matches!(e.kind, EventKind::Health | EventKind::Failover | EventKind::Fault | EventKind::Alert))
        .take(INCIDENTS)
        .map(|e| Incident { ago_s: now_ms.saturating_sub(e.at_ms) / 1000, text: e.text.clone() })
        .collect();
    let alerts = s.alerts.iter().filter(|a| a.firing).map(|a| a.text.clone()).collect();
    Report { status, description, routes, providers, incidents, alerts, uptime_s: s.uptime_s }
}

const TEMPLATE: &str = include_str!("../../assets/status.html");

/// The HTML page of a report.
pub fn html(r: &Report) -> String {
    let pill = |l: Level| format!("<span class=\"pill {}\">{}</span>", class(l), l.words());
    let routes: String = r
        .routes
        .iter()
        .map(|x| {
            format!(
                "<tr><td>{}</td><td>{}</td><td>{}</td></tr>\n",
                esc(&x.model),
                pill(x.status),
                esc(&x.providers.join(", "))
            )
        })
        .collect();
    let providers: String = r
        .providers
        .iter()
        .map(|p| {
            format!(
                "<tr><td>{}</td><td>{}</td><td class=\"muted\">{}</td></tr>\n",
                esc(&p.name),
                pill(p.status),
                p.state
            )
        })
        .collect();
    let incidents: String = if r.incidents.is_empty() {
        "<li class=\"muted\">No incidents since the gateway started.</li>".to_string()
    } else {
        r.incidents
            .iter()
            .map(|i| format!("<li><span class=\"muted\">{} ago</span> {}</li>\n", ago(i.ago_s), esc(&i.text)))
            .collect()
    };
    TEMPLATE
        .replace("{{title}}", "llmgw")
        .replace("{{overall_class}}", class(r.status))
        .replace("{{overall}}", &esc(&r.description))
        .replace("{{routes}}", &routes)
        .replace("{{providers}}", &providers)
        .replace("{{incidents}}", &incidents)
        .replace("{{alerts}}", &r.alerts.iter().map(|a| format!("<li>{}</li>\n", esc(a))).collect::<String>())
        .replace("{{uptime}}", &ago(r.uptime_s))
}

fn class(l: Level) -> &'static str {
    match l {
        Level::Operational => "operational",
        Level::Maintenance => "maintenance",
        Level::Degraded => "degraded",
        Level::PartialOutage => "partial_outage",
        Level::MajorOutage => "major_outage",
    }
}

fn ago(s: u64) -> String {
    match s {
        0..60 => format!("{s} s"),
        60..3600 => format!("{} min", s / 60),
        _ => format!("{} h {} min", s / 3600, s % 3600 / 60),
    }
}

/// Text made safe inside HTML.
fn esc(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}
