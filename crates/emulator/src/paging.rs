//! Cursor paging of data-plane lists: `{ "data", "first_id", "last_id", "has_more" }`.
//!
//! The Python pager keeps calling with `after=<last_id>` until a page has no `last_id`, so a
//! page after the last item is empty with `last_id: null`.

use serde_json::{Value, json};

use crate::errors::ApiError;

/// `limit`, `order`, `after`, `before` of a list request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PageQuery {
    pub(crate) limit: usize,
    pub(crate) descending: bool,
    pub(crate) after: Option<String>,
    pub(crate) before: Option<String>,
}

impl PageQuery {
    pub(crate) fn parse(query: &[(String, String)]) -> Result<Self, ApiError> {
        let get = |k: &str| {
            query
                .iter()
                .find(|(key, _)| key == k)
                .map(|(_, v)| v.as_str())
        };
        let limit = match get("limit") {
            None | Some("") => 20,
            Some(v) => match v.parse::<usize>() {
                Ok(n) if (1..=100).contains(&n) => n,
                _ => {
                    return Err(ApiError::bad_param(
                        "limit",
                        format!("limit must be an integer from 1 to 100, got '{v}'"),
                    ));
                }
            },
        };
        let descending = match get("order") {
            None | Some("") | Some("desc") => true,
            Some("asc") => false,
            Some(v) => {
                return Err(ApiError::bad_param(
                    "order",
                    format!("order must be 'asc' or 'desc', got '{v}'"),
                ));
            }
        };
        let cursor = |k: &str| get(k).filter(|v| !v.is_empty()).map(String::from);
        Ok(Self {
            limit,
            descending,
            after: cursor("after"),
            before: cursor("before"),
        })
    }
}

/// One listable item: its sort key, its id (the cursor value) and its JSON.
#[derive(Debug, Clone)]
pub(crate) struct Item {
    pub(crate) key: u64,
    pub(crate) id: String,
    pub(crate) value: Value,
}

/// Builds one page. `items` may come in any order; `cursor_key` maps a cursor to a sort key
/// (also for items that no longer exist, where the id encodes the key).
pub(crate) fn page(
    mut items: Vec<Item>,
    q: &PageQuery,
    cursor_key: impl Fn(&str) -> Option<u64>,
) -> Result<Value, ApiError> {
    items.sort_by_key(|i| i.key);
    if q.descending {
        items.reverse();
    }
    // "Comes after `k` in the requested order".
    let after = |item: &Item, k: u64| {
        if q.descending {
            item.key < k
        } else {
            item.key > k
        }
    };
    let before = |item: &Item, k: u64| {
        if q.descending {
            item.key > k
        } else {
            item.key < k
        }
    };
    let resolve = |name: &str, c: &str| {
        cursor_key(c).ok_or_else(|| {
            ApiError::bad_param(
                name,
                format!("the cursor '{c}' does not name an item of this list"),
            )
        })
    };
    let after_key = q
        .after
        .as_deref()
        .map(|c| resolve("after", c))
        .transpose()?;
    let before_key = q
        .before
        .as_deref()
        .map(|c| resolve("before", c))
        .transpose()?;
    let window: Vec<Item> = items
        .into_iter()
        .filter(|i| after_key.is_none_or(|k| after(i, k)))
        .filter(|i| before_key.is_none_or(|k| before(i, k)))
        .collect();
    let (data, has_more) = if before_key.is_some() && after_key.is_none() {
        // Paging backwards: the `limit` items closest to the cursor.
        let start = window.len().saturating_sub(q.limit);
        let more = start > 0;
        (window.into_iter().skip(start).collect::<Vec<_>>(), more)
    } else {
        let more = window.len() > q.limit;
        (window.into_iter().take(q.limit).collect::<Vec<_>>(), more)
    };
    Ok(json!({
        "object": "list",
        "first_id": data.first().map(|i| i.id.clone()),
        "last_id": data.last().map(|i| i.id.clone()),
        "has_more": has_more,
        "data": data.into_iter().map(|i| i.value).collect::<Vec<_>>(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn items(n: u64) -> Vec<Item> {
        (1..=n)
            .map(|k| Item {
                key: k,
                id: format!("a:{k}"),
                value: json!(k),
            })
            .collect()
    }

    fn key(c: &str) -> Option<u64> {
        c.rsplit(':').next()?.parse().ok()
    }

    fn q(limit: usize, desc: bool, after: Option<&str>, before: Option<&str>) -> PageQuery {
        PageQuery {
            limit,
            descending: desc,
            after: after.map(String::from),
            before: before.map(String::from),
        }
    }

    #[test]
    fn walking_with_last_id_visits_every_item_once_and_ends_on_an_empty_page() {
        let mut seen = Vec::new();
        let mut cursor: Option<String> = None;
        let mut pages = 0;
        loop {
            let p = page(items(7), &q(3, true, cursor.as_deref(), None), key).unwrap();
            pages += 1;
            seen.extend(
                p["data"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|v| v.as_u64().unwrap()),
            );
            match p["last_id"].as_str() {
                Some(id) => cursor = Some(id.to_string()),
                None => break,
            }
        }
        assert_eq!(seen, vec![7, 6, 5, 4, 3, 2, 1]);
        assert_eq!(pages, 4, "3 full pages and a final empty one");
    }

    #[test]
    fn before_returns_the_items_closest_to_the_cursor() {
        let p = page(items(7), &q(2, false, None, Some("a:6")), key).unwrap();
        assert_eq!(p["data"], json!([4, 5]));
        assert_eq!(p["has_more"], json!(true));
        let p = page(items(7), &q(2, false, Some("a:5"), None), key).unwrap();
        assert_eq!(p["data"], json!([6, 7]));
        assert_eq!(p["has_more"], json!(false));
    }

    #[test]
    fn query_limits_are_enforced() {
        let parse = |kv: &[(&str, &str)]| {
            PageQuery::parse(
                &kv.iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect::<Vec<_>>(),
            )
        };
        assert_eq!(parse(&[]).unwrap(), q(20, true, None, None));
        assert!(parse(&[("limit", "0")]).is_err());
        assert!(parse(&[("limit", "101")]).is_err());
        assert!(parse(&[("order", "up")]).is_err());
        assert!(!parse(&[("order", "asc")]).unwrap().descending);
    }
}
