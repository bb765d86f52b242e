//! The slow inputs of the deployment tests, made once and kept outside the repository, in
//! `/var/cache/wtf-monitor-deploy` (or `WTF_DEPLOY_CACHE`). Deleting it makes the next run cold.
//!
//! - `roots/NAME-KEY/`: Debian 12 roots made by `debootstrap --variant=minbase` (about a minute
//!   each). KEY hashes the recipe (suite, packages, mirror, architecture), so a changed recipe
//!   makes a new root instead of using a stale one. A root is made in a `.partial` directory and
//!   renamed once complete, under a lock: concurrent tests wait for one build, and a build that
//!   was killed is never used. Tests only read a root (the container boots it under an in-memory
//!   overlay; the engine imports a copy).
//! - `docker/`: the test engine's data directory, holding the imported base image and the built
//!   stand-ins between runs; each image carries the key of its inputs in a label and is remade
//!   when that changes (see `engine.rs`).

use std::collections::hash_map::DefaultHasher;
use std::fs::File;
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::host;

/// Bump to remake every cached root (e.g. after changing how one is finished).
const RECIPE_VERSION: &str = "1";
const SUITE: &str = "bookworm";
const MIRROR: &str = "http://deb.debian.org/debian";
/// A cold debootstrap takes about a minute here; this is the point where it has surely hung.
const DEBOOTSTRAP_TIMEOUT: Duration = Duration::from_secs(15 * 60);

/// A Debian root: which packages on top of `minbase`.
pub struct Recipe {
    pub name: &'static str,
    pub include: &'static [&'static str],
}

/// The base of the images: what `debian:bookworm-slim` holds, near enough.
pub const SLIM: Recipe = Recipe { name: "bookworm-minbase", include: &[] };
/// A machine to boot: systemd as PID 1, and curl to ask the API as an operator would.
pub const SYSTEMD: Recipe = Recipe { name: "bookworm-systemd", include: &["systemd-sysv", "curl"] };

/// A finished root and the key it was made under.
pub struct Root {
    pub path: PathBuf,
    pub key: String,
}

pub fn dir() -> PathBuf {
    std::env::var_os("WTF_DEPLOY_CACHE")
        .filter(|dir| !dir.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/var/cache/wtf-monitor-deploy"))
}

/// A short, stable hash of `parts` (stable for one Rust release; a new release may change it,
/// which only remakes the cache).
pub fn key<T: Hash + ?Sized>(parts: &T) -> String {
    let mut hasher = DefaultHasher::new();
    parts.hash(&mut hasher);
    format!("{:016x}", hasher.finish())
}

/// An exclusive lock on `name` in the cache, held until dropped or the process dies (flock(2):
/// the kernel releases it, so a killed run leaves no stale lock).
pub struct Lock(#[allow(dead_code)] File);

pub fn lock(name: &str) -> Lock {
    use std::os::fd::AsRawFd;
    // std's File::lock needs Rust 1.89; the crate promises 1.85.
    unsafe extern "C" {
        fn flock(fd: std::ffi::c_int, operation: std::ffi::c_int) -> std::ffi::c_int;
    }
    const LOCK_EX: std::ffi::c_int = 2;

    let path = dir().join(format!("{name}.lock"));
    std::fs::create_dir_all(dir()).unwrap_or_else(|err| panic!("cannot create {}: {err}", dir().display()));
    let file = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .unwrap_or_else(|err| panic!("cannot open {}: {err}", path.display()));
    // SAFETY: flock only reads the descriptor, which `file` keeps open for the call.
    let locked = unsafe { flock(file.as_raw_fd(), LOCK_EX) };
    assert_eq!(locked, 0, "cannot lock {}: {}", path.display(), std::io::Error::last_os_error());
    Lock(file)
}

/// The root made by `recipe`, made now if the cache does not have it.
pub fn root(recipe: &Recipe) -> Root {
    let architecture = std::env::consts::ARCH;
    let key = key(&(RECIPE_VERSION, SUITE, MIRROR, architecture, recipe.include));
    let roots = dir().join("roots");
    let path = roots.join(format!("{}-{key}", recipe.name));
    let _lock = lock(&format!("root-{}", recipe.name));
    if path.join("etc/debian_version").is_file() {
        return Root { path, key };
    }
    std::fs::create_dir_all(&roots).expect("create the roots directory");
    let partial = roots.join(format!("{}-{key}.partial", recipe.name));
    if partial.exists() {
        // Left by a build that was killed; nobody else builds it while we hold the lock.
        std::fs::remove_dir_all(&partial).unwrap_or_else(|err| panic!("cannot remove {}: {err}", partial.display()));
    }
    host::say(&format!("deploy cache: making {} with debootstrap (about a minute, once)", path.display()));
    let mut debootstrap = Command::new("debootstrap");
    debootstrap.args(["--variant=minbase", "--components=main"]);
    if !recipe.include.is_empty() {
        debootstrap.arg(format!("--include={}", recipe.include.join(",")));
    }
    debootstrap.arg(SUITE).arg(&partial).arg(MIRROR).env("DEBIAN_FRONTEND", "noninteractive");
    let made = host::output(&mut debootstrap, DEBOOTSTRAP_TIMEOUT);
    if !made.status.success() {
        let log = std::fs::read_to_string(partial.join("debootstrap/debootstrap.log")).unwrap_or_default();
        let tail: Vec<&str> = log.lines().rev().take(30).collect::<Vec<_>>().into_iter().rev().collect();
        panic!(
            "debootstrap of {} failed ({}); it needs the mirror {MIRROR}:\n{}\n--- debootstrap.log (end) ---\n{}",
            recipe.name,
            made.status,
            host::printed(&made),
            tail.join("\n")
        );
    }
    finish(&partial);
    std::fs::rename(&partial, &path).unwrap_or_else(|err| panic!("cannot rename {}: {err}", partial.display()));
    Root { path, key }
}

/// What every root gets after debootstrap: no package cache (the .debs are in the archives
/// directory, tens of MB the images do not need).
fn finish(root: &Path) {
    if let Ok(entries) = std::fs::read_dir(root.join("var/cache/apt/archives")) {
        for entry in entries.flatten() {
            if entry.path().extension().is_some_and(|extension| extension == "deb") {
                let _ = std::fs::remove_file(entry.path());
            }
        }
    }
}
