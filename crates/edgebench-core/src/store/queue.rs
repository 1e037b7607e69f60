//! The fleet queue: plans waiting for a machine, claimed by agents under a lease in the
//! database's own clock (`FOR UPDATE SKIP LOCKED` on PostgreSQL), renewed while they run, and
//! returned to the queue when an agent dies and its lease runs out.

use serde::{Deserialize, Serialize};

use super::db::{vals, Row};
use super::{Store, StoreError};

/// Where a queued plan stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum QueueStatus {
    Queued,
    Running,
    Done,
    Failed,
}

impl QueueStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Running => "running",
            Self::Done => "done",
            Self::Failed => "failed",
        }
    }

    fn parse(s: &str) -> Self {
        match s {
            "running" => Self::Running,
            "done" => Self::Done,
            "failed" => Self::Failed,
            _ => Self::Queued,
        }
    }
}

/// A queued plan.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QueueItem {
    pub id: i64,
    /// "run" or "eval".
    pub kind: String,
    /// The request (`RunRequest` or `EvalRequest`) as JSON.
    pub plan_json: String,
    /// Only an agent with this label takes it ("" for any).
    pub label: String,
    pub status: QueueStatus,
    /// The agent that holds (or last held) it.
    pub agent: Option<String>,
    /// The experiment it started, once started: a later claim resumes it.
    pub experiment_id: Option<String>,
    /// How many times it was claimed.
    pub attempts: i64,
    pub error: Option<String>,
    pub created: String,
}

const COLS: &str =
    "id, kind, plan_json, label, status, agent, experiment_id, attempts, error, created";

fn item(r: &Row) -> Result<QueueItem, super::db::DbError> {
    Ok(QueueItem {
        id: r.int(0)?,
        kind: r.text(1)?,
        plan_json: r.text(2)?,
        label: r.text(3)?,
        status: QueueStatus::parse(&r.text(4)?),
        agent: r.opt_text(5)?,
        experiment_id: r.opt_text(6)?,
        attempts: r.int(7)?,
        error: r.opt_text(8)?,
        created: r.text(9)?,
    })
}

impl Store {
    /// Puts a plan on the queue; its id.
    pub fn queue_add(&self, kind: &str, plan_json: &str, label: &str) -> Result<i64, StoreError> {
        let created = time::OffsetDateTime::now_utc()
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default();
        let rows = self.query_map(
            "INSERT INTO queue (kind, plan_json, label, status, created) VALUES (?1, ?2, ?3, 'queued', ?4) RETURNING id",
            vals![kind, plan_json, label, created],
            |r| r.int(0),
        )?;
        rows.into_iter()
            .next()
            .ok_or_else(|| self.other("the queue gave no id".into()))
    }

    /// Takes the oldest plan this agent may run: queued, or running under a lease that ran out
    /// (its agent died). Held for `lease_ms` unless renewed.
    pub fn queue_claim(
        &self,
        agent: &str,
        label: &str,
        lease_ms: i64,
    ) -> Result<Option<QueueItem>, StoreError> {
        let d = self.dialect();
        let now = d.now_ms();
        let sql = format!(
            "UPDATE queue SET status = 'running', agent = ?1, lease_until_ms = {now} + ?2,
                              attempts = attempts + 1
             WHERE id = (SELECT id FROM queue
                         WHERE (status = 'queued' OR (status = 'running' AND lease_until_ms < {now}))
                           AND (label = '' OR label = ?3)
                         ORDER BY id LIMIT 1 {})
             RETURNING {COLS}",
            d.skip_locked()
        );
        Ok(self
            .query_map(&sql, vals![agent, lease_ms, label], item)?
            .into_iter()
            .next())
    }

    /// Extends this agent's lease on a plan; false when the plan is no longer its own.
    pub fn queue_renew(&self, id: i64, agent: &str, lease_ms: i64) -> Result<bool, StoreError> {
        let sql = format!(
            "UPDATE queue SET lease_until_ms = {} + ?3 WHERE id = ?1 AND agent = ?2 AND status = 'running'",
            self.dialect().now_ms()
        );
        Ok(self.exec(&sql, vals![id, agent, lease_ms])? > 0)
    }

    /// Records the experiment a plan started (a later claim resumes it).
    pub fn queue_set_experiment(
        &self,
        id: i64,
        agent: &str,
        experiment: &str,
    ) -> Result<(), StoreError> {
        self.exec(
            "UPDATE queue SET experiment_id = ?3 WHERE id = ?1 AND agent = ?2",
            vals![id, agent, experiment],
        )?;
        Ok(())
    }

    /// Ends a plan (done, or failed with its error); false when another agent holds it now.
    pub fn queue_finish(
        &self,
        id: i64,
        agent: &str,
        status: QueueStatus,
        error: Option<&str>,
    ) -> Result<bool, StoreError> {
        Ok(self.exec(
            "UPDATE queue SET status = ?3, error = ?4, lease_until_ms = NULL WHERE id = ?1 AND agent = ?2",
            vals![id, agent, status.as_str(), error],
        )? > 0)
    }

    /// Gives a plan back to the queue at once (an agent stopped by Ctrl-C).
    pub fn queue_release(&self, id: i64, agent: &str) -> Result<(), StoreError> {
        self.exec(
            "UPDATE queue SET status = 'queued', lease_until_ms = NULL WHERE id = ?1 AND agent = ?2 AND status = 'running'",
            vals![id, agent],
        )?;
        Ok(())
    }

    /// Every plan, oldest first.
    pub fn queue(&self) -> Result<Vec<QueueItem>, StoreError> {
        self.query_map(
            &format!("SELECT {COLS} FROM queue ORDER BY id"),
            vec![],
            item,
        )
    }
}
