//! MQTT 3.1.1 read strictly: every "MUST close the Network Connection" rule for the packets a
//! client sends, checked on the raw bytes of each complete packet before rumqttc's `mqttbytes`
//! parses it.
//!
//! `mqttbytes` is a lenient parser: it ignores the fixed-header flags of most packet types, the
//! reserved bits of CONNECT and SUBSCRIBE, a password without a user name, trailing bytes, an
//! UNSUBSCRIBE without a filter, the remaining length of PINGREQ and DISCONNECT, and U+0000 in
//! strings, and it reads a CONNECT of any protocol level as if it were level 4. This module
//! refuses all of that, naming the rule broken. It only reads what the client sent: whether a
//! packet is allowed at this point of the session (a second CONNECT, a PUBLISH from an
//! integration) and under which topics is the sessions' business.
//!
//! The check runs on every packet, so it borrows the buffered bytes and allocates nothing.

use std::fmt;

use rumqttc::mqttbytes::v4::ConnectReturnCode;

/// Why a packet was refused: the rule it breaks and, for the CONNECT refusals the spec answers,
/// the CONNACK to send before closing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Refusal {
    /// The normative statement of MQTT 3.1.1, e.g. `MQTT-3.8.1-1`.
    pub(super) rule: &'static str,
    /// What the client did.
    pub(super) what: &'static str,
    /// Sent before closing; `None` closes without a word ([MQTT-3.1.4-1] for a bad CONNECT).
    pub(super) connack: Option<ConnectReturnCode>,
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} [{}]", self.what, self.rule)
    }
}

/// A complete packet in the read buffer: its first byte and what follows its fixed header.
#[derive(Debug, Clone, Copy)]
pub(super) struct Frame<'a> {
    byte1: u8,
    body: &'a [u8],
}

/// The first packet in `buf` when it is complete and its remaining length at most `max`.
/// `None` otherwise: an incomplete, oversized or badly framed packet is `mqttbytes`' to report.
pub(super) fn frame(buf: &[u8], max: usize) -> Option<Frame<'_>> {
    let (&byte1, rest) = buf.split_first()?;
    let mut len = 0usize;
    // The remaining length: at most four bytes of seven bits each, least significant first.
    for (i, &byte) in rest.iter().take(4).enumerate() {
        len |= usize::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            let body = rest.get(i + 1..i + 1 + len).filter(|_| len <= max)?;
            return Some(Frame { byte1, body });
        }
    }
    None
}

/// Checks one complete packet from a client.
pub(super) fn check(frame: Frame<'_>) -> Result<(), Refusal> {
    let flags = frame.byte1 & 0x0f;
    let body = frame.body;
    match frame.byte1 >> 4 {
        1 => flags_are(flags, 0, "MQTT-2.2.2-2").and_then(|()| connect(body)),
        3 => publish(flags, body),
        4 | 5 | 7 => flags_are(flags, 0, "MQTT-2.2.2-2").and_then(|()| acknowledgement(body)),
        6 => flags_are(flags, 0b0010, "MQTT-3.6.1-1").and_then(|()| acknowledgement(body)),
        8 => flags_are(flags, 0b0010, "MQTT-3.8.1-1").and_then(|()| subscribe(body)),
        10 => flags_are(flags, 0b0010, "MQTT-3.10.1-1").and_then(|()| unsubscribe(body)),
        12 => flags_are(flags, 0, "MQTT-2.2.2-2").and_then(|()| empty(body)),
        14 => flags_are(flags, 0, "MQTT-3.14.1-1").and_then(|()| empty(body)),
        2 | 9 | 11 | 13 => Err(refuse(
            "MQTT-4.8.0-1",
            "a packet type only a server sends (CONNACK, SUBACK, UNSUBACK or PINGRESP)",
        )),
        _ => Err(refuse("MQTT-4.8.0-1", "reserved packet type 0 or 15")),
    }
}

// === the packet types ===

fn connect(body: &[u8]) -> Result<(), Refusal> {
    let mut c = Cursor(body);
    let name = c.bytes()?;
    let level = c.u8()?;
    match (name, level) {
        (b"MQTT", 4) => {}
        // Levels 3 (MQTT 3.1, named "MQIsdp") and 5 have CONNACK code 1 in their own versions
        // too, so such a client can tell its author why.
        (b"MQTT", 5) => {
            return Err(unsupported(
                "protocol level 5 (MQTT 5); the gate speaks MQTT 3.1.1 (level 4) only",
            ));
        }
        (b"MQIsdp", _) => {
            return Err(unsupported(
                "protocol MQIsdp (MQTT 3.1); the gate speaks MQTT 3.1.1 (level 4) only",
            ));
        }
        (b"MQTT", _) => {
            return Err(unsupported(
                "an unknown protocol level; the gate speaks MQTT 3.1.1 (level 4) only",
            ));
        }
        _ => return Err(refuse("MQTT-3.1.2-1", "the protocol name is not MQTT")),
    }
    let flags = c.u8()?;
    if flags & 0x01 != 0 {
        return Err(refuse(
            "MQTT-3.1.2-3",
            "CONNECT's reserved flag (bit 0) is set",
        ));
    }
    let (clean, will, will_qos, will_retain) = (
        flags & 0x02 != 0,
        flags & 0x04 != 0,
        (flags >> 3) & 0x03,
        flags & 0x20 != 0,
    );
    let (password, user) = (flags & 0x40 != 0, flags & 0x80 != 0);
    if !will && will_qos != 0 {
        return Err(refuse("MQTT-3.1.2-13", "a will QoS without a will"));
    }
    if !will && will_retain {
        return Err(refuse("MQTT-3.1.2-15", "a will retain flag without a will"));
    }
    if will_qos == 3 {
        return Err(refuse("MQTT-3.1.2-14", "will QoS 3"));
    }
    if password && !user {
        return Err(refuse(
            "MQTT-3.1.2-22",
            "a password flag without a user name flag",
        ));
    }
    c.u16()?; // keep alive
    let client_id = c.string()?;
    if client_id.is_empty() && !clean {
        return Err(Refusal {
            connack: Some(ConnectReturnCode::BadClientId),
            ..refuse("MQTT-3.1.3-8", "an empty client id without a clean session")
        });
    }
    if will {
        topic_name(c.string()?)?;
        c.bytes()?; // the will message
    }
    if user {
        c.string()?;
    }
    if password {
        c.bytes()?; // binary data, any bytes
    }
    c.done(
        "MQTT-3.1.4-1",
        "bytes after the last field its flags announce",
    )
}

fn publish(flags: u8, body: &[u8]) -> Result<(), Refusal> {
    let qos = (flags >> 1) & 0x03;
    if qos == 3 {
        return Err(refuse("MQTT-3.3.1-4", "PUBLISH with both QoS bits set"));
    }
    if qos == 0 && flags & 0x08 != 0 {
        return Err(refuse("MQTT-3.3.1-2", "DUP flag set on a QoS 0 PUBLISH"));
    }
    let mut c = Cursor(body);
    topic_name(c.string()?)?;
    if qos > 0 {
        packet_id(&mut c)?;
    }
    Ok(()) // the rest is the payload, any bytes
}

fn subscribe(body: &[u8]) -> Result<(), Refusal> {
    let mut c = Cursor(body);
    packet_id(&mut c)?;
    if c.0.is_empty() {
        return Err(refuse("MQTT-3.8.3-3", "SUBSCRIBE without a topic filter"));
    }
    while !c.0.is_empty() {
        topic_filter(c.string()?)?;
        let options = c.u8()?;
        if options & 0xfc != 0 || options & 0x03 == 3 {
            return Err(refuse(
                "MQTT-3.8.3-4",
                "SUBSCRIBE options with reserved bits set or QoS 3",
            ));
        }
    }
    Ok(())
}

fn unsubscribe(body: &[u8]) -> Result<(), Refusal> {
    let mut c = Cursor(body);
    packet_id(&mut c)?;
    if c.0.is_empty() {
        return Err(refuse(
            "MQTT-3.10.3-2",
            "UNSUBSCRIBE without a topic filter",
        ));
    }
    while !c.0.is_empty() {
        topic_filter(c.string()?)?;
    }
    Ok(())
}

/// PUBACK, PUBREC, PUBREL and PUBCOMP: a packet id and nothing else.
fn acknowledgement(body: &[u8]) -> Result<(), Refusal> {
    match body.len() {
        2 => Ok(()),
        _ => Err(refuse(
            "MQTT-4.8.0-1",
            "an acknowledgement whose remaining length is not 2",
        )),
    }
}

/// PINGREQ and DISCONNECT: nothing after the fixed header.
fn empty(body: &[u8]) -> Result<(), Refusal> {
    match body {
        [] => Ok(()),
        _ => Err(refuse(
            "MQTT-4.8.0-1",
            "a PINGREQ or DISCONNECT whose remaining length is not 0",
        )),
    }
}

// === fields ===

fn flags_are(flags: u8, expected: u8, rule: &'static str) -> Result<(), Refusal> {
    if flags == expected {
        Ok(())
    } else {
        Err(refuse(
            rule,
            "fixed-header flags other than the packet type's",
        ))
    }
}

fn packet_id(c: &mut Cursor<'_>) -> Result<(), Refusal> {
    match c.u16()? {
        0 => Err(refuse("MQTT-2.3.1-1", "packet id 0")),
        _ => Ok(()),
    }
}

/// A topic a message is published to (a PUBLISH's, a will's).
fn topic_name(topic: &str) -> Result<(), Refusal> {
    if topic.is_empty() {
        return Err(refuse("MQTT-4.7.3-1", "an empty topic"));
    }
    if topic.contains(['+', '#']) {
        return Err(refuse("MQTT-4.7.1-1", "a wildcard in a topic name"));
    }
    Ok(())
}

/// A topic filter (SUBSCRIBE, UNSUBSCRIBE): `#` only as the whole last level, `+` only as a
/// whole level.
fn topic_filter(filter: &str) -> Result<(), Refusal> {
    if filter.is_empty() {
        return Err(refuse("MQTT-4.7.3-1", "an empty topic filter"));
    }
    let mut levels = filter.split('/').peekable();
    while let Some(level) = levels.next() {
        if level.contains('#') && (level != "#" || levels.peek().is_some()) {
            return Err(refuse(
                "MQTT-4.7.1-2",
                "'#' other than as the whole last level of a filter",
            ));
        }
        if level.contains('+') && level != "+" {
            return Err(refuse(
                "MQTT-4.7.1-3",
                "'+' other than as a whole level of a filter",
            ));
        }
    }
    Ok(())
}

const fn refuse(rule: &'static str, what: &'static str) -> Refusal {
    Refusal {
        rule,
        what,
        connack: None,
    }
}

const fn unsupported(what: &'static str) -> Refusal {
    Refusal {
        rule: "MQTT-3.1.2-2",
        what,
        connack: Some(ConnectReturnCode::RefusedProtocolVersion),
    }
}

const TRUNCATED: Refusal = refuse("MQTT-4.8.0-1", "the packet ends inside a field");

/// Reads fields off the front of a packet's bytes.
struct Cursor<'a>(&'a [u8]);

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], Refusal> {
        if self.0.len() < n {
            return Err(TRUNCATED);
        }
        let (taken, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(taken)
    }

    fn u8(&mut self) -> Result<u8, Refusal> {
        Ok(self.take(1)?[0])
    }

    fn u16(&mut self) -> Result<u16, Refusal> {
        let bytes = self.take(2)?;
        Ok(u16::from_be_bytes([bytes[0], bytes[1]]))
    }

    /// Binary data: a two-byte length, then that many bytes.
    fn bytes(&mut self) -> Result<&'a [u8], Refusal> {
        let len = self.u16()?;
        self.take(usize::from(len))
    }

    /// A UTF-8 encoded string: well-formed ([MQTT-1.5.3-1]; Rust's UTF-8 excludes surrogates)
    /// and without U+0000 ([MQTT-1.5.3-2]). Every string field has its own rule saying it is
    /// one (client id [MQTT-3.1.3-4], will topic [MQTT-3.1.3-10], user name [MQTT-3.1.3-11],
    /// topic name [MQTT-3.3.2-1], filters [MQTT-3.8.3-1], [MQTT-3.10.3-1]).
    fn string(&mut self) -> Result<&'a str, Refusal> {
        let bytes = self.bytes()?;
        let text = std::str::from_utf8(bytes)
            .map_err(|_| refuse("MQTT-1.5.3-1", "ill-formed UTF-8 in a string"))?;
        if bytes.contains(&0) {
            return Err(refuse("MQTT-1.5.3-2", "U+0000 in a string"));
        }
        Ok(text)
    }

    fn done(&self, rule: &'static str, what: &'static str) -> Result<(), Refusal> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(refuse(rule, what))
        }
    }
}

#[cfg(test)]
mod tests;
