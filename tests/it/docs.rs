//! Issue 16: the manual pages, shell completions and `nsroot help`, generated from the clap
//! definitions, and the rule that keeps `nsroot -- man ...` running the real man.

use std::fs;
use std::process::Command;

use crate::util::{self, stderr, stdout, Scratch};

/// Every subcommand, each of which has a page.
const SUBCOMMANDS: &[&str] = &[
    "run",
    "pack",
    "list",
    "diff",
    "repro",
    "build",
    "doctor",
    "man",
    "completions",
    "help",
    "rpm-files",
];

#[test]
fn issue16_man_pages_render_with_man_l() {
    if util::missing_tool("man") || util::missing_tool("groff") {
        return;
    }
    let s = Scratch::new();
    for sub in std::iter::once("").chain(SUBCOMMANDS.iter().copied()) {
        let args: Vec<&str> = ["man"]
            .into_iter()
            .chain((!sub.is_empty()).then_some(sub))
            .collect();
        let o = s.nsroot(&args);
        util::assert_ok(&o);
        assert!(
            o.stdout.starts_with(b".ie"),
            "{sub}: not roff: {}",
            stdout(&o)
        );
        let page = s.path().join("page.1");
        fs::write(&page, &o.stdout).unwrap();
        // --warnings: groff's complaints about the roff go to stderr, which must stay empty.
        let r = Command::new("man")
            .args(["--warnings", "-l"])
            .arg(&page)
            .env("MANPAGER", "cat")
            .env("MANWIDTH", "80")
            .output()
            .unwrap();
        util::assert_ok(&r);
        assert!(stderr(&r).is_empty(), "{sub}: man -l warns: {}", stderr(&r));
        let text = stdout(&r);
        let title = if sub.is_empty() {
            "nsroot(1)".to_string()
        } else {
            format!("nsroot-{sub}(1)")
        };
        assert!(text.contains(&title), "{sub}: no {title}: {text}");
        for section in ["NAME", "SYNOPSIS", "DESCRIPTION", "OPTIONS"] {
            assert!(text.contains(section), "{sub}: no {section}: {text}");
        }
        if sub.is_empty() {
            // nsroot's page lists the subcommands and run mode's options.
            for want in ["SUBCOMMANDS", "nsroot-build(1)", "--no-emulate"] {
                assert!(text.contains(want), "no {want:?}: {text}");
            }
        }
    }
    // An unknown subcommand: exit 2, one line saying how to run the real man.
    let o = s.nsroot(["man", "ls"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert_eq!(stderr(&o).lines().count(), 1, "{}", stderr(&o));
    assert!(stderr(&o).contains("nsroot -- man ls"), "{}", stderr(&o));
}

#[test]
fn issue16_bash_completion_loads_and_completes_subcommands_and_options() {
    if util::missing_tool("bash") {
        return;
    }
    let s = Scratch::new();
    let bin = util::env().bin.display().to_string();
    let o = s.sh(&format!(
        "bash -c 'source <({bin} completions bash) && complete -p nsroot && \
         COMP_WORDS=(nsroot bu); COMP_CWORD=1; _nsroot nsroot bu nsroot; echo \"[${{COMPREPLY[*]}}]\"; \
         COMP_WORDS=(nsroot pack --for); COMP_CWORD=2; _nsroot nsroot --for pack; echo \"[${{COMPREPLY[*]}}]\"'"
    ));
    util::assert_ok(&o);
    let out = stdout(&o);
    assert!(
        out.contains("complete -o bashdefault") && out.contains(" nsroot\n"),
        "{out}"
    );
    assert!(out.contains("[build]"), "subcommand not completed: {out}");
    assert!(out.contains("[--format]"), "option not completed: {out}");
    for (shell, head) in [("zsh", "#compdef nsroot"), ("fish", "complete -c nsroot")] {
        let o = s.nsroot(["completions", shell]);
        util::assert_ok(&o);
        assert!(stdout(&o).contains(head), "{shell}: {}", stdout(&o));
    }
    let o = s.nsroot(["completions", "tcsh"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
}

#[test]
fn issue16_help_subcommand_works_like_git_help() {
    let s = Scratch::new();
    for sub in SUBCOMMANDS.iter().chain(&["inspect"]) {
        let help = s.nsroot(["help", sub]);
        util::assert_ok(&help);
        let direct = s.nsroot([sub, "--help"]);
        util::assert_ok(&direct);
        assert_eq!(stdout(&help), stdout(&direct), "nsroot help {sub}");
        assert!(
            stdout(&help).contains("Usage: nsroot "),
            "{sub}: {}",
            stdout(&help)
        );
    }
    let help = s.nsroot(["help"]);
    util::assert_ok(&help);
    assert_eq!(stdout(&help), stdout(&s.nsroot(["--help"])));
    for listed in ["man ", "completions ", "help "] {
        assert!(stdout(&help).contains(listed), "{listed:?} not listed");
    }
    let o = s.nsroot(["help", "nope"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("nsroot -- nope"), "{}", stderr(&o));
}

#[test]
fn issue16_double_dash_still_runs_programs_named_like_new_subcommands() {
    if util::no_userns() || util::missing_tool("man") {
        return;
    }
    let s = Scratch::new();
    for args in [["--", "man", "--version"], ["run", "man", "--version"]] {
        let o = s.nsroot(args);
        util::assert_ok(&o);
        assert!(stdout(&o).starts_with("man "), "{args:?}: {}", stdout(&o));
    }
    let o = s.nsroot(["--", "help", "x"]);
    assert_eq!(
        o.status.code(),
        Some(127),
        "help is no program: {}",
        stderr(&o)
    );
}

/// The `--help` of nsroot, of fakeroot's command line and of every subcommand, as committed
/// under tests/fixtures/help/: a change to any of them is deliberate (rewrite the files with
/// `NSROOT_BLESS=1 cargo test --test it docs::issue13_help`, and review the diff).
#[test]
fn issue13_help_texts_change_only_on_purpose() {
    let s = Scratch::new();
    let dir = util::repo().join("tests/fixtures/help");
    let bless = std::env::var_os("NSROOT_BLESS").is_some();
    let mut cases: Vec<(String, Vec<u8>)> = vec![("nsroot".into(), s.nsroot(["--help"]).stdout)];
    for sub in SUBCOMMANDS.iter().chain(&["install-fakeroot"]) {
        let o = s.nsroot([*sub, "--help"]);
        util::assert_ok(&o);
        cases.push((sub.to_string(), o.stdout));
    }
    let link = s.path().join("fakeroot");
    std::os::unix::fs::symlink(&util::env().bin, &link).unwrap();
    let o = util::env().command(&link).arg("--help").output().unwrap();
    util::assert_ok(&o);
    cases.push(("fakeroot".into(), o.stdout));
    let mut changed = Vec::new();
    for (name, text) in cases {
        let file = dir.join(format!("{name}.txt"));
        if bless {
            fs::write(&file, &text).unwrap();
        } else if fs::read(&file).ok().as_deref() != Some(&text[..]) {
            changed.push(format!(
                "{name}: --help is now:\n{}",
                String::from_utf8_lossy(&text)
            ));
        }
    }
    assert!(changed.is_empty(), "{}", changed.join("\n"));
}

#[test]
fn issue13_a_closed_stdout_ends_listing_quietly() {
    let s = Scratch::new();
    let tree = s.path().join("tree");
    fs::create_dir(&tree).unwrap();
    for i in 0..5000 {
        fs::write(tree.join(format!("f{i}")), "").unwrap();
    }
    s.chown_all();
    let tar = s.path().join("big.tar");
    util::assert_ok(&s.nsroot([
        "pack".as_ref(),
        tree.as_os_str(),
        "-o".as_ref(),
        tar.as_os_str(),
    ]));
    // `head -1` reads one line and closes the pipe while nsroot still has thousands to write.
    let script = format!(
        "\"$0\" list {} | head -1 >/dev/null; echo \"status=${{PIPESTATUS[0]}}\"",
        tar.display()
    );
    let o = util::env()
        .command("bash")
        .args(["-c", &script])
        .arg(&util::env().bin)
        .output()
        .unwrap();
    assert_eq!(stdout(&o).trim(), "status=0", "{}", stderr(&o));
    assert_eq!(stderr(&o), "", "a broken pipe is no error");
}
