//! Tests for [`Occupancy`](super::Occupancy): refused reports, limits at their boundary,
//! what counts as a change, staleness and the totals.

use std::collections::HashMap;

use firmware_protocol::Label;
use shared::UnixMillis;
use shared::ids::DeviceId;

use super::*;

const STALE_AFTER_MS: i64 = 120_000;

fn room(name: &str) -> Label {
    Label::new(name).unwrap()
}

fn cam(name: &str) -> DeviceId {
    name.parse().unwrap()
}

fn t(millis: i64) -> UnixMillis {
    UnixMillis::new(millis)
}

fn counted(name: &str, students: u16, adults: u16) -> firmware_protocol::Occupancy {
    firmware_protocol::Occupancy {
        room: room(name),
        students,
        adults,
        confidence_pct: 90,
    }
}

/// B-204 holds 30, the gym 6,000 (over the absolute cap), the library has no capacity set.
fn school() -> Occupancy {
    let rooms = HashMap::from([
        (room("B-204"), RoomInfo { capacity: Some(30) }),
        (
            room("Gym"),
            RoomInfo {
                capacity: Some(6_000),
            },
        ),
        (room("Library"), RoomInfo { capacity: None }),
    ]);
    Occupancy::new(OccupancyPolicy::default(), rooms)
}

/// Reports `students`/`adults` for `name` from a camera configured for that room.
fn report(
    occupancy: &mut Occupancy,
    name: &str,
    students: u16,
    adults: u16,
    now: i64,
) -> Result<Changed, Refused> {
    occupancy.report(
        &cam("cam-1"),
        &room(name),
        &counted(name, students, adults),
        t(now),
    )
}

#[test]
fn a_report_for_another_room_is_refused() {
    let mut occupancy = school();
    let err = occupancy
        .report(
            &cam("cam-1"),
            &room("B-204"),
            &counted("B-205", 20, 1),
            t(0),
        )
        .unwrap_err();
    assert_eq!(
        err,
        Refused::WrongRoom {
            device: cam("cam-1"),
            configured: room("B-204"),
            reported: room("B-205"),
        }
    );
    assert_eq!(occupancy.rooms().count(), 0);
}

#[test]
fn counts_are_limited_to_twice_the_capacity_and_ten_thousand() {
    // (room, students, adults, limit if refused)
    let cases = [
        ("B-204", 55, 5, None),
        ("B-204", 56, 5, Some(60)),
        ("B-204", 0, 61, Some(60)),
        ("Gym", 9_000, 1_000, None),
        ("Gym", 9_000, 1_001, Some(10_000)),
        ("Library", 10_000, 0, None),
        ("Library", 10_001, 0, Some(10_000)),
        ("Unconfigured", 9_999, 1, None),
        ("Unconfigured", u16::MAX, u16::MAX, Some(10_000)),
    ];
    for (name, students, adults, refused) in cases {
        let mut occupancy = school();
        let got = report(&mut occupancy, name, students, adults, 0);
        let expected = match refused {
            None => Ok(Changed::Counts),
            Some(limit) => Err(Refused::CountTooHigh {
                room: room(name),
                count: u32::from(students) + u32::from(adults),
                limit,
            }),
        };
        assert_eq!(got, expected, "{name}: {students} + {adults}");
    }
}

#[test]
fn a_refused_report_leaves_the_stored_count_alone() {
    let mut occupancy = school();
    report(&mut occupancy, "B-204", 20, 1, 0).unwrap();
    assert!(report(&mut occupancy, "B-204", 70, 1, 1_000).is_err());
    let mut bad = counted("B-204", 20, 1);
    bad.confidence_pct = 101;
    let err = occupancy.report(&cam("cam-1"), &room("B-204"), &bad, t(2_000));
    assert_eq!(
        err,
        Err(Refused::Confidence {
            room: room("B-204"),
            confidence_pct: 101
        })
    );
    let (_, stored) = occupancy.rooms().next().unwrap();
    assert_eq!((stored.students, stored.at), (20, t(0)));
}

#[test]
fn only_new_numbers_or_a_returning_room_count_as_a_change() {
    let mut occupancy = school();
    assert_eq!(
        report(&mut occupancy, "B-204", 20, 1, 0),
        Ok(Changed::Counts)
    );
    assert_eq!(
        report(&mut occupancy, "B-204", 20, 1, 10_000),
        Ok(Changed::Refreshed)
    );

    let mut surer = counted("B-204", 20, 1);
    surer.confidence_pct = 99;
    let other_cam = occupancy.report(&cam("cam-2"), &room("B-204"), &surer, t(20_000));
    assert_eq!(other_cam, Ok(Changed::Refreshed));
    let (_, stored) = occupancy.rooms().next().unwrap();
    assert_eq!((stored.confidence_pct, &stored.device), (99, &cam("cam-2")));

    assert_eq!(
        report(&mut occupancy, "B-204", 21, 1, 30_000),
        Ok(Changed::Counts)
    );
    assert_eq!(
        report(&mut occupancy, "B-204", 21, 0, 40_000),
        Ok(Changed::Counts)
    );

    assert_eq!(
        occupancy.tick(t(40_000 + STALE_AFTER_MS)),
        vec![room("B-204")]
    );
    assert_eq!(
        report(&mut occupancy, "B-204", 21, 0, 200_000),
        Ok(Changed::Counts)
    );
    assert_eq!(occupancy.stale_rooms(), vec![]);
}

#[test]
fn rooms_go_stale_exactly_at_stale_after_and_leave_the_totals() {
    let mut occupancy = school();
    report(&mut occupancy, "B-204", 20, 1, 0).unwrap();
    report(&mut occupancy, "Library", 12, 2, 60_000).unwrap();
    assert_eq!(occupancy.totals(), (32, 3));

    assert_eq!(occupancy.tick(t(STALE_AFTER_MS - 1)), vec![]);
    assert_eq!(occupancy.tick(t(STALE_AFTER_MS)), vec![room("B-204")]);
    // Once only.
    assert_eq!(occupancy.tick(t(STALE_AFTER_MS + 1_000)), vec![]);
    assert_eq!(occupancy.totals(), (12, 2));
    assert_eq!(occupancy.stale_rooms(), vec![room("B-204")]);
    // The stale count is still there for the dashboard.
    let rooms: HashMap<_, _> = occupancy.rooms().map(|(r, c)| (*r, c.clone())).collect();
    assert_eq!(
        (rooms[&room("B-204")].students, rooms[&room("B-204")].stale),
        (20, true)
    );

    assert_eq!(
        occupancy.tick(t(60_000 + STALE_AFTER_MS)),
        vec![room("Library")]
    );
    assert_eq!(occupancy.totals(), (0, 0));
    assert_eq!(
        occupancy.stale_rooms(),
        vec![room("B-204"), room("Library")]
    );

    report(&mut occupancy, "B-204", 18, 1, 200_000).unwrap();
    assert_eq!(occupancy.totals(), (18, 1));
    assert_eq!(occupancy.stale_rooms(), vec![room("Library")]);
}

#[test]
fn a_clock_stepping_back_does_not_make_rooms_stale_or_keep_them_fresh() {
    let mut occupancy = school();
    report(&mut occupancy, "B-204", 20, 1, 1_000_000).unwrap();
    let stepped = 1_000_000 - 3_600_000;
    assert_eq!(occupancy.tick(t(stepped)), vec![]);
    assert_eq!(occupancy.tick(t(stepped + STALE_AFTER_MS - 1)), vec![]);
    assert_eq!(
        occupancy.tick(t(stepped + STALE_AFTER_MS)),
        vec![room("B-204")]
    );
}

#[test]
fn loaded_counts_count_until_a_tick_finds_them_stale() {
    let mut occupancy = school();
    let stored = |students, at| RoomCount {
        students,
        adults: 1,
        confidence_pct: 80,
        at: t(at),
        device: cam("cam-1"),
        stale: false,
    };
    occupancy.load([
        (room("B-204"), stored(20, 0)),
        (room("Library"), stored(5, 100_000)),
    ]);
    assert_eq!(occupancy.totals(), (25, 2));
    assert_eq!(occupancy.tick(t(150_000)), vec![room("B-204")]);
    assert_eq!(occupancy.totals(), (5, 1));
}
