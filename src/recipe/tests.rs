//! Unit tests for recipe parsing and validation (no files needed).

use super::*;
use crate::package::host_arch;

const FILE: &str = "recipes/x/recipe.toml";

/// A minimal valid recipe: lines 1-4.
const MIN: &str = "[package]\nname = \"hello\"\nversion = \"1.0\"\nsummary = \"Say hello\"\n";

/// The whole one-line message, as `nsroot: {:#}` prints it.
fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}

fn err(text: &str) -> String {
    match parse(text, Path::new(FILE)) {
        Ok(_) => panic!("expected an error for:\n{text}"),
        Err(e) => {
            let msg = chain(&e);
            assert!(!msg.contains('\n'), "message is not one line: {msg}");
            assert_eq!(
                crate::error::exit_code_of(&e),
                crate::error::EXIT_INPUT,
                "{msg}"
            );
            msg
        }
    }
}

fn ok(text: &str) -> Parsed {
    parse(text, Path::new(FILE)).unwrap_or_else(|e| panic!("{}", chain(&e)))
}

/// `s` as a TOML basic string.
fn quote(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            c if c.is_control() => out.push_str(&format!("\\u{:04X}", c as u32)),
            c => out.push(c),
        }
    }
    out + "\""
}

/// MIN with `[package]` keys replaced or added.
fn package_with(key: &str, value: &str) -> String {
    let mut lines: Vec<String> = MIN.lines().map(str::to_string).collect();
    let line = format!("{key} = {value}");
    match lines
        .iter_mut()
        .find(|l| l.starts_with(&format!("{key} =")))
    {
        Some(l) => *l = line,
        None => lines.push(line),
    }
    lines.join("\n") + "\n"
}

#[test]
fn minimal_recipe_gets_defaults() {
    let p = ok(MIN);
    assert_eq!(p.package.name, "hello");
    assert_eq!(p.package.version, "1.0");
    assert_eq!(p.package.release, "1");
    assert_eq!(p.package.arch, host_arch());
    assert_eq!(p.package.license, None);
    assert_eq!(p.package.source_date_epoch, None);
    assert!(matches!(p.source, UnresolvedSource::None));
    assert_eq!(p.build, Build::default());
    assert_eq!(p.install, Install::default());
    assert_eq!(p.output.formats, vec![OutputFormat::TarGz]);
}

#[test]
fn full_recipe_parses() {
    let p = ok(&format!(
        "{MIN}release = \"2\"\narch = \"all\"\nlicense = \"MIT\"\nsource_date_epoch = 1700000000\n\
         [source]\narchive = \"x.tar.gz\"\nsha256 = \"{}\"\nstrip_components = 1\n\
         [build]\nenv = {{ CFLAGS = \"-O2\", _X1 = \"y\" }}\nsteps = [\"make\"]\ncheck = [\"make check\"]\n\
         [install]\nsteps = [\"make install\"]\n[output]\nformats = [\"tar.zst\", \"tar\"]\n",
        "AB".repeat(32)
    ));
    assert_eq!(p.package.release, "2");
    assert_eq!(p.package.arch, "all");
    assert_eq!(p.package.license.as_deref(), Some("MIT"));
    assert_eq!(p.package.source_date_epoch, Some(1_700_000_000));
    match p.source {
        UnresolvedSource::Archive {
            archive,
            sha256,
            strip_components,
        } => {
            assert_eq!(archive.get_ref(), "x.tar.gz");
            assert_eq!(sha256, "ab".repeat(32), "sha256 is normalised to lowercase");
            assert_eq!(strip_components, 1);
        }
        _ => panic!("expected an archive source"),
    }
    assert_eq!(p.build.env.get("CFLAGS").map(String::as_str), Some("-O2"));
    assert_eq!(p.build.steps, ["make"]);
    assert_eq!(p.build.check, ["make check"]);
    assert_eq!(p.install.steps, ["make install"]);
    assert_eq!(p.output.formats, [OutputFormat::TarZst, OutputFormat::Tar]);
}

#[test]
fn unknown_key_names_file_line_table_and_choices() {
    assert_eq!(
        err(&format!("{MIN}[build]\nstpes = [\"make\"]\n")),
        "recipes/x/recipe.toml:6: unknown key \"stpes\" in [build] (expected one of: env, steps, check, tmpfs_size)"
    );
}

#[test]
fn unknown_key_is_reported_in_every_table() {
    // Also keeps TABLE_KEYS in step with the serde structs.
    let bodies = [
        (
            "package",
            "[package]\nname = \"hello\"\nversion = \"1\"\nsummary = \"s\"\nbogus = 1\n",
        ),
        ("source", "[source]\npath = \"src\"\nbogus = 1\n"),
        ("build", "[build]\nbogus = 1\n"),
        ("install", "[install]\nbogus = 1\n"),
        ("output", "[output]\nformats = [\"tar\"]\nbogus = 1\n"),
        ("deb", "[deb]\nsection = \"utils\"\nbogus = 1\n"),
        ("rpm", "[rpm]\ngroup = \"x\"\nbogus = 1\n"),
        ("arch", "[arch]\ngroups = [\"x\"]\nbogus = 1\n"),
    ];
    for (table, body) in bodies {
        let text = if table == "package" {
            body.to_string()
        } else {
            format!("{MIN}{body}")
        };
        let keys = TABLE_KEYS
            .iter()
            .find(|(t, _)| *t == table)
            .unwrap()
            .1
            .join(", ");
        let msg = err(&text);
        let line = text.lines().position(|l| l.starts_with("bogus")).unwrap() + 1;
        assert_eq!(
            msg,
            format!("{FILE}:{line}: unknown key \"bogus\" in [{table}] (expected one of: {keys})")
        );
    }
}

#[test]
fn unknown_table_is_reported() {
    assert_eq!(
        err(&format!("{MIN}[buidl]\nsteps = []\n")),
        "recipes/x/recipe.toml:5: unknown top-level key \"buidl\" (expected one of the tables: \
         [package], [source], [build], [install], [output], [deb], [rpm], [arch])"
    );
}

#[test]
fn missing_keys_are_reported() {
    assert_eq!(
        err("[package]\nname = \"hello\"\nsummary = \"s\"\n"),
        "recipes/x/recipe.toml:1: missing key \"version\" in [package]"
    );
    assert_eq!(
        err("[package]\nname = \"hello\"\nversion = \"1\"\n"),
        "recipes/x/recipe.toml:1: missing key \"summary\" in [package]"
    );
    let msg = err("[build]\nsteps = []\n");
    assert!(msg.contains("missing table [package]"), "{msg}");
    assert!(err(&format!("{MIN}[output]\n")).contains("missing key \"formats\" in [output]"));
}

#[test]
fn wrong_types_name_the_key() {
    assert_eq!(
        err(&package_with("version", "1")),
        "recipes/x/recipe.toml:3: key \"version\" in [package]: invalid type: integer `1`, expected a string"
    );
    let msg = err(&package_with("source_date_epoch", "-5"));
    assert!(
        msg.starts_with("recipes/x/recipe.toml:5: key \"source_date_epoch\" in [package]:"),
        "{msg}"
    );
    let msg = err(&format!("{MIN}[build]\nsteps = \"make\"\n"));
    assert!(
        msg.starts_with("recipes/x/recipe.toml:6: key \"steps\" in [build]:"),
        "{msg}"
    );
}

#[test]
fn toml_syntax_errors_have_a_line() {
    let msg = err(&format!("{MIN}[build\n"));
    assert!(msg.starts_with("recipes/x/recipe.toml:5: "), "{msg}");
}

#[test]
fn package_names_follow_debian_rules() {
    for good in ["hello", "g++", "a0", "lib-x.y", "0ad"] {
        ok(&package_with("name", &quote(good)));
    }
    for bad in [
        "Hello",
        "h",
        "-x",
        ".x",
        "a b",
        "h\u{e9}llo",
        "a_b",
        "",
        "a/b",
    ] {
        let msg = err(&package_with("name", &quote(bad)));
        assert!(
            msg.starts_with(&format!(
                "{FILE}:2: [package] name = {bad:?}: not a valid package name"
            )),
            "{msg}"
        );
    }
}

#[test]
fn versions_follow_debian_rules() {
    for good in ["1.0", "2:1.0~rc1", "1.0-beta", "0", "1+git20240101"] {
        ok(&package_with("version", &quote(good)));
    }
    for bad in [
        "v1", "1..0", "1/2", "1 0", "1\t0", ":1", "a:1", "", "1_0", "1\u{7f}",
    ] {
        let msg = err(&package_with("version", &quote(bad)));
        assert!(
            msg.starts_with(&format!("{FILE}:3: [package] version = {bad:?}: ")),
            "{msg}"
        );
    }
}

#[test]
fn releases_follow_debian_rules() {
    for good in ["1", "0ubuntu1", "1+b1", "2~bpo1"] {
        assert_eq!(
            ok(&package_with("release", &quote(good))).package.release,
            good
        );
    }
    for bad in ["1-2", "", "a/b", "1..2", "1:2", "+1", "1 "] {
        let msg = err(&package_with("release", &quote(bad)));
        assert!(
            msg.starts_with(&format!("{FILE}:5: [package] release = {bad:?}: ")),
            "{msg}"
        );
    }
}

#[test]
fn arch_names_are_checked() {
    for good in ["amd64", "arm64", "all", "musl-linux-amd64"] {
        assert_eq!(ok(&package_with("arch", &quote(good))).package.arch, good);
    }
    for bad in ["AMD64", "any", "x86_64", "", "a/b"] {
        let msg = err(&package_with("arch", &quote(bad)));
        assert!(
            msg.starts_with(&format!("{FILE}:5: [package] arch = {bad:?}: ")),
            "{msg}"
        );
    }
}

#[test]
fn summary_and_license_are_one_line() {
    assert!(err(&package_with("summary", "\"\""))
        .contains("[package] summary = \"\": must not be empty"));
    assert!(err(&package_with("summary", "\"a\\nb\"")).contains("must be one line"));
    assert!(err(&package_with("license", "\"a\\u0007\"")).contains("[package] license"));
}

#[test]
fn env_keys_must_be_shell_names() {
    ok(&format!(
        "{MIN}[build]\nenv = {{ CFLAGS = \"-O2\", _a1 = \"\" }}\n"
    ));
    for bad in ["1X", "A-B", "A B", ""] {
        let msg = err(&format!("{MIN}[build]\nenv = {{ {bad:?} = \"x\" }}\n"));
        assert_eq!(
            msg,
            format!(
                "{FILE}:6: [build] env: {bad:?} is not a valid shell variable name ([A-Za-z_][A-Za-z0-9_]*)"
            )
        );
    }
}

#[test]
fn env_may_not_override_fixed_variables() {
    for fixed in FIXED_ENV {
        let msg = err(&format!("{MIN}[build]\nenv.{fixed} = \"x\"\n"));
        assert!(
            msg.starts_with(&format!(
                "{FILE}:6: [build] env: {fixed:?} is set by nsroot"
            )),
            "{msg}"
        );
    }
}

#[test]
fn empty_steps_are_refused() {
    for (table, key) in [("build", "steps"), ("build", "check"), ("install", "steps")] {
        let msg = err(&format!(
            "{MIN}[{table}]\n{key} = [\n  \"make\",\n  \"  \",\n]\n"
        ));
        assert_eq!(msg, format!("{FILE}:8: [{table}] {key}[1] is empty"));
    }
    assert!(err(&format!("{MIN}[install]\nsteps = [\"a\\u0000b\"]\n")).contains("NUL"));
}

#[test]
fn output_formats_are_checked() {
    let all = ok(&format!(
        "{MIN}[output]\nformats = [\"tar\", \"tar.gz\", \"tar.zst\", \"tar.xz\", \"deb\"]\n[deb]\n{MAINT}\n"
    ));
    assert_eq!(all.output.formats.len(), 5);
    assert_eq!(
        err(&format!("{MIN}[output]\nformats = [\"zip\"]\n")),
        format!("{FILE}:6: [output] formats: unknown format \"zip\" (expected one of: tar, tar.gz, tar.zst, tar.xz, deb, rpm, pkg.tar.zst)")
    );
    assert!(
        err(&format!("{MIN}[output]\nformats = [\"tar\", \"tar\"]\n")).contains("listed twice")
    );
    assert!(err(&format!("{MIN}[output]\nformats = []\n")).contains("at least one format"));
}

#[test]
fn source_shape_is_checked() {
    let sha = "0".repeat(64);
    let cases = [
        (
            format!("path = \"src\"\narchive = \"a.tgz\"\nsha256 = \"{sha}\""),
            7,
            "has both path and archive",
        ),
        ("strip_components = 1".to_string(), 5, "needs either path"),
        (
            format!("path = \"src\"\nsha256 = \"{sha}\""),
            7,
            "sha256 applies only to archive",
        ),
        (
            "path = \"src\"\nstrip_components = 1".to_string(),
            7,
            "strip_components applies only to archive",
        ),
        ("archive = \"a.tgz\"".to_string(), 6, "archive needs sha256"),
        (
            "archive = \"a.tgz\"\nsha256 = \"abc\"".to_string(),
            7,
            "not a sha256",
        ),
        ("path = \"/etc\"".to_string(), 6, "must be a path relative"),
        (
            "path = \"../../etc\"".to_string(),
            6,
            "must not leave the recipe's directory",
        ),
        (
            "path = \"src/../../x\"".to_string(),
            6,
            "must not leave the recipe's directory",
        ),
        (
            "archive = \"/tmp/a.tgz\"\nsha256 = \"0\"".to_string(),
            6,
            "must be a path relative",
        ),
        ("path = \"\"".to_string(), 6, "must not be empty"),
    ];
    for (body, line, want) in cases {
        let msg = err(&format!("{MIN}[source]\n{body}\n"));
        assert!(
            msg.starts_with(&format!("{FILE}:{line}: [source] ")),
            "{msg}"
        );
        assert!(msg.contains(want), "{msg} lacks {want:?}");
    }
}

#[test]
fn output_stem_leaves_out_the_epoch() {
    let p = ok(&package_with("version", "\"2:1.0\""));
    let recipe = Recipe {
        file: FILE.into(),
        path: "/r/recipe.toml".into(),
        recipe_dir: "/r".into(),
        recipe_sha256: String::new(),
        package: Package {
            arch: "amd64".into(),
            release: "3".into(),
            ..p.package
        },
        source: Source::None,
        build: p.build,
        install: p.install,
        output: p.output,
        deb: None,
        rpm: Default::default(),
        pacman: Default::default(),
    };
    assert_eq!(recipe.output_stem(), "hello_1.0-3_amd64");
    assert_eq!(recipe.full_version(), "2:1.0-3");
    assert_eq!(
        recipe.source_date_epoch(Path::new("/nonexistent")).ok(),
        None
    );
}

#[test]
fn io_errors_exit_1_and_input_errors_exit_2() {
    let io = RecipeError::io("read", Path::new("/x"), std::io::Error::other("boom"));
    assert_eq!(crate::error::exit_code_of(&io), crate::error::EXIT_FAILURE);
    let bad = RecipeError::BadSource {
        path: "/a.tgz".into(),
        reason: InputError::new("sha256 mismatch"),
    };
    assert_eq!(chain(&bad), "source archive /a.tgz: sha256 mismatch");
    assert_eq!(crate::error::exit_code_of(&bad), crate::error::EXIT_INPUT);
}

const MAINT: &str = "maintainer = \"A Person <a@example.org>\"";

fn deb_err(body: &str) -> String {
    err(&format!("{MIN}[deb]\n{body}\n"))
}

#[test]
fn deb_table_parses_with_defaults() {
    let p = ok(&format!(
        "{MIN}[output]\nformats = [\"deb\"]\n[deb]\n{MAINT}\n"
    ));
    let d = p.deb.expect("deb").meta;
    assert_eq!(
        (d.section.as_str(), d.priority.as_str()),
        ("misc", "optional")
    );
    assert_eq!(d.maintainer.as_deref(), Some("A Person <a@example.org>"));
    assert!(d.relations.is_empty() && d.conffiles.is_empty() && d.scripts.is_empty());
    let p = ok(&format!(
        "{MIN}[deb]\n{MAINT}\nsection = \"contrib/utils\"\npriority = \"extra\"\nhomepage = \"https://x.org/\"\n\
         description = \"\"\"\nLong.\n\nMore.\"\"\"\n\
         replaces = [\"old\"]\ndepends = [\"libc6 (>= 2.34)\", \"aa | bb\"]\npre_depends = [\"dpkg (>= 1.19)\"]\n\
         conffiles = [\"/etc/x.conf\", \"/etc/y\"]\n"
    ));
    assert_eq!(p.package.description.as_deref(), Some("Long.\n\nMore."));
    assert_eq!(p.package.homepage.as_deref(), Some("https://x.org/"));
    let d = p.deb.expect("deb").meta;
    assert_eq!(d.section, "contrib/utils");
    // Control-file order, whatever the recipe's order.
    let fields: Vec<&str> = d.relations.iter().map(|(f, _)| *f).collect();
    assert_eq!(fields, ["Pre-Depends", "Depends", "Replaces"]);
    assert_eq!(d.relations[1].1, ["libc6 (>= 2.34)", "aa | bb"]);
    assert_eq!(d.conffiles, ["/etc/x.conf", "/etc/y"]);
}

#[test]
fn deb_output_needs_a_maintainer() {
    let want = format!(
        "{FILE}:6: [output] formats includes \"deb\": add a [deb] table with maintainer = \"Name <email>\""
    );
    assert_eq!(
        err(&format!("{MIN}[output]\nformats = [\"tar\", \"deb\"]\n")),
        want
    );
    assert_eq!(
        err(&format!(
            "{MIN}[output]\nformats = [\"deb\"]\n[deb]\nsection = \"x\"\n"
        )),
        want
    );
    // A [deb] table alone asks for a .deb, so it needs a maintainer...
    assert_eq!(
        err(&format!(
            "{MIN}# the package\n[deb]  # metadata\nsection = \"x\"\n"
        )),
        format!(
            "{FILE}:6: [deb] makes the build write a .deb: add maintainer = \"Name <email>\" \
             (or list [output] formats without \"deb\")"
        )
    );
    // ...unless [output] lists formats without deb.
    ok(&format!(
        "{MIN}[output]\nformats = [\"tar\"]\n[deb]\nsection = \"x\"\n"
    ));
}

#[test]
fn deb_table_adds_deb_to_the_default_formats() {
    let p = ok(&format!("{MIN}[deb]\n{MAINT}\n"));
    assert_eq!(p.output.formats, [OutputFormat::TarGz, OutputFormat::Deb]);
    let p = ok(&format!(
        "{MIN}[output]\nformats = [\"tar.xz\"]\n[deb]\n{MAINT}\n"
    ));
    assert_eq!(p.output.formats, [OutputFormat::TarXz]);
    let p = ok(MIN);
    assert_eq!(p.output.formats, [OutputFormat::TarGz]);
}

#[test]
fn deb_single_values_are_checked() {
    let cases = [
        (
            "maintainer = \"nobody\"",
            "[deb] maintainer = \"nobody\": expected \"Full Name <email@address>\"",
        ),
        ("maintainer = \"<a@b>\"", "expected \"Full Name"),
        ("maintainer = \"A <ab>\"", "expected \"Full Name"),
        (
            "priority = \"high\"",
            "[deb] priority = \"high\": not a priority",
        ),
        (
            "section = \"Utils\"",
            "[deb] section = \"Utils\": not a valid section",
        ),
        (
            "homepage = \"example.org\"",
            "[deb] homepage = \"example.org\": expected an http",
        ),
        ("homepage = \"https://a b\"", "expected an http"),
        (
            "description = \"  \"",
            "[deb] description = \"  \": must not be empty",
        ),
        (
            "description = \"a\\u0007\"",
            "must not contain control characters",
        ),
    ];
    for (body, want) in cases {
        let msg = deb_err(body);
        assert!(msg.starts_with(&format!("{FILE}:6: ")), "{msg}");
        assert!(msg.contains(want), "{msg} lacks {want:?}");
    }
}

#[test]
fn deb_relations_are_checked() {
    for good in [
        "libc6 (>= 2.34)",
        "aa | bb (<< 2:1.0-1)",
        "foo:any",
        "xx [amd64 !i386]",
        "pp (= 1.0-1) <!nocheck>",
    ] {
        ok(&format!(
            "{MIN}[deb]\n{MAINT}\ndepends = [{}]\n",
            quote(good)
        ));
    }
    let cases = [
        ("depends", "Foo", "not a valid package name"),
        ("depends", "x", "not a valid package name"),
        ("depends", "aa, bb", "one relation per list item"),
        ("depends", "aa (>= )", "must start with a digit"),
        ("depends", "aa (=> 1)", "\"=>\" is not a version operator"),
        ("depends", "aa (>= 1", "unclosed '('"),
        ("depends", "aa junk", "unexpected \"junk\""),
        ("depends", "aa [AMD64]", "is not an architecture list"),
        ("depends", "aa:", "bad architecture qualifier"),
        ("conflicts", "aa | bb", "alternatives ('|') are not allowed"),
        (
            "provides",
            "pp (>= 1)",
            "\">=\" is not a version operator here (use one of: =)",
        ),
        ("recommends", "", "not a valid package name"),
    ];
    for (key, item, want) in cases {
        let msg = deb_err(&format!("{key} = [\n  \"ok\",\n  {},\n]", quote(item)));
        assert!(
            msg.starts_with(&format!("{FILE}:8: [deb] {key}[1] = {item:?}: ")),
            "{msg}"
        );
        assert!(msg.contains(want), "{msg} lacks {want:?}");
    }
    ok(&format!(
        "{MIN}[deb]\n{MAINT}\nprovides = [\"pp (= 1.0)\"]\nbreaks = [\"old (<< 1)\"]\n"
    ));
}

#[test]
fn deb_conffiles_are_absolute_plain_paths() {
    for (c, want) in [
        ("etc/x.conf", "must be an absolute path"),
        ("/etc/../x", "plain file path"),
        ("/etc/x/", "plain file path"),
        ("/etc/a b", "may not contain spaces"),
    ] {
        let msg = deb_err(&format!("conffiles = [{}]", quote(c)));
        assert!(
            msg.starts_with(&format!("{FILE}:6: [deb] conffiles[0] = {c:?}: ")),
            "{msg}"
        );
        assert!(msg.contains(want), "{msg} lacks {want:?}");
    }
    assert!(deb_err("conffiles = [\"/etc/a\", \"/etc/a\"]").contains("listed twice"));
}

#[test]
fn long_names_and_values_are_cut_in_messages() {
    assert_eq!(shown("short"), "short");
    let long = "é".repeat(150);
    assert_eq!(shown(&long), format!("{}...", "é".repeat(100)));
    let msg = format!(
        "invalid type: string \"{}\", expected u64",
        "x".repeat(5000)
    );
    let cut = shown_quoted(&msg);
    assert_eq!(
        cut,
        format!(
            "invalid type: string \"{}...\", expected u64",
            "x".repeat(100)
        )
    );
    // An unclosed quote and a long unquoted tail are cut too.
    assert!(shown_quoted(&format!("`{}", "y".repeat(5000))).len() < 200);
    assert!(shown_quoted(&"z ".repeat(5000)).len() < 1100);
}

#[test]
fn rpm_and_arch_tables_are_checked_with_file_line_and_key() {
    let lic =
        "[package]\nname = \"hello\"\nversion = \"1.0\"\nsummary = \"s\"\nlicense = \"MIT\"\n";
    let cases = [
        (
            format!("{lic}[rpm]\nrequires = [\"glibc >= 2.34\", \"(a or b)\"]\n"),
            format!("{FILE}:7: [rpm] requires[1] = \"(a or b)\": rich dependencies"),
        ),
        (
            format!("{lic}[rpm]\ncompression = \"bzip2\"\n"),
            format!("{FILE}:7: [rpm] compression = \"bzip2\": expected one of: zstd, xz, gzip"),
        ),
        (
            format!("{lic}[rpm]\nconfig_files = [\"etc/x\"]\n"),
            format!("{FILE}:7: [rpm] config_files[0] = \"etc/x\": a conffile must be an absolute"),
        ),
        (
            format!("{lic}[arch]\ndepends = [\"glibc >= 2\"]\n"),
            format!("{FILE}:7: [arch] depends[0] = \"glibc >= 2\": "),
        ),
        (
            format!("{lic}[arch]\nbackup = [\"/etc/x\"]\n"),
            format!("{FILE}:7: [arch] backup[0] = \"/etc/x\": a path relative to /"),
        ),
        (
            format!("{MIN}[rpm]\ngroup = \"x\"\n"),
            format!("{FILE}:5: [rpm] makes the build write a .rpm: an .rpm needs a license"),
        ),
        (
            format!("{MIN}[output]\nformats = [\"rpm\"]\n"),
            format!("{FILE}:6: [output] formats includes \"rpm\": an .rpm needs a license"),
        ),
        (
            format!("{lic}[output]\nformats = [\"pkg.tar.zst\"]\n").replace("1.0", "1.0-rc1"),
            format!("{FILE}:7: [output] formats includes \"pkg.tar.zst\": [package] version \"1.0-rc1\": a pacman pkgver may not contain '-'"),
        ),
    ];
    for (text, want) in cases {
        let msg = err(&text);
        assert!(msg.starts_with(&want), "{msg}\nwanted: {want}");
    }
}

#[test]
fn rpm_and_arch_tables_add_their_formats_and_reuse_deb_facts() {
    let p = ok(&format!(
        "{MIN}license = \"MIT\"\n[rpm]\nrequires = [\"bash\"]\n[arch]\ndepends = [\"bash>=5\"]\n"
    ));
    assert_eq!(
        p.output.formats,
        [
            OutputFormat::TarGz,
            OutputFormat::Rpm,
            OutputFormat::PkgTarZst
        ]
    );
    let r = p.rpm.expect("rpm");
    assert_eq!(r.meta.requires[0].name, "bash");
    assert_eq!(r.config_files, None);
    assert_eq!(p.arch.expect("arch").meta.depends, ["bash>=5"]);
}
