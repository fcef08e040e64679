//! `homi key …`: service API keys (the secret of a new one is shown once).

use clap::Subcommand;
use homi_core::auth::{Auth, KeyScope, NewApiKey};
use homi_core::{Config, Error};
use serde_json::json;

use crate::output::{Out, print_table};

#[derive(Debug, Subcommand)]
pub(crate) enum KeyCommand {
    /// Create a key; its secret is printed this once.
    Create {
        /// A name for people.
        #[arg(long)]
        name: String,
        /// The namespace the key's users live in (a-z, 0-9, '-', '_').
        #[arg(long, default_value = "default")]
        namespace: String,
        /// read, write (implies read) or admin; repeat or separate with commas.
        #[arg(long = "scope", required = true, value_delimiter = ',')]
        scopes: Vec<String>,
    },
    /// List the keys (never their secrets).
    List,
    /// Revoke a key at once.
    Revoke {
        /// The key's id (from `homi key list`).
        id: String,
    },
}

pub(crate) async fn run(config: &Config, command: KeyCommand, out: Out) -> homi_core::Result<()> {
    let auth = Auth::open(config).await?;
    match command {
        KeyCommand::Create {
            name,
            namespace,
            scopes,
        } => {
            let scopes = scopes
                .iter()
                .map(|s| KeyScope::parse(s))
                .collect::<homi_core::Result<Vec<_>>>()?;
            let created = auth
                .create_api_key(NewApiKey::new(name, namespace, scopes))
                .await?;
            out.show(&json!(created), |_| {
                println!("{}", created.secret());
                eprintln!(
                    "created key {} ({}; namespace {}; scopes {}). The secret above is shown once: store it now.",
                    created.key.id,
                    created.key.name,
                    created.key.namespace,
                    scope_list(&created.key.scopes)
                );
            });
        }
        KeyCommand::List => {
            let keys = auth.list_api_keys().await?;
            out.show(&json!({"keys": keys}), |_| {
                let rows: Vec<Vec<String>> = keys
                    .into_iter()
                    .map(|k| {
                        vec![
                            k.id.to_string(),
                            k.name,
                            k.namespace,
                            scope_list(&k.scopes),
                            k.prefix,
                            if k.revoked_at.is_some() {
                                "revoked"
                            } else {
                                "active"
                            }
                            .to_owned(),
                        ]
                    })
                    .collect();
                print_table(
                    &["ID", "NAME", "NAMESPACE", "SCOPES", "PREFIX", "STATUS"],
                    &rows,
                );
            });
        }
        KeyCommand::Revoke { id } => {
            let id = uuid::Uuid::parse_str(id.trim())
                .map_err(|_| Error::invalid("id", format!("'{id}' is not a key id")))?;
            auth.revoke_api_key(id).await?;
            out.show(&json!({"revoked": id}), |_| {
                println!("revoked {id}");
            });
        }
    }
    Ok(())
}

fn scope_list(scopes: &[KeyScope]) -> String {
    scopes
        .iter()
        .map(|s| s.as_str())
        .collect::<Vec<_>>()
        .join(",")
}
