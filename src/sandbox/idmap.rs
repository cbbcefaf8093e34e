//! Id maps: the single-line self map, and subordinate ranges through newuidmap/newgidmap.

use std::process::Command;

use super::plan::IdMap;
use super::SandboxError;
use crate::sys::{self, Pid};

/// Finds `user`'s (or `uid`'s) first range in an /etc/subuid-style file's contents.
pub fn find_range(contents: &str, user: Option<&str>, uid: u32) -> Option<(u32, u32)> {
    let uid_s = uid.to_string();
    contents.lines().find_map(|line| {
        let mut parts = line.trim().split(':');
        let (owner, start, count) = (parts.next()?, parts.next()?, parts.next()?);
        if owner != uid_s && Some(owner) != user {
            return None;
        }
        let (start, count) = (start.parse().ok()?, count.parse::<u32>().ok()?);
        (count > 0).then_some((start, count))
    })
}

/// The login name of `uid`, from the passwd database.
pub fn user_name(uid: u32) -> Option<String> {
    nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(uid))
        .ok()
        .flatten()
        .map(|u| u.name)
}

pub use crate::fsutil::which;

/// Builds the `--map-auto` map, or says exactly what is missing.
pub fn auto_map(uid: u32, gid: u32) -> Result<IdMap, SandboxError> {
    let name = user_name(uid);
    let who = name.clone().unwrap_or_else(|| uid.to_string());
    for tool in ["newuidmap", "newgidmap"] {
        if which(tool).is_none() {
            return Err(SandboxError::MapAuto(format!(
                "{tool} is not installed (Debian/Ubuntu: apt-get install uidmap; Fedora: dnf install shadow-utils)"
            )));
        }
    }
    let range = |file: &str| -> Result<(u32, u32), SandboxError> {
        let contents = std::fs::read_to_string(file).unwrap_or_default();
        find_range(&contents, name.as_deref(), uid).ok_or_else(|| {
            SandboxError::MapAuto(format!(
                "{file} has no range for {who} (add one, e.g. `usermod --add-subuids 100000-165535 --add-subgids 100000-165535 {who}`)"
            ))
        })
    };
    Ok(IdMap::Auto {
        uid,
        gid,
        subuid: range("/etc/subuid")?,
        subgid: range("/etc/subgid")?,
    })
}

/// Writes the single-line maps of the calling process, which has just unshared its user
/// namespace: setgroups must be denied before gid_map (user_namespaces(7), CVE-2014-8989).
pub fn write_self_map(uid: u32, gid: u32) -> Result<(), SandboxError> {
    Ok(sys::write_single_id_map(uid, gid)?)
}

/// Runs newuidmap/newgidmap for `pid` (run from the parent user namespace).
pub fn run_map_helpers(pid: Pid, map: &IdMap) -> Result<(), String> {
    let IdMap::Auto {
        uid,
        gid,
        subuid,
        subgid,
    } = map
    else {
        return Ok(());
    };
    for (tool, id, (start, count)) in [("newuidmap", uid, subuid), ("newgidmap", gid, subgid)] {
        let args = [
            pid.to_string(),
            "0".into(),
            id.to_string(),
            "1".into(),
            "1".into(),
            start.to_string(),
            count.to_string(),
        ];
        let out = Command::new(tool)
            .args(&args)
            .output()
            .map_err(|e| format!("{tool}: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "{tool} {} failed: {}",
                args.join(" "),
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_range_by_name_or_uid() {
        let f = "alice:100000:65536\n1001:200000:1000\nbob:0:0\n";
        assert_eq!(find_range(f, Some("alice"), 1000), Some((100000, 65536)));
        assert_eq!(find_range(f, Some("carol"), 1001), Some((200000, 1000)));
        assert_eq!(
            find_range(f, Some("bob"), 7),
            None,
            "a zero-length range is no range"
        );
        assert_eq!(find_range(f, None, 5), None);
        assert_eq!(find_range("garbage\n:::\n", Some("x"), 1), None);
    }
}
