//! The kernel's symbol table (`<proc>/kallsyms`) as evidence of what a
//! described (not live) host was built with: a syscall or a cgroup-BPF hook
//! that the kernel has is a function in its table.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

pub struct Symbols {
    path: PathBuf,
    /// None when the table could not be read.
    names: Option<HashSet<String>>,
}

pub enum Evidence {
    Present,
    Absent,
    /// The table is unreadable: nothing can be said.
    Unknown(String),
}

impl Symbols {
    pub fn read(path: &Path) -> Symbols {
        let names = std::fs::read_to_string(path)
            .ok()
            .map(|text| text.lines().filter_map(|l| l.split_whitespace().nth(2)).map(str::to_string).collect());
        Symbols { path: path.to_path_buf(), names }
    }

    /// Is the function `name` in the table?
    pub fn function(&self, name: &str) -> Evidence {
        self.find(|s| s == name)
    }

    /// Is the entry point of syscall `name` in the table (`sys_NAME`,
    /// `__x64_sys_NAME`, `__arm64_sys_NAME`, ...)?
    pub fn syscall(&self, name: &str) -> Evidence {
        let plain = format!("sys_{name}");
        let suffix = format!("_sys_{name}");
        self.find(|s| s == plain || s.ends_with(&suffix))
    }

    fn find(&self, matches: impl Fn(&str) -> bool) -> Evidence {
        match &self.names {
            None => Evidence::Unknown(format!("{} is not readable", self.path.display())),
            Some(names) if names.iter().any(|s| matches(s)) => Evidence::Present,
            Some(_) => Evidence::Absent,
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}
