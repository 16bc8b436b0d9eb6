//! Implementations of `llmgw` subcommands that are more than a few lines.

pub mod history;
