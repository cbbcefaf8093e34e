//! Recipe loading and sources on disk: path checks, sha256, safe extraction, tree hash.

use std::fs;
use std::io::Write;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::{Path, PathBuf};

use nsroot::error::{exit_code_of, EXIT_INPUT};
use nsroot::recipe::{Recipe, RecipeError, Source};

const PACKAGE: &str = "[package]\nname = \"hello\"\nversion = \"1.0\"\nsummary = \"Say hello\"\n";

/// The one-line message as `nsroot: {:#}` prints it, after checking it exits 2.
fn message(e: RecipeError) -> String {
    let e = anyhow::Error::from(e);
    assert_eq!(exit_code_of(e.as_ref()), EXIT_INPUT, "{e:#}");
    let msg = format!("{e:#}");
    assert!(!msg.contains('\n'), "not one line: {msg}");
    msg
}

/// A recipe directory with `recipe.toml` = PACKAGE + `rest`.
fn recipe_dir(tmp: &Path, rest: &str) -> PathBuf {
    let dir = tmp.join("r");
    fs::create_dir_all(&dir).unwrap();
    fs::write(dir.join("recipe.toml"), format!("{PACKAGE}{rest}")).unwrap();
    dir.join("recipe.toml")
}

fn sha256(path: &Path) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(fs::read(path).unwrap()))
}

/// A tar member with a raw name (the tar crate refuses `..` in `set_path`).
fn raw_entry(
    b: &mut tar::Builder<Vec<u8>>,
    name: &[u8],
    kind: tar::EntryType,
    link: &[u8],
    data: &[u8],
) {
    let mut h = tar::Header::new_ustar();
    h.as_old_mut().name[..name.len()].copy_from_slice(name);
    h.as_old_mut().linkname[..link.len()].copy_from_slice(link);
    h.set_entry_type(kind);
    h.set_mode(0o644);
    h.set_mtime(1_600_000_000);
    h.set_size(data.len() as u64);
    h.set_cksum();
    b.append(&h, data).unwrap();
}

fn write_tar(path: &Path, build: impl FnOnce(&mut tar::Builder<Vec<u8>>)) -> String {
    let mut b = tar::Builder::new(Vec::new());
    build(&mut b);
    fs::write(path, b.into_inner().unwrap()).unwrap();
    sha256(path)
}

fn archive_recipe(tmp: &Path, name: &str, sha: &str, strip: u32) -> PathBuf {
    recipe_dir(
        tmp,
        &format!(
            "[source]\narchive = \"{name}\"\nsha256 = \"{sha}\"\nstrip_components = {strip}\n"
        ),
    )
}

#[test]
fn load_keeps_canonical_dir_and_recipe_hash() {
    let tmp = tempfile::tempdir().unwrap();
    let file = recipe_dir(tmp.path(), "[source]\npath = \"src\"\n");
    fs::create_dir(file.parent().unwrap().join("src")).unwrap();
    let r = Recipe::load(&file).unwrap();
    let dir = file.parent().unwrap().canonicalize().unwrap();
    assert_eq!(r.recipe_dir, dir);
    assert_eq!(r.path, dir.join("recipe.toml"));
    assert_eq!(r.file, file);
    assert_eq!(r.recipe_sha256, sha256(&file));
    assert_eq!(
        r.source,
        Source::Path {
            dir: dir.join("src")
        }
    );
    let scratch = tempfile::tempdir().unwrap();
    assert_eq!(
        r.source.materialize(scratch.path()).unwrap(),
        dir.join("src")
    );
    assert_eq!(
        fs::read_dir(scratch.path()).unwrap().count(),
        0,
        "a path source is not copied"
    );
}

#[test]
fn missing_recipe_file_is_an_input_error() {
    let msg = message(Recipe::load(Path::new("/nonexistent/recipe.toml")).unwrap_err());
    assert!(
        msg.starts_with("/nonexistent/recipe.toml: cannot read the recipe: "),
        "{msg}"
    );
}

#[test]
fn missing_source_dir_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let file = recipe_dir(tmp.path(), "[source]\npath = \"src\"\n");
    let msg = message(Recipe::load(&file).unwrap_err());
    assert!(
        msg.starts_with(&format!("{}:6: [source] path = \"src\": ", file.display())),
        "{msg}"
    );
    assert!(msg.ends_with("/src does not exist"), "{msg}");
}

#[test]
fn missing_source_archive_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let file = archive_recipe(tmp.path(), "x.tar.gz", &"0".repeat(64), 1);
    let msg = message(Recipe::load(&file).unwrap_err());
    assert!(
        msg.contains(":6: [source] archive = \"x.tar.gz\": ") && msg.ends_with("does not exist"),
        "{msg}"
    );
}

#[test]
fn source_symlink_escaping_the_recipe_dir_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let file = recipe_dir(tmp.path(), "[source]\npath = \"src\"\n");
    symlink("/etc", file.parent().unwrap().join("src")).unwrap();
    let msg = message(Recipe::load(&file).unwrap_err());
    assert!(
        msg.contains(
            ":6: [source] path = \"src\": resolves to /etc, outside the recipe's directory"
        ),
        "{msg}"
    );
}

#[test]
fn source_symlink_inside_the_recipe_dir_is_accepted() {
    let tmp = tempfile::tempdir().unwrap();
    let file = recipe_dir(tmp.path(), "[source]\npath = \"src\"\n");
    let dir = file.parent().unwrap();
    fs::create_dir(dir.join("real")).unwrap();
    symlink("real", dir.join("src")).unwrap();
    let r = Recipe::load(&file).unwrap();
    assert_eq!(
        r.source,
        Source::Path {
            dir: dir.canonicalize().unwrap().join("real")
        }
    );
}

#[test]
fn source_of_the_wrong_type_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let file = recipe_dir(tmp.path(), "[source]\npath = \"recipe.toml\"\n");
    assert!(message(Recipe::load(&file).unwrap_err()).ends_with(": not a directory"));
    let file = archive_recipe(tmp.path(), ".", &"0".repeat(64), 0);
    assert!(message(Recipe::load(&file).unwrap_err()).ends_with(": not a regular file"));
}

#[test]
fn sha256_mismatch_names_both_hashes() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("r");
    fs::create_dir(&dir).unwrap();
    let actual = write_tar(&dir.join("x.tar"), |b| {
        raw_entry(b, b"p/a", tar::EntryType::Regular, b"", b"hi")
    });
    let wrong = "ab".repeat(32);
    let file = archive_recipe(tmp.path(), "x.tar", &wrong, 1);
    let r = Recipe::load(&file).unwrap();
    let scratch = tempfile::tempdir().unwrap();
    let msg = message(r.source.materialize(scratch.path()).unwrap_err());
    assert_eq!(
        msg,
        format!(
            "source archive {}: sha256 mismatch: the recipe says {wrong}, the file has {actual}",
            dir.canonicalize().unwrap().join("x.tar").display()
        )
    );
    assert!(
        !scratch.path().join("src").exists(),
        "nothing is extracted on a mismatch"
    );
}

/// Builds a tarball of `pkg-1/...` with the system tar and `compress`, then extracts it.
fn extract_with(compress: &str, ext: &str) {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("r");
    let tree = tmp.path().join("t/pkg-1");
    fs::create_dir_all(tree.join("sub")).unwrap();
    fs::create_dir_all(&dir).unwrap();
    fs::write(tree.join("sub/run.sh"), "#!/bin/sh\n").unwrap();
    fs::set_permissions(tree.join("sub/run.sh"), fs::Permissions::from_mode(0o755)).unwrap();
    fs::write(tree.join("data"), "data\n").unwrap();
    symlink("sub/run.sh", tree.join("link")).unwrap();
    let name = format!("x.{ext}");
    let out = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!(
            "tar --sort=name --mtime=@1600000000 -C '{}' -cf - pkg-1 {compress} > '{}'",
            tmp.path().join("t").display(),
            dir.join(&name).display()
        ))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let file = archive_recipe(tmp.path(), &name, &sha256(&dir.join(&name)), 1);
    let r = Recipe::load(&file).unwrap();
    let scratch = tempfile::tempdir().unwrap();
    let src = r.source.materialize(scratch.path()).unwrap();
    assert_eq!(src, scratch.path().join("src"));
    assert_eq!(fs::read_to_string(src.join("data")).unwrap(), "data\n");
    assert_eq!(
        fs::metadata(src.join("sub/run.sh"))
            .unwrap()
            .permissions()
            .mode()
            & 0o777,
        0o755
    );
    assert_eq!(
        fs::read_link(src.join("link")).unwrap(),
        Path::new("sub/run.sh")
    );
    assert!(!src.join("pkg-1").exists());
    assert_eq!(r.source_date_epoch(&src).unwrap(), 1_600_000_000);
}

#[test]
fn extracts_plain_tar_with_strip_components() {
    extract_with("", "tar");
}

#[test]
fn extracts_gzip_tar() {
    extract_with("| gzip -n", "tar.gz");
}

#[test]
fn extracts_xz_tar() {
    if crate::util::missing_tool("xz") {
        return;
    }
    extract_with("| xz", "tar.xz");
}

#[test]
fn extracts_zstd_tar() {
    if crate::util::missing_tool("zstd") {
        return;
    }
    extract_with("| zstd -q", "tar.zst");
}

/// Extracts a hand-made tar and returns the error message.
fn extract_error(
    build: impl FnOnce(&mut tar::Builder<Vec<u8>>),
    strip: u32,
) -> (String, tempfile::TempDir) {
    let tmp = tempfile::tempdir().unwrap();
    fs::create_dir(tmp.path().join("r")).unwrap();
    let sha = write_tar(&tmp.path().join("r/x.tar"), build);
    let r = Recipe::load(&archive_recipe(tmp.path(), "x.tar", &sha, strip)).unwrap();
    let scratch = tmp.path().join("scratch");
    fs::create_dir(&scratch).unwrap();
    (message(r.source.materialize(&scratch).unwrap_err()), tmp)
}

#[test]
fn extraction_refuses_absolute_paths() {
    let (msg, _t) = extract_error(
        |b| raw_entry(b, b"/tmp/evil", tar::EntryType::Regular, b"", b"x"),
        0,
    );
    assert!(
        msg.ends_with("entry \"/tmp/evil\" has an absolute path"),
        "{msg}"
    );
}

#[test]
fn extraction_refuses_parent_components() {
    let (msg, tmp) = extract_error(
        |b| raw_entry(b, b"p/../../evil", tar::EntryType::Regular, b"", b"x"),
        1,
    );
    assert!(
        msg.ends_with("entry \"p/../../evil\" contains \"..\""),
        "{msg}"
    );
    assert!(!tmp.path().join("evil").exists());
}

#[test]
fn extraction_refuses_escaping_symlinks() {
    let (msg, _t) = extract_error(
        |b| raw_entry(b, b"p/l", tar::EntryType::Symlink, b"../../etc", b""),
        1,
    );
    assert!(
        msg.contains("symlink \"l\" -> \"../../etc\" points outside the tree"),
        "{msg}"
    );
    let (msg, _t) = extract_error(
        |b| raw_entry(b, b"p/l", tar::EntryType::Symlink, b"/etc/passwd", b""),
        1,
    );
    assert!(msg.contains("points outside the tree"), "{msg}");
}

#[test]
fn extraction_never_writes_through_a_symlink() {
    // `l -> .` stays inside, but `l/../x` written through it would land outside.
    let (msg, tmp) = extract_error(
        |b| {
            raw_entry(b, b"l", tar::EntryType::Symlink, b".", b"");
            raw_entry(b, b"l/x", tar::EntryType::Regular, b"", b"x");
        },
        0,
    );
    assert!(
        msg.ends_with("entry \"l/x\" would be written through a link or file"),
        "{msg}"
    );
    assert!(!tmp.path().join("scratch/src/x").exists());
}

#[test]
fn extraction_refuses_device_nodes() {
    let (msg, _t) = extract_error(
        |b| raw_entry(b, b"p/dev", tar::EntryType::Char, b"", b""),
        1,
    );
    assert!(
        msg.contains("entry \"dev\" has an unsupported type"),
        "{msg}"
    );
}

#[test]
fn extraction_keeps_hard_links_inside() {
    let tmp = tempfile::tempdir().unwrap();
    fs::create_dir(tmp.path().join("r")).unwrap();
    let sha = write_tar(&tmp.path().join("r/x.tar"), |b| {
        raw_entry(b, b"p/a", tar::EntryType::Regular, b"", b"hi");
        raw_entry(b, b"p/b", tar::EntryType::Link, b"p/a", b"");
    });
    let r = Recipe::load(&archive_recipe(tmp.path(), "x.tar", &sha, 1)).unwrap();
    let src = r.source.materialize(tmp.path()).unwrap();
    assert_eq!(fs::read_to_string(src.join("b")).unwrap(), "hi");
    let (msg, _t) = extract_error(
        |b| raw_entry(b, b"p/b", tar::EntryType::Link, b"/etc/passwd", b""),
        1,
    );
    assert!(msg.contains("absolute path"), "{msg}");
}

#[test]
fn source_date_epoch_is_the_newest_file_mtime_and_recipe_value_wins() {
    let tmp = tempfile::tempdir().unwrap();
    let file = recipe_dir(tmp.path(), "[source]\npath = \"src\"\n");
    let src = file.parent().unwrap().join("src");
    fs::create_dir_all(src.join("d")).unwrap();
    fs::write(src.join("a"), "a").unwrap();
    fs::write(src.join("d/b"), "b").unwrap();
    symlink("/etc/hostname", src.join("l")).unwrap();
    let set = |p: &Path, t: i64| {
        let ft = filetime::FileTime::from_unix_time(t, 0);
        filetime::set_symlink_file_times(p, ft, ft).unwrap();
    };
    set(&src.join("a"), 1_000);
    set(&src.join("d/b"), 3_000);
    set(&src.join("l"), 2_000);
    set(&src.join("d"), 9_000); // directories do not count
    let r = Recipe::load(&file).unwrap();
    assert_eq!(r.source_date_epoch(&src).unwrap(), 3_000);
    set(&src.join("l"), 4_000); // the link itself, not its target
    assert_eq!(r.source_date_epoch(&src).unwrap(), 4_000);
    fs::write(
        &file,
        format!("{PACKAGE}source_date_epoch = 42\n[source]\npath = \"src\"\n"),
    )
    .unwrap();
    assert_eq!(
        Recipe::load(&file)
            .unwrap()
            .source_date_epoch(&src)
            .unwrap(),
        42
    );
}

#[test]
fn source_hash_covers_paths_modes_contents_and_links() {
    let tmp = tempfile::tempdir().unwrap();
    let file = recipe_dir(tmp.path(), "");
    let r = Recipe::load(&file).unwrap();
    let src = tmp.path().join("src");
    fs::create_dir_all(src.join("d")).unwrap();
    fs::write(src.join("d/f"), "one").unwrap();
    symlink("d/f", src.join("l")).unwrap();
    let h0 = r.source_hash(&src).unwrap();
    assert_eq!(h0.len(), 64);
    assert_eq!(r.source_hash(&src).unwrap(), h0, "stable");

    // The same tree elsewhere, with other mtimes, hashes the same.
    let copy = tmp.path().join("copy");
    fs::create_dir_all(copy.join("d")).unwrap();
    fs::write(copy.join("d/f"), "one").unwrap();
    symlink("d/f", copy.join("l")).unwrap();
    assert_eq!(r.source_hash(&copy).unwrap(), h0);

    let mut seen = vec![h0];
    let mut check = |what: &str| {
        let h = r.source_hash(&src).unwrap();
        assert!(!seen.contains(&h), "hash unchanged after {what}");
        seen.push(h);
    };
    fs::write(src.join("d/f"), "two").unwrap();
    check("content");
    fs::set_permissions(src.join("d/f"), fs::Permissions::from_mode(0o600)).unwrap();
    check("mode");
    fs::remove_file(src.join("l")).unwrap();
    symlink("d", src.join("l")).unwrap();
    check("link target");
    fs::rename(src.join("d/f"), src.join("d/g")).unwrap();
    check("rename");
    fs::File::create(src.join("empty"))
        .unwrap()
        .flush()
        .unwrap();
    check("new file");
}

/// Every recipe under recipes/, by directory.
fn bundled() -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = fs::read_dir(crate::util::repo().join("recipes"))
        .unwrap()
        .map(|e| e.unwrap().path().join("recipe.toml"))
        .filter(|p| p.is_file())
        .collect();
    v.sort();
    v
}

#[test]
fn bundled_recipes_load_and_materialize() {
    let recipes = bundled();
    let names: Vec<String> = recipes
        .iter()
        .map(|p| {
            p.parent()
                .unwrap()
                .file_name()
                .unwrap()
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    for want in ["hello", "scripts", "suidtool", "tarball"] {
        assert!(
            names.iter().any(|n| n == want),
            "recipes/{want} is missing: {names:?}"
        );
    }
    for file in recipes {
        let r = Recipe::load(&file).unwrap_or_else(|e| panic!("{e:#}", e = anyhow::Error::from(e)));
        let scratch = tempfile::tempdir().unwrap();
        let src = r.source.materialize(scratch.path()).unwrap();
        assert!(src.is_dir());
        assert!(
            !r.install.steps.is_empty(),
            "{}: installs nothing",
            file.display()
        );
        r.source_hash(&src).unwrap();
        assert!(r.source_date_epoch(&src).unwrap() > 0, "{}", file.display());
    }
}

#[test]
fn bundled_tarball_recipe_unpacks_its_checked_archive() {
    let r = Recipe::load(&crate::util::repo().join("recipes/tarball/recipe.toml")).unwrap();
    assert!(
        matches!(
            r.source,
            Source::Archive {
                strip_components: 1,
                ..
            }
        ),
        "{:?}",
        r.source
    );
    let scratch = tempfile::tempdir().unwrap();
    let src = r.source.materialize(scratch.path()).unwrap();
    for f in ["Makefile", "README", "tinywc.c"] {
        assert!(
            src.join(f).is_file(),
            "{f} missing after strip_components = 1"
        );
    }
    assert_eq!(r.source_date_epoch(&src).unwrap(), 1_700_000_000);
    assert_eq!(
        r.output_stem(),
        format!("tinywc_1.2-1_{}", nsroot::package::host_arch())
    );
}

#[test]
fn deb_maintainer_scripts_must_exist_inside_and_start_with_a_shebang() {
    let tmp = tempfile::tempdir().unwrap();
    let file = recipe_dir(
        tmp.path(),
        "[deb]\npostinst = \"debian/postinst\"\nmaintainer = \"A <a@example.org>\"\n",
    );
    let dir = file.parent().unwrap();
    let msg = message(Recipe::load(&file).unwrap_err());
    assert!(
        msg.contains(":6: [deb] postinst = \"debian/postinst\": ")
            && msg.ends_with("does not exist"),
        "{msg}"
    );

    fs::create_dir(dir.join("debian")).unwrap();
    fs::write(dir.join("debian/postinst"), "echo hi\n").unwrap();
    let msg = message(Recipe::load(&file).unwrap_err());
    assert!(
        msg.ends_with("a maintainer script must start with \"#!\" (e.g. #!/bin/sh)"),
        "{msg}"
    );

    fs::write(dir.join("debian/postinst"), "#!/bin/sh\n").unwrap();
    let r = Recipe::load(&file).unwrap();
    let scripts = &r.deb.unwrap().scripts;
    assert_eq!(
        scripts,
        &[(
            "postinst",
            dir.canonicalize().unwrap().join("debian/postinst")
        )]
    );

    fs::remove_file(dir.join("debian/postinst")).unwrap();
    symlink("/bin/sh", dir.join("debian/postinst")).unwrap();
    let msg = message(Recipe::load(&file).unwrap_err());
    assert!(msg.contains("outside the recipe's directory"), "{msg}");

    fs::write(
        &file,
        format!("{PACKAGE}[deb]\nprerm = \"/bin/true\"\nmaintainer = \"A <a@example.org>\"\n"),
    )
    .unwrap();
    let msg = message(Recipe::load(&file).unwrap_err());
    assert!(
        msg.ends_with(
            "[deb] prerm = \"/bin/true\": must be a path relative to the recipe's directory"
        ),
        "{msg}"
    );
}

#[test]
fn env_may_not_set_what_the_sandbox_sets() {
    let tmp = tempfile::tempdir().unwrap();
    for key in ["LANG", "TMPDIR", "SHELL", "USER", "LOGNAME", "TERM", "PATH"] {
        let file = recipe_dir(
            tmp.path(),
            &format!("[build]\nsteps = [\"true\"]\nenv.CFLAGS = \"-O2\"\nenv.{key} = \"x\"\n"),
        );
        let msg = message(Recipe::load(&file).unwrap_err());
        assert!(
            msg.starts_with(&format!(
                "{}:8: [build] env: \"{key}\" is set by nsroot",
                file.display()
            )),
            "{msg}"
        );
    }
}
