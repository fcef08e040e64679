//! `homi config check`: the effective configuration and whether the database
//! and the model provider answer.

use clap::Subcommand;
use homi_core::Config;
use serde_json::json;

use crate::output::Out;

#[derive(Debug, Subcommand)]
pub(crate) enum ConfigCommand {
    /// Show the configuration (secrets redacted) and check that the database
    /// and the model provider answer; exits non-zero if one does not.
    Check,
}

/// Shows the configuration (secrets redacted) and the checks; an error if one fails.
pub(crate) async fn check(config: &Config, out: Out) -> homi_core::Result<()> {
    let effective = homi_core::doctor::effective(config);
    let checks = homi_core::doctor::check(config).await;
    out.show(&json!({"config": effective, "checks": checks}), |_| {
        println!(
            "{}",
            serde_json::to_string_pretty(&effective).unwrap_or_default()
        );
        for c in &checks {
            println!(
                "{:<9} {}  {}",
                c.name,
                if c.ok { "ok  " } else { "FAIL" },
                c.detail
            );
        }
    });
    homi_core::doctor::verdict(&checks)
}
