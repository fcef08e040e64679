//! Lists each database's migrations for its store: every
//! `migrations/{sqlite,postgres}/NNNN_description.sql`, in version order, as
//! `(version, description, include_str!(file))` in
//! `$OUT_DIR/{sqlite,postgres}_migrations.rs`. Adding a migration is adding
//! its file.

use std::error::Error;
use std::fmt::Write as _;
use std::path::PathBuf;

fn main() -> Result<(), Box<dyn Error>> {
    let root = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR")?).join("migrations");
    let out = PathBuf::from(std::env::var("OUT_DIR")?);
    for db in ["sqlite", "postgres"] {
        let dir = root.join(db);
        println!("cargo:rerun-if-changed={}", dir.display());
        let mut files = Vec::new();
        for entry in std::fs::read_dir(&dir)? {
            let path = entry?.path();
            if path.extension().is_some_and(|e| e == "sql") {
                files.push(path);
            }
        }
        files.sort();
        let mut list = String::from("&[\n");
        let mut last = 0;
        for path in files {
            let stem = path
                .file_stem()
                .and_then(|s| s.to_str())
                .ok_or_else(|| format!("{}: not a UTF-8 name", path.display()))?;
            let (version, description) = stem
                .split_once('_')
                .ok_or_else(|| format!("{}: name it NNNN_description.sql", path.display()))?;
            let version: i64 = version
                .parse()
                .map_err(|e| format!("{}: the version is not a number: {e}", path.display()))?;
            if version <= last {
                return Err(format!("{}: version {version} is used twice", path.display()).into());
            }
            last = version;
            writeln!(
                list,
                "    ({version}, {:?}, include_str!({:?})),",
                description.replace('_', " "),
                path.display().to_string()
            )?;
        }
        list.push_str("]\n");
        std::fs::write(out.join(format!("{db}_migrations.rs")), list)?;
    }
    Ok(())
}
