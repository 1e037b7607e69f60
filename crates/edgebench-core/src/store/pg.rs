//! The PostgreSQL engine of the store (a team store many machines write to): the same schema
//! versions as SQLite in PostgreSQL's words, migrated under an advisory lock, and a connection
//! owned by one thread of its own, so the store can be called from inside an async runtime.

use postgres::types::{ToSql, Type};
use postgres::{Client, NoTls};
use std::collections::HashMap;
use std::sync::mpsc;
use std::thread::JoinHandle;

use super::db::{dollar_placeholders, Db, DbError, Dialect, Row, Stmt, Value};

/// The same versions as SQLite's migrations, one for one.
const MIGRATIONS: &[&str] = &[
    r#"
CREATE TABLE experiments (
    id TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    created TEXT NOT NULL,
    config_hash TEXT NOT NULL,
    config_json TEXT NOT NULL,
    command TEXT NOT NULL,
    status TEXT NOT NULL
);
CREATE TABLE units (
    id BIGSERIAL PRIMARY KEY,
    experiment_id TEXT NOT NULL REFERENCES experiments(id) ON DELETE CASCADE,
    model TEXT NOT NULL,
    scenario TEXT NOT NULL,
    setting TEXT NOT NULL DEFAULT '',
    position BIGINT NOT NULL,
    status TEXT NOT NULL,
    error TEXT,
    report_json TEXT,
    file TEXT,
    UNIQUE (experiment_id, model, scenario, setting)
);
CREATE TABLE requests (
    id BIGSERIAL PRIMARY KEY,
    unit_id BIGINT NOT NULL REFERENCES units(id) ON DELETE CASCADE,
    idx BIGINT NOT NULL,
    warmup BIGINT NOT NULL,
    ok BIGINT NOT NULL,
    line_json TEXT NOT NULL,
    UNIQUE (unit_id, idx)
);
CREATE TABLE monitor_samples (
    unit_id BIGINT NOT NULL REFERENCES units(id) ON DELETE CASCADE,
    t_ns BIGINT NOT NULL,
    rss_mb DOUBLE PRECISION,
    cpu_percent DOUBLE PRECISION NOT NULL
);
CREATE TABLE eval_items (
    id BIGSERIAL PRIMARY KEY,
    unit_id BIGINT NOT NULL REFERENCES units(id) ON DELETE CASCADE,
    item_id TEXT NOT NULL,
    item_json TEXT NOT NULL,
    UNIQUE (unit_id, item_id)
);
CREATE TABLE hardware_snapshots (
    rowid BIGSERIAL PRIMARY KEY,
    experiment_id TEXT NOT NULL REFERENCES experiments(id) ON DELETE CASCADE,
    taken TEXT NOT NULL,
    snapshot_json TEXT NOT NULL
);
CREATE INDEX requests_unit ON requests(unit_id);
CREATE INDEX samples_unit ON monitor_samples(unit_id);
"#,
    r#"
ALTER TABLE monitor_samples ADD COLUMN gpu_util_percent DOUBLE PRECISION;
ALTER TABLE monitor_samples ADD COLUMN vram_mb DOUBLE PRECISION;
ALTER TABLE monitor_samples ADD COLUMN temp_c DOUBLE PRECISION;
ALTER TABLE monitor_samples ADD COLUMN energy_j DOUBLE PRECISION;
"#,
    r#"
ALTER TABLE units ADD COLUMN model_name TEXT NOT NULL DEFAULT '';
ALTER TABLE units ADD COLUMN format TEXT NOT NULL DEFAULT '';
ALTER TABLE units ADD COLUMN quantization TEXT NOT NULL DEFAULT '';
"#,
    r#"
ALTER TABLE experiments ADD COLUMN uuid TEXT NOT NULL DEFAULT '';
ALTER TABLE experiments ADD COLUMN machine_id TEXT NOT NULL DEFAULT '';
UPDATE experiments SET uuid = md5(random()::text || id) WHERE uuid = '';
CREATE UNIQUE INDEX experiments_uuid ON experiments(uuid);
ALTER TABLE units ADD COLUMN uuid TEXT NOT NULL DEFAULT '';
UPDATE units SET uuid = md5(random()::text || id::text) WHERE uuid = '';
CREATE TABLE machines (
    id TEXT PRIMARY KEY,
    label TEXT NOT NULL,
    hardware_json TEXT NOT NULL,
    first_seen TEXT NOT NULL
);
CREATE TABLE queue (
    id BIGSERIAL PRIMARY KEY,
    kind TEXT NOT NULL,
    plan_json TEXT NOT NULL,
    label TEXT NOT NULL DEFAULT '',
    status TEXT NOT NULL,
    agent TEXT,
    lease_until_ms BIGINT,
    experiment_id TEXT,
    attempts BIGINT NOT NULL DEFAULT 0,
    error TEXT,
    created TEXT NOT NULL
);
"#,
    r#"
ALTER TABLE machines ADD COLUMN bench_json TEXT;
ALTER TABLE machines ADD COLUMN bench_taken TEXT;
"#,
];

/// Serialises schema changes between processes opening one database at once.
const MIGRATION_LOCK: i64 = 0x6564_6765_6265_6e63;

type Job = Box<dyn FnOnce(&mut Worker) + Send>;

/// A PostgreSQL database, reached through the thread that owns its connection.
pub(crate) struct Postgres {
    jobs: Option<mpsc::Sender<Job>>,
    thread: Option<JoinHandle<()>>,
}

/// The connection and its prepared statements, on their own thread.
struct Worker {
    client: Client,
    prepared: HashMap<String, postgres::Statement>,
}

fn err(e: postgres::Error) -> DbError {
    match e.as_db_error() {
        Some(db) => DbError(format!("{}: {}", db.severity(), db.message())),
        None => DbError(e.to_string()),
    }
}

/// `postgres://user:secret@host/db` with the password hidden, for messages.
pub fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let (auth, host) = match rest.rsplit_once('@') {
        Some((a, h)) => (a, h),
        None => return url.to_string(),
    };
    match auth.split_once(':') {
        Some((user, _)) => format!("{scheme}://{user}:***@{host}"),
        None => url.to_string(),
    }
}

impl Postgres {
    /// Connects to `url` and migrates its schema.
    pub fn connect(url: &str) -> Result<Self, DbError> {
        let (jobs, rx) = mpsc::channel::<Job>();
        let (ready_tx, ready_rx) = mpsc::channel::<Result<(), DbError>>();
        let url = url.to_string();
        let thread = std::thread::Builder::new()
            .name("edgebench-postgres".into())
            .spawn(move || {
                let worker = Client::connect(&url, NoTls)
                    .map_err(err)
                    .and_then(|client| {
                        let mut w = Worker {
                            client,
                            prepared: HashMap::new(),
                        };
                        w.migrate()?;
                        Ok(w)
                    });
                let mut w = match worker {
                    Ok(w) => {
                        let _ = ready_tx.send(Ok(()));
                        w
                    }
                    Err(e) => {
                        let _ = ready_tx.send(Err(e));
                        return;
                    }
                };
                while let Ok(job) = rx.recv() {
                    job(&mut w);
                }
            })
            .map_err(|e| DbError(format!("cannot start the database thread: {e}")))?;
        let db = Self {
            jobs: Some(jobs),
            thread: Some(thread),
        };
        ready_rx
            .recv()
            .map_err(|_| DbError("the database thread stopped".into()))??;
        Ok(db)
    }

    fn call<R: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Worker) -> Result<R, DbError> + Send + 'static,
    ) -> Result<R, DbError> {
        let (tx, rx) = mpsc::sync_channel(1);
        let jobs = self
            .jobs
            .as_ref()
            .ok_or_else(|| DbError("the database connection is closed".into()))?;
        jobs.send(Box::new(move |w| {
            let _ = tx.send(f(w));
        }))
        .map_err(|_| DbError("the database connection is closed".into()))?;
        rx.recv()
            .map_err(|_| DbError("the database connection is closed".into()))?
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        self.jobs.take();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Worker {
    fn migrate(&mut self) -> Result<(), DbError> {
        let mut tx = self.client.transaction().map_err(err)?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
            .map_err(err)?;
        tx.batch_execute(
            "CREATE TABLE IF NOT EXISTS edgebench_schema (version BIGINT NOT NULL);
             INSERT INTO edgebench_schema (version)
                 SELECT 0 WHERE NOT EXISTS (SELECT 1 FROM edgebench_schema);",
        )
        .map_err(err)?;
        let version: i64 = tx
            .query_one("SELECT version FROM edgebench_schema", &[])
            .map_err(err)?
            .get(0);
        let version = usize::try_from(version).unwrap_or(0);
        if version > MIGRATIONS.len() {
            return Err(DbError(format!(
                "schema version {version} is newer than this edgebench ({}); upgrade edgebench",
                MIGRATIONS.len()
            )));
        }
        for (i, m) in MIGRATIONS.iter().enumerate().skip(version) {
            tx.batch_execute(m).map_err(err)?;
            tx.execute(
                "UPDATE edgebench_schema SET version = $1",
                &[&((i + 1) as i64)],
            )
            .map_err(err)?;
        }
        tx.commit().map_err(err)
    }

    fn statement(&mut self, sql: &str) -> Result<postgres::Statement, DbError> {
        if let Some(s) = self.prepared.get(sql) {
            return Ok(s.clone());
        }
        let s = self
            .client
            .prepare(&dollar_placeholders(sql))
            .map_err(err)?;
        self.prepared.insert(sql.to_string(), s.clone());
        Ok(s)
    }
}

/// A value as the parameter type PostgreSQL inferred for it.
fn bind(v: &Value, ty: &Type) -> Result<Box<dyn ToSql + Sync + Send>, DbError> {
    let wrong = || DbError(format!("cannot bind {v:?} as {ty}"));
    Ok(match (v, ty) {
        (Value::Null, t) if *t == Type::INT8 => Box::new(None::<i64>),
        (Value::Null, t) if *t == Type::INT4 => Box::new(None::<i32>),
        (Value::Null, t) if *t == Type::FLOAT8 => Box::new(None::<f64>),
        (Value::Null, t) if *t == Type::FLOAT4 => Box::new(None::<f32>),
        (Value::Null, t) if *t == Type::BOOL => Box::new(None::<bool>),
        (Value::Null, _) => Box::new(None::<String>),
        (Value::Int(i), t) if *t == Type::INT8 => Box::new(*i),
        (Value::Int(i), t) if *t == Type::INT4 => Box::new(i32::try_from(*i).map_err(|_| wrong())?),
        (Value::Int(i), t) if *t == Type::FLOAT8 => Box::new(*i as f64),
        (Value::Int(i), t) if *t == Type::BOOL => Box::new(*i != 0),
        (Value::Int(i), t) if *t == Type::TEXT || *t == Type::VARCHAR => Box::new(i.to_string()),
        (Value::Real(f), t) if *t == Type::FLOAT8 => Box::new(*f),
        (Value::Real(f), t) if *t == Type::FLOAT4 => Box::new(*f as f32),
        (Value::Text(s), t) if *t == Type::TEXT || *t == Type::VARCHAR || *t == Type::UNKNOWN => {
            Box::new(s.clone())
        }
        _ => return Err(wrong()),
    })
}

fn read(row: &postgres::Row, i: usize) -> Result<Value, DbError> {
    let ty = row.columns()[i].type_().clone();
    let v = if ty == Type::INT8 {
        row.try_get::<_, Option<i64>>(i).map(|v| v.map(Value::Int))
    } else if ty == Type::INT4 {
        row.try_get::<_, Option<i32>>(i)
            .map(|v| v.map(|x| Value::Int(i64::from(x))))
    } else if ty == Type::INT2 {
        row.try_get::<_, Option<i16>>(i)
            .map(|v| v.map(|x| Value::Int(i64::from(x))))
    } else if ty == Type::BOOL {
        row.try_get::<_, Option<bool>>(i)
            .map(|v| v.map(|x| Value::Int(i64::from(x))))
    } else if ty == Type::FLOAT8 {
        row.try_get::<_, Option<f64>>(i).map(|v| v.map(Value::Real))
    } else if ty == Type::FLOAT4 {
        row.try_get::<_, Option<f32>>(i)
            .map(|v| v.map(|x| Value::Real(f64::from(x))))
    } else {
        row.try_get::<_, Option<String>>(i)
            .map(|v| v.map(Value::Text))
    };
    Ok(v.map_err(err)?.unwrap_or(Value::Null))
}

fn params<'a>(
    st: &postgres::Statement,
    values: &[Value],
) -> Result<Vec<Box<dyn ToSql + Sync + Send + 'a>>, DbError> {
    st.params()
        .iter()
        .zip(values)
        .map(|(ty, v)| bind(v, ty))
        .collect()
}

fn refs(boxed: &[Box<dyn ToSql + Sync + Send>]) -> Vec<&(dyn ToSql + Sync)> {
    boxed
        .iter()
        .map(|b| b.as_ref() as &(dyn ToSql + Sync))
        .collect()
}

impl Db for Postgres {
    fn execute_all(&self, stmts: Vec<Stmt>) -> Result<Vec<u64>, DbError> {
        self.call(move |w| {
            let prepared = stmts
                .iter()
                .map(|s| w.statement(&s.sql))
                .collect::<Result<Vec<_>, _>>()?;
            let mut tx = w.client.transaction().map_err(err)?;
            let mut changed = Vec::with_capacity(stmts.len());
            for (st, s) in prepared.iter().zip(&stmts) {
                let boxed = params(st, &s.params)?;
                changed.push(tx.execute(st, &refs(&boxed)).map_err(err)?);
            }
            tx.commit().map_err(err)?;
            Ok(changed)
        })
    }

    fn query(&self, sql: &str, values: Vec<Value>) -> Result<Vec<Row>, DbError> {
        let sql = sql.to_string();
        self.call(move |w| {
            let st = w.statement(&sql)?;
            let boxed = params(&st, &values)?;
            let rows = w.client.query(&st, &refs(&boxed)).map_err(err)?;
            rows.iter()
                .map(|r| {
                    (0..r.len())
                        .map(|i| read(r, i))
                        .collect::<Result<_, _>>()
                        .map(Row)
                })
                .collect()
        })
    }

    fn dialect(&self) -> Dialect {
        Dialect::Postgres
    }

    fn schema_version(&self) -> Result<i64, DbError> {
        self.call(|w| {
            Ok(w.client
                .query_one("SELECT version FROM edgebench_schema", &[])
                .map_err(err)?
                .get(0))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_hidden() {
        assert_eq!(
            redact("postgres://bench:s3cret@db.example:5432/results"),
            "postgres://bench:***@db.example:5432/results"
        );
        assert_eq!(
            redact("postgres://bench@localhost/results"),
            "postgres://bench@localhost/results"
        );
    }
}
