//! The teaching catalog in DynamoDB.
//!
//! One table, `pk` + `sk`:
//! - rooms, rules and meeting patterns under `pk` = `room` / `rule` / `meeting`, `sk` = id;
//! - lectures under `pk` = `lecture#<section>`, `sk` = slot (`2026-10-27#1`), with
//!   `end_day` (UTC date of the end) and `end_key` (`<end>#<section>/<slot>`) keying the GSI
//!   [`LECTURES_BY_END`], so a window of ends is one Query per UTC day it touches.
//!
//! Each entry's data is one JSON string attribute, `data`. A lecture's `booking` and
//! `booking_error` are separate attributes that only the scheduler writes, and `observed`
//! one that only the poller writes.

use crate::lectures::Lecture;
use crate::rooms::Room;
use crate::store::{Booking, Entry, Kind, LectureRow, TeachingStore};
use async_trait::async_trait;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::AttributeValue;
use chrono::{DateTime, NaiveDate, TimeDelta, Utc};
use coursewire_runtime::aws::{Item, all_pages, classify};
use coursewire_runtime::service::ServiceError;
use serde_json::Value;

/// GSI of lectures by end time.
pub const LECTURES_BY_END: &str = "lectures_by_end";

fn s(value: impl Into<String>) -> AttributeValue {
    AttributeValue::S(value.into())
}

fn instant_key(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

fn lecture_pk(section_id: &str) -> String {
    format!("lecture#{section_id}")
}

#[derive(Clone)]
pub struct DynamoTeachingStore {
    client: Client,
    table: String,
}

impl DynamoTeachingStore {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Self {
            client,
            table: table.into(),
        }
    }

    async fn query(
        &self,
        index: Option<&str>,
        condition: &str,
        values: &[(&str, String)],
    ) -> Result<Vec<Item>, ServiceError> {
        all_pages(|start| async move {
            let mut query = self
                .client
                .query()
                .table_name(&self.table)
                .set_index_name(index.map(str::to_string))
                .key_condition_expression(condition)
                .set_exclusive_start_key(start);
            for (name, value) in values {
                query = query.expression_attribute_values(*name, s(value));
            }
            let out = query.send().await.map_err(|e| classify(&e))?;
            Ok((out.items.unwrap_or_default(), out.last_evaluated_key))
        })
        .await
    }
}

impl DynamoTeachingStore {
    async fn get(&self, pk: &str, sk: &str) -> Result<Option<Item>, ServiceError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("pk", s(pk))
            .key("sk", s(sk))
            .send()
            .await
            .map_err(|e| classify(&e))?;
        Ok(out.item)
    }
}

fn text<'a>(item: &'a Item, name: &str) -> Option<&'a str> {
    item.get(name)
        .and_then(|v| v.as_s().ok())
        .map(String::as_str)
}

fn decode<T: serde::de::DeserializeOwned>(
    item: &Item,
    name: &str,
) -> Result<Option<T>, ServiceError> {
    text(item, name)
        .map(|json| {
            serde_json::from_str(json).map_err(|e| {
                let key = format!(
                    "{}/{}",
                    text(item, "pk").unwrap_or("?"),
                    text(item, "sk").unwrap_or("?")
                );
                ServiceError::Permanent(format!(
                    "teaching catalog item {key}: unreadable {name}: {e}"
                ))
            })
        })
        .transpose()
}

fn entry(kind: Kind, item: &Item) -> Result<Entry, ServiceError> {
    let missing = || ServiceError::Permanent(format!("a {} item has no data", kind.as_str()));
    Ok(match kind {
        Kind::Room => Entry::Room(decode(item, "data")?.ok_or_else(missing)?),
        Kind::Rule => Entry::Rule(decode(item, "data")?.ok_or_else(missing)?),
        Kind::Meeting => Entry::Meeting(decode(item, "data")?.ok_or_else(missing)?),
        Kind::Lecture => Entry::Lecture(decode(item, "data")?.ok_or_else(missing)?),
    })
}

fn lecture_row(item: &Item) -> Result<LectureRow, ServiceError> {
    let lecture: Lecture = decode(item, "data")?
        .ok_or_else(|| ServiceError::Permanent("a lecture item has no data".into()))?;
    Ok(LectureRow {
        lecture,
        booking: decode::<Booking>(item, "booking")?,
        booking_error: text(item, "booking_error").map(str::to_string),
        observed: decode(item, "observed")?,
    })
}

/// The UTC days `[from, to)` touches.
fn days(from: DateTime<Utc>, to: DateTime<Utc>) -> Vec<NaiveDate> {
    let mut out = Vec::new();
    if to <= from {
        return out;
    }
    let last = (to - TimeDelta::nanoseconds(1)).date_naive();
    let mut day = from.date_naive();
    while day <= last {
        out.push(day);
        match day.succ_opt() {
            Some(next) => day = next,
            None => break,
        }
    }
    out
}

#[async_trait]
impl TeachingStore for DynamoTeachingStore {
    async fn list(&self, kind: Kind) -> Result<Vec<Entry>, ServiceError> {
        if kind == Kind::Lecture {
            return Err(ServiceError::Permanent(
                "lectures are read by section or by window, not listed".into(),
            ));
        }
        let items = self
            .query(None, "pk = :pk", &[(":pk", kind.as_str().to_string())])
            .await?;
        items.iter().map(|item| entry(kind, item)).collect()
    }

    async fn lectures_of(&self, section_id: &str) -> Result<Vec<LectureRow>, ServiceError> {
        let items = self
            .query(None, "pk = :pk", &[(":pk", lecture_pk(section_id))])
            .await?;
        items.iter().map(lecture_row).collect()
    }

    async fn lecture(
        &self,
        section_id: &str,
        slot: &str,
    ) -> Result<Option<LectureRow>, ServiceError> {
        self.get(&lecture_pk(section_id), slot)
            .await?
            .map(|item| lecture_row(&item))
            .transpose()
    }

    async fn room(&self, id: &str) -> Result<Option<Room>, ServiceError> {
        match self.get(Kind::Room.as_str(), id).await? {
            Some(item) => match entry(Kind::Room, &item)? {
                Entry::Room(room) => Ok(Some(room)),
                _ => Ok(None),
            },
            None => Ok(None),
        }
    }

    async fn lectures_ending(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Vec<LectureRow>, ServiceError> {
        let mut rows = Vec::new();
        // `<end>#…` sorts after `<end>`: BETWEEN from AND to keeps ends in [from, to).
        let (low, high) = (instant_key(from), instant_key(to));
        for day in days(from, to) {
            let items = self
                .query(
                    Some(LECTURES_BY_END),
                    "end_day = :day AND end_key BETWEEN :low AND :high",
                    &[
                        (":day", day.format("%Y-%m-%d").to_string()),
                        (":low", low.clone()),
                        (":high", high.clone()),
                    ],
                )
                .await?;
            for item in &items {
                rows.push(lecture_row(item)?);
            }
        }
        Ok(rows)
    }

    async fn put(&self, entry: &Entry) -> Result<(), ServiceError> {
        let data = s(entry.data().to_string());
        let (pk, sk) = match entry {
            Entry::Lecture(lecture) => (lecture_pk(&lecture.section_id), lecture.slot()),
            other => (other.kind().as_str().to_string(), other.id()),
        };
        let mut update = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", s(pk))
            .key("sk", s(sk))
            .expression_attribute_values(":data", data);
        update = match entry {
            // Booking attributes are the scheduler's: an import never touches them.
            Entry::Lecture(lecture) => update
                .update_expression("SET #data = :data, end_day = :day, end_key = :end")
                .expression_attribute_values(
                    ":day",
                    s(lecture.end.date_naive().format("%Y-%m-%d").to_string()),
                )
                .expression_attribute_values(
                    ":end",
                    s(format!("{}#{}", instant_key(lecture.end), entry.id())),
                ),
            _ => update.update_expression("SET #data = :data"),
        };
        update
            .expression_attribute_names("#data", "data")
            .send()
            .await
            .map_err(|e| classify(&e))?;
        Ok(())
    }

    async fn set_observed(&self, lecture: &Lecture, observed: &Value) -> Result<(), ServiceError> {
        self.client
            .update_item()
            .table_name(&self.table)
            .key("pk", s(lecture_pk(&lecture.section_id)))
            .key("sk", s(lecture.slot()))
            .condition_expression("attribute_exists(pk)")
            .update_expression("SET observed = :observed")
            .expression_attribute_values(":observed", s(observed.to_string()))
            .send()
            .await
            .map_err(|e| classify(&e))?;
        Ok(())
    }

    async fn set_booking(
        &self,
        lecture: &Lecture,
        booking: Option<&Booking>,
        error: Option<&str>,
    ) -> Result<(), ServiceError> {
        let mut sets = Vec::new();
        let mut removes = Vec::new();
        let mut update = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", s(lecture_pk(&lecture.section_id)))
            .key("sk", s(lecture.slot()))
            // Never create a lecture row from a booking alone.
            .condition_expression("attribute_exists(pk)");
        match booking {
            Some(booking) => {
                let json = serde_json::to_string(booking)
                    .map_err(|e| ServiceError::Permanent(e.to_string()))?;
                sets.push("booking = :booking");
                update = update.expression_attribute_values(":booking", s(json));
            }
            None => removes.push("booking"),
        }
        match error {
            Some(error) => {
                sets.push("booking_error = :error");
                update = update.expression_attribute_values(":error", s(error));
            }
            None => removes.push("booking_error"),
        }
        let mut expression = String::new();
        if !sets.is_empty() {
            expression.push_str(&format!("SET {}", sets.join(", ")));
        }
        if !removes.is_empty() {
            expression.push_str(&format!(" REMOVE {}", removes.join(", ")));
        }
        update
            .update_expression(expression.trim())
            .send()
            .await
            .map_err(|e| classify(&e))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn a_window_touches_each_utc_day_once() {
        let d = |s: &str| NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap();
        assert_eq!(
            days(at("2026-11-03T22:00:00Z"), at("2026-11-04T02:00:00Z")),
            [d("2026-11-03"), d("2026-11-04")]
        );
        assert_eq!(
            days(at("2026-11-03T22:00:00Z"), at("2026-11-04T00:00:00Z")),
            [d("2026-11-03")]
        );
        assert!(days(at("2026-11-04T00:00:00Z"), at("2026-11-04T00:00:00Z")).is_empty());
    }
}
