//! `keyward scan`: finds well-formed keys (valid checksum) in files, offline.

use std::path::{Path, PathBuf};

use crate::domain::key;

/// Prints each key found as `path:line: prefix+id••••`. Exit code 1 when any was found.
pub fn run(paths: &[PathBuf]) -> anyhow::Result<i32> {
    let mut found = 0;
    for p in paths {
        found += scan_path(p)?;
    }
    if found > 0 {
        eprintln!("{found} key(s) found: revoke or rotate them, and keep keys out of files.");
        Ok(1)
    } else {
        Ok(0)
    }
}

fn scan_path(path: &Path) -> anyhow::Result<usize> {
    let meta = std::fs::symlink_metadata(path)?;
    if meta.is_dir() {
        let mut n = 0;
        let mut entries: Vec<_> = std::fs::read_dir(path)?.filter_map(Result::ok).collect();
        entries.sort_by_key(|e| e.path());
        for e in entries {
            let name = e.file_name();
            if name == ".git" || name == "target" || name == "node_modules" {
                continue;
            }
            n += scan_path(&e.path())?;
        }
        return Ok(n);
    }
    if !meta.is_file() || meta.len() > 16 * 1024 * 1024 {
        return Ok(0);
    }
    let bytes = std::fs::read(path)?;
    let text = String::from_utf8_lossy(&bytes);
    let mut n = 0;
    for (i, line) in text.lines().enumerate() {
        let mut rest = line;
        while let Some(k) = key::find_in(rest) {
            println!("{}:{}: {}{}••••", path.display(), i + 1, k.prefix, k.id);
            n += 1;
            let end = k.whole.as_ptr() as usize - rest.as_ptr() as usize + k.whole.len();
            rest = &rest[end..];
        }
    }
    Ok(n)
}
