//! Test helpers shared by the parts: a server's stream header, and reading a stream whole and
//! byte by byte.

use super::{Element, Framer, StreamEvent, XmlError};

/// Prosody's stream opening.
pub(super) const HEADER: &str = "<?xml version='1.0'?><stream:stream xmlns='jabber:client' \
    xmlns:stream='http://etherx.jabber.org/streams' id='c2s-1a2b' from='localhost' \
    version='1.0' xml:lang='en'>";
pub(super) const LIMIT: usize = 16 * 1024;

/// Every event the framer has ready.
pub(super) fn drain(framer: &mut Framer) -> Result<Vec<StreamEvent>, XmlError> {
    let mut events = Vec::new();
    while let Some(event) = framer.next_event()? {
        events.push(event);
    }
    Ok(events)
}

pub(super) fn events_whole(input: &[u8]) -> Result<Vec<StreamEvent>, XmlError> {
    let mut framer = Framer::new(LIMIT);
    framer.feed(input)?;
    drain(&mut framer)
}

pub(super) fn events_bytewise(input: &[u8]) -> Result<Vec<StreamEvent>, XmlError> {
    let mut framer = Framer::new(LIMIT);
    let mut events = Vec::new();
    for b in input {
        framer.feed(std::slice::from_ref(b))?;
        events.extend(drain(&mut framer)?);
    }
    Ok(events)
}

/// Events after the standard header, checked to be the same whole and byte by byte.
pub(super) fn stanzas(body: &str) -> Result<Vec<Element>, XmlError> {
    let input = format!("{HEADER}{body}");
    let whole = events_whole(input.as_bytes());
    assert_eq!(whole, events_bytewise(input.as_bytes()));
    let mut events = whole?.into_iter();
    assert!(matches!(events.next(), Some(StreamEvent::Open(_))));
    Ok(events
        .filter_map(|e| match e {
            StreamEvent::Element(e) => Some(e),
            _ => None,
        })
        .collect())
}

/// The one element `body` holds after the standard header.
pub(super) fn one(body: &str) -> Element {
    let mut all = stanzas(body).unwrap();
    assert_eq!(all.len(), 1);
    all.remove(0)
}

/// The error `body` after the standard header ends the stream with, the same whole and byte
/// by byte.
pub(super) fn error(body: &str) -> XmlError {
    let input = format!("{HEADER}{body}");
    let whole = events_whole(input.as_bytes()).unwrap_err();
    assert_eq!(Err(whole.clone()), events_bytewise(input.as_bytes()));
    whole
}
