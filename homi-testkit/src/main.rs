//! `homi-fake-provider`: runs the fake OpenAI-compatible provider until Ctrl-C.
//!
//! Prints its base URL (ending in `/v1`) on the first line of standard output,
//! so a script can read it and point `OPENAI_BASE_URL` at it.

use std::net::SocketAddr;
use std::time::Duration;

use homi_testkit::{FakeOptions, FakeProvider};

const USAGE: &str = "\
homi-fake-provider: a deterministic OpenAI-compatible server for tests

USAGE: homi-fake-provider [--port N] [--latency-ms N] [--dims N]

  --port N        port on 127.0.0.1 (default: a free one)
  --latency-ms N  delay before every answer (default 0)
  --dims N        embedding size for unknown models (default 1536)

Prints the base URL, then serves until interrupted. Control routes:
  POST /_fake/replies  {\"content\": \"...\"} or {\"contents\": [...]}
  POST /_fake/faults   {\"target\": \"chat\"|\"embeddings\"|\"any\",
                        \"fault\": {\"kind\": \"server_error\"|\"rate_limited\"|\"timeout\"|
                                  \"malformed_json\"|\"wrong_schema\"|\"stall\", ...}, \"times\": 1}
  POST /_fake/latency  {\"ms\": 200}
  GET  /_fake/stats    GET /_fake/requests    POST /_fake/reset
";

fn parse_args() -> Result<FakeOptions, String> {
    let mut options = FakeOptions::default();
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = |name: &str| -> Result<u64, String> {
            let raw = args.next().ok_or_else(|| format!("{name} needs a value"))?;
            raw.parse::<u64>()
                .map_err(|_| format!("{name}: '{raw}' is not a whole number"))
        };
        match arg.as_str() {
            "--port" => {
                let port = value("--port")?;
                let port = u16::try_from(port).map_err(|_| "--port: out of range".to_owned())?;
                options.addr = SocketAddr::from(([127, 0, 0, 1], port));
            }
            "--latency-ms" => options.latency = Duration::from_millis(value("--latency-ms")?),
            "--dims" => options.default_dims = value("--dims")? as usize,
            "-h" | "--help" => return Err(String::new()),
            other => return Err(format!("unknown argument '{other}'")),
        }
    }
    Ok(options)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> std::process::ExitCode {
    let options = match parse_args() {
        Ok(o) => o,
        Err(msg) => {
            if !msg.is_empty() {
                eprintln!("error: {msg}\n");
            }
            eprint!("{USAGE}");
            return std::process::ExitCode::from(2);
        }
    };
    let fake = match FakeProvider::start_with(options).await {
        Ok(f) => f,
        Err(e) => {
            eprintln!("error: cannot listen: {e}");
            return std::process::ExitCode::from(1);
        }
    };
    println!("{}", fake.base_url());
    let _ = tokio::signal::ctrl_c().await;
    fake.stop().await;
    std::process::ExitCode::SUCCESS
}
