//! Unit tests for the .deb writer's pure parts: the control file.

use super::*;
use crate::recipe::{Build, DebMeta, Install, Output, OutputFormat, Package, Source};

fn recipe(deb: Option<DebMeta>) -> Recipe {
    Recipe {
        file: "r/recipe.toml".into(),
        path: "/r/recipe.toml".into(),
        recipe_dir: "/r".into(),
        recipe_sha256: String::new(),
        package: Package {
            name: "demo".into(),
            version: "1:2.0".into(),
            release: "3".into(),
            arch: "amd64".into(),
            summary: "a demo".into(),
            license: None,
            source_date_epoch: None,
        },
        source: Source::None,
        build: Build::default(),
        install: Install::default(),
        output: Output {
            formats: vec![OutputFormat::Deb],
        },
        deb,
    }
}

fn meta() -> DebMeta {
    DebMeta {
        section: "misc".into(),
        priority: "optional".into(),
        maintainer: Some("A <a@example.org>".into()),
        description: Some("\nFirst line.\n\n  indented verbatim  \nLast.\n".into()),
        homepage: None,
        relations: vec![("Depends", vec!["aa".into(), "bb | cc".into()])],
        conffiles: vec![],
        scripts: vec![],
    }
}

#[test]
fn control_file_fields_and_description() {
    assert_eq!(
        control_file(&recipe(Some(meta())), 7).unwrap(),
        "Package: demo\nVersion: 1:2.0-3\nArchitecture: amd64\nMaintainer: A <a@example.org>\n\
         Installed-Size: 7\nDepends: aa, bb | cc\nSection: misc\nPriority: optional\n\
         Description: a demo\n First line.\n .\n   indented verbatim\n Last.\n"
    );
}

#[test]
fn control_file_needs_deb_table_and_maintainer() {
    let e = control_file(&recipe(None), 1).unwrap_err();
    assert!(matches!(e, DebError::Invalid { .. }), "{e:?}");
    let no_maint = DebMeta {
        maintainer: None,
        ..meta()
    };
    let e = anyhow::Error::from(control_file(&recipe(Some(no_maint)), 1).unwrap_err());
    assert_eq!(
        format!("{e:#}"),
        "r/recipe.toml: a .deb needs [deb] maintainer = \"Name <email>\""
    );
    assert_eq!(crate::error::exit_code_of(&e), crate::error::EXIT_INPUT);
}
