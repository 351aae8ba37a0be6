//! Cursor pagination: a list answers `{"items": [...], "next_cursor": "..." | null}`; the
//! client passes `next_cursor` back as `cursor` for the next page. A cursor is the sort key
//! of the last item seen (keyset pagination: stable while rows are added, no `OFFSET`),
//! opaque to clients (base64url of a JSON array).

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::ApiError;

/// Items per page unless the client asks for another number.
pub(super) const DEFAULT_LIMIT: u32 = 50;
/// The most items one page holds.
pub(super) const MAX_LIMIT: u32 = 200;
/// Longer than any cursor this service hands out.
const MAX_CURSOR: usize = 512;

/// `cursor` and `limit`, common to every list.
#[derive(Debug, Clone, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(super) struct PageParams {
    /// `next_cursor` of the previous page; absent for the first page.
    #[param(max_length = 512)]
    pub cursor: Option<String>,
    /// Items per page, 1 to 200 (default 50).
    #[param(minimum = 1, maximum = 200)]
    pub limit: Option<u32>,
}

impl PageParams {
    /// The page size, validated.
    pub(super) fn limit(&self) -> Result<u32, ApiError> {
        match self.limit {
            None => Ok(DEFAULT_LIMIT),
            Some(n @ 1..=MAX_LIMIT) => Ok(n),
            Some(n) => Err(ApiError::bad_request(
                "invalid_query",
                format!("limit must be between 1 and {MAX_LIMIT}, not {n}"),
            )),
        }
    }

    /// The decoded cursor, `None` for the first page.
    pub(super) fn after<K: DeserializeOwned>(&self) -> Result<Option<K>, ApiError> {
        let Some(cursor) = &self.cursor else {
            return Ok(None);
        };
        let invalid = || {
            ApiError::bad_request(
                "invalid_cursor",
                "cursor is not one this list handed out; start again without it",
            )
        };
        if cursor.len() > MAX_CURSOR {
            return Err(invalid());
        }
        let bytes = URL_SAFE_NO_PAD.decode(cursor).map_err(|_| invalid())?;
        serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|_| invalid())
    }
}

/// One page of a list.
#[derive(Debug, Serialize, ToSchema)]
pub(super) struct Page<T> {
    /// The items, in the list's order.
    pub items: Vec<T>,
    /// Pass as `cursor` for the next page; `null` on the last page.
    pub next_cursor: Option<String>,
}

impl<T> Page<T> {
    /// A page from up to `limit + 1` rows (the extra row only tells there is more), the
    /// cursor made from the last item kept.
    pub(super) fn from_rows<K: Serialize>(
        mut rows: Vec<T>,
        limit: u32,
        key: impl Fn(&T) -> K,
    ) -> Self {
        let more = rows.len() > limit as usize;
        rows.truncate(limit as usize);
        let next_cursor = match (more, rows.last()) {
            (true, Some(last)) => Some(encode(&key(last))),
            _ => None,
        };
        Self {
            items: rows,
            next_cursor,
        }
    }
}

fn encode(key: &impl Serialize) -> String {
    let json = serde_json::to_vec(key).expect("cursor keys are plain values");
    URL_SAFE_NO_PAD.encode(json)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cursor_round_trips_and_garbage_is_refused() {
        let page = Page::from_rows(vec![1, 2, 3], 2, |n| (i64::from(*n), format!("id-{n}")));
        assert_eq!(page.items, [1, 2]);
        let params = PageParams {
            cursor: page.next_cursor,
            limit: None,
        };
        assert_eq!(
            params.after::<(i64, String)>().unwrap(),
            Some((2, "id-2".to_owned()))
        );
        let last = Page::from_rows(vec![1, 2], 2, |n| *n);
        assert_eq!(last.next_cursor, None);

        for bad in ["!!", "eyJ", &"a".repeat(600)] {
            let params = PageParams {
                cursor: Some(bad.to_owned()),
                limit: None,
            };
            assert!(params.after::<(i64, String)>().is_err(), "{bad}");
        }
        for (limit, ok) in [(0, false), (1, true), (200, true), (201, false)] {
            let params = PageParams {
                cursor: None,
                limit: Some(limit),
            };
            assert_eq!(params.limit().is_ok(), ok, "{limit}");
        }
    }
}
