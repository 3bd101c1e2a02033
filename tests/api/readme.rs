//! The README's quickstart, run as written against a fresh data directory.

use std::time::Duration;

use crate::helpers::Binary;

/// The shell block of the README's "Quickstart" section.
fn quickstart() -> String {
    let readme = include_str!("../../README.md");
    let section = readme
        .split("\n## ")
        .find(|s| s.starts_with("Quickstart"))
        .expect("a Quickstart section");
    let start = section.find("```sh\n").expect("a shell block") + "```sh\n".len();
    let end = section[start..].find("```").expect("the block ends") + start;
    section[start..end].to_owned()
}

#[tokio::test]
async fn every_quickstart_command_works_as_written_on_a_fresh_data_directory() {
    let dir = tempfile::tempdir().unwrap();
    // The quickstart talks to the default address: the server listens there, as it would for a
    // user; a busy port fails the test rather than skipping it.
    let mut server = Binary::serve_with_defaults_in(dir.path()).await;
    assert_eq!(server.base, "http://127.0.0.1:8080");
    let script = quickstart();
    let bin_dir = std::path::Path::new(env!("CARGO_BIN_EXE_keyward"))
        .parent()
        .unwrap();
    let path = format!(
        "{}:{}",
        bin_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let mut cmd = tokio::process::Command::new("bash");
    cmd.args(["-euo", "pipefail", "-c", &script])
        .current_dir(dir.path())
        .env("PATH", path);
    for (k, _) in std::env::vars() {
        if k.starts_with("KEYWARD_") {
            cmd.env_remove(k);
        }
    }
    let out = tokio::time::timeout(Duration::from_secs(60), cmd.output())
        .await
        .expect("the quickstart finishes within a minute")
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "the quickstart failed ({}):\n{stdout}\n{stderr}",
        out.status
    );
    // Every output the README shows in a comment is what the command printed.
    for shown in script.lines().filter_map(|l| l.trim().strip_prefix("# {")) {
        let shown = format!("{{{shown}");
        assert!(stdout.contains(&shown), "{shown} not in:\n{stdout}");
    }
    assert!(stdout.contains("a key was found"), "{stdout}");
    let (status, _) = server.terminate(Duration::from_secs(10)).await;
    assert!(status.success());
    assert!(
        !server.stderr().contains("ERROR"),
        "the server logged errors: {}",
        server.stderr()
    );
}
