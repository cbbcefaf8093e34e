//! Unit tests for the .deb writer's pure parts: the control file.

use super::*;

fn pkg() -> Meta {
    Meta {
        file: "r/recipe.toml".into(),
        name: "demo".into(),
        version: "1:2.0".into(),
        release: "3".into(),
        arch: "amd64".into(),
        summary: "a demo".into(),
        description: Some("\nFirst line.\n\n  indented verbatim  \nLast.\n".into()),
        homepage: None,
        license: None,
    }
}

fn meta() -> DebMeta {
    DebMeta {
        section: "misc".into(),
        priority: "optional".into(),
        maintainer: Some("A <a@example.org>".into()),
        relations: vec![("Depends", vec!["aa".into(), "bb | cc".into()])],
        conffiles: vec![],
        scripts: vec![],
    }
}

#[test]
fn control_file_fields_and_description() {
    assert_eq!(
        control_file(&pkg(), &meta(), 7).unwrap(),
        "Package: demo\nVersion: 1:2.0-3\nArchitecture: amd64\nMaintainer: A <a@example.org>\n\
         Installed-Size: 7\nDepends: aa, bb | cc\nSection: misc\nPriority: optional\n\
         Description: a demo\n First line.\n .\n   indented verbatim\n Last.\n"
    );
}

#[test]
fn control_file_needs_deb_table_and_maintainer() {
    let e = require(Path::new("r/recipe.toml"), None).unwrap_err();
    assert!(matches!(e, DebError::Invalid { .. }), "{e:?}");
    let no_maint = DebMeta {
        maintainer: None,
        ..meta()
    };
    let e = anyhow::Error::from(control_file(&pkg(), &no_maint, 1).unwrap_err());
    assert_eq!(
        format!("{e:#}"),
        "r/recipe.toml: a .deb needs [deb] maintainer = \"Name <email>\""
    );
    assert_eq!(
        crate::error::exit_code_of(e.as_ref()),
        crate::error::EXIT_INPUT
    );
}

#[test]
fn conffiles_are_checked_with_lstat_component_by_component() {
    let t = tempfile::tempdir().unwrap();
    let d = t.path();
    std::fs::create_dir_all(d.join("real/sub")).unwrap();
    std::fs::write(d.join("real/sub/x.conf"), "x\n").unwrap();
    std::os::unix::fs::symlink("/etc", d.join("etc")).unwrap();
    std::os::unix::fs::symlink("real", d.join("inside")).unwrap();
    std::os::unix::fs::symlink("sub/x.conf", d.join("real/link.conf")).unwrap();
    let check = |c: &str| {
        let deb = DebMeta {
            conffiles: vec![c.into()],
            ..meta()
        };
        check_tree(Path::new("r/recipe.toml"), &deb, d)
            .map_err(|e| format!("{:#}", anyhow::Error::from(e)))
    };
    assert_eq!(check("/real/sub/x.conf"), Ok(()));
    assert_eq!(
        check("/etc/passwd"),
        Err("r/recipe.toml: [deb] conffiles: \"/etc/passwd\" is not a regular file in the installed tree (/etc is a symlink)".into())
    );
    assert!(check("/inside/sub/x.conf")
        .unwrap_err()
        .ends_with("(/inside is a symlink)"));
    assert!(check("/real/link.conf")
        .unwrap_err()
        .ends_with("is not a regular file in the installed tree (it is a symlink)"));
    for bad in ["/real/sub", "/real/missing.conf", "/real/sub/x.conf/y", "/"] {
        assert!(
            check(bad)
                .unwrap_err()
                .ends_with("is not a regular file in the installed tree"),
            "{bad}"
        );
    }
}
