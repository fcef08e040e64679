//! A test helper, not a user-facing tool: adds memories to one user from its
//! own process, for the multi-process test (`tests/it/memory.rs`,
//! `two_processes_adding_at_once_lose_nothing`).
//!
//! ```text
//! homi-test-writer DATABASE_URL OPENAI_BASE_URL USER PREFIX SHARED UNIQUE
//! ```
//!
//! Adds `SHARED` facts that every writer adds too (`shared fact N`) and
//! `UNIQUE` facts of its own (`PREFIX fact N`), one `add(infer=false)` call
//! each, alternating, and prints `{"added": A, "none": B}`.

use homi_core::{AddOptions, Config, Event, Memory, Scope};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [url, base, user, prefix, shared, unique] = args.as_slice() else {
        return Err(
            "usage: homi-test-writer DATABASE_URL OPENAI_BASE_URL USER PREFIX SHARED UNIQUE".into(),
        );
    };
    let shared: usize = shared.parse()?;
    let unique: usize = unique.parse()?;
    let config = Config::default()
        .with_database_url(url.clone())
        .with_openai_base_url(base.clone())
        .with_openai_api_key("sk-test")
        .with_embedding_model("text-embedding-3-small", Some(64));
    let memory = Memory::open(&config).await?;
    let scope = Scope::user(user.clone());
    let (mut added, mut none) = (0usize, 0usize);
    for i in 0..shared.max(unique) {
        let mut texts = Vec::new();
        if i < shared {
            texts.push(format!("shared fact {i}"));
        }
        if i < unique {
            texts.push(format!("{prefix} fact {i}"));
        }
        for text in texts {
            let r = memory.add(text, &scope, AddOptions::raw()).await?;
            for e in r.results {
                match e.event {
                    Event::Add => added += 1,
                    Event::None => none += 1,
                    other => return Err(format!("unexpected event {other:?}").into()),
                }
            }
        }
    }
    println!("{{\"added\": {added}, \"none\": {none}}}");
    Ok(())
}
