//! The server's bulk jobs (`$export`, `$import`): kept in the memory of the serving process
//! only. A restart forgets every job (their files stay in the bulk directory until removed by
//! hand); an import of server-side files resumes after a crash from its checkpoint file when
//! it is asked for again, as the command's does. Each job runs on a thread of tokio's blocking
//! pool (its SQLite statements never hold an async worker) and writes into its own directory
//! `<bulk dir>/<job id>/`.
//!
//! **Expiry.** A finished job (done or failed) is kept for the retention time
//! (`ServerConfig::bulk_retention`, default 24 h, `serve --bulk-retention-hours`) from when it
//! finished: its manifest states the instant (`Expires` on the status answer and the
//! downloads). After it, its directory is removed and the job is only a tombstone
//! ([`State::Expired`]: its status answers 404 saying it expired) — by the sweeper
//! ([`Jobs::expire`]) or by the first access after the instant, whichever comes first. A
//! tombstone is forgotten one more retention time later. Times are the server's clock
//! (`AppState::now`), so tests move it rather than wait.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use serde_json::Value;
use time::OffsetDateTime;
use uuid::Uuid;

use super::{Cancel, Progress};

/// Jobs running at once; a further kick-off is answered 429.
pub(crate) const MAX_RUNNING: usize = 4;

/// What a job is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Export,
    Import,
}

/// Where a job is.
#[derive(Debug, Clone)]
pub(crate) enum State {
    Running,
    /// The completion manifest and the files it names (name → path), downloadable.
    Done {
        manifest: Value,
        files: Vec<String>,
    },
    /// The job stopped on an error: the HTTP status to answer and why.
    Failed {
        status: u16,
        message: String,
    },
    /// The retention time ran out at `at`: the files are gone.
    Expired {
        at: OffsetDateTime,
    },
}

/// One job.
pub(crate) struct Job {
    pub id: Uuid,
    pub kind: Kind,
    /// The user who asked: only they see the status and the files.
    pub owner: Uuid,
    /// The kick-off request's URL (the manifest's `request`).
    pub request: String,
    pub transaction_time: OffsetDateTime,
    pub dir: PathBuf,
    pub cancel: Cancel,
    /// The checkpoint of an import of server-side files (one run per checkpoint at a time).
    pub checkpoint: Option<PathBuf>,
    pub state: Mutex<State>,
    /// When the job stopped running (done or failed).
    finished_at: Mutex<Option<OffsetDateTime>>,
    progress: Mutex<(String, u64, u64)>,
}

impl Job {
    pub fn state(&self) -> State {
        self.state.lock().map(|s| s.clone()).unwrap_or(State::Failed { status: 500, message: "poisoned".into() })
    }

    fn set(&self, state: State) {
        if let Ok(mut s) = self.state.lock() {
            *s = state;
        }
    }

    /// The job stopped running at `now` with `state` (done or failed): its retention begins.
    pub fn finish(&self, state: State, now: OffsetDateTime) {
        // the state first: a job has an expiry only once it is done or failed, so a sweep
        // in between cannot expire it and then see it overwritten by `Done`
        if let Ok(mut s) = self.state.lock() {
            *s = state;
        }
        if let Ok(mut f) = self.finished_at.lock() {
            *f = Some(now);
        }
    }

    /// When a finished job's files expire (`None` while it runs).
    pub fn expires_at(&self, retention: time::Duration) -> Option<OffsetDateTime> {
        let finished = self.finished_at.lock().ok().and_then(|f| *f)?;
        Some(finished + retention)
    }

    /// How far the job is, for `X-Progress`: the part (a file's type) and its bytes or lines.
    pub fn progress(&self) -> String {
        let Ok(p) = self.progress.lock() else { return String::new() };
        let (kind, at, size) = (&p.0, p.1, p.2);
        match (self.kind, kind.is_empty()) {
            (_, true) => "starting".into(),
            (Kind::Export, _) => format!("writing {kind}: {at} resources"),
            (Kind::Import, _) => format!("importing {kind}: {}% of the file", at.min(size) * 100 / size.max(1)),
        }
    }

    /// The job's progress as a [`Progress`] for the pipelines.
    pub fn reporter(self: &Arc<Self>) -> Arc<dyn Progress> {
        Arc::new(Reporter(self.clone()))
    }
}

struct Reporter(Arc<Job>);

impl Progress for Reporter {
    fn start(&self, kind: &str, size: u64) {
        if let Ok(mut p) = self.0.progress.lock() {
            *p = (kind.to_owned(), 0, size);
        }
    }
    fn at(&self, position: u64) {
        if let Ok(mut p) = self.0.progress.lock() {
            p.1 = position;
        }
    }
}

/// Every job of this process.
pub(crate) struct Jobs {
    root: PathBuf,
    jobs: Mutex<HashMap<Uuid, Arc<Job>>>,
    /// How long a finished job's files are kept.
    retention: time::Duration,
}

/// Why a job could not be started.
#[derive(Debug)]
pub(crate) enum Refusal {
    Busy,
    SameCheckpoint,
    Io(String),
}

impl Jobs {
    /// Jobs writing under `root` (`None`: a directory of this process under the system's
    /// temporary directory), a finished one kept for `retention`.
    pub fn new(root: Option<PathBuf>, retention: std::time::Duration) -> Jobs {
        let root = root.unwrap_or_else(|| {
            std::env::temp_dir().join(format!("tiercare-bulk-{}-{}", std::process::id(), tiercare_store::new_id()))
        });
        let retention = time::Duration::try_from(retention).unwrap_or(time::Duration::MAX);
        Jobs { root, jobs: Mutex::new(HashMap::new()), retention }
    }

    /// How long a finished job's files are kept.
    pub fn retention(&self) -> time::Duration {
        self.retention
    }

    /// Expire `job` if its retention ran out by `now` (its files removed, a tombstone left);
    /// answers whether it did now.
    fn expire_one(&self, job: &Job, now: OffsetDateTime) -> bool {
        let Some(at) = job.expires_at(self.retention) else { return false };
        if now < at || matches!(job.state(), State::Expired { .. }) {
            return false;
        }
        job.set(State::Expired { at });
        remove_dir(&job.dir);
        true
    }

    /// The sweeper's pass at `now`: expire every finished job past its retention, and forget
    /// the tombstones one more retention time old. Answers how many jobs expired.
    pub fn expire(&self, now: OffsetDateTime) -> usize {
        let all: Vec<Arc<Job>> = match self.jobs.lock() {
            Ok(jobs) => jobs.values().cloned().collect(),
            Err(_) => return 0,
        };
        let expired = all.iter().filter(|j| self.expire_one(j, now)).count();
        if let Ok(mut jobs) = self.jobs.lock() {
            jobs.retain(|_, j| match j.state() {
                State::Expired { at } => now < at.saturating_add(self.retention),
                _ => true,
            });
        }
        expired
    }

    /// A new running job with its (created) directory.
    pub fn start(
        &self,
        kind: Kind,
        owner: Uuid,
        request: String,
        checkpoint: Option<PathBuf>,
        now: OffsetDateTime,
    ) -> Result<Arc<Job>, Refusal> {
        let mut jobs = self.jobs.lock().map_err(|_| Refusal::Io("the job table is poisoned".into()))?;
        let running: Vec<&Arc<Job>> = jobs.values().filter(|j| matches!(j.state(), State::Running)).collect();
        if running.len() >= MAX_RUNNING {
            return Err(Refusal::Busy);
        }
        if checkpoint.is_some() && running.iter().any(|j| j.checkpoint == checkpoint) {
            return Err(Refusal::SameCheckpoint);
        }
        let id = tiercare_store::new_id();
        let dir = self.root.join(id.to_string());
        std::fs::create_dir_all(&dir).map_err(|e| Refusal::Io(format!("cannot create the job's directory: {e}")))?;
        let job = Arc::new(Job {
            id,
            kind,
            owner,
            request,
            transaction_time: now,
            dir,
            cancel: Cancel::default(),
            checkpoint,
            state: Mutex::new(State::Running),
            finished_at: Mutex::new(None),
            progress: Mutex::new((String::new(), 0, 0)),
        });
        jobs.insert(id, job.clone());
        Ok(job)
    }

    /// The job `id` if `user` asked for it (another user's job is not found), expired first
    /// if its retention ran out by `now`.
    pub fn get(&self, id: Uuid, user: Uuid, now: OffsetDateTime) -> Option<Arc<Job>> {
        let job = self.jobs.lock().ok()?.get(&id).filter(|j| j.owner == user).cloned()?;
        self.expire_one(&job, now);
        Some(job)
    }

    /// Forget the job and remove its files (a running job is cancelled and removes them when
    /// it stops).
    pub fn delete(&self, job: &Job) {
        if let Ok(mut jobs) = self.jobs.lock() {
            jobs.remove(&job.id);
        }
        job.cancel.cancel();
        if !matches!(job.state(), State::Running) {
            remove_dir(&job.dir);
        }
    }
}

/// Remove a job's directory (best effort: a file left behind is only disk space).
pub(crate) fn remove_dir(dir: &Path) {
    if let Err(e) = std::fs::remove_dir_all(dir)
        && e.kind() != std::io::ErrorKind::NotFound
    {
        tracing::warn!(error = %e, "could not remove a bulk job's directory");
    }
}
