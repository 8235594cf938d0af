//! New SSH host keys for a guest made from another machine's tree (a clone,
//! a template archive): otherwise every such guest would answer with the
//! same host key and could impersonate the others. The host's ssh-keygen
//! makes a key of each type the tree has, in a private temporary directory,
//! and the keys are installed by descriptor with the old files' owner and
//! mode. (Removing the keys instead would leave Debian's sshd unable to
//! start: nothing in Debian makes missing host keys at boot.)

use std::path::{Path, PathBuf};
use std::process::Command;

use super::error::{BuildError, Doing};
use super::guestfs::{GuestTree, Owner};

pub fn renew_host_keys(tree: &GuestTree, hostname: &str, notes: &mut Vec<String>) -> Result<(), BuildError> {
    let dir = Path::new("etc/ssh");
    let kinds: Vec<String> = tree
        .list(dir)?
        .into_iter()
        .filter_map(|n| n.into_string().ok())
        .filter_map(|n| n.strip_prefix("ssh_host_").and_then(|r| r.strip_suffix("_key")).map(str::to_string))
        .filter(|k| !k.is_empty() && k.chars().all(|c| c.is_ascii_alphanumeric()))
        .collect();
    if kinds.is_empty() {
        return Ok(());
    }
    let tmp = PrivateDir::new()?;
    for kind in kinds {
        let key = dir.join(format!("ssh_host_{kind}_key"));
        let public = dir.join(format!("ssh_host_{kind}_key.pub"));
        let made = tmp.0.join(format!("ssh_host_{kind}_key"));
        let out =
            Command::new("ssh-keygen").args(["-q", "-t", &kind, "-N", "", "-C", &format!("root@{hostname}"), "-f"]).arg(&made).output();
        let out = match out {
            Ok(o) => o,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(BuildError::NoSshKeygen),
            Err(e) => return Err(e).doing(|| "running ssh-keygen".to_string()),
        };
        if !out.status.success() {
            tree.remove(&key)?;
            tree.remove(&public)?;
            notes.push(format!(
                "SSH host key type {kind:?} of the source removed, not renewed (ssh-keygen: {})",
                String::from_utf8_lossy(&out.stderr).trim()
            ));
            continue;
        }
        install(tree, &key, &made, Owner::ROOT_SECRET)?;
        install(tree, &public, &made.with_extension("pub"), Owner::ROOT_FILE)?;
    }
    Ok(())
}

/// Writes `from` (a host file) to `rel`, with the owner and mode the old
/// file had, if any.
fn install(tree: &GuestTree, rel: &Path, from: &Path, default: Owner) -> Result<(), BuildError> {
    let content = std::fs::read(from).doing(|| format!("reading {}", from.display()))?;
    let owner = match tree.stat(rel)? {
        Some(st) if st.st_mode & libc::S_IFMT == libc::S_IFREG => Owner { uid: st.st_uid, gid: st.st_gid, mode: st.st_mode & 0o777 },
        _ => default,
    };
    tree.write(rel, &content, owner)?;
    Ok(())
}

/// A 0700 temporary directory, removed on drop.
struct PrivateDir(PathBuf);

impl PrivateDir {
    fn new() -> Result<PrivateDir, BuildError> {
        let template = std::env::temp_dir().join("vserver-sshkeys.XXXXXX");
        let dir = nix::unistd::mkdtemp(&template)
            .map_err(std::io::Error::from)
            .doing(|| "making a private directory for SSH keys".to_string())?;
        Ok(PrivateDir(dir))
    }
}

impl Drop for PrivateDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
