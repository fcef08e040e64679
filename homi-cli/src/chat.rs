//! `homi chat`: chat with memory from a terminal or a pipe.

use homi_core::{Config, Error};
use serde_json::json;

use crate::output::Out;

/// How long `homi chat` waits at the end for the extraction of its turns.
const CHAT_DRAIN: std::time::Duration = std::time::Duration::from_secs(30);

pub(crate) async fn run(
    config: &Config,
    user: String,
    mut session: Option<String>,
    show_memories: bool,
    out: Out,
) -> homi_core::Result<()> {
    use std::io::{IsTerminal, Write};

    use homi_core::chat::ChatEvent;
    use tokio::io::AsyncBufReadExt;

    let chat = homi_core::chat::Chat::open(config).await?;
    let worker = chat.spawn_local_worker();
    let interactive = std::io::stdin().is_terminal();
    if interactive {
        eprintln!("Chat with memory as {user} (type 'exit' to quit)");
    }
    let mut lines = tokio::io::BufReader::new(tokio::io::stdin()).lines();
    let mut stdout = std::io::stdout();
    loop {
        if interactive {
            print!("You: ");
            let _ = stdout.flush();
        }
        let Some(line) = lines
            .next_line()
            .await
            .map_err(|e| Error::invalid("stdin", e.to_string()))?
        else {
            break;
        };
        let message = line.trim();
        if message.is_empty() {
            continue;
        }
        if message.eq_ignore_ascii_case("exit") {
            break;
        }
        let mut events = chat.stream(&user, message, session.as_deref()).await?;
        while let Some(event) = futures::StreamExt::next(&mut events).await {
            match event? {
                ChatEvent::Memories {
                    session_id,
                    memories,
                } => {
                    session = Some(session_id);
                    if show_memories {
                        for m in &memories {
                            eprintln!("  [memory] {m}");
                        }
                    }
                    if !out.json {
                        print!("AI: ");
                    }
                }
                ChatEvent::Delta { content } => {
                    if !out.json {
                        print!("{content}");
                        let _ = stdout.flush();
                    }
                }
                ChatEvent::Done(turn) => {
                    out.show(&json!(turn), |_| {
                        println!();
                    });
                }
            }
        }
    }
    if interactive {
        eprintln!("Goodbye!");
    }
    // Let the extraction of this user's turns finish before leaving (they
    // would otherwise wait in the store for the next run of a worker).
    let left = worker.finish(&user, CHAT_DRAIN).await?;
    if left.queued + left.running > 0 {
        eprintln!(
            "homi: {} memory extractions are still queued; they run the next time a worker does (homi serve, homi chat)",
            left.queued + left.running
        );
    }
    Ok(())
}
