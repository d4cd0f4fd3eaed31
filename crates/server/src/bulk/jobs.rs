//! The server's bulk jobs (`$export`, `$import`): kept in the memory of the serving process
//! only. A restart forgets every job (their files stay in the bulk directory until removed by
//! hand); an import of server-side files resumes after a crash from its checkpoint file when
//! it is asked for again, as the command's does. Each job runs on a thread of tokio's blocking
//! pool (its SQLite statements never hold an async worker) and writes into its own directory
//! `<bulk dir>/<job id>/`.

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
    progress: Mutex<(String, u64, u64)>,
}

impl Job {
    pub fn state(&self) -> State {
        self.state.lock().map(|s| s.clone()).unwrap_or(State::Failed { status: 500, message: "poisoned".into() })
    }

    pub fn set(&self, state: State) {
        if let Ok(mut s) = self.state.lock() {
            *s = state;
        }
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
    /// temporary directory).
    pub fn new(root: Option<PathBuf>) -> Jobs {
        let root = root.unwrap_or_else(|| {
            std::env::temp_dir().join(format!("tiercare-bulk-{}-{}", std::process::id(), tiercare_store::new_id()))
        });
        Jobs { root, jobs: Mutex::new(HashMap::new()) }
    }

    /// A new running job with its (created) directory.
    pub fn start(
        &self,
        kind: Kind,
        owner: Uuid,
        request: String,
        checkpoint: Option<PathBuf>,
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
            transaction_time: OffsetDateTime::now_utc(),
            dir,
            cancel: Cancel::default(),
            checkpoint,
            state: Mutex::new(State::Running),
            progress: Mutex::new((String::new(), 0, 0)),
        });
        jobs.insert(id, job.clone());
        Ok(job)
    }

    /// The job `id` if `user` asked for it (another user's job is not found).
    pub fn get(&self, id: Uuid, user: Uuid) -> Option<Arc<Job>> {
        self.jobs.lock().ok()?.get(&id).filter(|j| j.owner == user).cloned()
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
