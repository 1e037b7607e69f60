//! The one seam between the store's SQL and a database engine: values, rows, statements run in
//! one transaction, and the two engines' few differences (placeholders, "now", row locks).

/// A value bound to or read from a statement.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Value {
    Null,
    Int(i64),
    Real(f64),
    Text(String),
}

impl From<i64> for Value {
    fn from(v: i64) -> Self {
        Self::Int(v)
    }
}

impl From<bool> for Value {
    fn from(v: bool) -> Self {
        Self::Int(i64::from(v))
    }
}

impl From<f64> for Value {
    fn from(v: f64) -> Self {
        Self::Real(v)
    }
}

impl From<&str> for Value {
    fn from(v: &str) -> Self {
        Self::Text(v.to_string())
    }
}

impl From<&String> for Value {
    fn from(v: &String) -> Self {
        Self::Text(v.clone())
    }
}

impl From<String> for Value {
    fn from(v: String) -> Self {
        Self::Text(v)
    }
}

impl<T: Into<Value>> From<Option<T>> for Value {
    fn from(v: Option<T>) -> Self {
        v.map_or(Self::Null, Into::into)
    }
}

/// Builds a parameter list: `vals![a, b]`.
macro_rules! vals {
    ($($v:expr),* $(,)?) => { vec![$($crate::store::db::Value::from($v)),*] };
}
pub(crate) use vals;

/// One statement with its parameters (`?1`, `?2`, ... in the SQL, whatever the engine).
#[derive(Debug, Clone)]
pub(crate) struct Stmt {
    pub sql: String,
    pub params: Vec<Value>,
}

impl Stmt {
    pub fn new(sql: impl Into<String>, params: Vec<Value>) -> Self {
        Self {
            sql: sql.into(),
            params,
        }
    }
}

/// A row read back.
#[derive(Debug, Clone)]
pub(crate) struct Row(pub Vec<Value>);

impl Row {
    fn at(&self, i: usize) -> Result<&Value, DbError> {
        self.0
            .get(i)
            .ok_or_else(|| DbError(format!("no column {i} in a row of {}", self.0.len())))
    }

    pub fn int(&self, i: usize) -> Result<i64, DbError> {
        match self.at(i)? {
            Value::Int(v) => Ok(*v),
            other => Err(DbError(format!(
                "column {i}: expected an integer, got {other:?}"
            ))),
        }
    }

    pub fn text(&self, i: usize) -> Result<String, DbError> {
        match self.at(i)? {
            Value::Text(v) => Ok(v.clone()),
            other => Err(DbError(format!("column {i}: expected text, got {other:?}"))),
        }
    }

    pub fn opt_text(&self, i: usize) -> Result<Option<String>, DbError> {
        match self.at(i)? {
            Value::Null => Ok(None),
            _ => self.text(i).map(Some),
        }
    }

    pub fn opt_real(&self, i: usize) -> Result<Option<f64>, DbError> {
        match self.at(i)? {
            Value::Null => Ok(None),
            Value::Real(v) => Ok(Some(*v)),
            Value::Int(v) => Ok(Some(*v as f64)),
            other => Err(DbError(format!(
                "column {i}: expected a number, got {other:?}"
            ))),
        }
    }
}

/// What an engine said went wrong.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{0}")]
pub(crate) struct DbError(pub String);

/// Which engine: the few places where the SQL differs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    Sqlite,
    Postgres,
}

impl Dialect {
    /// The database's clock in milliseconds since the epoch (leases use the database's clock,
    /// so machines with skewed clocks agree on them).
    pub fn now_ms(self) -> &'static str {
        match self {
            Self::Sqlite => "CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER)",
            Self::Postgres => "CAST(EXTRACT(EPOCH FROM clock_timestamp()) * 1000 AS BIGINT)",
        }
    }

    /// Row locking for a queue claim: other claimers skip a row being claimed (PostgreSQL);
    /// SQLite serialises writers, so it needs none.
    pub fn skip_locked(self) -> &'static str {
        match self {
            Self::Sqlite => "",
            Self::Postgres => "FOR UPDATE SKIP LOCKED",
        }
    }
}

/// A database engine the store runs on: statements in one transaction, and queries.
pub(crate) trait Db: Send {
    /// Runs the statements in one transaction; the rows changed by each.
    fn execute_all(&self, stmts: Vec<Stmt>) -> Result<Vec<u64>, DbError>;
    /// Runs one query and returns every row.
    fn query(&self, sql: &str, params: Vec<Value>) -> Result<Vec<Row>, DbError>;
    /// Which engine.
    fn dialect(&self) -> Dialect;
    /// The schema version.
    fn schema_version(&self) -> Result<i64, DbError>;
}

/// `?N` placeholders as PostgreSQL writes them (`$N`); the store's SQL holds no `?` elsewhere.
pub(crate) fn dollar_placeholders(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len());
    let mut chars = sql.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '?' && chars.peek().is_some_and(char::is_ascii_digit) {
            out.push('$');
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_become_dollars() {
        assert_eq!(
            dollar_placeholders("UPDATE t SET a = ?2 WHERE id = ?1 AND b = '?'"),
            "UPDATE t SET a = $2 WHERE id = $1 AND b = '?'"
        );
        assert_eq!(dollar_placeholders("?10, ?1"), "$10, $1");
    }

    #[test]
    fn rows_read_by_type() {
        let r = Row(vals![1i64, "x", None::<String>, 2.5f64]);
        assert_eq!(r.int(0).unwrap(), 1);
        assert_eq!(r.text(1).unwrap(), "x");
        assert_eq!(r.opt_text(2).unwrap(), None);
        assert_eq!(r.opt_real(3).unwrap(), Some(2.5));
        assert!(r.int(1).is_err());
        assert!(r.int(9).is_err());
    }
}
