//! `sysctl/N/{setting,value}`: kernel settings util-vserver's vsysctl wrote
//! at guest start. On a stock kernel only a few are the guest's own: those
//! of its uts namespace, its ipc namespace, and (when it has one) its
//! network namespace. They are written from inside those namespaces, where
//! `/proc/sys` shows the guest's copy; every other setting is host-wide and
//! refused by name.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use super::parse::{read_single, ConfigError};

/// Which namespace a setting belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SysctlScope {
    Uts,
    Ipc,
    Net,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sysctl {
    /// `sysctl/N/setting`, for messages.
    pub file: PathBuf,
    /// Dotted name, `net.ipv4.ip_forward`.
    pub name: String,
    pub value: String,
    pub scope: SysctlScope,
}

impl Sysctl {
    /// The file under /proc/sys.
    pub fn proc_path(&self) -> PathBuf {
        Path::new("/proc/sys").join(self.name.replace('.', "/"))
    }
}

/// Reads every `sysctl/N/` in name order. A setting that is not the
/// guest's own goes to `refused` (start refuses it), naming the file.
pub fn parse_sysctls(dir: &Path, own_netns: bool, refused: &mut Vec<ConfigError>) -> Result<Vec<Sysctl>, ConfigError> {
    let Ok(entries) = fs::read_dir(dir) else { return Ok(Vec::new()) };
    let mut ids: Vec<PathBuf> = entries.flatten().map(|e| e.path()).filter(|p| p.is_dir()).collect();
    ids.sort();
    let mut out = Vec::new();
    for id in ids {
        let setting_file = id.join("setting");
        let value_file = id.join("value");
        let Some(setting) = read_single(&setting_file)? else {
            return Err(ConfigError::new(&setting_file, 0, "is missing (every sysctl/N/ needs setting and value)"));
        };
        let value = read_value(&value_file)?;
        let name = setting.text.replace('/', ".");
        if !valid_name(&name) {
            return Err(ConfigError::bad_value(
                &setting_file,
                setting.number,
                &setting.text,
                "is not a sysctl name (like net.ipv4.ip_forward)",
            ));
        }
        match classify(&name) {
            Some(SysctlScope::Net) if !own_netns => refused.push(ConfigError::bad_value(
                &setting_file,
                setting.number,
                &setting.text,
                "is a setting of the host's network, which this guest shares; give the guest a network namespace \
                 of its own (spaces/net) or set it on the host",
            )),
            Some(scope) => out.push(Sysctl { file: setting_file, name, value, scope }),
            None => refused.push(ConfigError::bad_value(
                &setting_file,
                setting.number,
                &setting.text,
                "is a host-wide kernel setting, not one of the guest's namespaces (only kernel.hostname, \
                 kernel.domainname, the IPC ones and, with a network namespace of its own, net.* are); set it on the host",
            )),
        }
    }
    Ok(out)
}

/// The value file's first line (util-vserver writes the whole file; a
/// trailing newline changes nothing for the kernel).
fn read_value(file: &Path) -> Result<String, ConfigError> {
    match fs::read_to_string(file) {
        Ok(text) => Ok(text.lines().next().unwrap_or("").trim_end().to_string()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            Err(ConfigError::new(file, 0, "is missing (every sysctl/N/ needs setting and value)"))
        }
        Err(e) => Err(ConfigError::new(file, 0, format!("cannot read: {e}"))),
    }
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.split('.').all(|c| !c.is_empty() && c != ".." && c.chars().all(|ch| ch.is_ascii_alphanumeric() || "_-".contains(ch)))
}

/// The namespace a sysctl belongs to, or None for a host-wide one. Which
/// net.* files exist in a network namespace is the kernel's to say: the
/// per-namespace ones are checked again when they are written.
pub fn classify(name: &str) -> Option<SysctlScope> {
    const IPC: &[&str] = &[
        "kernel.shmmax",
        "kernel.shmall",
        "kernel.shmmni",
        "kernel.shm_rmid_forced",
        "kernel.msgmax",
        "kernel.msgmnb",
        "kernel.msgmni",
        "kernel.sem",
        "kernel.auto_msgmni",
        "kernel.msg_next_id",
        "kernel.sem_next_id",
        "kernel.shm_next_id",
    ];
    match name {
        "kernel.hostname" | "kernel.domainname" => Some(SysctlScope::Uts),
        n if IPC.contains(&n) || n.starts_with("fs.mqueue.") => Some(SysctlScope::Ipc),
        n if n.starts_with("net.") => Some(SysctlScope::Net),
        _ => None,
    }
}

/// Writes the settings from inside the guest's namespaces: the caller is
/// the guest's first process, after it entered them and before `/proc` is
/// remounted (the host's procfs resolves each file in the writer's
/// namespaces) and before its capabilities are dropped.
pub fn apply_in_own_namespaces(settings: &[Sysctl]) -> Result<(), SysctlError> {
    for s in settings {
        let path = s.proc_path();
        let mut f = match fs::OpenOptions::new().write(true).open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let namespace = match s.scope {
                    SysctlScope::Uts => "uts",
                    SysctlScope::Ipc => "ipc",
                    SysctlScope::Net => "network",
                };
                return Err(SysctlError::NotInNamespace { file: s.file.clone(), name: s.name.clone(), namespace });
            }
            Err(err) => return Err(SysctlError::Open { file: s.file.clone(), path, err }),
        };
        f.write_all(format!("{}\n", s.value).as_bytes()).map_err(|err| SysctlError::Write {
            file: s.file.clone(),
            value: s.value.clone(),
            path: path.clone(),
            err,
        })?;
    }
    Ok(())
}

/// A `sysctl/` setting that could not be written in the guest's namespaces;
/// each names the setting's file.
#[derive(Debug, thiserror::Error)]
pub enum SysctlError {
    #[error("{}: {name} is not a setting of the guest's own {namespace} namespace on this kernel", file.display())]
    NotInNamespace { file: PathBuf, name: String, namespace: &'static str },
    #[error("{}: opening {}: {err}", file.display(), path.display())]
    Open { file: PathBuf, path: PathBuf, err: std::io::Error },
    #[error("{}: writing {value:?} to {}: {err}", file.display(), path.display())]
    Write { file: PathBuf, value: String, path: PathBuf, err: std::io::Error },
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::parse::tests::tempdir;

    fn write(d: &Path, id: &str, setting: &str, value: &str) {
        fs::create_dir_all(d.join(id)).unwrap();
        fs::write(d.join(id).join("setting"), format!("{setting}\n")).unwrap();
        fs::write(d.join(id).join("value"), format!("{value}\n")).unwrap();
    }

    #[test]
    fn namespaced_settings_pass_host_wide_ones_are_refused() {
        let d = tempdir();
        write(&d, "0", "kernel.shmmax", "1048576");
        write(&d, "1", "net.ipv4.ip_forward", "1");
        write(&d, "2", "vm.swappiness", "10");
        write(&d, "3", "kernel/domainname", "example.org");
        let mut refused = Vec::new();
        let s = parse_sysctls(&d, false, &mut refused).unwrap();
        assert_eq!(s.iter().map(|s| s.name.as_str()).collect::<Vec<_>>(), ["kernel.shmmax", "kernel.domainname"]);
        assert_eq!(s[0].proc_path(), Path::new("/proc/sys/kernel/shmmax"));
        assert_eq!(refused.len(), 2);
        assert!(refused[0].to_string().contains("net.ipv4.ip_forward") && refused[0].to_string().contains("spaces/net"));
        assert!(refused[1].to_string().contains("vm.swappiness") && refused[1].to_string().contains("host-wide"));
        assert_eq!(refused[1].file, d.join("2/setting"));
        let mut refused = Vec::new();
        assert_eq!(parse_sysctls(&d, true, &mut refused).unwrap().len(), 3);
        write(&d, "4", "kernel..x", "1");
        assert!(parse_sysctls(&d, true, &mut Vec::new()).is_err());
    }
}
