//! Hand-over frames: any bytes decode to a message, "incomplete" or an error, never a panic; a
//! decoded message re-encodes to a frame that decodes to the same message; a frame cut short is
//! incomplete or refused, never another message.

use crate::handover::wire::{decode, encode};

/// Input: a candidate frame (or several, back to back).
pub fn handover_frame(data: &[u8]) {
    let Ok(Some((msg, used))) = decode(data) else {
        return;
    };
    assert!(used <= data.len(), "used more bytes than given");
    let again = encode(&msg).expect("a decoded message encodes");
    let (back, n) = decode(&again)
        .expect("a re-encoded frame decodes")
        .expect("a re-encoded frame is complete");
    assert_eq!(back, msg, "round trip changed the message");
    assert_eq!(n, again.len());
    for cut in [0, used / 2, used.saturating_sub(1)] {
        if cut < used {
            assert!(
                !matches!(decode(&data[..cut]), Ok(Some(_))),
                "a frame cut at {cut} of {used} decoded"
            );
        }
    }
}
