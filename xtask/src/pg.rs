//! A throwaway PostgreSQL server for the tests: initdb into a temporary folder, a free loopback
//! port, trust authentication, stopped (and removed) when dropped — also when the tests fail.
//! PostgreSQL refuses to run as root, so as root it runs as the `postgres` user.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context as _, Result, bail};

use crate::ci::say;

/// A running server.
pub(crate) struct PgServer {
    dir: PathBuf,
    bin: PathBuf,
    as_postgres: bool,
    /// `postgres://acgs@127.0.0.1:PORT/postgres`.
    pub url: String,
}

/// Where `initdb` and `pg_ctl` are: on PATH, or in Debian's versioned folder.
fn find_bin_dir() -> Option<PathBuf> {
    if let Ok(out) = Command::new("sh")
        .args(["-c", "command -v pg_ctl"])
        .output()
    {
        let path = String::from_utf8_lossy(&out.stdout).trim().to_owned();
        if out.status.success() && !path.is_empty() {
            return Path::new(&path).parent().map(Path::to_path_buf);
        }
    }
    let mut versions: Vec<PathBuf> = fs_err::read_dir("/usr/lib/postgresql")
        .ok()?
        .flatten()
        .map(|e| e.path().join("bin"))
        .filter(|p| p.join("pg_ctl").exists())
        .collect();
    versions.sort();
    versions.pop()
}

/// Whether PostgreSQL's server binaries can be found.
pub(crate) fn installed() -> bool {
    find_bin_dir().is_some()
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

fn free_port() -> Result<u16> {
    let listener = TcpListener::bind("127.0.0.1:0").context("finding a free port")?;
    Ok(listener.local_addr()?.port())
}

impl PgServer {
    /// Start a server; fails loudly when PostgreSQL is not installed.
    pub(crate) fn start() -> Result<Self> {
        let bin = find_bin_dir()
            .context("PostgreSQL binaries (initdb, pg_ctl) were not found; `.ci/run` installs them (apt-get install postgresql)")?;
        let dir = std::env::temp_dir().join(format!("acgs-pg-{}", std::process::id()));
        let _ = fs_err::remove_dir_all(&dir);
        fs_err::create_dir_all(&dir)?;
        let as_postgres = is_root();
        if as_postgres {
            let status = Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(&dir)
                .status()?;
            if !status.success() {
                bail!("could not hand {} to the postgres user", dir.display());
            }
        }
        let port = free_port()?;
        let server = Self {
            url: format!("postgres://acgs@127.0.0.1:{port}/postgres"),
            dir,
            bin,
            as_postgres,
        };
        let data = server.dir.join("data");
        let log = server.dir.join("log");
        server.run(&format!(
            "{} -D {} -U acgs --auth=trust -E UTF8 >/dev/null",
            server.bin.join("initdb").display(),
            data.display()
        ))?;
        server.run(&format!(
            "{} -D {} -o '-c listen_addresses=127.0.0.1 -c port={port} -k {} -c max_connections=300 -c fsync=on' -l {} -w start >/dev/null",
            server.bin.join("pg_ctl").display(),
            data.display(),
            server.dir.display(),
            log.display()
        ))?;
        say(&format!(
            "postgres: a throwaway server listens on 127.0.0.1:{port}"
        ));
        Ok(server)
    }

    fn run(&self, script: &str) -> Result<()> {
        let status = if self.as_postgres {
            Command::new("su")
                .args(["postgres", "-s", "/bin/sh", "-c", script])
                .status()
        } else {
            Command::new("sh").args(["-c", script]).status()
        }
        .context("running a PostgreSQL command")?;
        if !status.success() {
            bail!("`{script}` failed ({status})");
        }
        Ok(())
    }
}

impl Drop for PgServer {
    fn drop(&mut self) {
        let stop = format!(
            "{} -D {} -m fast stop >/dev/null",
            self.bin.join("pg_ctl").display(),
            self.dir.join("data").display()
        );
        if self.run(&stop).is_err() {
            say("postgres: the throwaway server did not stop cleanly");
        }
        let _ = fs_err::remove_dir_all(&self.dir);
    }
}
