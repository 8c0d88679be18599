//! Every binary prints a shell completion script with `completions <shell>` (issue 9, item 3),
//! naming its own subcommands, and refuses an unknown shell with a usage error.
#![allow(clippy::unwrap_used)]

use std::process::Command;

fn completions(bin: &str, shell: &str) -> std::process::Output {
    Command::new(bin)
        .args(["completions", shell])
        .env_remove("RUST_LOG")
        .output()
        .unwrap()
}

#[test]
fn each_binary_completes_its_own_subcommands() {
    let cases = [
        (
            env!("CARGO_BIN_EXE_sd"),
            "sd",
            &["run", "check-settings"][..],
        ),
        (
            env!("CARGO_BIN_EXE_hyper"),
            "hyper",
            &["server", "certs", "check-settings"][..],
        ),
        (
            env!("CARGO_BIN_EXE_proxy"),
            "proxy",
            &["run", "ctl", "check-settings"][..],
        ),
    ];
    for (bin, name, subcommands) in cases {
        let out = completions(bin, "bash");
        assert!(out.status.success(), "{name}: {out:?}");
        let script = String::from_utf8(out.stdout).unwrap();
        assert!(
            script.contains(&format!("complete -F _{name}")),
            "{name}: not a bash completion script"
        );
        for sub in subcommands.iter().chain(&["completions"]) {
            assert!(script.contains(sub), "{name}: {sub} missing");
        }
        for shell in ["zsh", "fish", "elvish", "powershell"] {
            let out = completions(bin, shell);
            assert!(out.status.success(), "{name} {shell}: {out:?}");
            assert!(!out.stdout.is_empty(), "{name} {shell}: empty script");
        }
        let out = completions(bin, "tcsh");
        assert_eq!(
            out.status.code(),
            Some(2),
            "{name}: unknown shell is a usage error"
        );
    }
}
