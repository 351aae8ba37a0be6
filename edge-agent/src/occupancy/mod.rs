//! Room occupancy: the latest head count per room from the people-counting cameras, the
//! school-wide totals made from them, and (in `schedule`) when to emit a school snapshot.
//!
//! Pure bookkeeping for the gateway's core actor, which passes the time in every call and
//! stores and publishes what it gets back. Nothing here reads a clock or touches the store.
//!
//! A room's count is *stale* once its latest report is `stale_after` old (boundary included):
//! the camera may be off or unplugged, and a count from ten minutes ago must not be reported as
//! people present now. Stale rooms are kept (the dashboard shows their last count, greyed) but
//! leave the totals until their camera reports again. A timestamp in the future (the clock
//! stepped back) is never stale; `tick` pulls it back to `now` so staleness is measured from
//! the step.
//!
//! One camera per room is expected. If two cameras are configured for the same room, the
//! latest report wins: adding them would double-count people both can see.

mod schedule;
mod snapshot;
#[cfg(test)]
mod tests;

use std::collections::HashMap;

use firmware_protocol::Label;
use shared::UnixMillis;
use shared::ids::DeviceId;

pub use crate::config::{OccupancyPolicy, SnapshotPolicy};
pub use schedule::{MAX_WAIT_DEBOUNCES, SnapshotKind, SnapshotSchedule};
pub use snapshot::snapshot;

/// The most people (students plus adults) one room's report may count, whatever its capacity.
///
/// The wire allows 65,535 of each. No room in a school holds 10,000 people (a stadium is not a
/// room with a camera), so a larger count is a faulty camera, and accepting it would swamp the
/// school's totals and the absence figure every office reads in an emergency.
pub const MAX_ROOM_COUNT: u32 = 10_000;

/// What configuration says about a room.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RoomInfo {
    /// How many people the room is meant for; `None` when not configured.
    pub capacity: Option<u16>,
}

/// A room's latest accepted count.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoomCount {
    /// Students counted.
    pub students: u16,
    /// Teachers and other adults counted.
    pub adults: u16,
    /// The camera's confidence, 0 to 100.
    pub confidence_pct: u8,
    /// When the gateway received the report.
    pub at: UnixMillis,
    /// The camera that sent it.
    pub device: DeviceId,
    /// Older than `stale_after`: shown, but left out of the totals.
    pub stale: bool,
}

/// What an accepted report did to its room.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Changed {
    /// The room's numbers changed, or it was new or stale: the totals may have moved, so a
    /// change snapshot is due (after the debounce).
    Counts,
    /// Same students and adults as before; only freshness (and perhaps confidence or the
    /// reporting camera) changed, which no snapshot shows.
    Refreshed,
}

/// Why a camera's report was not taken. The room's stored count is left as it was.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    /// The camera reported a room other than the one it is configured for: a camera cannot
    /// speak for a room it was not installed in (a mis-flashed or tampered device).
    #[error("camera {device} is configured for room {configured} but reported room {reported}")]
    WrongRoom {
        /// The camera.
        device: DeviceId,
        /// Its configured room.
        configured: Label,
        /// The room in the report.
        reported: Label,
    },
    /// Students plus adults exceed the room's limit: twice its capacity (leaving room for a
    /// class sheltering next door in a lockdown), and never more than [`MAX_ROOM_COUNT`].
    #[error("room {room}: {count} people counted, more than the limit of {limit}")]
    CountTooHigh {
        /// The room.
        room: Label,
        /// Students plus adults in the report.
        count: u32,
        /// The most the room accepts.
        limit: u32,
    },
    /// The confidence is above 100 %. The frame decoder already refuses this; the check keeps
    /// this module correct on its own.
    #[error("room {room}: confidence {confidence_pct}% is above 100%")]
    Confidence {
        /// The room.
        room: Label,
        /// The reported confidence.
        confidence_pct: u8,
    },
}

/// The latest count of every room that has reported.
#[derive(Debug)]
pub struct Occupancy {
    policy: OccupancyPolicy,
    rooms: HashMap<Label, RoomInfo>,
    counts: HashMap<Label, RoomCount>,
}

impl Occupancy {
    /// No counts yet; `rooms` is the configured rooms with their capacities.
    pub fn new(policy: OccupancyPolicy, rooms: HashMap<Label, RoomInfo>) -> Self {
        Self {
            policy,
            rooms,
            counts: HashMap::new(),
        }
    }

    /// Takes a camera's report. `device_room` is the room the camera is configured for; the
    /// report must name the same room. A room missing from the configured rooms is accepted
    /// (the device registry, not the capacity list, decides which rooms exist) with the
    /// [`MAX_ROOM_COUNT`] limit. Counts cannot be negative: they are `u16` on the wire.
    pub fn report(
        &mut self,
        device: &DeviceId,
        device_room: &Label,
        report: &firmware_protocol::Occupancy,
        now: UnixMillis,
    ) -> Result<Changed, Refused> {
        let room = report.room;
        if room != *device_room {
            return Err(Refused::WrongRoom {
                device: device.clone(),
                configured: *device_room,
                reported: room,
            });
        }
        if report.confidence_pct > 100 {
            return Err(Refused::Confidence {
                room,
                confidence_pct: report.confidence_pct,
            });
        }
        let count = u32::from(report.students) + u32::from(report.adults);
        let limit = self.limit(&room);
        if count > limit {
            return Err(Refused::CountTooHigh { room, count, limit });
        }
        let Some(stored) = self.counts.get_mut(&room) else {
            let fresh = RoomCount {
                students: report.students,
                adults: report.adults,
                confidence_pct: report.confidence_pct,
                at: now,
                device: device.clone(),
                stale: false,
            };
            self.counts.insert(room, fresh);
            return Ok(Changed::Counts);
        };
        let same = stored.students == report.students && stored.adults == report.adults;
        let changed = if stored.stale || !same {
            Changed::Counts
        } else {
            Changed::Refreshed
        };
        stored.students = report.students;
        stored.adults = report.adults;
        stored.confidence_pct = report.confidence_pct;
        stored.at = now;
        stored.stale = false;
        // Cloning the id allocates; the same camera reporting again is the common case.
        if stored.device != *device {
            stored.device = device.clone();
        }
        Ok(changed)
    }

    /// Marks rooms whose latest count is `stale_after` old as stale and returns them (sorted by
    /// name), each once, so the actor can record an event.
    pub fn tick(&mut self, now: UnixMillis) -> Vec<Label> {
        let stale_after = self.policy.stale_after;
        let mut newly_stale = Vec::new();
        for (room, count) in self.counts.iter_mut().filter(|(_, c)| !c.stale) {
            if count.at > now {
                // The clock stepped back: measure the age from the step instead.
                count.at = now;
            } else if now
                .duration_since(count.at)
                .is_some_and(|age| age >= stale_after)
            {
                count.stale = true;
                newly_stale.push(*room);
            }
        }
        sort_rooms(&mut newly_stale);
        newly_stale
    }

    /// Every room that has reported, with its latest count, in no particular order.
    pub fn rooms(&self) -> impl Iterator<Item = (&Label, &RoomCount)> {
        self.counts.iter()
    }

    /// Students and adults present: the sums over rooms whose count is fresh.
    pub fn totals(&self) -> (u32, u32) {
        self.counts.values().filter(|count| !count.stale).fold(
            (0, 0),
            |(students, adults), count| {
                (
                    students.saturating_add(u32::from(count.students)),
                    adults.saturating_add(u32::from(count.adults)),
                )
            },
        )
    }

    /// Rooms whose count is stale, sorted by name.
    pub fn stale_rooms(&self) -> Vec<Label> {
        let mut stale: Vec<Label> = self
            .counts
            .iter()
            .filter(|(_, count)| count.stale)
            .map(|(room, _)| *room)
            .collect();
        sort_rooms(&mut stale);
        stale
    }

    /// Restores stored counts at start-up, replacing any for the same rooms; the next
    /// [`Occupancy::tick`] decides which are stale by now.
    pub fn load(&mut self, rooms: impl IntoIterator<Item = (Label, RoomCount)>) {
        self.counts.extend(rooms);
    }

    /// Twice the room's capacity, capped at [`MAX_ROOM_COUNT`]; the cap alone without one.
    fn limit(&self, room: &Label) -> u32 {
        self.rooms
            .get(room)
            .and_then(|info| info.capacity)
            .map_or(MAX_ROOM_COUNT, |capacity| {
                (u32::from(capacity) * 2).min(MAX_ROOM_COUNT)
            })
    }
}

/// Labels have no order of their own; sorting by name keeps events and lists stable.
fn sort_rooms(rooms: &mut [Label]) {
    rooms.sort_by(|a, b| a.as_str().cmp(b.as_str()));
}
