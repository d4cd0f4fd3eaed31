//! The SQLite driver: rusqlite, run on the calling thread, behind the few names of sqlx's
//! API that the shared queries use (`query`, `raw_sql`, `QueryBuilder`, `Row::try_get`,
//! `AssertSqlSafe`, an `Executor`, a `Transaction` that derefs to the connection). `sqlite.rs`
//! imports these where `postgres.rs` imports sqlx's, so `queries*.rs` stay one text.
//!
//! Why: sqlx's SQLite driver runs every statement on the connection's own worker thread, one
//! thread hand-off per statement each way; SQLite itself answers most of our statements in a
//! few microseconds, far less than the hand-off. Here a statement runs where it is called:
//! the `async fn`s below never suspend. The writer is one connection behind an async mutex
//! (writes queue there, not in SQLite's busy handler); readers are a small pool of
//! connections taken and returned around each statement.
//!
//! Values are encoded exactly as sqlx-sqlite did, so files written before still read: UUID as
//! a 16-byte BLOB, bool as INTEGER 0/1, `None` as NULL, integers, reals, text and blobs as
//! themselves. Parameters are `$N` and bind the N-th argument, as in sqlx (run as `?N`).

use std::borrow::Cow;
use std::fmt::{Display, Write as _};
use std::marker::PhantomData;
use std::ops::{Deref, DerefMut};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rusqlite::types::{Value, ValueRef};
use rusqlite::{Connection, OpenFlags, ffi};
use uuid::Uuid;

/// Prepared statements kept per connection (the queries use about 150 distinct texts).
const STATEMENT_CACHE: usize = 256;
/// How long a connection waits for another process's lock before failing busy.
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// The database marker, for `QueryBuilder<Db>` and `Executor<Database = Db>`.
pub struct Sqlite;

/// A failed statement, or a value that could not be read as the type asked for.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Sqlite(#[from] rusqlite::Error),
    #[error("no rows returned by a query that expected to return at least one row")]
    RowNotFound,
    #[error("no column found for name: {0}")]
    ColumnNotFound(String),
    #[error("error occurred while decoding column {column}: {message}")]
    Decode { column: String, message: String },
    /// The group transaction this write was part of did not commit; the write is undone.
    #[error("the write transaction was rolled back; try again")]
    GroupRolledBack,
}

impl Error {
    fn extended_code(&self) -> Option<i32> {
        match self {
            Error::Sqlite(rusqlite::Error::SqliteFailure(e, _)) => Some(e.extended_code),
            _ => None,
        }
    }

    /// Busy or locked (SQLITE_BUSY, SQLITE_LOCKED and their extended codes): retry the transaction.
    pub fn is_busy(&self) -> bool {
        matches!(self, Error::GroupRolledBack)
            || matches!(self.extended_code().map(|c| c & 0xff), Some(ffi::SQLITE_BUSY | ffi::SQLITE_LOCKED))
    }

    /// A UNIQUE or PRIMARY KEY constraint failed (what sqlx calls a unique violation).
    pub fn is_unique_violation(&self) -> bool {
        matches!(self.extended_code(), Some(ffi::SQLITE_CONSTRAINT_UNIQUE | ffi::SQLITE_CONSTRAINT_PRIMARYKEY))
    }
}

type Result<T, E = Error> = std::result::Result<T, E>;

// --- SQL text

/// SQL text built at run time, asserted to contain no user input (as sqlx's `AssertSqlSafe`).
pub struct AssertSqlSafe<T>(pub T);

/// SQL text a statement may be made from: a literal, or text wrapped in [`AssertSqlSafe`].
pub trait SqlSafeStr {
    fn into_sql(self) -> Cow<'static, str>;
}

impl SqlSafeStr for &'static str {
    fn into_sql(self) -> Cow<'static, str> {
        Cow::Borrowed(numbered_static(self))
    }
}

impl SqlSafeStr for AssertSqlSafe<&'static str> {
    fn into_sql(self) -> Cow<'static, str> {
        Cow::Borrowed(numbered_static(self.0))
    }
}

impl SqlSafeStr for AssertSqlSafe<String> {
    fn into_sql(self) -> Cow<'static, str> {
        match numbered(&self.0) {
            Cow::Borrowed(_) => Cow::Owned(self.0),
            Cow::Owned(s) => Cow::Owned(s),
        }
    }
}

// --- values

/// A value that can be bound to a parameter.
pub trait Encode {
    fn encode(self) -> Value;
}

impl Encode for i64 {
    fn encode(self) -> Value {
        Value::Integer(self)
    }
}
impl Encode for i32 {
    fn encode(self) -> Value {
        Value::Integer(i64::from(self))
    }
}
impl Encode for i16 {
    fn encode(self) -> Value {
        Value::Integer(i64::from(self))
    }
}
impl Encode for f64 {
    fn encode(self) -> Value {
        Value::Real(self)
    }
}
impl Encode for bool {
    fn encode(self) -> Value {
        Value::Integer(i64::from(self))
    }
}
impl Encode for String {
    fn encode(self) -> Value {
        Value::Text(self)
    }
}
impl Encode for &str {
    fn encode(self) -> Value {
        Value::Text(self.to_owned())
    }
}
impl Encode for &String {
    fn encode(self) -> Value {
        Value::Text(self.clone())
    }
}
impl Encode for Vec<u8> {
    fn encode(self) -> Value {
        Value::Blob(self)
    }
}
impl Encode for &[u8] {
    fn encode(self) -> Value {
        Value::Blob(self.to_vec())
    }
}
impl Encode for Uuid {
    fn encode(self) -> Value {
        Value::Blob(self.as_bytes().to_vec())
    }
}
impl<T: Encode> Encode for Option<T> {
    fn encode(self) -> Value {
        self.map_or(Value::Null, Encode::encode)
    }
}

/// A type a column can be read as. `Err` says why not.
pub trait Decode: Sized {
    fn decode(v: &Value) -> Result<Self, String>;
}

fn mismatch(want: &str, v: &Value) -> String {
    let got = match v {
        Value::Null => "NULL",
        Value::Integer(_) => "INTEGER",
        Value::Real(_) => "REAL",
        Value::Text(_) => "TEXT",
        Value::Blob(_) => "BLOB",
    };
    if got == "NULL" {
        format!("unexpected null; try decoding as an `Option` ({want})")
    } else {
        format!("{want} from {got}")
    }
}

impl Decode for i64 {
    fn decode(v: &Value) -> Result<Self, String> {
        match v {
            Value::Integer(i) => Ok(*i),
            _ => Err(mismatch("i64", v)),
        }
    }
}
impl Decode for i32 {
    fn decode(v: &Value) -> Result<Self, String> {
        match v {
            Value::Integer(i) => i32::try_from(*i).map_err(|_| format!("{i} does not fit an i32")),
            _ => Err(mismatch("i32", v)),
        }
    }
}
impl Decode for f64 {
    fn decode(v: &Value) -> Result<Self, String> {
        match v {
            Value::Real(f) => Ok(*f),
            Value::Integer(i) => Ok(*i as f64),
            _ => Err(mismatch("f64", v)),
        }
    }
}
impl Decode for bool {
    fn decode(v: &Value) -> Result<Self, String> {
        match v {
            Value::Integer(i) => Ok(*i != 0),
            _ => Err(mismatch("bool", v)),
        }
    }
}
impl Decode for String {
    fn decode(v: &Value) -> Result<Self, String> {
        match v {
            Value::Text(s) => Ok(s.clone()),
            _ => Err(mismatch("String", v)),
        }
    }
}
impl Decode for Vec<u8> {
    fn decode(v: &Value) -> Result<Self, String> {
        match v {
            Value::Blob(b) => Ok(b.clone()),
            Value::Text(s) => Ok(s.as_bytes().to_vec()),
            _ => Err(mismatch("bytes", v)),
        }
    }
}
impl Decode for Uuid {
    fn decode(v: &Value) -> Result<Self, String> {
        match v {
            Value::Blob(b) => Uuid::from_slice(b).map_err(|e| e.to_string()),
            Value::Text(s) => Uuid::parse_str(s).map_err(|e| e.to_string()),
            _ => Err(mismatch("UUID", v)),
        }
    }
}
impl<T: Decode> Decode for Option<T> {
    fn decode(v: &Value) -> Result<Self, String> {
        match v {
            Value::Null => Ok(None),
            v => T::decode(v).map(Some),
        }
    }
}

// --- rows

/// One result row, read out of the statement (column names shared by the rows of a result).
#[derive(Debug)]
pub struct Row {
    columns: Arc<[Box<str>]>,
    values: Vec<Value>,
}

/// A column by name (the last of that name, as in sqlx) or by position.
pub trait ColumnIndex {
    fn index(&self, row: &Row) -> Result<usize>;
}

impl ColumnIndex for &str {
    fn index(&self, row: &Row) -> Result<usize> {
        row.columns.iter().rposition(|c| &**c == *self).ok_or_else(|| Error::ColumnNotFound((*self).to_owned()))
    }
}

impl ColumnIndex for usize {
    fn index(&self, row: &Row) -> Result<usize> {
        if *self < row.values.len() { Ok(*self) } else { Err(Error::ColumnNotFound(self.to_string())) }
    }
}

impl Row {
    pub fn try_get<T: Decode, I: ColumnIndex>(&self, index: I) -> Result<T> {
        let i = index.index(self)?;
        T::decode(&self.values[i]).map_err(|message| Error::Decode { column: self.columns[i].to_string(), message })
    }
}

// --- executing

/// The outcome of a statement run for its effect.
#[derive(Debug, Clone, Copy)]
pub struct QueryResult {
    rows_affected: u64,
}

impl QueryResult {
    pub fn rows_affected(&self) -> u64 {
        self.rows_affected
    }
}

/// Where a statement runs: a connection (`&mut **tx` inside a write transaction) or the
/// read pool. `Database` is there so `E: Executor<'e, Database = Db>` reads as with sqlx.
pub trait Executor<'e>: Send {
    type Database;
    fn run<R>(self, f: impl Fn(&Connection) -> Result<R>) -> Result<R>;
    /// Run a statement that only reads (the `fetch_*` calls); by default as [`Executor::run`].
    fn read<R>(self, f: impl Fn(&Connection) -> Result<R>) -> Result<R>
    where
        Self: Sized,
    {
        self.run(f)
    }
}

impl<'e> Executor<'e> for &'e mut Connection {
    type Database = Sqlite;
    fn run<R>(self, f: impl Fn(&Connection) -> Result<R>) -> Result<R> {
        f(self)
    }
}

impl<'e> Executor<'e> for &'e ReadPool {
    type Database = Sqlite;
    fn run<R>(self, f: impl Fn(&Connection) -> Result<R>) -> Result<R> {
        let conn = self.take()?;
        let out = f(&conn);
        self.give_back(conn);
        out
    }

    /// On the writer's connection when it is idle (see [`ReadPool::on_idle_writer`]), else
    /// on a reader.
    fn read<R>(self, f: impl Fn(&Connection) -> Result<R>) -> Result<R> {
        match self.on_idle_writer(&f) {
            Some(out) => out,
            None => self.run(f),
        }
    }
}

/// Bind `args` to the statement's parameters. The text has `?N` parameters (see
/// [`numbered`]), so parameter N is the N-th argument; one beyond the arguments stays NULL
/// (as in sqlx). No parameter names are read: SQLite looks a name up by a linear scan, so
/// naming each of a 13,000-parameter insert's parameters took quadratic time.
fn bind(stmt: &mut rusqlite::Statement<'_>, args: &[Value]) -> Result<()> {
    let n = stmt.parameter_count();
    for (i, v) in args.iter().enumerate().take(n) {
        stmt.raw_bind_parameter(i + 1, v)?;
    }
    Ok(())
}

/// `$N` → `?N` outside quotes: SQLite numbers a `?N` parameter N itself, where `$N` is a
/// name (numbered by first appearance, and found again only by a linear scan of names).
fn numbered(sql: &str) -> Cow<'_, str> {
    let b = sql.as_bytes();
    if !b.windows(2).any(|w| w[0] == b'$' && w[1].is_ascii_digit()) {
        return Cow::Borrowed(sql);
    }
    let mut out = String::with_capacity(sql.len());
    let mut quote: Option<char> = None;
    let mut chars = sql.chars().peekable();
    while let Some(c) = chars.next() {
        match (quote, c) {
            (None, '\'' | '"') => quote = Some(c),
            (Some(q), c) if c == q => quote = None,
            (None, '$') if chars.peek().is_some_and(char::is_ascii_digit) => {
                out.push('?');
                continue;
            }
            _ => {}
        }
        out.push(c);
    }
    Cow::Owned(out)
}

/// The `?N` form of a literal statement, made once per text (statements written in the
/// code are a fixed set) and kept for the life of the process.
fn numbered_static(sql: &'static str) -> &'static str {
    use std::collections::HashMap;
    use std::sync::OnceLock;
    static DONE: OnceLock<Mutex<HashMap<(usize, usize), &'static str>>> = OnceLock::new();
    let key = (sql.as_ptr() as usize, sql.len());
    let mut done = DONE.get_or_init(Default::default).lock().unwrap_or_else(|e| e.into_inner());
    done.entry(key).or_insert_with(|| match numbered(sql) {
        Cow::Borrowed(s) => s,
        Cow::Owned(s) => Box::leak(s.into_boxed_str()),
    })
}

/// `LIMIT ?N` bound to an integer → `LIMIT <the integer>`. SQLite reads a bound LIMIT while
/// planning (`sqlite3ExprIsInteger`), which marks the statement to be prepared again whenever
/// that parameter is bound, that is on every run (perf: `sqlite3Reprepare` under
/// `sqlite3_step`, a fifth of the CPU of a settlement, whose referral read has a LIMIT). With
/// the number in the text each limit is a statement of its own, prepared once and planned
/// with the number as before. The parameter's slot stays, unused.
fn inline_limits<'a>(sql: &'a str, args: &[Value]) -> Cow<'a, str> {
    const KEY: &str = "LIMIT ?";
    if !sql.contains(KEY) {
        return Cow::Borrowed(sql);
    }
    let mut out = String::with_capacity(sql.len() + 8);
    let mut rest = sql;
    while let Some(at) = rest.find(KEY) {
        let start = at + KEY.len();
        let len = rest[start..].bytes().take_while(u8::is_ascii_digit).count();
        let arg =
            rest[start..start + len].parse::<usize>().ok().and_then(|n| n.checked_sub(1)).and_then(|i| args.get(i));
        out.push_str(&rest[..at]);
        match arg {
            Some(Value::Integer(n)) => {
                let _ = write!(out, "LIMIT {n}");
            }
            _ => out.push_str(&rest[at..start + len]),
        }
        rest = &rest[start + len..];
    }
    out.push_str(rest);
    Cow::Owned(out)
}

/// Run one statement, handing each row to `each` until it answers `false`.
fn run_statement(conn: &Connection, sql: &str, args: &[Value], mut each: impl FnMut(Row) -> bool) -> Result<u64> {
    let sql = inline_limits(sql, args);
    let mut stmt = conn.prepare_cached(&sql)?;
    bind(&mut stmt, args)?;
    let n = stmt.column_count();
    let columns: Arc<[Box<str>]> =
        if n == 0 { Arc::from(Vec::new()) } else { stmt.column_names().into_iter().map(Box::from).collect() };
    let mut rows = stmt.raw_query();
    while let Some(row) = rows.next()? {
        let mut values = Vec::with_capacity(n);
        for i in 0..n {
            values.push(value_of(row.get_ref(i)?));
        }
        if !each(Row { columns: columns.clone(), values }) {
            break;
        }
    }
    drop(rows);
    Ok(conn.changes())
}

fn value_of(v: ValueRef<'_>) -> Value {
    match v {
        ValueRef::Null => Value::Null,
        ValueRef::Integer(i) => Value::Integer(i),
        ValueRef::Real(f) => Value::Real(f),
        ValueRef::Text(t) => Value::Text(String::from_utf8_lossy(t).into_owned()),
        ValueRef::Blob(b) => Value::Blob(b.to_vec()),
    }
}

/// One statement and its arguments, as `sqlx::query`.
pub struct Query {
    sql: Cow<'static, str>,
    args: Vec<Value>,
}

pub fn query(sql: impl SqlSafeStr) -> Query {
    Query { sql: sql.into_sql(), args: Vec::new() }
}

impl Query {
    pub fn bind(mut self, v: impl Encode) -> Self {
        self.args.push(v.encode());
        self
    }

    pub async fn execute<'e, E: Executor<'e>>(self, e: E) -> Result<QueryResult> {
        let rows_affected = e.run(|c| run_statement(c, &self.sql, &self.args, |_| true))?;
        Ok(QueryResult { rows_affected })
    }

    pub async fn fetch_all<'e, E: Executor<'e>>(self, e: E) -> Result<Vec<Row>> {
        e.read(|c| {
            let mut out = Vec::new();
            run_statement(c, &self.sql, &self.args, |r| {
                out.push(r);
                true
            })?;
            Ok(out)
        })
    }

    pub async fn fetch_optional<'e, E: Executor<'e>>(self, e: E) -> Result<Option<Row>> {
        e.read(|c| {
            let mut out = None;
            run_statement(c, &self.sql, &self.args, |r| {
                out = Some(r);
                false
            })?;
            Ok(out)
        })
    }

    pub async fn fetch_one<'e, E: Executor<'e>>(self, e: E) -> Result<Row> {
        self.fetch_optional(e).await?.ok_or(Error::RowNotFound)
    }
}

/// Several statements without arguments (a migration), as `sqlx::raw_sql`.
pub struct RawSql(Cow<'static, str>);

pub fn raw_sql(sql: impl SqlSafeStr) -> RawSql {
    RawSql(sql.into_sql())
}

impl RawSql {
    pub async fn execute<'e, E: Executor<'e>>(self, e: E) -> Result<QueryResult> {
        e.run(|c| {
            let before = c.total_changes();
            c.execute_batch(&self.0)?;
            Ok(QueryResult { rows_affected: c.total_changes() - before })
        })
    }
}

// --- building statements

/// SQL assembled piece by piece with bound values, as `sqlx::QueryBuilder` (placeholders
/// `?N`; `$N` pushed as text is renumbered by `build`).
pub struct QueryBuilder<DB> {
    sql: String,
    args: Vec<Value>,
    db: PhantomData<DB>,
}

impl<DB> QueryBuilder<DB> {
    pub fn new(init: impl Into<String>) -> Self {
        QueryBuilder { sql: init.into(), args: Vec::new(), db: PhantomData }
    }

    pub fn push(&mut self, sql: impl Display) -> &mut Self {
        let _ = write!(self.sql, "{sql}");
        self
    }

    pub fn push_bind(&mut self, v: impl Encode) -> &mut Self {
        self.args.push(v.encode());
        let _ = write!(self.sql, "?{}", self.args.len());
        self
    }

    pub fn separated<Sep: Display>(&mut self, separator: Sep) -> Separated<'_, DB, Sep> {
        Separated { qb: self, separator, first: true }
    }

    /// `VALUES (…), (…)`: `push` binds one tuple's values through the separator `, `.
    pub fn push_values<I: IntoIterator>(
        &mut self,
        tuples: I,
        mut push: impl FnMut(Separated<'_, DB, &'static str>, I::Item),
    ) -> &mut Self {
        self.push("VALUES ");
        for (i, t) in tuples.into_iter().enumerate() {
            if i > 0 {
                self.push(", ");
            }
            self.push("(");
            push(self.separated(", "), t);
            self.push(")");
        }
        self
    }

    /// The statement built so far; the builder is left empty.
    pub fn build(&mut self) -> Query {
        let sql = std::mem::take(&mut self.sql);
        let sql = match numbered(&sql) {
            Cow::Borrowed(_) => sql,
            Cow::Owned(s) => s,
        };
        Query { sql: Cow::Owned(sql), args: std::mem::take(&mut self.args) }
    }
}

/// Pieces pushed with a separator between them, as `sqlx::query_builder::Separated`.
pub struct Separated<'qb, DB, Sep> {
    qb: &'qb mut QueryBuilder<DB>,
    separator: Sep,
    first: bool,
}

impl<DB, Sep: Display> Separated<'_, DB, Sep> {
    fn separate(&mut self) {
        if !self.first {
            let _ = write!(self.qb.sql, "{}", self.separator);
        }
        self.first = false;
    }

    pub fn push_bind(&mut self, v: impl Encode) -> &mut Self {
        self.separate();
        self.qb.push_bind(v);
        self
    }
}

// --- connections

/// Settings of every connection: what sqlx's connect options set before.
fn open_connection(path: &Path, cache_size_kib: i64, extra: &str) -> Result<Connection> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_CREATE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    conn.busy_timeout(BUSY_TIMEOUT)?;
    conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
    conn.execute_batch(&format!(
        "PRAGMA journal_mode = WAL; PRAGMA foreign_keys = ON; PRAGMA synchronous = NORMAL;
         PRAGMA temp_store = memory; PRAGMA cache_size = -{cache_size_kib}; {extra}"
    ))?;
    Ok(conn)
}

/// Reader connections, opened as needed and kept for reuse. A statement holds one only while
/// it runs (on the calling thread), so about as many are open as threads read at once.
///
/// A read (a `fetch_*` statement) runs on the writer's connection instead when the writer is
/// idle — nobody holds it or waits for it, and no group transaction is open, so the read
/// sees exactly what is committed — with a budget of [`WARM_READ_BUDGET`] × 1,000 SQLite VM
/// steps: a reader drops its whole page cache whenever the WAL changed since its last read
/// (under writes, before nearly every statement) and reads its pages again through the WAL
/// index and `pread`, while the writer's cache holds what the last writes touched. A read
/// that runs over the budget is interrupted (it has changed nothing) and run again on a
/// reader, so a long read (a report, an export page) never holds the writer for long.
pub struct ReadPool {
    path: PathBuf,
    idle: Mutex<Vec<Connection>>,
    max_idle: usize,
    writer: std::sync::Weak<Writer>,
}

/// A read on the idle writer may take this many progress-handler calls (1,000 VM steps
/// each): a point read by key takes a few hundred to a few thousand steps.
const WARM_READ_BUDGET: u32 = 25;

/// Page cache of each reader (KiB): 16 MiB, allocated as used. A reader drops its whole
/// cache whenever the WAL has changed since its last read, which under writes is before
/// nearly every statement, and dropping it walks the cache's hash table (which never
/// shrinks): a small cache keeps that walk short.
const READ_CACHE_KIB: i64 = 16_384;
/// Page cache of the writer (KiB): 16 MiB. Each COMMIT that split a B-tree page walks the
/// writer's whole cache (SQLite numbers a page being moved with the lock-byte page's
/// number, 1 GiB into the file; in a smaller file that is past its end, and the commit
/// then drops every cached page past the end by visiting all of them): with 1 GiB this
/// was a tenth of a settlement's CPU. Bulk imports are as fast with 16 MiB as with 1 GiB
/// (300,000 patients: 5.7 s both); the operating system caches the file.
const WRITE_CACHE_KIB: i64 = 16_384;

impl ReadPool {
    /// `f` on the writer's connection if the writer is idle; `None`: not idle, or `f` ran
    /// over the budget (interrupted, nothing changed): run it on a reader.
    fn on_idle_writer<R>(&self, f: &impl Fn(&Connection) -> Result<R>) -> Option<Result<R>> {
        let writer = self.writer.upgrade()?;
        if writer.waiting.load(Ordering::SeqCst) > 0 {
            return None;
        }
        let st = writer.state.try_lock().ok()?;
        if st.open.is_some() || !st.conn.is_autocommit() {
            return None;
        }
        st.read_budget.store(WARM_READ_BUDGET + 1, Ordering::Relaxed);
        let out = f(&st.conn);
        st.read_budget.store(0, Ordering::Relaxed);
        match out {
            Err(Error::Sqlite(rusqlite::Error::SqliteFailure(e, _)))
                if e.code == rusqlite::ErrorCode::OperationInterrupted =>
            {
                None
            }
            out => Some(out),
        }
    }

    fn take(&self) -> Result<Connection> {
        let idle = self.idle.lock().unwrap_or_else(|e| e.into_inner()).pop();
        match idle {
            Some(c) => Ok(c),
            None => open_connection(&self.path, READ_CACHE_KIB, ""),
        }
    }

    fn give_back(&self, conn: Connection) {
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        if idle.len() < self.max_idle {
            idle.push(conn);
        }
    }
}

/// The write connection and its group commit.
///
/// A write transaction takes the connection (an async mutex: waiting writers queue without
/// holding a thread) and runs its statements without suspending. If other writers are
/// waiting when it is done, it does not commit: the SQLite transaction stays open and the
/// next writer runs inside it, behind a `SAVEPOINT` (so its failure undoes only its own
/// work), and so on; the one that finds no writer waiting commits for all of them. A
/// writer whose work was left open waits for the connection once more (behind those that
/// were waiting) and answers only when its group has committed, committing it itself if
/// nobody did, so a caller never sees success before its change is visible to readers.
/// Sixteen concurrent referral steps thus share one COMMIT: one write of the index pages
/// they all touch to the WAL instead of sixteen.
///
/// Under a steady stream of writes (the previous COMMIT less than [`LINGER_WINDOW`] ago) the
/// last writer of a group does not commit at once even when nobody is waiting yet: it leaves
/// the transaction open and lets the other tasks run for up to [`LINGER`] first, so that
/// writes arriving meanwhile (a request still in its reads) join the group. On two cores
/// the writer is taken synchronously and released at once, so without this a group rarely
/// had more than one member and each step paid its own COMMIT (the WAL frames of the same
/// index pages: 14% of the referral life cycle's CPU). Sparse writes commit at once.
pub struct Writer {
    state: Arc<tokio::sync::Mutex<WriterState>>,
    /// Writers waiting to begin (not those waiting for their group's commit).
    waiting: AtomicUsize,
    /// When the last COMMIT ended (µs since `epoch`).
    last_commit_us: std::sync::atomic::AtomicU64,
    epoch: std::time::Instant,
    /// How long a group lingers at most, µs (0: never).
    linger_us: std::sync::atomic::AtomicU64,
    /// A group lingers only if the previous COMMIT ended less than this long ago (µs;
    /// [`LINGER_WINDOW`], widened by a test so that a busy machine cannot make it flaky).
    linger_window_us: std::sync::atomic::AtomicU64,
    /// `TIERCARE_SQLITE_STATS=1`: groups committed and members, printed when the writer closes.
    stats: Option<(AtomicUsize, AtomicUsize)>,
}

/// A group lingers only if the previous COMMIT ended less than this long ago.
const LINGER_WINDOW: Duration = Duration::from_millis(5);
/// How long a group lingers for more members at most (`TIERCARE_SQLITE_LINGER_US`).
const LINGER: Duration = Duration::from_micros(300);
/// Scheduler turns a lingering group gives the other tasks at most.
const LINGER_TURNS: u32 = 16;

impl Writer {
    fn now_us(&self) -> u64 {
        self.epoch.elapsed().as_micros() as u64
    }

    /// Commit the open group (see [`WriterState::commit`]), noting when.
    fn commit(&self, st: &mut WriterState, group: u64) -> Result<()> {
        let done = st.commit(group);
        self.last_commit_us.store(self.now_us(), Ordering::Relaxed);
        if let Some((groups, _)) = &self.stats {
            groups.fetch_add(1, Ordering::Relaxed);
        }
        done
    }

    /// Writes are arriving steadily: worth holding the group open for more members.
    fn should_linger(&self) -> bool {
        self.linger_us.load(Ordering::Relaxed) > 0
            && self.now_us().saturating_sub(self.last_commit_us.load(Ordering::Relaxed))
                < self.linger_window_us.load(Ordering::Relaxed)
    }

    /// Let the other tasks run (up to [`LINGER`], [`LINGER_TURNS`] turns) so that writes
    /// arriving meanwhile join the open group; stop early once one is waiting.
    async fn linger(&self) {
        let start = std::time::Instant::now();
        for _ in 0..LINGER_TURNS {
            tokio::task::yield_now().await;
            if self.waiting.load(Ordering::SeqCst) > 0
                || start.elapsed().as_micros() as u64 >= self.linger_us.load(Ordering::Relaxed)
            {
                return;
            }
        }
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        if let Some((groups, members)) = &self.stats {
            let (g, m) = (groups.load(Ordering::Relaxed), members.load(Ordering::Relaxed));
            eprintln!("sqlite writer: {g} commits, {m} writes, {:.2} writes per commit", m as f64 / g.max(1) as f64);
        }
    }
}

struct WriterState {
    conn: Connection,
    /// Progress-handler calls left to a read on this connection (see [`ReadPool`]): 0 while
    /// it writes (never interrupted), else 1 + what is left; at 1 the read is interrupted.
    read_budget: Arc<AtomicU32>,
    /// The group whose SQLite transaction is open, if any.
    open: Option<u64>,
    next_group: u64,
    /// Groups up to this one have ended (committed, or failed as listed in `failed`).
    ended_upto: u64,
    /// Recent groups whose COMMIT failed or whose transaction SQLite rolled back.
    failed: Vec<u64>,
}

impl WriterState {
    fn end_group(&mut self, group: u64, ok: bool) {
        self.open = None;
        self.ended_upto = self.ended_upto.max(group);
        if !ok {
            self.failed.retain(|g| g + 10_000 > group);
            self.failed.push(group);
        }
    }

    /// SQLite rolled the whole transaction back under an error (a full disk, say): every
    /// member's work is gone, so the group failed.
    fn check_open(&mut self) {
        if let Some(g) = self.open
            && self.conn.is_autocommit()
        {
            self.end_group(g, false);
        }
    }

    fn commit(&mut self, group: u64) -> Result<()> {
        let done = exec_cached(&self.conn, "COMMIT");
        if done.is_err() && !self.conn.is_autocommit() {
            let _ = exec_cached(&self.conn, "ROLLBACK");
        }
        self.end_group(group, done.is_ok());
        done
    }

    fn outcome(&self, group: u64) -> Option<Result<()>> {
        (self.ended_upto >= group)
            .then(|| if self.failed.contains(&group) { Err(Error::GroupRolledBack) } else { Ok(()) })
    }
}

/// Counts a writer as waiting until it holds the connection (or gives up waiting).
struct Waiting<'a>(&'a AtomicUsize);

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Open the writer and the read pool on the file at `path` (created if missing).
pub fn open(path: &Path, max_readers: usize) -> Result<(Arc<Writer>, ReadPool)> {
    // the checkpointer thread copies the WAL into the database; the writer checkpoints
    // itself only if that falls far behind (200 MB of WAL)
    let conn = open_connection(path, WRITE_CACHE_KIB, "PRAGMA wal_autocheckpoint = 50000;")?;
    let read_budget = Arc::new(AtomicU32::new(0));
    let budget = read_budget.clone();
    conn.progress_handler(
        1_000,
        Some(move || match budget.load(Ordering::Relaxed) {
            0 => false,
            1 => true,
            n => {
                budget.store(n - 1, Ordering::Relaxed);
                false
            }
        }),
    )?;
    let state = WriterState { conn, read_budget, open: None, next_group: 1, ended_upto: 0, failed: Vec::new() };
    let state = Arc::new(tokio::sync::Mutex::new(state));
    let linger_us = std::env::var("TIERCARE_SQLITE_LINGER_US").ok().and_then(|v| v.parse::<u64>().ok());
    let writer = Arc::new(Writer {
        state,
        waiting: AtomicUsize::new(0),
        last_commit_us: std::sync::atomic::AtomicU64::new(0),
        epoch: std::time::Instant::now(),
        linger_us: std::sync::atomic::AtomicU64::new(linger_us.unwrap_or(LINGER.as_micros() as u64)),
        linger_window_us: std::sync::atomic::AtomicU64::new(LINGER_WINDOW.as_micros() as u64),
        stats: std::env::var("TIERCARE_SQLITE_STATS")
            .is_ok_and(|v| v == "1")
            .then(|| (AtomicUsize::new(0), AtomicUsize::new(0))),
    });
    let read = ReadPool {
        path: path.to_owned(),
        idle: Mutex::new(Vec::new()),
        max_idle: max_readers,
        // `TIERCARE_SQLITE_READ_ON_WRITER=0`: every read on a reader (to measure the difference)
        writer: if std::env::var("TIERCARE_SQLITE_READ_ON_WRITER").is_ok_and(|v| v == "0") {
            std::sync::Weak::new()
        } else {
            Arc::downgrade(&writer)
        },
    };
    // one reader now, so a file that cannot be read fails here
    let first = read.take()?;
    read.give_back(first);
    start_checkpointer(path, &writer);
    Ok((writer, read))
}

/// How often the checkpointer copies what the WAL holds into the database file.
const CHECKPOINT_EVERY: Duration = Duration::from_millis(100);

/// Checkpoint off the write path: a thread with its own connection runs a PASSIVE
/// checkpoint (it copies committed pages without taking the write lock) every
/// [`CHECKPOINT_EVERY`], until the writer is dropped. Before, the COMMIT that crossed the
/// autocheckpoint size copied 40 MB while it held the writer, and every write waited
/// (settlements: max latency about 350 ms, a large part of the p99).
fn start_checkpointer(path: &Path, writer: &Arc<Writer>) {
    let (path, writer) = (path.to_owned(), Arc::downgrade(writer));
    let spawned = std::thread::Builder::new().name("sqlite-checkpoint".into()).spawn(move || {
        let Ok(conn) = open_connection(&path, 1_024, "") else { return };
        loop {
            std::thread::sleep(CHECKPOINT_EVERY);
            if writer.strong_count() == 0 {
                return;
            }
            // busy (a bulk checkpoint of the writer's own) or failed: try again next time
            let _ = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()));
        }
    });
    if let Err(e) = spawned {
        // the writer's own autocheckpoint still bounds the WAL
        tracing::warn!(error = %e, "no checkpointer thread");
    }
}

fn exec_cached(conn: &Connection, sql: &str) -> Result<()> {
    conn.prepare_cached(sql)?.raw_execute()?;
    Ok(())
}

/// One writer's part of a group transaction (see [`Writer`]). Derefs to the connection, so
/// `&mut **tx` is an executor. Dropped without `commit` or `rollback`, its work is undone.
pub struct Transaction {
    state: Option<tokio::sync::OwnedMutexGuard<WriterState>>,
    writer: Arc<Writer>,
    group: u64,
    /// Joined an open group: its work is behind `SAVEPOINT member`.
    savepoint: bool,
}

impl Transaction {
    /// Take the writer; open a transaction with `begin` (`BEGIN IMMEDIATE`) unless a group's
    /// is open, then join that one behind a savepoint.
    pub async fn begin(writer: &Arc<Writer>, begin: &str) -> Result<Transaction> {
        writer.waiting.fetch_add(1, Ordering::SeqCst);
        let counted = Waiting(&writer.waiting);
        let mut st = writer.state.clone().lock_owned().await;
        drop(counted);
        st.check_open();
        let (group, savepoint) = match st.open {
            Some(g) => {
                exec_cached(&st.conn, "SAVEPOINT member")?;
                (g, true)
            }
            None => {
                exec_cached(&st.conn, begin)?;
                let g = st.next_group;
                st.next_group += 1;
                st.open = Some(g);
                (g, false)
            }
        };
        Ok(Transaction { state: Some(st), writer: writer.clone(), group, savepoint })
    }

    /// Keep this writer's work; answer once it is committed (with its group's).
    pub async fn commit(mut self) -> Result<()> {
        let Some(mut st) = self.state.take() else { return Ok(()) };
        if self.savepoint
            && let Err(e) = exec_cached(&st.conn, "RELEASE member")
        {
            undo(&mut st, self.group, true);
            return Err(e);
        }
        st.check_open();
        if let Some(outcome) = st.outcome(self.group) {
            return outcome;
        }
        if let Some((_, members)) = &self.writer.stats {
            members.fetch_add(1, Ordering::Relaxed);
        }
        let nobody_waiting = self.writer.waiting.load(Ordering::SeqCst) == 0;
        let linger = nobody_waiting && self.writer.should_linger();
        if nobody_waiting && !linger {
            return self.writer.commit(&mut st, self.group);
        }
        // writers are waiting (or may come soon): leave the transaction open for them, and
        // wait behind them
        drop(st);
        let mut pending = Pending { writer: Some(self.writer.clone()), group: self.group };
        if linger {
            self.writer.linger().await;
        }
        let mut st = self.writer.state.clone().lock_owned().await;
        pending.writer = None;
        st.check_open();
        match st.outcome(self.group) {
            Some(outcome) => outcome,
            None => self.writer.commit(&mut st, self.group),
        }
    }

    /// Undo this writer's work (only its own: the rest of the group stays).
    pub async fn rollback(mut self) -> Result<()> {
        if let Some(mut st) = self.state.take() {
            undo(&mut st, self.group, self.savepoint);
        }
        Ok(())
    }
}

/// Undo a member's work: back to its savepoint, or (the first member, alone in the
/// transaction) the whole transaction.
fn undo(st: &mut WriterState, group: u64, savepoint: bool) {
    st.check_open();
    if st.open != Some(group) {
        return;
    }
    if savepoint {
        let back = exec_cached(&st.conn, "ROLLBACK TO member").and_then(|()| exec_cached(&st.conn, "RELEASE member"));
        if back.is_err() {
            // the group cannot be trusted any more: end it, failed
            if !st.conn.is_autocommit() {
                let _ = exec_cached(&st.conn, "ROLLBACK");
            }
            st.end_group(group, false);
        }
    } else {
        if !st.conn.is_autocommit() {
            let _ = exec_cached(&st.conn, "ROLLBACK");
        }
        st.end_group(group, true);
    }
}

impl Drop for Transaction {
    fn drop(&mut self) {
        if let Some(mut st) = self.state.take() {
            undo(&mut st, self.group, self.savepoint);
        }
    }
}

/// A writer waiting for its group's commit. If that wait is abandoned (the caller's future
/// dropped), the group is committed by a task instead, so an open transaction is never left
/// with nobody to end it.
struct Pending {
    writer: Option<Arc<Writer>>,
    group: u64,
}

impl Drop for Pending {
    fn drop(&mut self) {
        let (Some(writer), Ok(rt)) = (self.writer.take(), tokio::runtime::Handle::try_current()) else { return };
        let group = self.group;
        rt.spawn(async move {
            let mut st = writer.state.lock().await;
            st.check_open();
            if st.outcome(group).is_none() {
                let _ = writer.commit(&mut st, group);
            }
        });
    }
}

impl Deref for Transaction {
    type Target = Connection;
    fn deref(&self) -> &Connection {
        &self.state.as_ref().expect("a transaction holds the writer until it ends").conn
    }
}

impl DerefMut for Transaction {
    fn deref_mut(&mut self) -> &mut Connection {
        &mut self.state.as_mut().expect("a transaction holds the writer until it ends").conn
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conn() -> Connection {
        let c = Connection::open_in_memory().expect("in-memory database");
        c.execute_batch("CREATE TABLE t (id BLOB PRIMARY KEY, n INTEGER, flag INTEGER, s TEXT, b BLOB)")
            .expect("table");
        c
    }

    fn block<F: std::future::Future>(f: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread().build().expect("runtime").block_on(f)
    }

    #[test]
    fn encodes_as_sqlx_sqlite_did() {
        let mut c = conn();
        let id = Uuid::now_v7();
        block(async {
            query("INSERT INTO t (id, n, flag, s, b) VALUES ($1, $2, $3, $4, $5)")
                .bind(id)
                .bind(7i32)
                .bind(true)
                .bind(None::<&str>)
                .bind(vec![1u8, 2])
                .execute(&mut c)
                .await
        })
        .expect("insert");
        let (ty_id, len_id, ty_flag, flag, ty_s): (String, i64, String, i64, String) = c
            .query_row("SELECT typeof(id), length(id), typeof(flag), flag, typeof(s) FROM t", [], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
            })
            .expect("row");
        // a UUID is its 16 bytes, a bool 0/1, None NULL
        assert_eq!((ty_id.as_str(), len_id, ty_flag.as_str(), flag, ty_s.as_str()), ("blob", 16, "integer", 1, "null"));
        let row = block(query("SELECT * FROM t WHERE id = $1").bind(id).fetch_one(&mut c)).expect("read back");
        assert_eq!(row.try_get::<Uuid, _>("id").expect("id"), id);
        assert_eq!(row.try_get::<i64, _>("n").expect("n as i64"), 7);
        assert_eq!(row.try_get::<i32, _>("n").expect("n as i32"), 7);
        assert!(row.try_get::<bool, _>("flag").expect("flag"));
        assert_eq!(row.try_get::<Option<String>, _>("s").expect("s"), None);
        assert!(row.try_get::<String, _>("s").is_err(), "NULL into a non-Option is an error");
        assert_eq!(row.try_get::<Vec<u8>, _>("b").expect("b"), vec![1, 2]);
        assert!(matches!(row.try_get::<i64, _>("nope"), Err(Error::ColumnNotFound(_))));
    }

    #[test]
    fn dollar_n_binds_the_nth_argument_wherever_it_stands() {
        let mut c = conn();
        // $2 before $1, $1 twice, and a '$1' that is text
        let row =
            block(query("SELECT $2 AS a, $1 AS b, $1 + 1 AS c, '$1' AS d").bind(10i64).bind("x").fetch_one(&mut c))
                .expect("select");
        assert_eq!(row.try_get::<String, _>("d").expect("d"), "$1");
        assert_eq!(row.try_get::<String, _>("a").expect("a"), "x");
        assert_eq!(row.try_get::<i64, _>("b").expect("b"), 10);
        assert_eq!(row.try_get::<i64, _>("c").expect("c"), 11);
        let mut qb: QueryBuilder<Sqlite> = QueryBuilder::new("SELECT ");
        let mut sep = qb.separated(" + ");
        sep.push_bind(1i64).push_bind(2i64).push_bind(3i64);
        let row = block(qb.push(" AS total").build().fetch_one(&mut c)).expect("built");
        assert_eq!(row.try_get::<i64, _>("total").expect("total"), 6);
    }

    #[test]
    fn a_bound_limit_limits_and_keeps_the_statement_prepared() {
        let mut c = conn();
        block(raw_sql("CREATE TABLE n (v INTEGER); INSERT INTO n VALUES (1), (2), (3), (4), (5)").execute(&mut c))
            .expect("table");
        // the LIMIT's parameter between two others: those still bind to their own values
        let sql = "SELECT v FROM n WHERE v >= $1 AND v <> $3 ORDER BY v LIMIT $2";
        let values = |rows: Vec<Row>| rows.iter().map(|r| r.try_get::<i64, _>("v").expect("v")).collect::<Vec<_>>();
        for (from, limit, not, want) in [(1i64, 2i64, 0i64, vec![1, 2]), (2, 3, 3, vec![2, 4, 5]), (1, 0, 0, vec![])] {
            let rows = block(query(sql).bind(from).bind(limit).bind(not).fetch_all(&mut c)).expect("select");
            assert_eq!(values(rows), want, "from {from}, limit {limit}, not {not}");
        }
        // run again with the same limit: the cached statement is not prepared again
        for _ in 0..2 {
            block(query(sql).bind(1i64).bind(2i64).bind(0i64).fetch_all(&mut c)).expect("select");
        }
        let text = inline_limits(
            "SELECT v FROM n WHERE v >= ?1 AND v <> ?3 ORDER BY v LIMIT ?2",
            &[Value::Integer(1), Value::Integer(2), Value::Integer(0)],
        );
        let stmt = c.prepare_cached(&text).expect("cached");
        assert!(stmt.get_status(rusqlite::StatementStatus::Run) >= 3, "the statement that ran is the one cached");
        assert_eq!(stmt.get_status(rusqlite::StatementStatus::RePrepare), 0, "never prepared again");
        // a limit that is not an integer stays a parameter (SQLite then refuses or reads it)
        assert_eq!(inline_limits("SELECT 1 LIMIT ?1", &[Value::Null]), "SELECT 1 LIMIT ?1");
    }

    #[test]
    fn unique_violations_and_rows_affected() {
        let mut c = conn();
        let id = Uuid::now_v7();
        let mut qb: QueryBuilder<Sqlite> = QueryBuilder::new("INSERT INTO t (id, n) ");
        qb.push_values([(id, 1i64), (Uuid::now_v7(), 2)], |mut b, (id, n)| {
            b.push_bind(id).push_bind(n);
        });
        let done = block(qb.build().execute(&mut c)).expect("two rows");
        assert_eq!(done.rows_affected(), 2);
        let again = block(query("INSERT INTO t (id, n) VALUES ($1, 3)").bind(id).execute(&mut c));
        let e = again.expect_err("the key is taken");
        assert!(e.is_unique_violation() && !e.is_busy(), "{e:?}");
        let none = block(query("UPDATE t SET n = 9 WHERE n = 42").execute(&mut c)).expect("update");
        assert_eq!(none.rows_affected(), 0);
    }

    /// Writers that overlap share a transaction; a failing one undoes only its own row, and
    /// each answers only once its row is visible to a reader.
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn overlapping_writers_share_a_commit_and_fail_alone() {
        let dir = std::env::temp_dir().join(format!("tiercare-lite-{}", Uuid::now_v7().simple()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let (writer, read) = open(&dir.join("t.db"), 2).expect("open");
        let read = Arc::new(read);
        let mut tx = Transaction::begin(&writer, "BEGIN IMMEDIATE").await.expect("begin");
        query("CREATE TABLE t (n INTEGER PRIMARY KEY)").execute(&mut *tx).await.expect("table");
        tx.commit().await.expect("commit");
        let mut tasks = Vec::new();
        for i in 0..40i64 {
            let (writer, read) = (writer.clone(), read.clone());
            tasks.push(tokio::spawn(async move {
                let mut tx = Transaction::begin(&writer, "BEGIN IMMEDIATE").await?;
                query("INSERT INTO t (n) VALUES ($1)").bind(i).execute(&mut *tx).await?;
                // let the others queue up behind this writer
                tokio::task::yield_now().await;
                if i % 5 == 0 {
                    tx.rollback().await?;
                    return Ok::<_, Error>(false);
                }
                tx.commit().await?;
                let seen: i64 =
                    query("SELECT COUNT(*) AS n FROM t WHERE n = $1").bind(i).fetch_one(&*read).await?.try_get("n")?;
                assert_eq!(seen, 1, "row {i} is visible once its commit answered");
                Ok(true)
            }));
        }
        let mut kept = 0;
        for t in tasks {
            kept += i64::from(t.await.expect("task").expect("writer"));
        }
        assert_eq!(kept, 32);
        let rows: i64 =
            query("SELECT COUNT(*) AS n FROM t").fetch_one(&*read).await.expect("count").try_get("n").expect("n");
        let odd: i64 = query("SELECT COUNT(*) AS n FROM t WHERE n % 5 = 0")
            .fetch_one(&*read)
            .await
            .expect("count")
            .try_get("n")
            .expect("n");
        assert_eq!((rows, odd), (32, 0), "the 8 rolled-back rows are gone, the 32 others kept");
        let groups = writer.state.lock().await.next_group - 1;
        assert!(groups < 41, "{groups} transactions for 41 writers: some shared one");
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// Under a steady stream of writes a group lingers for more members (a write that begins
    /// meanwhile joins it: two writes, one COMMIT); a write after a pause commits at once.
    #[tokio::test]
    async fn steady_writes_linger_for_company_and_sparse_writes_commit_at_once() {
        use std::task::{Context, Poll, Waker};
        let dir = std::env::temp_dir().join(format!("tiercare-lite-{}", Uuid::now_v7().simple()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let (writer, read) = open(&dir.join("t.db"), 2).expect("open");
        let groups = |w: &Arc<Writer>| {
            let st = w.state.try_lock().expect("writer free");
            (st.next_group, st.open)
        };
        let mut tx = Transaction::begin(&writer, "BEGIN IMMEDIATE").await.expect("begin");
        query("CREATE TABLE t (n INTEGER PRIMARY KEY)").execute(&mut *tx).await.expect("table");
        tx.commit().await.expect("commit");

        // right after a COMMIT: the first writer lingers (its commit does not finish on the
        // first poll), the second joins its group, and one COMMIT ends both ("right after"
        // is a minute here, so a descheduled test thread cannot turn it into a pause)
        writer.linger_window_us.store(60_000_000, Ordering::Relaxed);
        writer.linger_us.store(60_000_000, Ordering::Relaxed); // ends by its turns or a joiner
        let before = groups(&writer).0;
        let write = |n: i64| {
            let writer = writer.clone();
            async move {
                let mut tx = Transaction::begin(&writer, "BEGIN IMMEDIATE").await?;
                query("INSERT INTO t (n) VALUES ($1)").bind(n).execute(&mut *tx).await?;
                tx.commit().await
            }
        };
        let mut first = std::pin::pin!(write(1));
        assert!(first.as_mut().poll(&mut Context::from_waker(Waker::noop())).is_pending(), "it lingers");
        let (a, b) = tokio::join!(first, write(2));
        a.expect("first write");
        b.expect("second write");
        assert_eq!(groups(&writer), (before + 1, None), "two writes, one group, committed");
        let rows: i64 =
            query("SELECT COUNT(*) AS n FROM t").fetch_one(&read).await.expect("count").try_get("n").expect("n");
        assert_eq!(rows, 2);

        // after a pause longer than the window: committed on the first poll, no lingering
        writer.linger_window_us.store(LINGER_WINDOW.as_micros() as u64, Ordering::Relaxed);
        tokio::time::sleep(LINGER_WINDOW * 2).await;
        let mut lone = std::pin::pin!(write(3));
        match lone.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
            Poll::Ready(r) => r.expect("lone write"),
            Poll::Pending => panic!("a write after a pause lingered"),
        }
        assert_eq!(groups(&writer), (before + 2, None));
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// A read runs on the idle writer's connection (where a TEMP table of that connection is
    /// visible), on a reader while the writer is held (uncommitted rows unseen), and on a
    /// reader again when it runs over its budget on the writer; writes are never cut short.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn reads_use_the_idle_writer_within_a_budget() {
        let dir = std::env::temp_dir().join(format!("tiercare-lite-{}", Uuid::now_v7().simple()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let (writer, read) = open(&dir.join("t.db"), 2).expect("open");
        let mut tx = Transaction::begin(&writer, "BEGIN IMMEDIATE").await.expect("begin");
        query("CREATE TABLE t (n INTEGER PRIMARY KEY)").execute(&mut *tx).await.expect("table");
        query("CREATE TEMP TABLE only_on_the_writer (x INTEGER)").execute(&mut *tx).await.expect("temp table");
        query("INSERT INTO t (n) VALUES (1), (2)").execute(&mut *tx).await.expect("rows");
        tx.commit().await.expect("commit");
        let read = &read;
        let count =
            |sql: &'static str| async move { query(sql).fetch_one(read).await.map(|r| r.try_get::<i64, _>("n")) };
        // idle: on the writer
        let n = count("SELECT COUNT(*) AS n FROM only_on_the_writer").await.expect("read on the writer");
        assert_eq!(n.expect("n"), 0);
        // held by a write transaction: on a reader, which sees only what is committed
        let mut tx = Transaction::begin(&writer, "BEGIN IMMEDIATE").await.expect("begin");
        query("INSERT INTO t (n) VALUES (3)").execute(&mut *tx).await.expect("row");
        assert!(count("SELECT COUNT(*) AS n FROM only_on_the_writer").await.is_err(), "not on the held writer");
        assert_eq!(count("SELECT COUNT(*) AS n FROM t").await.expect("read").expect("n"), 2, "the row not committed");
        tx.commit().await.expect("commit");
        assert_eq!(count("SELECT COUNT(*) AS n FROM t").await.expect("read").expect("n"), 3);
        // over the budget on the writer: interrupted there, run again on a reader
        let long = "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 200000)
                    SELECT COUNT(*) AS n FROM c";
        assert_eq!(count(long).await.expect("a long read").expect("n"), 200_000, "answered in full");
        let long_on_writer = "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 200000)
                    SELECT COUNT(*) + (SELECT COUNT(*) FROM only_on_the_writer) AS n FROM c";
        assert!(count(long_on_writer).await.is_err(), "a long read leaves the writer for a reader");
        // a long write is not interrupted
        let mut tx = Transaction::begin(&writer, "BEGIN IMMEDIATE").await.expect("begin");
        query(
            "INSERT INTO t (n) WITH RECURSIVE c(x) AS (SELECT 4 UNION ALL SELECT x + 1 FROM c WHERE x < 200000) SELECT x FROM c",
        )
        .execute(&mut *tx)
        .await
        .expect("a long write");
        tx.commit().await.expect("commit");
        assert_eq!(count("SELECT COUNT(*) AS n FROM t").await.expect("read").expect("n"), 200_000);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
