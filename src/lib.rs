//! llmgw: a local gateway in front of LLM providers that routes, retries and fails over, with a
//! live ops console and an embedded store. See DESIGN.md for the map of modules.

pub mod alerts;
pub mod cli;
pub mod clock;
pub mod config;
pub mod control;
pub mod drill;
pub mod health;
pub mod logging;
pub mod metrics;
pub mod monitor;
pub mod outcome;
pub mod pipeline;
pub mod providers;
pub mod router;
pub mod server;
pub mod sim;
pub mod snapshot;
pub mod state;
pub mod store;
pub mod tui;

/// Installs rustls' `ring` provider as the process default. Call once before building any HTTP
/// client; calling it again is harmless.
pub fn install_crypto() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}
