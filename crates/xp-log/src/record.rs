//! TFRecord framing: `u64 length | masked crc32c(length) | data | masked crc32c(data)`, little
//! endian, and a reader that checks both checksums.

use std::io::Read;
use std::path::{Path, PathBuf};

use prost::Message;

use crate::LogError;
use crate::proto::Event;

fn masked_crc(bytes: &[u8]) -> u32 {
    let crc = crc32c::crc32c(bytes);
    crc.rotate_right(15).wrapping_add(0xa282_ead8)
}

/// Appends one framed record holding `data` to `out`.
pub(crate) fn frame(out: &mut Vec<u8>, data: &[u8]) {
    let len = (data.len() as u64).to_le_bytes();
    out.extend_from_slice(&len);
    out.extend_from_slice(&masked_crc(&len).to_le_bytes());
    out.extend_from_slice(data);
    out.extend_from_slice(&masked_crc(data).to_le_bytes());
}

/// Reads the events of one event file, checking both checksums of every record: for tests and
/// tools (TensorBoard itself reads these files too).
pub struct EventReader {
    path: PathBuf,
    bytes: Vec<u8>,
    at: usize,
}

impl EventReader {
    pub fn open(path: impl AsRef<Path>) -> Result<Self, LogError> {
        let path = path.as_ref().to_path_buf();
        let mut bytes = Vec::new();
        std::fs::File::open(&path)
            .and_then(|mut f| f.read_to_end(&mut bytes))
            .map_err(|error| LogError::Io {
                action: "read",
                path: path.clone(),
                error,
            })?;
        Ok(EventReader { path, bytes, at: 0 })
    }

    fn corrupt(&self, at: usize, what: &str) -> LogError {
        LogError::CorruptEventFile {
            path: self.path.clone(),
            offset: at as u64,
            problem: what.to_owned(),
        }
    }

    fn next_event(&mut self) -> Result<Event, LogError> {
        let start = self.at;
        let header = self
            .bytes
            .get(start..start + 12)
            .ok_or_else(|| self.corrupt(start, "record header cut short"))?;
        let len_bytes: [u8; 8] = header[..8].try_into().expect("8 bytes");
        let len_crc = u32::from_le_bytes(header[8..12].try_into().expect("4 bytes"));
        if masked_crc(&len_bytes) != len_crc {
            return Err(self.corrupt(start, "length checksum mismatch"));
        }
        let len = u64::from_le_bytes(len_bytes) as usize;
        let data_start = start + 12;
        let end = data_start.checked_add(len).and_then(|e| e.checked_add(4));
        let Some(end) = end.filter(|e| *e <= self.bytes.len()) else {
            return Err(self.corrupt(start, "record cut short"));
        };
        let data = &self.bytes[data_start..data_start + len];
        let data_crc = u32::from_le_bytes(self.bytes[end - 4..end].try_into().expect("4 bytes"));
        if masked_crc(data) != data_crc {
            return Err(self.corrupt(start, "data checksum mismatch"));
        }
        let event =
            Event::decode(data).map_err(|e| self.corrupt(start, &format!("not an Event: {e}")))?;
        self.at = end;
        Ok(event)
    }
}

impl Iterator for EventReader {
    type Item = Result<Event, LogError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.at >= self.bytes.len() {
            return None;
        }
        let event = self.next_event();
        if event.is_err() {
            self.at = self.bytes.len();
        }
        Some(event)
    }
}
