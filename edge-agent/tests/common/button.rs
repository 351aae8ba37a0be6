//! A device speaking the firmware protocol over the gate, for end-to-end tests: it sends
//! frames (presses, cancels, heartbeats, occupancy) and reads the gateway's downlinks.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use firmware_protocol::{
    ButtonPress, CancelRequest, Downlink, FirmwareVersion, Frame, Heartbeat, Label, MAX_FRAME_LEN,
    Occupancy, PressAck, PressPattern, Uplink, decode_downlink, encode_uplink,
};
use rumqttc::mqttbytes::QoS;
use rumqttc::mqttbytes::v4::{Connect, ConnectReturnCode, LastWill, Packet, PubAck, Publish};

use super::device::{RawDevice, bundle_tls, connected_with};

/// The last will firmware leaves: "gone" on its up topic.
fn last_will(id: &str) -> LastWill {
    LastWill::new(
        format!("d/{id}/up"),
        b"gone".to_vec(),
        QoS::AtLeastOnce,
        false,
    )
}

/// The bytes of a press frame, as firmware sends it.
pub(crate) fn press_frame(boot: u32, seq: u32, pattern: PressPattern, press_seq: u32) -> Vec<u8> {
    let mut buf = [0u8; MAX_FRAME_LEN];
    let body = Uplink::ButtonPress(ButtonPress { pattern, press_seq });
    encode_uplink(&Frame::new(boot, seq, body), &mut buf)
        .unwrap()
        .to_vec()
}

/// A heartbeat as firmware 1.2.3 sends it.
pub(crate) fn heartbeat_body(battery_mv: u16) -> Uplink {
    Uplink::Heartbeat(Heartbeat {
        uptime_s: 10,
        firmware: FirmwareVersion {
            major: 1,
            minor: 2,
            patch: 3,
        },
        battery_mv,
        rssi_dbm: -60,
        free_heap: 100_000,
    })
}

/// A camera's count of `room`.
pub(crate) fn count_body(room: &str, students: u16, adults: u16) -> Uplink {
    Uplink::Occupancy(Occupancy {
        room: Label::new(room).unwrap(),
        students,
        adults,
        confidence_pct: 90,
    })
}

/// A connected device with its own frame counters.
pub(crate) struct FwDevice {
    pub(crate) raw: RawDevice,
    pub(crate) id: String,
    pub(crate) boot: u32,
    /// The last frame sequence number used (firmware counts on across reconnections).
    pub(crate) seq: u32,
    pkid: u16,
}

impl FwDevice {
    /// Connects `id` with its bundle, a last will, and subscribes to its downlinks.
    pub(crate) async fn connect(addr: SocketAddr, bundle: &Path, id: &str, boot: u32) -> FwDevice {
        let mut connect = Connect::new(id);
        connect.keep_alive = 30;
        connect.last_will = Some(last_will(id));
        let mut raw = connected_with(addr, bundle, connect).await;
        raw.subscribe(&format!("d/{id}/down")).await.unwrap();
        FwDevice {
            raw,
            id: id.to_owned(),
            boot,
            seq: 0,
            pkid: 1,
        }
    }

    /// As [`FwDevice::connect`], but an error instead of a panic when the gateway is not
    /// there (a device retrying while the gateway restarts).
    pub(crate) async fn try_connect(
        addr: SocketAddr,
        bundle: &Path,
        id: &str,
        boot: u32,
    ) -> Result<FwDevice, String> {
        let mut raw = RawDevice::tls(addr, bundle_tls(bundle))
            .await
            .map_err(|e| e.to_string())?;
        let mut connect = Connect::new(id);
        connect.keep_alive = 30;
        connect.last_will = Some(last_will(id));
        match raw.mqtt_connect_with(connect).await {
            Some(ack) if ack.code == ConnectReturnCode::Success => {}
            other => return Err(format!("no CONNACK: {other:?}")),
        }
        raw.subscribe(&format!("d/{id}/down")).await?;
        Ok(FwDevice {
            raw,
            id: id.to_owned(),
            boot,
            seq: 0,
            pkid: 1,
        })
    }

    /// Publishes raw bytes on the device's up topic (QoS 1, PUBACK not awaited).
    pub(crate) async fn send_bytes(&mut self, payload: &[u8]) {
        self.try_send_bytes(payload).await.unwrap();
    }

    /// As [`FwDevice::send_bytes`], but an error once the connection is gone.
    pub(crate) async fn try_send_bytes(&mut self, payload: &[u8]) -> std::io::Result<()> {
        let mut publish = Publish::new(
            format!("d/{}/up", self.id),
            QoS::AtLeastOnce,
            payload.to_vec(),
        );
        publish.pkid = self.pkid;
        self.pkid = self.pkid.wrapping_add(1).max(1);
        self.raw.send(Packet::Publish(publish)).await
    }

    /// The bytes of `body` as the next frame (its sequence number is used up).
    pub(crate) fn frame(&mut self, body: Uplink) -> Vec<u8> {
        self.seq += 1;
        let mut buf = [0u8; MAX_FRAME_LEN];
        encode_uplink(&Frame::new(self.boot, self.seq, body), &mut buf)
            .unwrap()
            .to_vec()
    }

    /// Sends a frame with the next sequence number.
    pub(crate) async fn send(&mut self, body: Uplink) {
        self.try_send(body).await.unwrap();
    }

    /// As [`FwDevice::send`], but an error once the connection is gone.
    pub(crate) async fn try_send(&mut self, body: Uplink) -> std::io::Result<()> {
        let bytes = self.frame(body);
        self.try_send_bytes(&bytes).await
    }

    pub(crate) async fn press(&mut self, pattern: PressPattern, press_seq: u32) {
        self.send(Uplink::ButtonPress(ButtonPress { pattern, press_seq }))
            .await;
    }

    pub(crate) async fn cancel(&mut self, press_seq: u32) {
        self.send(Uplink::CancelRequest(CancelRequest {
            press_boot: self.boot,
            press_seq,
        }))
        .await;
    }

    pub(crate) async fn heartbeat(&mut self, battery_mv: u16) {
        self.send(heartbeat_body(battery_mv)).await;
    }

    pub(crate) async fn count(&mut self, room: &str, students: u16, adults: u16) {
        self.send(count_body(room, students, adults)).await;
    }

    /// The next downlink frame within `wait` (PUBACKs are skipped; QoS 1 downlinks are
    /// acknowledged).
    pub(crate) async fn downlink(&mut self, wait: Duration) -> Option<Downlink> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match self.raw.recv(left).await {
                Ok(Some(Packet::Publish(publish))) => {
                    if publish.qos == QoS::AtLeastOnce {
                        let _ = self
                            .raw
                            .send(Packet::PubAck(PubAck::new(publish.pkid)))
                            .await;
                    }
                    let frame = decode_downlink(&publish.payload).expect("a valid downlink");
                    return Some(frame.body);
                }
                Ok(Some(_)) => {}
                Ok(None) | Err(_) => return None,
            }
        }
    }

    /// The next downlink frame within `wait`: `Ok(None)` on timeout, `Err` once the
    /// connection is gone.
    pub(crate) async fn try_downlink(
        &mut self,
        wait: Duration,
    ) -> Result<Option<Downlink>, String> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match self.raw.recv(left).await? {
                Some(Packet::Publish(publish)) => {
                    if publish.qos == QoS::AtLeastOnce {
                        self.raw
                            .send(Packet::PubAck(PubAck::new(publish.pkid)))
                            .await
                            .map_err(|e| e.to_string())?;
                    }
                    let frame = decode_downlink(&publish.payload).map_err(|e| e.to_string())?;
                    return Ok(Some(frame.body));
                }
                Some(_) => {}
                None => return Ok(None),
            }
        }
    }

    /// The next `PressAck` within `wait`.
    pub(crate) async fn press_ack(&mut self, wait: Duration) -> Option<PressAck> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            if let Downlink::PressAck(ack) = self.downlink(left).await? {
                return Some(ack);
            }
        }
    }
}
