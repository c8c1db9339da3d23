//! Pages bounded by bytes as well as rows: a listing stops adding rows once the rows it
//! holds reach a byte budget, so a page of large rows (agent cards, activity bodies, event
//! payloads) stays small however many rows it may hold. The cursor contract is unchanged:
//! a page is always a prefix of what the same query without a budget would return, so a
//! client that continues from the last row it got skips nothing.

use sqlx::any::AnyRow;
use sqlx::{FromRow, Row as _};

/// One page of a listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page<T> {
    /// The rows, in the listing's order.
    pub rows: Vec<T>,
    /// The rows reached the byte budget before the row limit: more may follow the last
    /// one (a client continues from it).
    pub truncated: bool,
}

/// A row read together with `running`, the byte size of every row up to and including it
/// in the listing's order (a window sum in SQL).
pub(crate) struct Budgeted<T> {
    row: T,
    running: i64,
}

impl<'r, T: FromRow<'r, AnyRow>> FromRow<'r, AnyRow> for Budgeted<T> {
    fn from_row(row: &'r AnyRow) -> Result<Self, sqlx::Error> {
        Ok(Self {
            row: T::from_row(row)?,
            running: row.try_get("running")?,
        })
    }
}

/// The SQL of a budgeted listing: `inner` is the listing (already ordered and limited, its
/// rows carrying `size`, their byte size), `order` its `ORDER BY` clause. The rows come
/// back in order while the bytes *before* each are under the budget bound at `$budget`:
/// the first row always comes (a row larger than the budget is never stuck), and a page
/// holds at most the budget plus one row.
pub(crate) fn budgeted(inner: &str, order: &str, budget: &str) -> String {
    format!(
        "SELECT * FROM (SELECT limited.*, \
         CAST(SUM(size) OVER (ORDER BY {order} ROWS UNBOUNDED PRECEDING) AS BIGINT) AS running \
         FROM ({inner}) limited) budgeted WHERE running - size < {budget} ORDER BY {order}"
    )
}

/// The page of budgeted rows read with a row `limit` and a byte `budget`.
pub(crate) fn page<T>(rows: Vec<Budgeted<T>>, limit: i64, budget: i64) -> Page<T> {
    let full = i64::try_from(rows.len()).unwrap_or(i64::MAX) >= limit;
    // The last row reached the budget: the next one, if any, was left for the next page.
    let truncated = !full && rows.last().is_some_and(|last| last.running >= budget);
    Page {
        rows: rows.into_iter().map(|r| r.row).collect(),
        truncated,
    }
}
