//! A FHIR Bulk Data NDJSON import (the files `tiercare generate`, `tiercare export fhir` and
//! `$export` write, `<Type>.ndjson`, one resource per line): the pipeline behind both
//! `tiercare import fhir DIR|FILE…` and `POST /fhir/$import`.
//!
//! - **Types, in dependency order**: Organization (facilities, one registration each, an
//!   existing id skipped) → Patient (`import_patients`) → Coverage (enrolments,
//!   `import_enrolments`) → Encounter (`import_encounters`). Skipped whole, with the reason
//!   printed: Condition, ServiceRequest, Task, Location, Practitioner, PractitionerRole and
//!   any other type (see [`skip_reason`]).
//! - **Streaming**: a reader thread reads each file line by line, parses and validates (the
//!   domain rules: a Patient with a wrong identity number is refused as `POST /fhir/Patient`
//!   refuses it) while the store writes the previous chunk; at most two chunks are in memory.
//! - **Chunks**: `--chunk` lines (default 50,000) per store call, one transaction each.
//! - **Bad lines**: a line that is not JSON, not the file's type, breaks a FHIR or domain
//!   rule, or refers to a patient, facility or practitioner that is not stored, is skipped and
//!   reported as `File.ndjson:LINE: FHIRPath: code: message` ([`LineError`]; the command
//!   prints them and exits 2, a job lists them in its status); the good lines land.
//! - **Resumable**: after each committed chunk the checkpoint file (`DIR/.tiercare-import.json`,
//!   or beside the first file; `--checkpoint`) records, per file, the committed line and byte
//!   offset and the counts so far, written to a temporary file and renamed over the old one. A
//!   rerun continues after the last committed chunk. A crash between a commit and its
//!   checkpoint leaves one chunk stored but not recorded: the first chunk of each file a run
//!   writes (and any chunk whose insert meets a stored key) is checked against the store, and
//!   resources already stored (same id) are counted as `existing`, never written twice.
//!   `--restart` ignores the checkpoint. A [`Cancel`] stops the run after its next commit
//!   (the checkpoint is saved, as after a crash).
//! - **Mixed types** (an NDJSON upload to `$import`): [`split_by_type`] streams the lines into
//!   one part file per resource type, each at its line number in the upload (the lines of the
//!   other types are blank there, and blank lines are skipped but counted), in a directory
//!   per type under the upload's own file name; [`import_parts`] imports them in dependency
//!   order. So every refused line is still named by the upload's name and its line in the
//!   body. A line whose type cannot be read (not JSON, no or a malformed `resourceType`) is
//!   refused by the split itself.

use std::collections::{BTreeMap, HashSet};
use std::io::{BufRead, BufReader, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use time::OffsetDateTime;
use uuid::Uuid;

use tiercare_domain::DomainError;
use tiercare_domain::encounter::Encounter;
use tiercare_domain::patient::{Enrolment, Patient};
use tiercare_fhir::ingest::{ParsedEncounter, parse_coverage, parse_encounter, parse_organization, resource_id};
use tiercare_fhir::outcome::Issue;
use tiercare_fhir::registration::parse_patient;
use tiercare_store::{BulkTable, FacilityFilter, RegionKey, Store};

use super::{BulkError, BulkResult as Result, Cancel, Context, Progress};

/// Resource types imported, in dependency order.
pub const IMPORTED: [&str; 4] = ["Organization", "Patient", "Coverage", "Encounter"];

/// Why a resource type is not imported (`None`: it is).
pub fn skip_reason(kind: &str) -> Option<&'static str> {
    Some(match kind {
        k if IMPORTED.contains(&k) => return None,
        "Condition" => {
            "no domain record: diagnoses are kept on encounters (Encounter.reasonCode); a problem list has no store yet"
        }
        "ServiceRequest" | "Task" => {
            "a referral is its whole history (each step: who, when, why), which a ServiceRequest/Task pair does not carry; referrals are created through POST /fhir/ServiceRequest"
        }
        "Location" => "facilities are Organizations; there is no separate Location record",
        "Practitioner" | "PractitionerRole" => {
            "not in this import yet: practitioners are registered through the API (tiercare export fhir writes them)"
        }
        _ => "not a resource type tiercare keeps",
    })
}

/// One refused line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LineError {
    pub file: String,
    pub line: u64,
    pub expression: Option<String>,
    pub code: String,
    pub message: String,
}

impl std::fmt::Display for LineError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}: ", self.file, self.line)?;
        if let Some(e) = &self.expression {
            write!(f, "{e}: ")?;
        }
        write!(f, "{}: {}", self.code, self.message)
    }
}

/// What happened to one file (in the checkpoint, the totals over every run).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileState {
    pub kind: String,
    /// File size when first seen: a smaller file later means it was replaced.
    pub size: u64,
    /// Lines committed (1-based number of the last committed line).
    pub line: u64,
    /// Byte offset just after the last committed line.
    pub byte: u64,
    /// Resources read (non-blank lines).
    pub resources: u64,
    pub imported: u64,
    /// Already stored (same id): not written again.
    pub existing: u64,
    pub rejected: u64,
    pub done: bool,
}

/// The checkpoint file: what each file's import has committed so far.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Checkpoint {
    pub version: u32,
    /// By file path as given (made absolute).
    pub files: BTreeMap<String, FileState>,
}

impl Checkpoint {
    pub fn load(path: &Path) -> Result<Checkpoint> {
        match std::fs::read_to_string(path) {
            Ok(text) => serde_json::from_str(&text)
                .context(|| format!("the checkpoint {} is not readable; remove it or pass --restart", path.display())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Checkpoint { version: 1, files: BTreeMap::new() }),
            Err(e) => Err(e).context(|| format!("cannot read {}", path.display())),
        }
    }

    /// Write to a temporary file, sync, rename: the checkpoint on disk is always whole.
    pub fn save(&self, path: &Path) -> Result<()> {
        let tmp = path.with_extension("json.tmp");
        {
            let what = || format!("cannot write {}", tmp.display());
            let mut f = std::fs::File::create(&tmp).context(what)?;
            serde_json::to_writer_pretty(&mut f, self).context(what)?;
            f.write_all(b"\n").context(what)?;
            f.sync_all().context(what)?;
        }
        std::fs::rename(&tmp, path).context(|| format!("cannot write {}", path.display()))?;
        Ok(())
    }
}

/// Options of one import.
#[derive(Clone, Default)]
pub struct Options {
    /// Lines per chunk (one store transaction each); 0 is taken as 1.
    pub chunk: usize,
    /// The checkpoint file (default: `.tiercare-import.json` in the directory, or beside the first file).
    pub checkpoint: Option<PathBuf>,
    /// Ignore an existing checkpoint.
    pub restart: bool,
    /// Test hook: stop after this many committed chunks, as a crash would.
    pub stop_after_chunks: Option<u64>,
    pub progress: Option<Arc<dyn Progress>>,
    /// Stop after the next committed chunk when cancelled.
    pub cancel: Option<Cancel>,
}

/// What an import run did: per file (in import order) its totals and this run's time and
/// resources read; the refused lines of this run.
#[derive(Debug, Default)]
pub struct Report {
    pub files: Vec<FileReport>,
    pub errors: Vec<LineError>,
    /// Stopped before the end (the test hook, or cancelled).
    pub stopped: bool,
    pub checkpoint: PathBuf,
}

#[derive(Debug, Clone)]
pub struct FileReport {
    /// The file's name (as its refused lines name it).
    pub name: String,
    pub state: FileState,
    pub skipped: Option<&'static str>,
    /// Resources read in this run.
    pub read_now: u64,
    pub seconds: f64,
}

/// Sort files with their types into import order (the dependency order of [`IMPORTED`],
/// then the skipped types by name).
fn import_order(files: &mut [(PathBuf, String)]) {
    let rank = |k: &str| IMPORTED.iter().position(|t| *t == k).unwrap_or(IMPORTED.len());
    files.sort_by(|a, b| (rank(&a.1), &a.1, &a.0).cmp(&(rank(&b.1), &b.1, &b.0)));
}

/// The files of `paths` (directories expanded to their `*.ndjson`), each with its type, in
/// import order (the dependency order of [`IMPORTED`], then the skipped types by name).
pub fn files(paths: &[PathBuf]) -> Result<Vec<(PathBuf, String)>> {
    let mut out = Vec::new();
    for p in paths {
        if p.is_dir() {
            let mut entries: Vec<PathBuf> = std::fs::read_dir(p)
                .context(|| format!("cannot read {}", p.display()))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|e| e.extension().is_some_and(|x| x == "ndjson") && e.is_file())
                .collect();
            entries.sort();
            for e in entries {
                let kind = file_type(&e)?;
                out.push((e, kind));
            }
        } else {
            let kind = file_type(p)?;
            out.push((p.clone(), kind));
        }
    }
    if out.is_empty() {
        return Err(BulkError::Input(format!(
            "no .ndjson files in {}",
            paths.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", ")
        )));
    }
    import_order(&mut out);
    Ok(out)
}

/// Most resource types one upload may mix (a line of a further type is refused).
pub const MAX_TYPES: usize = 32;

/// An upload split by resource type ([`split_by_type`]).
#[derive(Debug, Default)]
pub struct Split {
    /// The part files with their types, in import order.
    pub parts: Vec<(PathBuf, String)>,
    /// The lines whose type could not be read (refused here, not in any part).
    pub errors: Vec<LineError>,
}

/// Whether `kind` can be a resource type's name (and so a directory's): `[A-Z][A-Za-z]*`, short.
fn type_name(kind: &str) -> bool {
    (1..=64).contains(&kind.len())
        && kind.as_bytes()[0].is_ascii_uppercase()
        && kind.bytes().all(|b| b.is_ascii_alphabetic())
}

/// Split the NDJSON `upload`, whose lines may be of several resource types, into one part
/// file per type under `dir` (`dir/<Type>/<the upload's file name>`), each line at its line
/// number in the upload (blank lines stand for the others), streaming: one line in memory.
pub fn split_by_type(upload: &Path, dir: &Path) -> Result<Split> {
    #[derive(Deserialize)]
    struct Head {
        #[serde(rename = "resourceType")]
        resource_type: Option<Value>,
    }
    let name = upload.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "upload.ndjson".into());
    let f = std::fs::File::open(upload).context(|| format!("cannot open {}", upload.display()))?;
    let mut r = BufReader::with_capacity(1 << 20, f);
    // type → (writer, lines written so far including blanks, path)
    let mut parts: BTreeMap<String, (std::io::BufWriter<std::fs::File>, u64, PathBuf)> = BTreeMap::new();
    let mut split = Split::default();
    let mut buf = Vec::new();
    let mut line_no = 0u64;
    loop {
        buf.clear();
        let n = std::io::BufRead::read_until(&mut r, b'\n', &mut buf)
            .context(|| format!("{name}: line {}", line_no + 1))?;
        if n == 0 {
            break;
        }
        line_no += 1;
        let text = String::from_utf8_lossy(&buf);
        let t = text.trim();
        if t.is_empty() {
            continue;
        }
        let refuse = |code: &str, message: String| LineError {
            file: name.clone(),
            line: line_no,
            expression: None,
            code: code.into(),
            message,
        };
        let kind = match serde_json::from_str::<Head>(t) {
            Err(e) => {
                split.errors.push(refuse("json.syntax", format!("not JSON: {e}")));
                continue;
            }
            Ok(Head { resource_type: None }) => {
                split.errors.push(refuse("fhir.structure", "resourceType is missing".into()));
                continue;
            }
            Ok(Head { resource_type: Some(Value::String(k)) }) if type_name(&k) => k,
            Ok(Head { resource_type: Some(_) }) => {
                split.errors.push(refuse("fhir.structure", "resourceType is not a resource type's name".into()));
                continue;
            }
        };
        if !parts.contains_key(&kind) {
            if parts.len() >= MAX_TYPES {
                split.errors.push(refuse(
                    "fhir.not-supported",
                    format!("an upload mixes at most {MAX_TYPES} resource types; {kind} is one more"),
                ));
                continue;
            }
            let part_dir = dir.join(&kind);
            std::fs::create_dir_all(&part_dir).context(|| format!("cannot create {}", part_dir.display()))?;
            let path = part_dir.join(&name);
            let w = std::fs::File::create(&path).context(|| format!("cannot create {}", path.display()))?;
            parts.insert(kind.clone(), (std::io::BufWriter::with_capacity(1 << 16, w), 0, path));
        }
        let (w, written, path) = parts.get_mut(&kind).expect("just inserted");
        let what = || format!("cannot write {}", path.display());
        for _ in *written + 1..line_no {
            w.write_all(b"\n").context(what)?;
        }
        w.write_all(t.as_bytes()).context(what)?;
        w.write_all(b"\n").context(what)?;
        *written = line_no;
    }
    for (kind, (mut w, _, path)) in parts {
        w.flush().context(|| format!("cannot write {}", path.display()))?;
        split.parts.push((path, kind));
    }
    import_order(&mut split.parts);
    Ok(split)
}

/// The resource type of a file: its name (`Patient.ndjson`), else its first line's resourceType.
pub fn file_type(path: &Path) -> Result<String> {
    let stem = path.file_stem().and_then(|s| s.to_str()).unwrap_or_default();
    if !stem.is_empty() && stem.bytes().all(|b| b.is_ascii_alphabetic()) && stem.as_bytes()[0].is_ascii_uppercase() {
        return Ok(stem.to_owned());
    }
    let f = std::fs::File::open(path).context(|| format!("cannot open {}", path.display()))?;
    for line in BufReader::new(f).lines() {
        let line = line.context(|| format!("cannot read {}", path.display()))?;
        if line.trim().is_empty() {
            continue;
        }
        let v: Value = serde_json::from_str(&line).context(|| format!("{}: line 1 is not JSON", path.display()))?;
        return v["resourceType"]
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| BulkError::Input(format!("{}: the first resource has no resourceType", path.display())));
    }
    Err(BulkError::Input(format!("{} is empty", path.display())))
}

/// A parsed, validated line, ready for the store.
enum Item {
    Organization(tiercare_domain::facility::Facility),
    Patient(Patient),
    /// The enrolment (the store finds its region from the patient).
    Coverage(Enrolment),
    /// The encounter with an empty region key (filled from its patient) and its parse (for
    /// the paths of reference problems).
    Encounter(Encounter),
}

/// One chunk read from a file.
struct Chunk {
    /// (line, item)
    items: Vec<(u64, Item)>,
    errors: Vec<LineError>,
    resources: u64,
    /// The last line read and the byte just after it.
    end_line: u64,
    end_byte: u64,
}

fn issues_error(file: &str, line: u64, issues: Vec<Issue>) -> Vec<LineError> {
    issues
        .into_iter()
        .map(|i| LineError {
            file: file.to_owned(),
            line,
            expression: i.expression,
            code: format!("fhir.{}", i.code.as_str()),
            message: i.diagnostics,
        })
        .collect()
}

fn domain_error(file: &str, line: u64, e: DomainError, place: impl Fn(&str) -> String) -> Vec<LineError> {
    match e {
        DomainError::Invalid(errs) => errs
            .into_iter()
            .map(|f| LineError {
                file: file.to_owned(),
                line,
                expression: Some(place(&f.field)),
                code: f.code,
                message: f.message,
            })
            .collect(),
        other => vec![LineError {
            file: file.to_owned(),
            line,
            expression: None,
            code: "domain".into(),
            message: other.to_string(),
        }],
    }
}

/// Parse and validate one line of a file of `kind`.
fn read_line(
    file: &str,
    kind: &str,
    line: u64,
    text: &str,
    today: time::Date,
    now: OffsetDateTime,
) -> std::result::Result<Item, Vec<LineError>> {
    let one = |code: &str, message: String| {
        vec![LineError { file: file.to_owned(), line, expression: None, code: code.into(), message }]
    };
    let v: Value = serde_json::from_str(text).map_err(|e| one("json.syntax", format!("not JSON: {e}")))?;
    match v.get("resourceType").and_then(Value::as_str) {
        Some(k) if k == kind => {}
        Some(k) => return Err(one("fhir.invalid", format!("a {k} in the {kind} file"))),
        None => return Err(one("fhir.structure", "resourceType is missing".into())),
    }
    match kind {
        "Organization" => {
            let p = parse_organization(&v).map_err(|i| issues_error(file, line, i))?;
            let f = p.facility.validate(p.id);
            f.map(Item::Organization)
                .map_err(|e| domain_error(file, line, e, tiercare_fhir::ingest::ParsedOrganization::expression))
        }
        "Patient" => {
            let id = resource_id(&v, "Patient").map_err(|i| issues_error(file, line, vec![i]))?;
            let p = parse_patient(&v).map_err(|i| issues_error(file, line, i))?;
            let place = |f: &str| p.expression(f).unwrap_or_else(|| "Patient".to_owned());
            match p.patient.clone().validate(today, None) {
                Ok(valid) => Ok(Item::Patient(valid.into_patient(id))),
                Err(e) => Err(domain_error(file, line, e, place)),
            }
        }
        "Coverage" => {
            let c = parse_coverage(&v).map_err(|i| issues_error(file, line, i))?;
            match c.enrolment.clone().validate(c.id, c.patient_id) {
                Ok(e) => Ok(Item::Coverage(e)),
                Err(e) => Err(domain_error(file, line, e, |f| c.expression(f))),
            }
        }
        "Encounter" => {
            let p: ParsedEncounter = parse_encounter(&v).map_err(|i| issues_error(file, line, i))?;
            match p.encounter.clone().validate(p.id, String::new(), now) {
                Ok(e) => Ok(Item::Encounter(e)),
                Err(e) => Err(domain_error(file, line, e, |f| p.expression(f))),
            }
        }
        other => Err(one("fhir.not-supported", format!("{other} is not imported"))),
    }
}

/// Where the checkpoint of an import of `paths` is kept unless told: `.tiercare-import.json`
/// in the (first) directory, or beside the first file.
pub fn default_checkpoint(paths: &[PathBuf]) -> PathBuf {
    let Some(first) = paths.first() else { return PathBuf::from(".tiercare-import.json") };
    let dir = if first.is_dir() { first.clone() } else { first.parent().map(Path::to_path_buf).unwrap_or_default() };
    dir.join(".tiercare-import.json")
}

/// Import `paths` into `store`.
pub async fn import(store: &Arc<dyn Store>, paths: &[PathBuf], options: &Options) -> Result<Report> {
    let files = files(paths)?;
    let checkpoint_path = options.checkpoint.clone().unwrap_or_else(|| default_checkpoint(paths));
    import_files(store, files, checkpoint_path, options).await
}

/// Import the parts of a split upload ([`split_by_type`]), in their order, into `store`
/// (the checkpoint beside the first part unless `options` names one).
pub async fn import_parts(store: &Arc<dyn Store>, split: &Split, options: &Options) -> Result<Report> {
    let paths: Vec<PathBuf> = split.parts.iter().map(|(p, _)| p.clone()).collect();
    let checkpoint_path = options.checkpoint.clone().unwrap_or_else(|| default_checkpoint(&paths));
    let mut report = import_files(store, split.parts.clone(), checkpoint_path, options).await?;
    let mut errors = split.errors.clone();
    errors.append(&mut report.errors);
    errors.sort_by_key(|e| e.line);
    report.errors = errors;
    Ok(report)
}

async fn import_files(
    store: &Arc<dyn Store>,
    files: Vec<(PathBuf, String)>,
    checkpoint_path: PathBuf,
    options: &Options,
) -> Result<Report> {
    let mut checkpoint = if options.restart {
        Checkpoint { version: 1, files: BTreeMap::new() }
    } else {
        Checkpoint::load(&checkpoint_path)?
    };
    let mut report = Report { checkpoint: checkpoint_path.clone(), ..Default::default() };
    let mut chunks_committed = 0u64;
    for (path, kind) in files {
        let key = std::path::absolute(&path).unwrap_or_else(|_| path.clone()).display().to_string();
        let size = std::fs::metadata(&path).context(|| format!("cannot read {}", path.display()))?.len();
        let mut state = checkpoint.files.get(&key).cloned().unwrap_or_else(|| FileState {
            kind: kind.clone(),
            size,
            ..Default::default()
        });
        if state.kind != kind || size < state.byte || size < state.size {
            return Err(BulkError::Input(format!(
                "{} changed since the checkpoint {} was written (type or size); import it again from the start (--restart) or remove the checkpoint",
                path.display(),
                checkpoint_path.display()
            )));
        }
        let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| key.clone());
        if let Some(why) = skip_reason(&kind) {
            state.resources = count_lines(&path)?;
            report.files.push(FileReport { name, state, skipped: Some(why), read_now: 0, seconds: 0.0 });
            continue;
        }
        if state.done {
            report.files.push(FileReport { name, state, skipped: None, read_now: 0, seconds: 0.0 });
            continue;
        }
        let started = Instant::now();
        let before = state.resources;
        let stopped = import_file(store, &path, &name, &kind, &mut state, options, &mut report.errors, |state| {
            checkpoint.files.insert(key.clone(), state.clone());
            checkpoint.save(&checkpoint_path)?;
            chunks_committed += 1;
            Ok(options.stop_after_chunks.is_some_and(|n| chunks_committed >= n)
                || options.cancel.as_ref().is_some_and(Cancel::is_cancelled))
        })
        .await?;
        report.files.push(FileReport {
            name,
            read_now: state.resources - before,
            state,
            skipped: None,
            seconds: started.elapsed().as_secs_f64(),
        });
        if stopped {
            report.stopped = true;
            return Ok(report);
        }
    }
    if report.files.iter().any(|f| f.read_now > 0) {
        // planner statistics for the rows just loaded (PostgreSQL plans a bulk-loaded table as empty otherwise)
        store.analyze().await?;
    }
    Ok(report)
}

fn count_lines(path: &Path) -> Result<u64> {
    let f = std::fs::File::open(path).context(|| format!("cannot open {}", path.display()))?;
    let mut n = 0;
    for line in BufReader::with_capacity(1 << 20, f).lines() {
        if !line.context(|| format!("cannot read {}", path.display()))?.trim().is_empty() {
            n += 1;
        }
    }
    Ok(n)
}

/// Import one file from its checkpoint on; `committed` records each committed chunk and
/// answers whether to stop (the test hook). Returns whether it stopped early.
#[allow(clippy::too_many_arguments)]
async fn import_file(
    store: &Arc<dyn Store>,
    path: &Path,
    name: &str,
    kind: &str,
    state: &mut FileState,
    options: &Options,
    errors: &mut Vec<LineError>,
    mut committed: impl FnMut(&FileState) -> Result<bool>,
) -> Result<bool> {
    let mut file = std::fs::File::open(path).context(|| format!("cannot open {}", path.display()))?;
    file.seek(SeekFrom::Start(state.byte)).context(|| format!("cannot read {}", path.display()))?;
    if let Some(p) = &options.progress {
        p.start(kind, state.size.max(1));
        p.at(state.byte);
    }
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Result<Chunk>>(1);
    let (chunk, start_line, start_byte) = (options.chunk, state.line, state.byte);
    let (file_name, kind_owned) = (name.to_owned(), kind.to_owned());
    let reader = std::thread::spawn(move || {
        let mut r = BufReader::with_capacity(1 << 20, file);
        let (mut line_no, mut byte) = (start_line, start_byte);
        let now = OffsetDateTime::now_utc();
        let today = now.date();
        let mut text = String::new();
        loop {
            let mut c = Chunk {
                items: Vec::with_capacity(chunk),
                errors: Vec::new(),
                resources: 0,
                end_line: line_no,
                end_byte: byte,
            };
            let mut lines = 0;
            let mut eof = false;
            while lines < chunk {
                text.clear();
                let n = match r.read_line(&mut text) {
                    Ok(n) => n,
                    Err(e) => {
                        let _ =
                            tx.blocking_send(Err(BulkError::Input(format!("{file_name}: line {}: {e}", line_no + 1))));
                        return;
                    }
                };
                if n == 0 {
                    eof = true;
                    break;
                }
                line_no += 1;
                byte += n as u64;
                let t = text.trim();
                if t.is_empty() {
                    continue;
                }
                lines += 1;
                c.resources += 1;
                match read_line(&file_name, &kind_owned, line_no, t, today, now) {
                    Ok(item) => c.items.push((line_no, item)),
                    Err(e) => c.errors.extend(e),
                }
            }
            c.end_line = line_no;
            c.end_byte = byte;
            let last = eof;
            if (c.resources > 0 || c.end_byte > start_byte) && tx.blocking_send(Ok(c)).is_err() {
                return;
            }
            if last {
                return;
            }
        }
    });

    let mut facilities: HashSet<Uuid> =
        store.list_facilities(&FacilityFilter::default()).await?.iter().map(|f| f.id).collect();
    let practitioners: HashSet<Uuid> = if kind == "Encounter" {
        store.list_practitioners(None).await?.iter().map(|p| p.id).collect()
    } else {
        HashSet::new()
    };
    let mut first = true;
    let mut stopped = false;
    let mut failure = None;
    while let Some(chunk) = rx.recv().await {
        let chunk = match chunk {
            Ok(c) => c,
            Err(e) => {
                failure = Some(e);
                break;
            }
        };
        let mut chunk_errors = chunk.errors;
        let written =
            write_chunk(store, name, chunk.items, first, &mut facilities, &practitioners, &mut chunk_errors).await;
        let (imported, existing) = match written {
            Ok(n) => n,
            Err(e) => {
                failure = Some(match e {
                    BulkError::Input(m) => {
                        BulkError::Input(format!("{name}: writing the chunk after line {}: {m}", state.line))
                    }
                    store => store,
                });
                break;
            }
        };
        first = false;
        chunk_errors.sort_by_key(|e| e.line);
        let refused_lines: HashSet<u64> = chunk_errors.iter().map(|e| e.line).collect();
        state.line = chunk.end_line;
        state.byte = chunk.end_byte;
        state.resources += chunk.resources;
        state.imported += imported;
        state.existing += existing;
        state.rejected += refused_lines.len() as u64;
        errors.extend(chunk_errors);
        if let Some(p) = &options.progress {
            p.at(state.byte);
        }
        if committed(state)? {
            stopped = true;
            break;
        }
    }
    drop(rx);
    let _ = reader.join();
    if let Some(p) = &options.progress {
        p.finish();
    }
    if let Some(e) = failure {
        return Err(e);
    }
    if !stopped {
        state.done = true;
        committed(state)?;
    }
    Ok(stopped)
}

/// Write one chunk's items; answers (imported, already stored) and adds refused lines to
/// `errors`. `check_stored`: drop what is already stored first (the first chunk of a run).
async fn write_chunk(
    store: &Arc<dyn Store>,
    file: &str,
    items: Vec<(u64, Item)>,
    check_stored: bool,
    facilities: &mut HashSet<Uuid>,
    practitioners: &HashSet<Uuid>,
    errors: &mut Vec<LineError>,
) -> Result<(u64, u64)> {
    let refuse = |errors: &mut Vec<LineError>, line: u64, expression: &str, code: &str, message: String| {
        errors.push(LineError {
            file: file.to_owned(),
            line,
            expression: Some(expression.to_owned()),
            code: code.into(),
            message,
        })
    };
    let (mut orgs, mut patients, mut coverages, mut encounters) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for (line, item) in items {
        match item {
            Item::Organization(f) => orgs.push((line, f)),
            Item::Patient(p) => patients.push((line, p)),
            Item::Coverage(e) => coverages.push((line, e)),
            Item::Encounter(e) => encounters.push((line, e)),
        }
    }
    let (mut imported, mut existing) = (0u64, 0u64);
    // registries: a handful of rows, one registration each
    for (line, f) in orgs {
        if facilities.contains(&f.id) {
            existing += 1;
            continue;
        }
        match store.create_facility(&f).await {
            Ok(()) => {
                facilities.insert(f.id);
                imported += 1;
            }
            Err(e) if matches!(e, tiercare_store::StoreError::Duplicate { .. }) => {
                refuse(errors, line, "Organization.identifier[0].value", "facility.duplicate", e.to_string())
            }
            Err(e) => return Err(e.into()),
        }
    }
    if !patients.is_empty() {
        // duplicate ids inside the chunk: the first wins
        let mut ids = HashSet::new();
        patients.retain(|(line, p)| {
            ids.insert(p.id) || {
                refuse(
                    errors,
                    *line,
                    "Patient.id",
                    "id.duplicate_in_file",
                    "this id appears on an earlier line".into(),
                );
                false
            }
        });
        for (line, p) in &patients {
            if let Some(f) = p.home_facility_id
                && !facilities.contains(&f)
            {
                refuse(
                    errors,
                    *line,
                    "Patient.managingOrganization",
                    "fhir.not-found",
                    "no such Organization (import the Organization file first)".into(),
                );
            }
        }
        patients.retain(|(_, p)| p.home_facility_id.is_none_or(|f| facilities.contains(&f)));
        let keys = |rows: &[(u64, Patient)]| -> Vec<RegionKey> {
            rows.iter().map(|(_, p)| (p.region_key.clone(), p.id)).collect()
        };
        let mut stored =
            if check_stored { store.stored_ids(BulkTable::Patient, &keys(&patients)).await? } else { HashSet::new() };
        loop {
            let rows: Vec<(u64, Patient)> = patients.iter().filter(|(_, p)| !stored.contains(&p.id)).cloned().collect();
            match store.import_patients(&rows, false).await {
                Ok(out) => {
                    existing += (patients.len() - rows.len()) as u64;
                    imported += out.inserted;
                    // a registered identifier whose patient is this very resource (same id): stored before
                    let dup_lines: HashSet<u64> =
                        out.rejected.iter().filter(|r| r.code == "identifier.duplicate").map(|r| r.line).collect();
                    let again: Vec<(u64, Patient)> =
                        rows.iter().filter(|(l, _)| dup_lines.contains(l)).cloned().collect();
                    let stored_again = if again.is_empty() {
                        HashSet::new()
                    } else {
                        store.stored_ids(BulkTable::Patient, &keys(&again)).await?
                    };
                    let stored_lines: HashSet<u64> =
                        again.iter().filter(|(_, p)| stored_again.contains(&p.id)).map(|(l, _)| *l).collect();
                    existing += stored_lines.len() as u64;
                    for r in out.rejected.into_iter().filter(|r| !stored_lines.contains(&r.line)) {
                        // the registration path names fields; the Patient's paths are known for the identifiers
                        let at = if r.code.starts_with("identifier") { "Patient.identifier" } else { "Patient" };
                        refuse(errors, r.line, at, &r.code, r.message);
                    }
                    break;
                }
                Err(e) if stored.is_empty() => {
                    // a key already stored (a crash after a commit, or a rerun without a checkpoint)
                    stored = store.stored_ids(BulkTable::Patient, &keys(&patients)).await?;
                    if stored.is_empty() {
                        return Err(e.into());
                    }
                }
                Err(e) => return Err(e.into()),
            }
        }
    }
    if !coverages.is_empty() {
        let ids: Vec<Uuid> = coverages.iter().map(|(_, e)| e.patient_id).collect();
        let regions = store.patient_regions(&ids).await?;
        let mut seen = HashSet::new();
        let mut rows: Vec<(u64, String, Enrolment)> = Vec::with_capacity(coverages.len());
        for (line, e) in coverages {
            match regions.get(&e.patient_id) {
                None => refuse(
                    errors,
                    line,
                    "Coverage.beneficiary",
                    "fhir.not-found",
                    "no such Patient (import the Patient file first)".into(),
                ),
                Some(_) if !seen.insert(e.id) => refuse(
                    errors,
                    line,
                    "Coverage.id",
                    "id.duplicate_in_file",
                    "this id appears on an earlier line".into(),
                ),
                Some(r) => rows.push((line, r.clone(), e)),
            }
        }
        let keys: Vec<RegionKey> = rows.iter().map(|(_, r, e)| (r.clone(), e.id)).collect();
        let mut stored =
            if check_stored { store.stored_ids(BulkTable::Enrolment, &keys).await? } else { HashSet::new() };
        loop {
            let batch: Vec<Enrolment> =
                rows.iter().filter(|(_, _, e)| !stored.contains(&e.id)).map(|(_, _, e)| e.clone()).collect();
            match store.import_enrolments(&batch).await {
                Ok(n) => {
                    imported += n;
                    existing += (rows.len() - batch.len()) as u64;
                    break;
                }
                Err(e) if stored.is_empty() => {
                    stored = store.stored_ids(BulkTable::Enrolment, &keys).await?;
                    if stored.is_empty() {
                        return Err(e.into());
                    }
                }
                Err(e) => return Err(e.into()),
            }
        }
    }
    if !encounters.is_empty() {
        let ids: Vec<Uuid> = encounters.iter().map(|(_, e)| e.patient_id).collect();
        let regions = store.patient_regions(&ids).await?;
        let mut seen = HashSet::new();
        let mut rows: Vec<Encounter> = Vec::with_capacity(encounters.len());
        for (line, mut e) in encounters {
            let Some(region) = regions.get(&e.patient_id) else {
                refuse(
                    errors,
                    line,
                    "Encounter.subject",
                    "fhir.not-found",
                    "no such Patient (import the Patient file first)".into(),
                );
                continue;
            };
            if !facilities.contains(&e.facility_id) {
                refuse(
                    errors,
                    line,
                    "Encounter.serviceProvider",
                    "fhir.not-found",
                    "no such Organization (import the Organization file first)".into(),
                );
                continue;
            }
            if let Some(p) = e.practitioner_id
                && !practitioners.contains(&p)
            {
                refuse(
                    errors,
                    line,
                    "Encounter.participant[0].individual",
                    "fhir.not-found",
                    "no such Practitioner".into(),
                );
                continue;
            }
            if !seen.insert(e.id) {
                refuse(
                    errors,
                    line,
                    "Encounter.id",
                    "id.duplicate_in_file",
                    "this id appears on an earlier line".into(),
                );
                continue;
            }
            e.region_key = region.clone();
            rows.push(e);
        }
        let keys: Vec<RegionKey> = rows.iter().map(|e| (e.region_key.clone(), e.id)).collect();
        let mut stored =
            if check_stored { store.stored_ids(BulkTable::Encounter, &keys).await? } else { HashSet::new() };
        loop {
            let batch: Vec<Encounter> = rows.iter().filter(|e| !stored.contains(&e.id)).cloned().collect();
            match store.import_encounters(&batch).await {
                Ok(n) => {
                    imported += n;
                    existing += (rows.len() - batch.len()) as u64;
                    break;
                }
                Err(e) if stored.is_empty() => {
                    stored = store.stored_ids(BulkTable::Encounter, &keys).await?;
                    if stored.is_empty() {
                        return Err(e.into());
                    }
                }
                Err(e) => return Err(e.into()),
            }
        }
    }
    Ok((imported, existing))
}
