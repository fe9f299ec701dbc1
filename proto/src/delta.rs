//! Changes to a [`Profile`] since the last change sent: what an agent streams.
//!
//! A profile only grows: frames and stacks are appended (their handles never
//! change) and counts only go up. So a [`ProfileDelta`] carries the new frames
//! and stacks, the count increments of the stacks that changed, and, when it
//! changed, everything else in the profile ("metadata": target, rate,
//! duration, threads, lost, problems, boundaries, and any field added to
//! [`Profile`] later), replaced wholesale. The metadata travels as JSON of the
//! profile's own serde form, so a new field in `Profile` or `Boundary` flows
//! to the collector without a change here.
//!
//! ```
//! use seam_proto::delta::{DeltaBuilder, Replay};
//! use seam_proto::{Frame, Profile, Runtime};
//! let mut profile = Profile::default();
//! let mut builder = DeltaBuilder::default();
//! let mut replay = Replay::default();
//! let f = profile.intern_frame(Frame::new("main", Runtime::C));
//! let s = profile.intern_stack(vec![f], true);
//! profile.add_samples(s, 1, 2);
//! replay.apply(&builder.next(&profile)).unwrap();
//! profile.add_samples(s, 1, 3);
//! replay.apply(&builder.next(&profile)).unwrap();
//! assert_eq!(replay.into_profile(), profile);
//! ```

use crate::{Frame, Profile, Stack, StackHandle};
use serde::de::{DeserializeOwned, Error as _};
use serde::ser::{Error as _, Impossible, SerializeStruct};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Map, Value};

/// The profile's interned tables, which deltas carry incrementally; every other
/// field is metadata.
const TABLES: [&str; 3] = ["frames", "stacks", "counts"];

/// What changed in a profile since the previous delta.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ProfileDelta {
    /// The handle of the first new frame: the number of frames before this delta.
    pub first_frame: u32,
    /// New frames, as JSON: frames gain optional fields over time, which a
    /// schema-less binary encoding would not survive.
    #[serde(with = "json_text")]
    pub frames: Vec<Frame>,
    /// The handle of the first new stack.
    pub first_stack: u32,
    pub stacks: Vec<Stack>,
    /// Sample count increments, by stack, in increasing stack order.
    pub counts: Vec<(StackHandle, u64)>,
    /// Every field of the profile but its tables, when it changed.
    pub meta: Option<ProfileMeta>,
}

/// A profile's fields other than frames, stacks and counts, as JSON.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ProfileMeta(pub Map<String, Value>);

impl ProfileMeta {
    pub fn of(profile: &Profile) -> ProfileMeta {
        ProfileMeta(
            profile
                .serialize(MetaSerializer)
                .expect("a profile serializes to JSON"),
        )
    }
}

impl Serialize for ProfileMeta {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        json_text::serialize(&self.0, s)
    }
}

impl<'de> Deserialize<'de> for ProfileMeta {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<ProfileMeta, D::Error> {
        json_text::deserialize(d).map(ProfileMeta)
    }
}

/// Why a delta does not apply to a profile.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum DeltaError {
    #[error("the delta starts at frame {got} but the profile has {have} frames")]
    FrameGap { got: u32, have: usize },
    #[error("the delta starts at stack {got} but the profile has {have} stacks")]
    StackGap { got: u32, have: usize },
    #[error("a stack refers to frame {0}, which does not exist")]
    NoSuchFrame(u32),
    #[error("a count refers to stack {0}, which does not exist")]
    NoSuchStack(u32),
    #[error("the count of stack {0} overflows")]
    CountOverflow(u32),
    #[error("counts are not in increasing stack order")]
    CountOrder,
    #[error("the metadata is not a profile's: {0}")]
    Meta(String),
}

impl ProfileDelta {
    /// The samples this delta adds.
    pub fn samples(&self) -> u64 {
        self.counts
            .iter()
            .fold(0u64, |sum, (_, n)| sum.saturating_add(*n))
    }

    pub fn is_empty(&self) -> bool {
        self.frames.is_empty()
            && self.stacks.is_empty()
            && self.counts.is_empty()
            && self.meta.is_none()
    }

    /// Folds a later delta into this one, as if both were sent as one.
    pub fn append(&mut self, later: ProfileDelta) -> Result<(), DeltaError> {
        let have_frames = self.first_frame as usize + self.frames.len();
        if later.first_frame as usize != have_frames {
            return Err(DeltaError::FrameGap {
                got: later.first_frame,
                have: have_frames,
            });
        }
        let have_stacks = self.first_stack as usize + self.stacks.len();
        if later.first_stack as usize != have_stacks {
            return Err(DeltaError::StackGap {
                got: later.first_stack,
                have: have_stacks,
            });
        }
        let mut counts = Vec::with_capacity(self.counts.len() + later.counts.len());
        let (mut a, mut b) = (
            std::mem::take(&mut self.counts).into_iter().peekable(),
            later.counts.into_iter().peekable(),
        );
        loop {
            let next = match (a.peek(), b.peek()) {
                (Some(x), Some(y)) if x.0 == y.0 => {
                    let n =
                        x.1.checked_add(y.1)
                            .ok_or(DeltaError::CountOverflow(x.0 .0))?;
                    let h = x.0;
                    a.next();
                    b.next();
                    (h, n)
                }
                (Some(x), Some(y)) if x.0 < y.0 => a.next().expect("peeked"),
                (Some(_), Some(_)) | (None, Some(_)) => b.next().expect("peeked"),
                (Some(_), None) => a.next().expect("peeked"),
                (None, None) => break,
            };
            counts.push(next);
        }
        self.counts = counts;
        self.frames.extend(later.frames);
        self.stacks.extend(later.stacks);
        if later.meta.is_some() {
            self.meta = later.meta;
        }
        Ok(())
    }
}

/// Produces the deltas of a profile as it grows.
#[derive(Debug, Default)]
pub struct DeltaBuilder {
    frames: usize,
    stacks: usize,
    counts: Vec<u64>,
    meta: Option<ProfileMeta>,
}

impl DeltaBuilder {
    /// What changed in `profile` since the previous call (everything, the first time).
    pub fn next(&mut self, profile: &Profile) -> ProfileDelta {
        let mut counts = Vec::new();
        for (i, &now) in profile.counts.iter().enumerate() {
            let before = self.counts.get(i).copied().unwrap_or(0);
            // Counts only grow (Profile::add_samples); a smaller one would be a bug upstream.
            debug_assert!(now >= before, "the count of stack {i} went down");
            if now > before {
                counts.push((StackHandle(i as u32), now - before));
            }
        }
        self.counts.clone_from(&profile.counts);
        let meta = ProfileMeta::of(profile);
        let meta = if self.meta.as_ref() == Some(&meta) {
            None
        } else {
            self.meta = Some(meta.clone());
            Some(meta)
        };
        let delta = ProfileDelta {
            first_frame: self.frames as u32,
            frames: profile.frames[self.frames..].to_vec(),
            first_stack: self.stacks as u32,
            stacks: profile.stacks[self.stacks..].to_vec(),
            counts,
            meta,
        };
        self.frames = profile.frames.len();
        self.stacks = profile.stacks.len();
        delta
    }
}

/// Rebuilds a profile from its deltas, in order.
#[derive(Debug, Default)]
pub struct Replay {
    profile: Profile,
}

impl Replay {
    /// Applies one delta, or nothing when it does not fit the profile so far.
    pub fn apply(&mut self, delta: &ProfileDelta) -> Result<(), DeltaError> {
        let p = &mut self.profile;
        if delta.first_frame as usize != p.frames.len() {
            return Err(DeltaError::FrameGap {
                got: delta.first_frame,
                have: p.frames.len(),
            });
        }
        if delta.first_stack as usize != p.stacks.len() {
            return Err(DeltaError::StackGap {
                got: delta.first_stack,
                have: p.stacks.len(),
            });
        }
        let frames = p.frames.len() + delta.frames.len();
        if let Some(bad) = delta
            .stacks
            .iter()
            .flat_map(|s| &s.frames)
            .find(|f| f.0 as usize >= frames)
        {
            return Err(DeltaError::NoSuchFrame(bad.0));
        }
        let stacks = p.stacks.len() + delta.stacks.len();
        let mut previous = None;
        for &(h, n) in &delta.counts {
            if h.0 as usize >= stacks {
                return Err(DeltaError::NoSuchStack(h.0));
            }
            if previous.is_some_and(|p| p >= h) {
                return Err(DeltaError::CountOrder);
            }
            previous = Some(h);
            let before = p.counts.get(h.0 as usize).copied().unwrap_or(0);
            before
                .checked_add(n)
                .ok_or(DeltaError::CountOverflow(h.0))?;
        }
        if let Some(meta) = &delta.meta {
            let mut fresh = profile_from_meta(meta)?;
            fresh.frames = std::mem::take(&mut p.frames);
            fresh.stacks = std::mem::take(&mut p.stacks);
            fresh.counts = std::mem::take(&mut p.counts);
            *p = fresh;
        }
        p.frames.extend_from_slice(&delta.frames);
        p.stacks.extend_from_slice(&delta.stacks);
        p.counts.resize(stacks, 0);
        for &(h, n) in &delta.counts {
            p.counts[h.0 as usize] += n;
        }
        Ok(())
    }

    /// The profile so far. Its intern indexes are rebuilt by [`Replay::into_profile`].
    pub fn profile(&self) -> &Profile {
        &self.profile
    }

    pub fn into_profile(mut self) -> Profile {
        self.profile.reindex();
        self.profile
    }
}

fn profile_from_meta(meta: &ProfileMeta) -> Result<Profile, DeltaError> {
    let mut fields = meta.0.clone();
    for table in TABLES {
        fields.insert(table.to_string(), Value::Array(Vec::new()));
    }
    serde_json::from_value(Value::Object(fields)).map_err(|e| DeltaError::Meta(e.to_string()))
}

/// (De)serializes a value as a string holding its JSON.
mod json_text {
    use super::*;

    pub fn serialize<T: Serialize, S: Serializer>(value: &T, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&serde_json::to_string(value).map_err(S::Error::custom)?)
    }

    pub fn deserialize<'de, T: DeserializeOwned, D: Deserializer<'de>>(
        d: D,
    ) -> Result<T, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        serde_json::from_str(&text).map_err(D::Error::custom)
    }
}

/// Serializes a struct into a JSON map of its fields, leaving out the
/// profile's tables without serializing them.
struct MetaSerializer;

struct MetaFields(Map<String, Value>);

impl SerializeStruct for MetaFields {
    type Ok = Map<String, Value>;
    type Error = serde_json::Error;

    fn serialize_field<T: ?Sized + Serialize>(
        &mut self,
        key: &'static str,
        value: &T,
    ) -> Result<(), serde_json::Error> {
        if !TABLES.contains(&key) {
            self.0.insert(key.to_string(), serde_json::to_value(value)?);
        }
        Ok(())
    }

    fn end(self) -> Result<Map<String, Value>, serde_json::Error> {
        Ok(self.0)
    }
}

fn not_a_struct() -> serde_json::Error {
    <serde_json::Error as serde::ser::Error>::custom("profile metadata: expected a struct")
}

macro_rules! refuse {
    ($($name:ident: $ty:ty),* $(,)?) => {
        $(fn $name(self, _: $ty) -> Result<Self::Ok, Self::Error> { Err(not_a_struct()) })*
    };
}

impl Serializer for MetaSerializer {
    type Ok = Map<String, Value>;
    type Error = serde_json::Error;
    type SerializeSeq = Impossible<Self::Ok, Self::Error>;
    type SerializeTuple = Impossible<Self::Ok, Self::Error>;
    type SerializeTupleStruct = Impossible<Self::Ok, Self::Error>;
    type SerializeTupleVariant = Impossible<Self::Ok, Self::Error>;
    type SerializeMap = Impossible<Self::Ok, Self::Error>;
    type SerializeStruct = MetaFields;
    type SerializeStructVariant = Impossible<Self::Ok, Self::Error>;

    refuse!(
        serialize_bool: bool, serialize_i8: i8, serialize_i16: i16, serialize_i32: i32,
        serialize_i64: i64, serialize_u8: u8, serialize_u16: u16, serialize_u32: u32,
        serialize_u64: u64, serialize_f32: f32, serialize_f64: f64, serialize_char: char,
        serialize_str: &str, serialize_bytes: &[u8], serialize_unit_struct: &'static str,
    );

    fn serialize_struct(self, _: &'static str, len: usize) -> Result<MetaFields, Self::Error> {
        Ok(MetaFields(Map::with_capacity(len)))
    }
    fn serialize_none(self) -> Result<Self::Ok, Self::Error> {
        Err(not_a_struct())
    }
    fn serialize_some<T: ?Sized + Serialize>(self, _: &T) -> Result<Self::Ok, Self::Error> {
        Err(not_a_struct())
    }
    fn serialize_unit(self) -> Result<Self::Ok, Self::Error> {
        Err(not_a_struct())
    }
    fn serialize_unit_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
    ) -> Result<Self::Ok, Self::Error> {
        Err(not_a_struct())
    }
    fn serialize_newtype_struct<T: ?Sized + Serialize>(
        self,
        _: &'static str,
        _: &T,
    ) -> Result<Self::Ok, Self::Error> {
        Err(not_a_struct())
    }
    fn serialize_newtype_variant<T: ?Sized + Serialize>(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: &T,
    ) -> Result<Self::Ok, Self::Error> {
        Err(not_a_struct())
    }
    fn serialize_seq(self, _: Option<usize>) -> Result<Self::SerializeSeq, Self::Error> {
        Err(not_a_struct())
    }
    fn serialize_tuple(self, _: usize) -> Result<Self::SerializeTuple, Self::Error> {
        Err(not_a_struct())
    }
    fn serialize_tuple_struct(
        self,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeTupleStruct, Self::Error> {
        Err(not_a_struct())
    }
    fn serialize_tuple_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeTupleVariant, Self::Error> {
        Err(not_a_struct())
    }
    fn serialize_map(self, _: Option<usize>) -> Result<Self::SerializeMap, Self::Error> {
        Err(not_a_struct())
    }
    fn serialize_struct_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeStructVariant, Self::Error> {
        Err(not_a_struct())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::synthetic::SyntheticRecording;
    use crate::{FrameHandle, Mechanism, Runtime};
    use proptest::prelude::*;

    #[test]
    fn meta_has_every_field_but_the_tables() {
        let mut p = Profile::default();
        p.rate_hz = 99;
        p.boundary_mut(Runtime::Python, Runtime::C, Mechanism::Ctypes)
            .samples = 4;
        let f = p.intern_frame(Frame::new("x", Runtime::C));
        p.intern_stack(vec![f], true);
        let meta = ProfileMeta::of(&p);
        let full = serde_json::to_value(&p).unwrap();
        let full = full.as_object().unwrap();
        for (key, value) in full {
            if TABLES.contains(&key.as_str()) {
                assert!(!meta.0.contains_key(key), "{key} is a table");
            } else {
                assert_eq!(meta.0.get(key), Some(value), "{key}");
            }
        }
    }

    #[test]
    fn deltas_carry_only_what_changed() {
        let mut p = Profile::default();
        let mut b = DeltaBuilder::default();
        let f = p.intern_frame(Frame::new("a", Runtime::C));
        let s = p.intern_stack(vec![f], true);
        p.add_samples(s, 1, 2);
        let first = b.next(&p);
        assert_eq!((first.frames.len(), first.stacks.len()), (1, 1));
        assert_eq!(first.counts, vec![(s, 2)]);
        assert!(first.meta.is_some());
        assert!(b.next(&p).is_empty(), "nothing changed");
        p.lost.kernel = 3;
        let second = b.next(&p);
        assert!(second.counts.is_empty() && second.frames.is_empty());
        assert_eq!(second.meta.unwrap().0["lost"]["kernel"], 3);
    }

    #[test]
    fn deltas_that_do_not_fit_are_refused_whole() {
        let mut rec = SyntheticRecording::new(1);
        let mut b = DeltaBuilder::default();
        rec.advance(50);
        let first = b.next(rec.profile());
        rec.advance(50);
        let second = b.next(rec.profile());
        let mut replay = Replay::default();
        assert!(matches!(
            replay.apply(&second),
            Err(DeltaError::FrameGap { .. })
        ));
        assert_eq!(replay.profile(), &Profile::default());
        replay.apply(&first).unwrap();
        let cases: Vec<(ProfileDelta, DeltaError)> = vec![
            (
                ProfileDelta {
                    first_frame: first.frames.len() as u32,
                    first_stack: first.stacks.len() as u32,
                    stacks: vec![Stack {
                        frames: vec![FrameHandle(9999)],
                        complete: true,
                    }],
                    ..ProfileDelta::default()
                },
                DeltaError::NoSuchFrame(9999),
            ),
            (
                ProfileDelta {
                    first_frame: first.frames.len() as u32,
                    first_stack: first.stacks.len() as u32,
                    counts: vec![(StackHandle(0), u64::MAX)],
                    ..ProfileDelta::default()
                },
                DeltaError::CountOverflow(0),
            ),
            (
                ProfileDelta {
                    first_frame: first.frames.len() as u32,
                    first_stack: first.stacks.len() as u32,
                    counts: vec![(StackHandle(0), 1), (StackHandle(0), 1)],
                    ..ProfileDelta::default()
                },
                DeltaError::CountOrder,
            ),
            (
                ProfileDelta {
                    first_frame: first.frames.len() as u32,
                    first_stack: first.stacks.len() as u32,
                    meta: Some(ProfileMeta(
                        serde_json::from_str(r#"{"rate_hz": "fast"}"#).unwrap(),
                    )),
                    ..ProfileDelta::default()
                },
                DeltaError::Meta(String::new()),
            ),
        ];
        let before = replay.profile().clone();
        for (delta, want) in cases {
            let got = replay.apply(&delta).unwrap_err();
            assert_eq!(
                std::mem::discriminant(&got),
                std::mem::discriminant(&want),
                "{got}"
            );
            assert_eq!(replay.profile(), &before, "a refused delta changed nothing");
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        /// Applying every delta of a recording, taken at arbitrary moments,
        /// gives back the recording's profile exactly; so does applying them
        /// after folding runs of them together (the agent's back-pressure path).
        #[test]
        fn replaying_deltas_gives_the_profile(
            seed in any::<u64>(),
            steps in prop::collection::vec((0u32..300, any::<bool>()), 1..12),
            duration in any::<f64>().prop_filter("finite", |d| d.is_finite()),
        ) {
            let mut rec = SyntheticRecording::new(seed);
            let mut builder = DeltaBuilder::default();
            let mut replay = Replay::default();
            let mut folded = Replay::default();
            let mut pending: Option<ProfileDelta> = None;
            for (samples, fold) in steps {
                rec.advance(samples);
                let delta = builder.next(rec.profile());
                replay.apply(&delta).unwrap();
                match &mut pending {
                    Some(p) => p.append(delta).unwrap(),
                    None => pending = Some(delta),
                }
                if !fold {
                    folded.apply(&pending.take().unwrap()).unwrap();
                }
            }
            rec.finish(duration);
            let last = builder.next(rec.profile());
            replay.apply(&last).unwrap();
            match &mut pending {
                Some(p) => p.append(last).unwrap(),
                None => pending = Some(last),
            }
            folded.apply(&pending.unwrap()).unwrap();
            prop_assert_eq!(&replay.into_profile(), rec.profile());
            prop_assert_eq!(&folded.into_profile(), rec.profile());
        }
    }
}
