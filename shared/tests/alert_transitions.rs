//! The alert state machine's complete transition table, written out as data.
//!
//! Every state is crossed with every event variant (cancel from a device and from staff, each
//! inside and outside the cancel window), and each cell states the exact outcome: the new
//! state and every action in order, or the refusal reason. Changing any rule changes a cell,
//! and this test fails until the table is updated on purpose.

use shared::alert::{
    Action, Actor, AlertEvent, AlertEventKind, AlertState, Feedback, IllegalReason,
    IllegalTransition, Source, Verb, step, trigger,
};

#[derive(Debug, Clone, Copy)]
enum Cell {
    To(AlertState, &'static [Action]),
    Refused(IllegalReason),
}

use AlertState::{Acknowledged, Cancelled, Escalated, Resolved, Triggered};
use Cell::{Refused, To};
use IllegalReason::{
    AlertClosed, AlreadyAcknowledged, AlreadyEscalated, CancelWindowPassed,
    StaffOnlyAfterAcknowledge,
};

const PRESS_RECEIVED: &[Action] = &[
    Action::CountPress,
    Action::RecordEvent(AlertEventKind::Pressed),
    Action::DeviceFeedback(Feedback::Received),
];
const PRESS_ACKNOWLEDGED: &[Action] = &[
    Action::CountPress,
    Action::RecordEvent(AlertEventKind::Pressed),
    Action::DeviceFeedback(Feedback::Acknowledged),
];
const ESCALATE: &[Action] = &[
    Action::RaiseSeverity,
    Action::RecordEvent(AlertEventKind::Escalated),
    Action::Announce,
];
const ACK: &[Action] = &[
    Action::RecordEvent(AlertEventKind::Acknowledged),
    Action::DeviceFeedback(Feedback::Acknowledged),
    Action::Announce,
];
const RESOLVE: &[Action] = &[
    Action::RecordEvent(AlertEventKind::Resolved),
    Action::DeviceFeedback(Feedback::Resolved),
    Action::Announce,
];
const CANCEL: &[Action] = &[
    Action::RecordEvent(AlertEventKind::Cancelled),
    Action::DeviceFeedback(Feedback::Cancelled),
    Action::Announce,
];

/// The columns of [`TABLE`], in order.
fn columns() -> [(&'static str, AlertEvent); 8] {
    let staff = Actor::new(Source::LocalDashboard, "office");
    let device = Actor::new(Source::Device, "btn-101");
    [
        ("press", AlertEvent::Press),
        ("acknowledge", AlertEvent::Acknowledge { by: staff.clone() }),
        ("resolve", AlertEvent::Resolve { by: staff.clone() }),
        (
            "device cancel, in window",
            AlertEvent::Cancel {
                by: device.clone(),
                within_window: true,
            },
        ),
        (
            "device cancel, late",
            AlertEvent::Cancel {
                by: device,
                within_window: false,
            },
        ),
        (
            "staff cancel, in window",
            AlertEvent::Cancel {
                by: staff.clone(),
                within_window: true,
            },
        ),
        (
            "staff cancel, late",
            AlertEvent::Cancel {
                by: staff,
                within_window: false,
            },
        ),
        ("escalation due", AlertEvent::EscalationDue),
    ]
}

/// Rows are states; the cells follow the order of [`columns`], named in the comments.
#[rustfmt::skip]
const TABLE: [(AlertState, [Cell; 8]); 5] = [
    (Triggered, [
        /* press                    */ To(Triggered, PRESS_RECEIVED),
        /* acknowledge              */ To(Acknowledged, ACK),
        /* resolve                  */ To(Resolved, RESOLVE),
        /* device cancel, in window */ To(Cancelled, CANCEL),
        /* device cancel, late      */ Refused(CancelWindowPassed),
        /* staff cancel, in window  */ To(Cancelled, CANCEL),
        /* staff cancel, late       */ To(Cancelled, CANCEL),
        /* escalation due           */ To(Escalated, ESCALATE),
    ]),
    (Escalated, [
        /* press                    */ To(Escalated, PRESS_RECEIVED),
        /* acknowledge              */ To(Acknowledged, ACK),
        /* resolve                  */ To(Resolved, RESOLVE),
        /* device cancel, in window */ To(Cancelled, CANCEL),
        /* device cancel, late      */ Refused(CancelWindowPassed),
        /* staff cancel, in window  */ To(Cancelled, CANCEL),
        /* staff cancel, late       */ To(Cancelled, CANCEL),
        /* escalation due           */ Refused(AlreadyEscalated),
    ]),
    (Acknowledged, [
        /* press                    */ To(Acknowledged, PRESS_ACKNOWLEDGED),
        /* acknowledge              */ Refused(AlreadyAcknowledged),
        /* resolve                  */ To(Resolved, RESOLVE),
        /* device cancel, in window */ Refused(StaffOnlyAfterAcknowledge),
        /* device cancel, late      */ Refused(StaffOnlyAfterAcknowledge),
        /* staff cancel, in window  */ To(Cancelled, CANCEL),
        /* staff cancel, late       */ To(Cancelled, CANCEL),
        /* escalation due           */ Refused(AlreadyAcknowledged),
    ]),
    (Resolved, [
        /* press                    */ Refused(AlertClosed),
        /* acknowledge              */ Refused(AlertClosed),
        /* resolve                  */ Refused(AlertClosed),
        /* device cancel, in window */ Refused(AlertClosed),
        /* device cancel, late      */ Refused(AlertClosed),
        /* staff cancel, in window  */ Refused(AlertClosed),
        /* staff cancel, late       */ Refused(AlertClosed),
        /* escalation due           */ Refused(AlertClosed),
    ]),
    (Cancelled, [
        /* press                    */ Refused(AlertClosed),
        /* acknowledge              */ Refused(AlertClosed),
        /* resolve                  */ Refused(AlertClosed),
        /* device cancel, in window */ Refused(AlertClosed),
        /* device cancel, late      */ Refused(AlertClosed),
        /* staff cancel, in window  */ Refused(AlertClosed),
        /* staff cancel, late       */ Refused(AlertClosed),
        /* escalation due           */ Refused(AlertClosed),
    ]),
];

#[test]
fn every_cell_of_the_transition_table() {
    let rows: Vec<AlertState> = TABLE.iter().map(|(state, _)| *state).collect();
    assert_eq!(
        rows,
        AlertState::ALL,
        "one row per state, in declaration order"
    );

    for (_, event) in columns() {
        needs_a_column(&event);
    }

    for (from, cells) in TABLE {
        for ((column, event), cell) in columns().into_iter().zip(cells) {
            let got = step(from, &event);
            match cell {
                To(state, actions) => {
                    let t = got.unwrap_or_else(|e| panic!("{from} x {column}: refused: {e}"));
                    assert_eq!(t.state, state, "{from} x {column}: state");
                    assert_eq!(t.actions, actions, "{from} x {column}: actions");
                }
                Refused(reason) => {
                    let err = got.expect_err(&format!("{from} x {column}: should be refused"));
                    let expected = IllegalTransition {
                        from,
                        verb: event.verb(),
                        reason,
                    };
                    assert_eq!(err, expected, "{from} x {column}");
                }
            }
        }
    }
}

/// Stops compiling when an event variant is added: give it a column in [`columns`] and [`TABLE`].
fn needs_a_column(event: &AlertEvent) {
    match event {
        AlertEvent::Press
        | AlertEvent::Acknowledge { .. }
        | AlertEvent::Resolve { .. }
        | AlertEvent::Cancel { .. }
        | AlertEvent::EscalationDue => {}
    }
}

#[test]
fn the_cancel_rule_looks_only_at_the_device_source() {
    // Cloud and system cancels count as staff, like the local dashboard in the table.
    for source in [Source::Cloud, Source::System] {
        let late = AlertEvent::Cancel {
            by: Actor::new(source, "x"),
            within_window: false,
        };
        assert_eq!(step(Acknowledged, &late).unwrap().state, Cancelled);
    }
}

#[test]
fn an_alert_starts_triggered_and_tells_the_presser_it_was_received() {
    let t = trigger();
    assert_eq!(t.state, Triggered);
    assert_eq!(
        t.actions,
        [
            Action::RecordEvent(AlertEventKind::Triggered),
            Action::DeviceFeedback(Feedback::Received),
            Action::Announce
        ]
    );
}

#[test]
fn a_typical_life_triggered_escalated_acknowledged_resolved() {
    let staff = Actor::new(Source::Cloud, "principal");
    let mut state = trigger().state;
    for event in [
        AlertEvent::Press,
        AlertEvent::EscalationDue,
        AlertEvent::Acknowledge { by: staff.clone() },
        AlertEvent::Press,
        AlertEvent::Resolve { by: staff },
    ] {
        state = step(state, &event).unwrap().state;
    }
    assert_eq!(state, Resolved);
    assert!(!state.is_open());
}

#[test]
fn refusals_read_as_sentences() {
    let staff = Actor::new(Source::LocalDashboard, "office");
    let device = Actor::new(Source::Device, "btn-101");
    let cases = [
        (
            Resolved,
            AlertEvent::Acknowledge { by: staff.clone() },
            "cannot acknowledge an alert that is resolved: it is closed",
        ),
        (
            Acknowledged,
            AlertEvent::Acknowledge { by: staff },
            "cannot acknowledge an alert that is acknowledged: it has already been acknowledged",
        ),
        (
            Escalated,
            AlertEvent::EscalationDue,
            "cannot escalate an alert that is escalated: it has already been escalated",
        ),
        (
            Triggered,
            AlertEvent::Cancel {
                by: device.clone(),
                within_window: false,
            },
            "cannot cancel an alert that is triggered: the window for cancelling from the device has passed",
        ),
        (
            Acknowledged,
            AlertEvent::Cancel {
                by: device,
                within_window: true,
            },
            "cannot cancel an alert that is acknowledged: once acknowledged, only staff can cancel it",
        ),
        (
            Cancelled,
            AlertEvent::Press,
            "cannot press an alert that is cancelled: it is closed",
        ),
    ];
    for (from, event, message) in cases {
        assert_eq!(step(from, &event).unwrap_err().to_string(), message);
    }
    assert_eq!(AlertEvent::EscalationDue.verb(), Verb::Escalate);
}
